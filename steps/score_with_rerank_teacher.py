"""Step: the teacher's score of every candidate of every query, an artifact later runs reuse (cached step)."""

from __future__ import annotations

from typing import Annotated

from zenml import step

from mangadistill.config import RerankTeacherConfig
from mangadistill.models.encoders import ModelDir, load_model_dir
from mangadistill.reranker.dataset import TRANSFER, RerankDataset
from mangadistill.reranker.train import score_queries
from steps._context import compute_timer, log_output_metadata


@step
def score_with_rerank_teacher(rerank_dataset: RerankDataset, rerank_teacher: ModelDir,
                              config: RerankTeacherConfig) -> Annotated[dict[str, list[float]], "teacher_scores"]:
    """query_id -> the teacher's score of each candidate, in list order, for the train split and the unlabelled
    transfer queries (what the distilled student learns from) and the validation split (the student's MSE to
    the teacher per epoch); the gate split is scored by the evaluation, beside the students."""
    model, tokenizer = load_model_dir(rerank_teacher)
    queries = rerank_dataset.split("train") + rerank_dataset.split(TRANSFER) + rerank_dataset.split("val")
    with compute_timer():
        scores = score_queries(model, tokenizer, rerank_dataset, queries,
                               int(rerank_teacher.card["max_length"]), config.score_batch_size, desc="teacher scores")
    log_output_metadata({"queries": len(scores), "transfer_queries": len(rerank_dataset.split(TRANSFER)),
                         "pairs": sum(len(v) for v in scores.values())})
    return scores
