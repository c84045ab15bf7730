"""The cross-encoder training loop on a tiny random BERT: the stop rule (after `min_epochs`), the per-epoch
history of runbook 9.4, and the best epoch's weights handed back."""

import numpy as np
import pytest

from mangadistill.config import RerankStopConfig, RerankTrainingConfig
from mangadistill.reranker.dataset import generate_dataset
from mangadistill.reranker.losses import RerankLoss
from mangadistill.reranker.metrics import ranking_metrics
from mangadistill.reranker.train import epoch_table, score_pairs, score_queries, train_reranker
from tests.tiny_models import tiny_classifier

TRAINING = RerankTrainingConfig(epochs=4, learning_rate=1e-3, batch_queries=8, group_size=4, max_length=48, dropout=0.0)


def _run(tmp_path, stop: RerankStopConfig, loss: RerankLoss | None = None, teacher_scores=None):
    dataset = generate_dataset(24, seed=5, k=6, hard_negatives=2, val_fraction=0.25, gate_fraction=0.25)
    _, model, tokenizer = tiny_classifier(tmp_path / "m", ["relevance"])
    result = train_reranker(model, tokenizer, dataset, loss or RerankLoss(), TRAINING, stop, teacher_scores=teacher_scores,
                            desc="t")
    return dataset, model, tokenizer, result


def test_stop_rule_waits_for_min_epochs_and_the_best_epoch_is_handed_back(tmp_path):
    always = RerankStopConfig(min_ndcg_gain=1.0, patience=1)  # every comparison "gains too little"
    assert len(_run(tmp_path, always.model_copy(update={"min_epochs": 1}))[3].history) == 2
    dataset, model, tokenizer, result = _run(tmp_path, always.model_copy(update={"min_epochs": 3}))
    assert [row["epoch"] for row in result.history] == [1, 2, 3] and "stop" in result.stop_reason
    val = dataset.split("val")
    scores = score_queries(model, tokenizer, dataset, val, TRAINING.max_length)
    kept = ranking_metrics([scores[q.query_id] for q in val], [q.labels for q in val])["ndcg_at_10"]
    assert np.isclose(kept, result.best["val_ndcg_at_10"])  # the model holds the kept epoch's weights
    assert result.best["val_ndcg_at_10"] == max(row["val_ndcg_at_10"] for row in result.history)


def test_distilled_history_has_the_9_4_columns(tmp_path):
    dataset = generate_dataset(24, seed=5, k=6, hard_negatives=2, val_fraction=0.25, gate_fraction=0.25)
    teacher = {q.query_id: list(np.linspace(1.0, -1.0, len(q.doc_ids))) for q in dataset.queries}
    *_, result = _run(tmp_path, RerankStopConfig(enabled=False), RerankLoss(0.3, 0.5), teacher)
    assert len(result.history) == TRAINING.epochs
    for key in ("loss_sup", "loss_mse", "loss_pairwise", "val_ndcg_at_10", "val_mrr_at_10", "val_top3_swap_rate",
                "val_mse_to_teacher"):
        assert all(np.isfinite(row[key]) for row in result.history), key
    table = epoch_table(result)
    assert table.startswith("| Epoch | Supervised loss | Pairwise loss | MSE score loss | NDCG@10 |")
    assert "best checkpoint (kept)" in table


def test_transfer_queries_are_learnt_from_the_teacher_only(tmp_path):
    dataset = generate_dataset(24, seed=5, k=6, hard_negatives=2, val_fraction=0.25, gate_fraction=0.25,
                               transfer_queries=12)
    transfer = dataset.split("transfer")
    assert transfer and all(q.labels is None for q in transfer)
    _, model, tokenizer = tiny_classifier(tmp_path / "m", ["relevance"])
    one_epoch = TRAINING.model_copy(update={"epochs": 1})
    with pytest.raises(ValueError, match="teacher"):  # labels only: nothing to learn from an unlabelled query
        train_reranker(model, tokenizer, dataset, RerankLoss(), one_epoch, RerankStopConfig(), use_transfer=True)
    teacher = {q.query_id: list(np.linspace(1.0, -1.0, len(q.doc_ids))) for q in dataset.queries
               if q.split != "transfer"}
    with pytest.raises(ValueError, match="no teacher scores"):
        train_reranker(model, tokenizer, dataset, RerankLoss(0.5, 0.5), one_epoch, RerankStopConfig(),
                       teacher_scores=teacher, use_transfer=True)
    teacher.update({q.query_id: list(np.linspace(1.0, -1.0, len(q.doc_ids))) for q in transfer})
    result = train_reranker(model, tokenizer, dataset, RerankLoss(0.5, 0.5), one_epoch, RerankStopConfig(),
                            teacher_scores=teacher, use_transfer=True)
    assert (result.labelled_queries, result.transfer_queries) == (len(dataset.split("train")), len(transfer))
    without = train_reranker(model, tokenizer, dataset, RerankLoss(0.5, 0.5), one_epoch, RerankStopConfig(),
                             teacher_scores=teacher)
    assert without.transfer_queries == 0


def test_scoring_batches_by_length_but_returns_scores_in_list_order(tmp_path):
    dataset = generate_dataset(24, seed=5, k=6, hard_negatives=2, val_fraction=0.25, gate_fraction=0.25)
    _, model, tokenizer = tiny_classifier(tmp_path / "m", ["relevance"])
    queries = dataset.split("train")
    batched = score_queries(model, tokenizer, dataset, queries, 48, batch_size=5)
    for q in queries[:6]:  # one query at a time, in list order: the reference
        alone = score_pairs(model, tokenizer, q.query, dataset.texts(q), 48)
        np.testing.assert_allclose(batched[q.query_id], alone, rtol=1e-4, atol=1e-5)
