"""Teacher labelling: hard labels, soft labels (logits) and uncertainty for every split (runbook 11.1, 18.1).

The result is computed once per (dataset, teacher) pair and cached as a versioned artifact, so student
runs read logits instead of running the teacher online.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mangadistill.data.dataset import SPLITS, IntentDataset
from mangadistill.losses.kd import entropy
from mangadistill.models.encoders import ModelDir, load_model_dir
from mangadistill.training.loop import predict_logits

#: The split name of the teacher-labelled augmented queries (`mangadistill.data.augment`).
AUGMENTED = "augmented"


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
    #: The unlabelled augmented queries the teacher labelled (split `AUGMENTED`, same order); empty without augmentation.
    augmented_texts: tuple[str, ...] = ()

    def low_confidence_fraction(self, split: str = "train") -> float:
        return float((self.splits[split].spread < self.low_confidence_threshold).mean())


def label_dataset(teacher: ModelDir, dataset: IntentDataset, low_confidence_threshold: float,
                  augmented_texts: Sequence[str] = ()) -> TeacherLabels:
    """Run the teacher once over every split (and the augmented queries, as split `AUGMENTED`) and
    summarise its confidence."""
    model, tokenizer = load_model_dir(teacher)
    max_length = int(teacher.card["max_length"])
    result = TeacherLabels(labels=dataset.labels, low_confidence_threshold=low_confidence_threshold,
                           augmented_texts=tuple(augmented_texts))
    texts = {split: dataset.texts(split) for split in SPLITS}
    if augmented_texts:
        texts[AUGMENTED] = list(augmented_texts)
    for split, split_texts in texts.items():
        logits = predict_logits(model, tokenizer, split_texts, max_length, desc=f"teacher labels {split}")
        result.splits[split] = SplitLabels.from_logits(logits)
    labelled = [result.splits[split] for split in SPLITS]  # the confidence figures stay comparable across runs
    spread = np.concatenate([s.spread for s in labelled])
    result.summary = {
        "event": "teacher_label_generation",
        "teacher_model": teacher.card.get("source_model", teacher.path),
        "rows_processed": int(sum(len(s.hard) for s in result.splits.values())),
        "teacher_entropy_mean": float(np.concatenate([s.entropy for s in labelled]).mean()),
        "low_confidence_fraction": float(np.mean(spread < low_confidence_threshold)),
        "confidence_spread_mean": float(spread.mean()),
        **{
            f"teacher_{split}_accuracy": float((result.splits[split].hard == dataset.label_ids(split)).mean())
            for split in SPLITS
        },
    }
    if augmented_texts:
        augmented = result.splits[AUGMENTED]
        result.summary.update(augmented_rows=len(augmented.hard),
                              augmented_entropy_mean=float(augmented.entropy.mean()),
                              augmented_low_confidence_fraction=float(np.mean(augmented.spread < low_confidence_threshold)))
    return result
