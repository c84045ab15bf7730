"""Step: the student's base model as a versioned folder (SmolLM2 converted from its GGUF, a local folder, or tiny)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from zenml import step

from mangadistill.config import ResponseStudentConfig
from mangadistill.models.model_dir import ModelDir
from mangadistill.response.student import base_model_for
from materializers import ModelDirMaterializer
from steps._context import compute_timer, log_output_metadata


@step(output_materializers=ModelDirMaterializer)
def prepare_response_student(config: ResponseStudentConfig) -> Annotated[ModelDir, "student_base"]:
    """Build the base (not fine-tuned) student once; later runs with the same settings reuse the artifact."""
    with compute_timer():
        folder = base_model_for(config.base_model, Path(tempfile.mkdtemp(prefix="student-base-")) / "model",
                                cache_dir=config.cache_dir, tiny=config.tiny.model_dump() if config.tiny else None)
    model = ModelDir(str(folder), ephemeral=True)
    log_output_metadata({"base_model": config.base_model, "tiny": config.tiny is not None,
                         "parameters": model.card.get("parameters"), "size_mb": round(model.size_mb(), 1)})
    return model
