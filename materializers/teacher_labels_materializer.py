"""Stores `TeacherLabels` as one ``.npz`` per split plus a JSON summary."""

from __future__ import annotations

import io
import os
from typing import Any, ClassVar

import numpy as np
from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer

from mangadistill.teacher.labeling import SplitLabels, TeacherLabels
from materializers._files import read_json, write_json


class TeacherLabelsMaterializer(BaseMaterializer):
    """``<split>.npz`` (logits, hard, entropy, spread) and ``teacher_labels.json``."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (TeacherLabels,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def save(self, data: TeacherLabels) -> None:
        for split, labels in data.splits.items():
            buffer = io.BytesIO()
            np.savez_compressed(buffer, logits=labels.logits, hard=labels.hard, entropy=labels.entropy, spread=labels.spread)
            with fileio.open(os.path.join(self.uri, f"{split}.npz"), "wb") as handle:
                handle.write(buffer.getvalue())
        header = {
            "labels": list(data.labels),
            "low_confidence_threshold": data.low_confidence_threshold,
            "splits": list(data.splits),
            "summary": data.summary,
            "augmented_texts": list(data.augmented_texts),
        }
        write_json(self.uri, "teacher_labels.json", header)

    def load(self, data_type: type[Any]) -> TeacherLabels:
        header = read_json(self.uri, "teacher_labels.json")
        result = TeacherLabels(tuple(header["labels"]), header["low_confidence_threshold"], summary=header["summary"],
                               augmented_texts=tuple(header.get("augmented_texts", ())))
        for split in header["splits"]:
            with fileio.open(os.path.join(self.uri, f"{split}.npz"), "rb") as handle:
                arrays = np.load(io.BytesIO(handle.read()))
                result.splits[split] = SplitLabels(**{key: arrays[key] for key in ("logits", "hard", "entropy", "spread")})
        return result

    def extract_metadata(self, data: TeacherLabels) -> dict[str, Any]:
        return {k: v for k, v in data.summary.items() if isinstance(v, (int, float)) and k != "event"}

    def save_visualizations(self, data: TeacherLabels) -> dict[str, VisualizationType]:
        return {write_json(self.uri, "teacher_labels_summary.json", data.summary): VisualizationType.JSON}
