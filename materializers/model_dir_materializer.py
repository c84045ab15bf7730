"""Stores a `ModelDir` (a saved classifier folder) in the artifact store."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.utils import io_utils

from mangadistill.models.model_dir import MODEL_CARD, WEIGHT_SUFFIXES, ModelDir

_FOLDER = "model"

class ModelDirMaterializer(BaseMaterializer):
    """Copies the folder into the artifact store; loads it in place when the store is local.

    Only folders marked `ephemeral` (scratch space a step created) are removed after the copy.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (ModelDir,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    def save(self, data: ModelDir) -> None:
        io_utils.copy_dir(data.path, os.path.join(self.uri, _FOLDER), overwrite=True)
        if data.ephemeral:
            shutil.rmtree(data.path, ignore_errors=True)

    def load(self, data_type: type[Any]) -> ModelDir:
        stored = os.path.join(self.uri, _FOLDER)
        if os.path.isdir(stored):  # local artifact store: read in place, nothing to copy
            return ModelDir(stored)
        with self.get_temporary_directory(delete_at_exit=False) as local:
            io_utils.copy_dir(stored, local)
            return ModelDir(local)

    def _stored_card(self) -> dict[str, Any]:
        """The card of the stored copy: `save` may already have removed an ephemeral source folder."""
        with fileio.open(os.path.join(self.uri, _FOLDER, MODEL_CARD), "r") as handle:
            return json.loads(handle.read())

    def _stored_weights_mb(self) -> float:
        """Like `ModelDir.size_mb`, over the stored copy (weights only, 10^6 bytes)."""
        total = 0
        for folder, _, files in fileio.walk(os.path.join(self.uri, _FOLDER)):
            for name in files:
                name = name.decode() if isinstance(name, bytes) else name
                if os.path.splitext(name)[1] in WEIGHT_SUFFIXES:
                    total += fileio.size(os.path.join(str(folder), name)) or 0
        return total / 1e6

    def extract_metadata(self, data: ModelDir) -> dict[str, Any]:
        card = self._stored_card()
        return {
            "role": card.get("role", ""),
            "num_parameters": int(card.get("num_parameters", 0)),
            "num_layers": int(card.get("num_layers", 0)),
            "hidden_size": int(card.get("hidden_size", 0)),
            "size_mb": round(self._stored_weights_mb(), 2),
            "labels": len(card.get("labels", [])),
        }

    def save_visualizations(self, data: ModelDir) -> dict[str, VisualizationType]:
        path = os.path.join(self.uri, "model_card.md")
        card = self._stored_card()
        lines = [f"# {card.get('role', 'model')} classifier", "", "| field | value |", "|---|---|"]
        lines += [f"| {key} | {value if key != 'labels' else ', '.join(value)} |" for key, value in card.items()]
        with fileio.open(path, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        return {path: VisualizationType.MARKDOWN}
