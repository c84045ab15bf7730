"""Cross-encoder training and scoring: the teacher's fine-tuning and the student's distillation share one loop.

A cross-encoder reads ``[CLS] query [SEP] passage [SEP]`` and returns one logit, the relevance score. Each
optimizer step takes `batch_queries` queries with `group_size` of their K candidates each (a fresh random
sample every epoch), so the pairwise term compares candidates of the same query. After every epoch the
whole validation lists are scored: NDCG@10, MRR@10, top-3 swap rate (and the MSE to the teacher's scores,
when there are any), plus the p95 of single rerank calls; the stop rule (runbook 9.5) reads them and the
best epoch's weights are kept.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from mangadistill.config import RerankStopConfig, RerankTrainingConfig
from mangadistill.evaluation.latency import latency_summary
from mangadistill.reranker.dataset import TRANSFER, RerankDataset, RerankQuery
from mangadistill.reranker.losses import RerankLoss
from mangadistill.reranker.metrics import ranking_metrics
from mangadistill.training.loop import adamw
from mangadistill.training.stop_rules import RerankerStopRule, select_deployment_epoch

logger = logging.getLogger(__name__)

__all__ = ["RerankTrainResult", "TeacherScores", "score_pairs", "score_queries", "train_reranker"]

#: query_id -> the teacher's score of each of its candidates, in the list's order.
TeacherScores = dict[str, list[float]]
EpochCallback = Callable[[dict[str, float]], None]


@torch.inference_mode()
def score_pairs(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, query: str | Sequence[str],
                passages: Sequence[str], max_length: int) -> np.ndarray:
    """Scores of (query, passage) pairs in one forward pass, shape (len(passages),)."""
    queries = [query] * len(passages) if isinstance(query, str) else list(query)
    batch = tokenizer(queries, list(passages), truncation=True, max_length=max_length, padding=True,
                      return_tensors="pt").to(model.device)
    return model(**batch).logits[:, 0].float().cpu().numpy()


def score_queries(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dataset: RerankDataset,
                  queries: Sequence[RerankQuery], max_length: int, batch_size: int = 64,
                  desc: str | None = None) -> TeacherScores:
    """Every candidate of every query scored (pairs batched across queries, in order of length so that a batch
    pads little; the scores come back in list order)."""
    pairs = [(q.query, dataset.corpus[d]) for q in queries for d in q.doc_ids]
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    sorted_scores = np.empty(len(pairs), dtype=np.float64)
    model.eval()
    for start in tqdm(range(0, len(pairs), batch_size), desc=desc, disable=desc is None, unit="batch"):
        chunk = order[start:start + batch_size]
        sorted_scores[start:start + len(chunk)] = score_pairs(model, tokenizer, [pairs[i][0] for i in chunk],
                                                              [pairs[i][1] for i in chunk], max_length)
    scores = np.empty(len(pairs), dtype=np.float64)
    scores[order] = sorted_scores
    scores = scores.tolist()
    out: TeacherScores = {}
    offset = 0
    for q in queries:
        out[q.query_id] = scores[offset:offset + len(q.doc_ids)]
        offset += len(q.doc_ids)
    return out


@dataclass
class RerankTrainResult:
    """What one training run did: per-epoch history, the kept epoch and why training stopped."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    choice: str = ""
    stop_reason: str = "ran every configured epoch"
    train_seconds: float = 0.0
    labelled_queries: int = 0
    transfer_queries: int = 0

    @property
    def best(self) -> dict[str, float]:
        return next(row for row in self.history if row["epoch"] == self.best_epoch)


def _epoch_groups(queries: Sequence[RerankQuery], group_size: int, rng: random.Random) -> list[tuple[RerankQuery, list[int]]]:
    """Each query with `group_size` of its candidates, at least one of them relevant when it has one (an
    unlabelled transfer query: any `group_size`)."""
    groups = []
    for q in queries:
        positions = rng.sample(range(len(q.doc_ids)), len(q.doc_ids))
        relevant = next((p for p in positions if q.labels[p] > 0), None) if q.labels is not None else None
        chosen = positions[:group_size]
        if relevant is not None and relevant not in chosen:
            chosen[-1] = relevant
        groups.append((q, sorted(chosen)))
    rng.shuffle(groups)
    return groups


def _batch_tensors(batch, dataset: RerankDataset, teacher_scores: TeacherScores | None, group_size: int):
    """Labels, teacher scores and the mask as (Q, G), whether each query is labelled (Q,), plus the flat
    (query, passage) lists of the real pairs."""
    n = len(batch)
    labels = torch.zeros(n, group_size)
    labelled = torch.tensor([q.labels is not None for q, _ in batch])
    teacher = torch.zeros(n, group_size) if teacher_scores is not None else None
    mask = torch.zeros(n, group_size, dtype=torch.bool)
    queries, passages = [], []
    for row, (q, positions) in enumerate(batch):
        for col, position in enumerate(positions):
            labels[row, col] = q.labels[position] if q.labels is not None else 0
            mask[row, col] = True
            if teacher is not None:
                teacher[row, col] = teacher_scores[q.query_id][position]
            queries.append(q.query)
            passages.append(dataset.corpus[q.doc_ids[position]])
    return labels, labelled, teacher, mask, queries, passages


def _validate(model, tokenizer, dataset: RerankDataset, val: Sequence[RerankQuery], max_length: int,
              teacher_scores: TeacherScores | None, latency_calls: int) -> dict[str, float]:
    scores = score_queries(model, tokenizer, dataset, val, max_length)
    metrics = {f"val_{k}": v for k, v in ranking_metrics([scores[q.query_id] for q in val], [q.labels for q in val]).items()}
    if teacher_scores is not None:
        diffs = np.concatenate([np.subtract(scores[q.query_id], teacher_scores[q.query_id]) for q in val])
        metrics["val_mse_to_teacher"] = float(np.mean(diffs ** 2))
    if latency_calls:
        timings = []
        with torch.inference_mode():
            for q in (val[i % len(val)] for i in range(latency_calls + 1)):
                started = time.perf_counter()
                score_pairs(model, tokenizer, q.query, dataset.texts(q), max_length)
                timings.append((time.perf_counter() - started) * 1e3)
        metrics["p95_ms"] = latency_summary(np.asarray(timings[1:]))["latency_p95_ms"]
    return metrics


def train_reranker(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dataset: RerankDataset,
                   loss: RerankLoss, training: RerankTrainingConfig, stop: RerankStopConfig, *,
                   teacher_scores: TeacherScores | None = None, on_epoch_end: EpochCallback | None = None,
                   latency_calls: int = 0, desc: str = "train", use_transfer: bool = False) -> RerankTrainResult:
    """Train `model` in place on the train split (and the unlabelled transfer queries with `use_transfer`:
    the teacher's scores are all that is learnt of them); on return it holds the best validation epoch's weights."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    if loss.needs_teacher and teacher_scores is None:
        raise ValueError("this loss needs the teacher's scores of the training lists")
    transfer = dataset.split(TRANSFER) if use_transfer else []
    if transfer and (not loss.needs_teacher or teacher_scores is None):
        raise ValueError("transfer queries carry no labels: they need a loss that weights the teacher's scores")
    unscored = [q.query_id for q in transfer if q.query_id not in teacher_scores]
    if unscored:
        raise ValueError(f"{len(unscored)} transfer queries have no teacher scores (first: {unscored[0]}); "
                         "score them with the teacher first")
    set_seed(training.seed)
    if training.dropout is not None:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = training.dropout
    train, val = dataset.split("train") + transfer, dataset.split("val")
    accelerator = Accelerator(mixed_precision=training.mixed_precision, cpu=not torch.cuda.is_available())
    optimizer = adamw(model.parameters(), lr=training.learning_rate, weight_decay=training.weight_decay)
    steps_per_epoch = -(-len(train) // training.batch_queries)
    total = steps_per_epoch * training.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(training.warmup_ratio * total), total)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    rule = RerankerStopRule(stop.min_ndcg_gain, stop.max_swap_rate_rise, stop.patience) if stop.enabled else None
    rng = random.Random(training.seed)
    result, best_state, best_ndcg = RerankTrainResult(), None, -np.inf
    result.labelled_queries, result.transfer_queries = len(train) - len(transfer), len(transfer)
    started = time.perf_counter()
    for epoch in range(1, training.epochs + 1):
        model.train()
        sums: dict[str, float] = {}
        pairs, epoch_started = 0, time.perf_counter()
        groups = _epoch_groups(train, training.group_size, rng)
        bar = tqdm(range(0, len(groups), training.batch_queries), desc=f"{desc} epoch {epoch}", unit="step",
                   leave=False)
        for start in bar:
            batch = groups[start:start + training.batch_queries]
            labels, labelled, teacher, mask, queries, passages = _batch_tensors(batch, dataset, teacher_scores,
                                                                                training.group_size)
            inputs = tokenizer(queries, passages, truncation=True, max_length=training.max_length, padding=True,
                               return_tensors="pt").to(accelerator.device)
            flat = model(**inputs).logits[:, 0].float()
            student = torch.zeros(mask.shape, device=flat.device).masked_scatter(mask.to(flat.device), flat)
            terms = loss(student, labels.to(flat.device), None if teacher is None else teacher.to(flat.device),
                         mask.to(flat.device), labelled.to(flat.device))
            accelerator.backward(terms.total)
            accelerator.clip_grad_norm_(model.parameters(), training.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            for key, value in terms.items().items():
                sums[key] = sums.get(key, 0.0) + value * len(queries)
            pairs += len(queries)
            bar.set_postfix(loss=f"{terms.items()['loss_total']:.4f}")
        row = {"epoch": epoch, **{k: v / max(pairs, 1) for k, v in sums.items()},
               "pairs_per_sec": pairs / (time.perf_counter() - epoch_started)}
        model.eval()
        row.update(_validate(accelerator.unwrap_model(model), tokenizer, dataset, val, training.max_length,
                             teacher_scores, latency_calls))
        result.history.append(row)
        logger.info("%s epoch %d: val NDCG@10 %.4f, MRR@10 %.4f, top-3 swap %.3f, loss %.4f", desc, epoch,
                    row["val_ndcg_at_10"], row["val_mrr_at_10"], row["val_top3_swap_rate"], row["loss_total"])
        if on_epoch_end is not None:
            on_epoch_end(row)
        if row["val_ndcg_at_10"] > best_ndcg:
            best_ndcg, best_state = row["val_ndcg_at_10"], copy.deepcopy(accelerator.unwrap_model(model).state_dict())
        if rule is not None and epoch >= stop.min_epochs:
            decision = rule.decide(result.history)
            if decision.stop:
                result.stop_reason = decision.reason
                break
    choice = select_deployment_epoch(result.history, metric="val_ndcg_at_10")
    result.best_epoch, result.choice = choice.epoch, choice.reason
    result.train_seconds = time.perf_counter() - started
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.load_state_dict(best_state)
    return result


#: Columns of the runbook 9.4 epoch table: header, history key, format.
EPOCH_COLUMNS = (("Epoch", "epoch", "{:.0f}"), ("Supervised loss", "loss_sup", "{:.3f}"),
                 ("Pairwise loss", "loss_pairwise", "{:.3f}"), ("MSE score loss", "loss_mse", "{:.3f}"),
                 ("NDCG@10", "val_ndcg_at_10", "{:.4f}"), ("MRR@10", "val_mrr_at_10", "{:.4f}"),
                 ("Top-3 swap", "val_top3_swap_rate", "{:.3f}"), ("p95 latency", "p95_ms", "{:.1f} ms"))


def epoch_table(result: RerankTrainResult) -> str:
    """The epoch table of runbook 9.4 (validation metrics), in Markdown, with the kept epoch and the stop noted."""
    columns = [c for c in EPOCH_COLUMNS if any(c[1] in row for row in result.history)]
    lines = ["| " + " | ".join([c[0] for c in columns] + ["Notes"]) + " |",
             "|" + "---|" * (len(columns) + 1)]
    for row in result.history:
        notes = []
        if row["epoch"] == result.best_epoch:
            notes.append("best checkpoint (kept)")
        if row is result.history[-1] and result.stop_reason != "ran every configured epoch":
            notes.append("stop: " + result.stop_reason.split(": ", 1)[-1])
        cells = [fmt.format(row[key]) if key in row else "-" for _, key, fmt in columns]
        lines.append("| " + " | ".join(cells + ["; ".join(notes)]) + " |")
    return "\n".join(lines) + "\n"
