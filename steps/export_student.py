"""Step: export the student to ONNX, quantize it to INT8 (dynamic and static), and score each graph on the gate set."""

from __future__ import annotations

import logging
import tempfile
from typing import Annotated, Any

import mlflow
from zenml import step

from mangadistill.config import ExportConfig
from mangadistill.data.dataset import IntentDataset
from mangadistill.evaluation.evaluate import evaluate_onnx_variant
from mangadistill.export.onnx import export_onnx, quantize_dynamic_int8, quantize_static_int8
from mangadistill.models.model_dir import ModelDir
from mangadistill.tracking import log_grouped
from materializers import ModelDirMaterializer
from steps._context import compute_timer, log_output_metadata

logger = logging.getLogger(__name__)


@step(experiment_tracker=True, output_materializers={"student_onnx": ModelDirMaterializer})
def export_student(
    intent_dataset: IntentDataset, student_model: ModelDir, evaluation: dict[str, Any], config: ExportConfig
) -> tuple[Annotated[ModelDir, "student_onnx"], Annotated[dict[str, Any], "export_report"]]:
    """ONNX bundle (fp32, INT8 dynamic, INT8 static) and each graph's gate metrics against the fp32 student."""
    target = None if config.quantization_target == "auto" else config.quantization_target
    with compute_timer():
        bundle = export_onnx(student_model, tempfile.mkdtemp(prefix="student-onnx-"), ephemeral=True,
                             refusal_label=intent_dataset.refusal_label,
                             refusal_threshold=evaluation["student"].get("refusal_threshold", 0.0))
        quantize_dynamic_int8(bundle, target, per_channel=config.per_channel, embedding_block_size=config.embedding_block_size)
        if config.static_int8:
            calibration = intent_dataset.texts("train")[: config.calibration_rows]
            quantize_static_int8(bundle, calibration, target, config.static_operators, config.calibration_percentile,
                                 per_channel=config.per_channel, embedding_block_size=config.embedding_block_size)
        quality = {variant: evaluate_onnx_variant(bundle, variant, intent_dataset)[0] for variant in bundle.card["variants"]}
    fp32_accuracy = evaluation["student"]["accuracy"]
    for variant, metrics in quality.items():
        metrics["accuracy_delta_points"] = 100 * (metrics["accuracy"] - fp32_accuracy)
        log_grouped("gate", {f"student_{variant}_{k}": v for k, v in metrics.items()})
        logger.info("%s: gate accuracy %.2f%% (%+.2f pt vs the fp32 student)", variant, 100 * metrics["accuracy"],
                    metrics["accuracy_delta_points"])
    report = {"quantization": bundle.card.get("quantization", {}), "variants": quality,
              "fp32_student_accuracy": fp32_accuracy}
    mlflow.log_dict(report, "export/export_report.json")
    log_output_metadata({f"{variant}_accuracy": m["accuracy"] for variant, m in quality.items()}, "student_onnx")
    return bundle, report
