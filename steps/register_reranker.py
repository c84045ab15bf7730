"""Step: register the served variant of the distilled reranker (with its corpus) as a version."""

from __future__ import annotations

import logging
import tempfile
from typing import Annotated, Any

from zenml import get_step_context, step

from mangadistill.config import RerankRegistryConfig
from mangadistill.export.onnx import serving_copy
from mangadistill.families.reranker import bundle_folder, student_record
from mangadistill.families.reranker import register_reranker as register
from mangadistill.models.model_dir import ModelDir
from mangadistill.reranker.dataset import RerankDataset
from steps._context import log_output_metadata
from steps._response import log_resolved_config

logger = logging.getLogger(__name__)


@step(enable_cache=False, experiment_tracker=True)
def register_reranker(rerank_student_onnx: ModelDir, rerank_report: dict[str, Any], rerank_dataset: RerankDataset,
                      config: RerankRegistryConfig, resolved_config: dict[str, Any]) -> Annotated[dict[str, Any], "registered_model"]:
    """Log the resolved config; register the served ONNX graph (reusing the version of the same weights)."""
    context = get_step_context()
    log_resolved_config(resolved_config)
    served = rerank_report["served_variant"]
    source_id = f"{context.inputs['rerank_student_onnx'][0].id}:{served}"
    record = student_record(context.pipeline_run.name, source_id, rerank_report, teacher=resolved_config["teacher"]["model"])
    folder = serving_copy(rerank_student_onnx, served, tempfile.mkdtemp(prefix="rerank-served-"))
    bundle_folder(folder.path, rerank_dataset.corpus, rerank_dataset.k)
    metrics = rerank_report["variants"][f"student_{served}"]
    registered = register(folder.path, config.model_name, record, "onnx", description=(
        f"Distilled reranker ({len(resolved_config['student']['teacher_layers'])} layers, {served}); gate NDCG@10 "
        f"{metrics['ndcg_at_10']:.4f} ({100 * metrics['ndcg_retention']:.1f}% of the teacher), rerank p95 "
        f"{metrics['latency_p95_ms']:.1f} ms ({metrics['p95_ratio_vs_teacher']:.2f}x the teacher's)."))
    logger.info("%s version %s of '%s'", "reused" if registered.reused else "registered", registered.version, registered.name)
    result = {"name": registered.name, "version": registered.version, "uri": registered.uri,
              "run_id": registered.run_id, "reused": registered.reused, "served_variant": served}
    log_output_metadata(dict(result))
    return result
