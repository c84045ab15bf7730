"""Step: fine-tune the packaged encoder into the cross-encoder teacher (listwise loss on the labels)."""

from __future__ import annotations

import tempfile
from typing import Annotated

from zenml import step

from mangadistill.config import RerankEvaluationConfig, RerankTeacherConfig
from mangadistill.models.encoders import ModelDir, load_pretrained_classifier, save_model_dir
from mangadistill.reranker.dataset import RerankDataset
from mangadistill.reranker.losses import RerankLoss
from mangadistill.reranker.train import train_reranker
from materializers import ModelDirMaterializer
from steps._context import compute_timer, log_output_metadata, run_label
from steps._reranker import RerankEpochLogger, log_training

RELEVANCE = ["relevance"]


@step(experiment_tracker=True, output_materializers=ModelDirMaterializer)
def train_rerank_teacher(rerank_dataset: RerankDataset, config: RerankTeacherConfig,
                         evaluation: RerankEvaluationConfig) -> Annotated[ModelDir, "rerank_teacher"]:
    """Train until validation NDCG@10 stops gaining (runbook 9.5, at most `training.epochs`); keep the best epoch."""
    model, tokenizer = load_pretrained_classifier(config.model, RELEVANCE)
    with compute_timer():
        result = train_reranker(model, tokenizer, rerank_dataset, RerankLoss(), config.training, config.stop,
                                on_epoch_end=RerankEpochLogger("teacher", run_label(), config.model, "-"),
                                latency_calls=evaluation.epoch_latency_calls, desc="teacher")
    log_output_metadata(log_training("teacher", result))
    return save_model_dir(model, tokenizer, tempfile.mkdtemp(prefix="rerank-teacher-"), role="teacher",
                          labels=RELEVANCE, max_length=config.training.max_length,
                          extra={"source_model": config.model, "best_epoch": result.best_epoch, "task": "rerank"},
                          ephemeral=True)
