"""Step: train the 2-3 layer student, distilled from the teacher's scores or (base student) on labels only."""

from __future__ import annotations

import tempfile
from typing import Annotated

from zenml import step

from mangadistill.config import RerankEvaluationConfig, RerankStudentConfig
from mangadistill.models.encoders import (
    ModelDir,
    keep_layers,
    load_model_dir,
    load_pretrained_classifier,
    save_model_dir,
)
from mangadistill.reranker.dataset import TRANSFER, RerankDataset
from mangadistill.reranker.losses import RerankLoss
from mangadistill.reranker.train import train_reranker
from materializers import ModelDirMaterializer
from steps._context import compute_timer, log_output_metadata, run_label
from steps._reranker import RerankEpochLogger, log_training
from steps.train_rerank_teacher import RELEVANCE


@step(experiment_tracker=True, output_materializers=ModelDirMaterializer)
def train_rerank_student(rerank_dataset: RerankDataset, rerank_teacher: ModelDir, teacher_scores: dict[str, list[float]],
                         config: RerankStudentConfig, evaluation: RerankEvaluationConfig, teacher_model: str,
                         distilled: bool) -> Annotated[ModelDir, "rerank_student"]:
    """`distilled`: the teacher's layers `config.teacher_layers`, loss ``alpha*L_sup + (1-alpha)*MSE + w*L_pair``,
    on the train split plus the unlabelled transfer queries (teacher terms only). Otherwise the base student:
    the same layers of the pretrained encoder, labels only, train split only (runbook 9.3)."""
    group = "student" if distilled else "base_student"
    if distilled:
        teacher, tokenizer = load_model_dir(rerank_teacher)
        source, loss, scores = teacher, RerankLoss(config.alpha, config.pairwise_weight, config.centre_mse), teacher_scores
    else:
        source, tokenizer = load_pretrained_classifier(teacher_model, RELEVANCE)
        loss, scores = RerankLoss(), None
    model = keep_layers(source, config.teacher_layers)
    use_transfer = distilled and loss.needs_teacher and bool(rerank_dataset.split(TRANSFER))
    training, stop = config.training, config.stop
    if use_transfer:  # more queries per epoch: fewer epochs for about the same optimizer steps
        training = training.model_copy(update={"epochs": config.transfer_epochs})
        stop = stop.model_copy(update={"min_epochs": min(stop.min_epochs, config.transfer_epochs)})
    with compute_timer():
        result = train_reranker(model, tokenizer, rerank_dataset, loss, training, stop,
                                teacher_scores=scores, latency_calls=evaluation.epoch_latency_calls, desc=group,
                                use_transfer=use_transfer,
                                on_epoch_end=RerankEpochLogger(group, run_label(), f"{len(config.teacher_layers)}-layer",
                                                               teacher_model if distilled else "-"))
    log_output_metadata(log_training(group, result))
    return save_model_dir(model, tokenizer, tempfile.mkdtemp(prefix=f"rerank-{group}-"), role=group,
                          labels=RELEVANCE, max_length=config.training.max_length, ephemeral=True,
                          extra={"teacher_layers": list(config.teacher_layers), "best_epoch": result.best_epoch,
                                 "task": "rerank", "alpha": loss.alpha, "pairwise_weight": loss.pairwise_weight})
