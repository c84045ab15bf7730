"""Step: ONNX fp32 + INT8 variants of the distilled responder, timed and scored beside PyTorch; pick the served one."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import mlflow
from zenml import step

from mangadistill.config import ResponseEvaluationConfig, ResponseExportConfig
from mangadistill.models.model_dir import ModelDir
from mangadistill.response.dataset import ResponseDataset
from mangadistill.response.export import PYTORCH_FP32, benchmark_variants, export_variants
from mangadistill.tracking import log_grouped
from materializers import ModelDirMaterializer
from steps._context import compute_timer, log_output_metadata


@step(experiment_tracker=True, output_materializers={"served_responder": ModelDirMaterializer})
def export_responder(
    response_dataset: ResponseDataset, responder_model: ModelDir, evaluation: ResponseEvaluationConfig,
    config: ResponseExportConfig,
) -> tuple[Annotated[ModelDir, "served_responder"], Annotated[dict[str, Any], "variant_report"]]:
    """Export, benchmark on the gate set (rubric, p50/p95, tokens/s, size), and hand on the served variant."""
    merged = Path(responder_model.path)
    work = Path(tempfile.mkdtemp(prefix="responder-onnx-"))
    with compute_timer():
        folders = {PYTORCH_FP32: merged, **(export_variants(merged, work) if config.onnx else {})}
        report = benchmark_variants(folders, response_dataset.split("gate"), evaluation,
                                    max_rubric_drop=config.max_rubric_drop)
    for name, metrics in report["variants"].items():
        log_grouped(f"serving/{name}", metrics)
    mlflow.log_dict(report, "serving/variants.json")
    served = report["served_variant"]
    out = Path(tempfile.mkdtemp(prefix="served-responder-")) / "model"
    shutil.copytree(folders[served], out)
    if served != PYTORCH_FP32 and (merged / "adapter").is_dir():
        shutil.copytree(merged / "adapter", out / "adapter")  # the LoRA adapter travels with every variant
    shutil.rmtree(work, ignore_errors=True)
    log_output_metadata({"served_variant": served, "served_reason": report["served_reason"]},
                        output_name="served_responder")
    return ModelDir(str(out), ephemeral=True), report
