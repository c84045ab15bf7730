"""Teacher labelling: hard labels, soft labels (logits) and uncertainty for every split (runbook 11.1, 18.1).

The result is computed once per (dataset, teacher) pair and cached as a versioned artifact, so student
runs read logits instead of running the teacher online.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from mangadistill.data.dataset import SPLITS, IntentDataset
from mangadistill.losses.kd import entropy
from mangadistill.models.encoders import ModelDir, load_model_dir
from mangadistill.training.loop import predict_logits


@dataclass
class SplitLabels:
    """Teacher outputs for one split; every array has one row per example, in split order."""

    logits: np.ndarray  # (n, C) float32 soft labels before softmax
    hard: np.ndarray  # (n,) int64 argmax
    entropy: np.ndarray  # (n,) nats of softmax(logits)
    spread: np.ndarray  # (n,) p_top1 - p_top2 (runbook 18.1)

    @classmethod
    def from_logits(cls, logits: np.ndarray) -> SplitLabels:
        tensor = torch.from_numpy(logits)
        top2 = torch.softmax(tensor, dim=-1).topk(min(2, logits.shape[1]), dim=-1).values  # (n, 2)
        spread = top2[:, 0] - (top2[:, 1] if top2.shape[1] > 1 else 0.0)
        return cls(
            logits=logits.astype(np.float32),
            hard=logits.argmax(-1).astype(np.int64),
            entropy=entropy(tensor).numpy().astype(np.float32),
            spread=spread.numpy().astype(np.float32),
        )


@dataclass
class TeacherLabels:
    """Teacher outputs for train/val/gate plus the runbook 11.1 `teacher_label_generation` summary."""

    labels: tuple[str, ...]
    low_confidence_threshold: float
    splits: dict[str, SplitLabels] = field(default_factory=dict)
    summary: dict[str, float | int | str] = field(default_factory=dict)

    def low_confidence_fraction(self, split: str = "train") -> float:
        return float((self.splits[split].spread < self.low_confidence_threshold).mean())


def label_dataset(teacher: ModelDir, dataset: IntentDataset, low_confidence_threshold: float) -> TeacherLabels:
    """Run the teacher once over every split and summarise its confidence."""
    model, tokenizer = load_model_dir(teacher)
    max_length = int(teacher.card["max_length"])
    result = TeacherLabels(labels=dataset.labels, low_confidence_threshold=low_confidence_threshold)
    for split in SPLITS:
        logits = predict_logits(model, tokenizer, dataset.texts(split), max_length, desc=f"teacher labels {split}")
        result.splits[split] = SplitLabels.from_logits(logits)
    all_entropy = np.concatenate([s.entropy for s in result.splits.values()])
    result.summary = {
        "event": "teacher_label_generation",
        "teacher_model": teacher.card.get("source_model", teacher.path),
        "rows_processed": int(sum(len(s.hard) for s in result.splits.values())),
        "teacher_entropy_mean": float(all_entropy.mean()),
        "low_confidence_fraction": float(
            np.mean(np.concatenate([s.spread for s in result.splits.values()]) < low_confidence_threshold)
        ),
        "confidence_spread_mean": float(np.concatenate([s.spread for s in result.splits.values()]).mean()),
        **{
            f"teacher_{split}_accuracy": float((result.splits[split].hard == dataset.label_ids(split)).mean())
            for split in SPLITS
        },
    }
    return result
