"""Stores an `IntentDataset` as JSON-lines splits plus a JSON header, readable without the project."""

from __future__ import annotations

import io
import os
from typing import Any, ClassVar

import pandas as pd
from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer

from mangadistill.data.dataset import SPLITS, IntentDataset
from materializers._files import read_json, write_json

_PARTS = (*SPLITS, "quarantine")


class IntentDatasetMaterializer(BaseMaterializer):
    """``train.jsonl``, ``val.jsonl``, ``gate.jsonl``, ``quarantine.jsonl`` and ``dataset.json``."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (IntentDataset,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def save(self, data: IntentDataset) -> None:
        for part in _PARTS:
            with fileio.open(os.path.join(self.uri, f"{part}.jsonl"), "w") as handle:
                getattr(data, part).to_json(handle, orient="records", lines=True, force_ascii=False)
        header = {
            "labels": list(data.labels),
            "rare_labels": list(data.rare_labels),
            "refusal_label": data.refusal_label,
            "report": data.report,
        }
        write_json(self.uri, "dataset.json", header)

    def load(self, data_type: type[Any]) -> IntentDataset:
        header = read_json(self.uri, "dataset.json")
        frames = {}
        for part in _PARTS:
            with fileio.open(os.path.join(self.uri, f"{part}.jsonl"), "r") as handle:
                text = handle.read()
            columns = ["text", "label", "reason"] if part == "quarantine" else ["text", "label"]
            frame = pd.read_json(io.StringIO(text), orient="records", lines=True, dtype=False) if text.strip() else pd.DataFrame(columns=columns)
            frames[part] = frame.reindex(columns=columns).astype(str)
        return IntentDataset(
            labels=tuple(header["labels"]),
            rare_labels=tuple(header["rare_labels"]),
            refusal_label=header["refusal_label"],
            report=header["report"],
            **frames,
        )

    def extract_metadata(self, data: IntentDataset) -> dict[str, Any]:
        return {"num_labels": len(data.labels), **{k: v for k, v in data.report.items() if isinstance(v, int)}}

    def save_visualizations(self, data: IntentDataset) -> dict[str, VisualizationType]:
        counts = data.label_counts()
        lines = ["# Intent dataset", "", "## Cleaning", "", "| step | rows |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in data.report.items()]
        lines += ["", "## Rows per label", "", "| label | train | val | gate |", "|---|---|---|---|"]
        lines += [f"| {label} | {row.train} | {row.val} | {row.gate} |" for label, row in counts.iterrows()]
        path = os.path.join(self.uri, "dataset.md")
        with fileio.open(path, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        return {path: VisualizationType.MARKDOWN}
