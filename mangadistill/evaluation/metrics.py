"""Classification metrics of runbook 4.1/4.2/6.9: accuracy, macro-F1, rare-class recall, refusal P/R."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score


def classification_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    num_labels: int,
    rare_ids: Sequence[int] = (),
    refusal_id: int | None = None,
) -> dict[str, float]:
    """Gate metrics for integer label arrays of shape (n,).

    - ``rare_class_recall``: recall over the rows whose true label is one of `rare_ids` (micro), NaN if
      there are none;
    - ``refusal_precision`` / ``refusal_recall``: the refusal class as the positive class (precision is
      1.0 when nothing was refused, as nothing was refused wrongly); on CLINC150 the recall is the
      out-of-scope recall;
    - ``in_scope_accuracy``: accuracy over the rows whose true label is not the refusal class (CLINC150's
      in-scope accuracy: an in-scope query refused counts as wrong).
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    labels = list(range(num_labels))
    metrics = {
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
    }
    rare_mask = np.isin(y_true, list(rare_ids))
    metrics["rare_class_recall"] = float((y_pred[rare_mask] == y_true[rare_mask]).mean()) if rare_mask.any() else float("nan")
    if refusal_id is not None:
        is_true, is_pred = y_true == refusal_id, y_pred == refusal_id
        metrics["refusal_precision"] = float(precision_score(is_true, is_pred, zero_division=1.0))
        metrics["refusal_recall"] = float(recall_score(is_true, is_pred, zero_division=0.0))
        in_scope = ~is_true
        metrics["in_scope_accuracy"] = float((y_pred[in_scope] == y_true[in_scope]).mean()) if in_scope.any() else float("nan")
    return metrics


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> np.ndarray:
    """Counts matrix of shape (num_labels, num_labels): rows = true label, columns = predicted."""
    return confusion_matrix(y_true, y_pred, labels=list(range(num_labels)))
