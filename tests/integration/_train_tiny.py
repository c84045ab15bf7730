"""Two-stage distillation of tiny BERTs, as a script: run plainly, under `accelerate launch` (DDP), or killed.

Writes ``<out>/rank<k>.json`` per process: world size, accelerate's distributed type, both stages' histories,
where each stage resumed from, and a checksum of the final student weights.
"""

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from transformers import BertConfig, BertForSequenceClassification

from mangadistill.config import PACKAGED_MINILM, Stage1Config, Stage1StopConfig, Stage2Config, TrainingConfig
from mangadistill.losses.kd import distillation_loss, feature_transfer_loss
from mangadistill.models.encoders import load_tokenizer, resolve_model_path
from mangadistill.training.checkpoints import StageCheckpoints
from mangadistill.training.distill import build_layer_matcher
from mangadistill.training.loop import ClassificationTask, OnlineTeacher, train_classifier

TEXTS = [f"{w} {i}" for i in range(16) for w in ("hello there", "how much is berserk", "do you ship abroad")]


def _bert(tokenizer, hidden, layers, heads, seed):
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden,
                                                    num_hidden_layers=layers, num_attention_heads=heads,
                                                    intermediate_size=2 * hidden, num_labels=3))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--checkpoints", type=Path)
    parser.add_argument("--hang-at-stage2-epoch", type=int, default=0, help="after this epoch's checkpoint: wait to be killed")
    parser.add_argument("--stage2-epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tokenizer = load_tokenizer(resolve_model_path(PACKAGED_MINILM))
    teacher = _bert(tokenizer, 48, 4, 4, seed=0).eval()
    student = _bert(tokenizer, 32, 2, 2, seed=1)
    labels = np.arange(len(TEXTS)) % 3
    rng = np.random.default_rng(0)
    task = ClassificationTask(TEXTS, labels, TEXTS[:12], labels[:12], 3, rare_ids=[2],
                              train_teacher_logits=rng.normal(size=(len(TEXTS), 3)).astype("float32"),
                              val_teacher_logits=rng.normal(size=(12, 3)).astype("float32"))
    stage1 = Stage1Config(training=TrainingConfig(epochs=2, batch_size=8, learning_rate=1e-3),
                          stop=Stage1StopConfig(enabled=False))
    matcher = build_layer_matcher(student, teacher, stage1)
    online = OnlineTeacher(teacher)
    ckpt = (lambda name: None) if args.checkpoints is None else (lambda name: StageCheckpoints(args.checkpoints / name))
    r1 = train_classifier(student, tokenizer, task, feature_transfer_loss(stage1), stage1.training, teacher=online,
                          matcher=matcher, probe=True, restore_best=False, checkpoints=ckpt("stage1"))
    state = PartialState()

    def hang(metrics):
        if metrics["epoch"] == args.hang_at_stage2_epoch:
            (args.out / "hanging").write_text(str(os.getpid()))
            time.sleep(600)

    stage2 = Stage2Config(training=TrainingConfig(epochs=args.stage2_epochs, batch_size=8, learning_rate=1e-3))
    r2 = train_classifier(student, tokenizer, task, distillation_loss(stage2.kd), stage2.training,
                          temperature=stage2.kd.temperature, checkpoints=ckpt("stage2"), on_epoch_end=hang)
    weights = hashlib.sha256(b"".join(v.numpy().tobytes() for v in student.state_dict().values())).hexdigest()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"rank{state.process_index}.json").write_text(json.dumps({
        "world_size": state.num_processes, "distributed_type": str(state.distributed_type),
        "stage1": r1.history, "stage2": r2.history, "stage1_resumed_from": r1.resumed_from_epoch,
        "stage2_resumed_from": r2.resumed_from_epoch, "stage2_stop_reason": r2.stop_reason, "weights": weights,
    }))


if __name__ == "__main__":
    sys.exit(main())
