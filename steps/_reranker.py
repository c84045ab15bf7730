"""What the reranker steps log the same way: per-epoch metrics and events, the epoch table and its plot."""

from __future__ import annotations

import json
import logging
from typing import Any

import mlflow

from mangadistill.evaluation.report import curves_figure
from mangadistill.reranker.train import RerankTrainResult, epoch_table
from mangadistill.tracking import log_figure, log_grouped

logger = logging.getLogger("mangadistill")


class RerankEpochLogger:
    """Logs each epoch as it ends: ``<group>/<metric>`` at step=epoch and a ``rerank_epoch_end`` event (JSONL)."""

    def __init__(self, group: str, run_label: str, model: str, teacher: str) -> None:
        self.group, self.run_label, self.model, self.teacher = group, run_label, model, teacher
        self.events: list[dict[str, Any]] = []

    def __call__(self, row: dict[str, float]) -> None:
        log_grouped(self.group, {k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
        event = {"event": "rerank_epoch_end", "run_id": self.run_label, "stage": self.group, "student": self.model,
                 "teacher": self.teacher, **{k: round(float(v), 6) for k, v in row.items()}}
        self.events.append(event)
        logger.info(json.dumps(event))
        mlflow.log_text("\n".join(json.dumps(e) for e in self.events) + "\n", f"events/{self.group}_epoch_end.jsonl")


def log_training(group: str, result: RerankTrainResult) -> dict[str, Any]:
    """The 9.4 epoch table and curves as MLflow artifacts; returns the summary kept as output metadata."""
    mlflow.log_text(epoch_table(result), f"tables/{group}_epochs.md")
    log_figure(curves_figure(result.history, ("loss_total", "loss_pairwise", "loss_mse", "val_ndcg_at_10",
                                              "val_top3_swap_rate"), f"{group}: epochs"), f"plots/{group}_epochs.png")
    summary = {"best_epoch": result.best_epoch, "epochs_trained": len(result.history),
               "best_val_ndcg_at_10": round(result.best["val_ndcg_at_10"], 6), "choice": result.choice,
               "stop_reason": result.stop_reason, "train_seconds": round(result.train_seconds, 1),
               "labelled_queries": result.labelled_queries, "transfer_queries": result.transfer_queries}
    log_grouped(group, {"best_epoch": result.best_epoch, "epochs_trained": len(result.history)})
    return summary
