"""Step: the distilled student as an ONNX bundle (fp32 + dynamic INT8), with the corpus it retrieves from."""

from __future__ import annotations

import tempfile
from typing import Annotated

from zenml import step

from mangadistill.config import RerankExportConfig
from mangadistill.export.onnx import export_onnx, quantize_dynamic_int8
from mangadistill.families.reranker import bundle_folder
from mangadistill.models.model_dir import ModelDir
from mangadistill.reranker.dataset import RerankDataset
from materializers import ModelDirMaterializer
from steps._context import compute_timer, log_output_metadata


@step(output_materializers=ModelDirMaterializer)
def export_rerank_student(rerank_dataset: RerankDataset, rerank_student: ModelDir,
                          config: RerankExportConfig) -> Annotated[ModelDir, "rerank_student_onnx"]:
    """optimum export, then INT8 MatMuls (and 4-bit embedding tables) for this CPU's preset (runbook 13.3)."""
    with compute_timer():
        bundle = export_onnx(rerank_student, tempfile.mkdtemp(prefix="rerank-onnx-"), ephemeral=True)
        target = None if config.quantization_target == "auto" else config.quantization_target
        bundle = quantize_dynamic_int8(bundle, target, per_channel=config.per_channel,
                                       embedding_block_size=config.embedding_block_size)
        bundle_folder(bundle.path, rerank_dataset.corpus, rerank_dataset.k)
    log_output_metadata({"variants": ", ".join(bundle.card["variants"])})
    return bundle
