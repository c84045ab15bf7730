"""Stores a `ModelDir` (a saved classifier folder) in the artifact store."""

from __future__ import annotations

import os
import shutil
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.utils import io_utils

from mangadistill.models.model_dir import ModelDir

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

    def extract_metadata(self, data: ModelDir) -> dict[str, Any]:
        card = data.card
        return {
            "role": card.get("role", ""),
            "num_parameters": int(card.get("num_parameters", 0)),
            "num_layers": int(card.get("num_layers", 0)),
            "hidden_size": int(card.get("hidden_size", 0)),
            "size_mb": round(data.size_mb(), 2),
            "labels": len(card.get("labels", [])),
        }

    def save_visualizations(self, data: ModelDir) -> dict[str, VisualizationType]:
        path = os.path.join(self.uri, "model_card.md")
        card = data.card
        lines = [f"# {card.get('role', 'model')} classifier", "", "| field | value |", "|---|---|"]
        lines += [f"| {key} | {value if key != 'labels' else ', '.join(value)} |" for key, value in card.items()]
        with fileio.open(path, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        return {path: VisualizationType.MARKDOWN}
