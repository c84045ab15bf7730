"""The cleaned, split intent dataset that flows between pipeline steps."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "gate")


@dataclass
class IntentDataset:
    """Train / validation / frozen gate splits plus what cleaning set aside.

    Every split is a DataFrame with string columns ``text`` and ``label``; ``quarantine`` adds a
    ``reason`` column. ``report`` holds the cleaning counts (rows in, quarantined, PII found, duplicates
    removed, split sizes).
    """

    labels: tuple[str, ...]
    rare_labels: tuple[str, ...]
    refusal_label: str | None
    train: pd.DataFrame
    val: pd.DataFrame
    gate: pd.DataFrame
    quarantine: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["text", "label", "reason"]))
    report: dict[str, int] = field(default_factory=dict)

    def split(self, name: str) -> pd.DataFrame:
        """One split by name (train, val or gate)."""
        if name not in SPLITS:
            raise KeyError(f"unknown split '{name}'; choose one of {SPLITS}")
        return getattr(self, name)

    def texts(self, name: str) -> list[str]:
        """The query texts of a split, in order."""
        return self.split(name)["text"].tolist()

    def label_ids(self, name: str) -> np.ndarray:
        """Integer label ids of a split, indexing `labels`; shape (n,)."""
        index = {label: i for i, label in enumerate(self.labels)}
        return self.split(name)["label"].map(index).to_numpy(dtype=np.int64)

    @property
    def rare_label_ids(self) -> list[int]:
        return [self.labels.index(label) for label in self.rare_labels]

    @property
    def refusal_label_id(self) -> int | None:
        return None if self.refusal_label is None else self.labels.index(self.refusal_label)

    def label_counts(self) -> pd.DataFrame:
        """Rows per label and split: index = label, columns = train, val, gate."""
        counts = {name: self.split(name)["label"].value_counts() for name in SPLITS}
        return pd.DataFrame(counts).reindex(list(self.labels)).fillna(0).astype(int)
