"""The drift report: Evidently 0.7's own `Report` API on reference vs current query features.

Monitored columns, each with its own drift test (Evidently `DataDriftPreset` -> `ValueDrift`):

=================  ===========  =============================================================
column             type         what it is
=================  ===========  =============================================================
text               text         the query (domain-classifier drift of the wording)
text_length        numerical    characters
word_count         numerical    whitespace-separated words
oov_rate           numerical    share of words outside the encoder's WordPiece vocabulary
emb_pc1..emb_pcK   numerical    sentence-embedding principal components (fitted on reference)
predicted_intent   categorical  the production model's intent
confidence         numerical    its top softmax probability
=================  ===========  =============================================================

The dataset is flagged when the share of drifted columns reaches ``drift_share`` (Evidently's
``DriftedColumnsCount`` test passes while the share is below it). When the log is labelled, the true
intent mix is tested too (outside the share) and `ClassificationPreset` adds the classification
quality of the production model on both sides, with Evidently's default tests against the reference.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import pandas as pd

from mangadistill.config import DriftDetectionConfig
from mangadistill.drift.features import DESCRIPTOR_COLUMNS
from mangadistill.errors import DataError

PREDICTION_COLUMNS = ("predicted_intent", "confidence")


def monitored_columns(reference: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    """The columns tested for drift, in report order: those of the table above present on both sides."""
    embedding = sorted((c for c in reference.columns if c.startswith("emb_pc")), key=lambda c: int(c[6:]))
    wanted = ["text", *DESCRIPTOR_COLUMNS, *embedding, *PREDICTION_COLUMNS]
    return [column for column in wanted if column in reference.columns and column in current.columns]


def is_labelled(frame: pd.DataFrame) -> bool:
    return "label" in frame.columns and bool(frame["label"].astype(str).str.strip().ne("").all())


def build_report(reference: pd.DataFrame, current: pd.DataFrame, detection: DriftDetectionConfig):
    """Run the Evidently report; returns the snapshot (``save_html``, ``dict``) and the monitored columns."""
    from evidently import DataDefinition, Dataset, MulticlassClassification, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import ClassificationPreset, DataDriftPreset
    from sklearn.exceptions import UndefinedMetricWarning

    columns = monitored_columns(reference, current)
    if "text" not in columns or len(columns) < 2:
        raise DataError(f"nothing to compare: monitored columns {columns} (need 'text' and features on both sides)")
    if len(reference) < 2 or len(current) < 2:
        raise DataError(f"a drift report needs at least 2 rows per side (reference {len(reference)}, "
                        f"current {len(current)})")
    labelled = is_labelled(reference) and is_labelled(current) and "predicted_intent" in columns
    numerical = [c for c in columns if c not in ("text", "predicted_intent")]
    categorical = [c for c in columns if c == "predicted_intent"] + (["label"] if labelled else [])
    definition = DataDefinition(
        text_columns=["text"], numerical_columns=numerical, categorical_columns=categorical,
        classification=[MulticlassClassification(target="label", prediction_labels="predicted_intent")]
        if labelled else None,
    )
    items: list[Any] = [DataDriftPreset(
        columns=columns, drift_share=detection.drift_share,
        num_method=detection.numerical_method, num_threshold=detection.numerical_threshold,
        cat_method=detection.categorical_method, cat_threshold=detection.categorical_threshold,
        text_method=detection.text_method, text_threshold=detection.text_threshold,
    )]
    if labelled:
        items += [ValueDrift(column="label", method=detection.categorical_method, threshold=detection.categorical_threshold),
                  ClassificationPreset()]
    keep = [*columns, *(["label"] if labelled else [])]
    with warnings.catch_warnings():
        # Per-label precision of an intent the model never predicts is 0 by definition; the report shows it.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        snapshot = Report(items, include_tests=True).run(
            Dataset.from_pandas(current[keep].reset_index(drop=True), data_definition=definition),
            Dataset.from_pandas(reference[keep].reset_index(drop=True), data_definition=definition),
        )
    return snapshot, columns


def summarize(results: dict[str, Any], columns: Sequence[str], drift_share_threshold: float,
              rows: dict[str, int]) -> dict[str, Any]:
    """The numbers a monitor needs from `snapshot.dict()`: drift share, drifted columns, per-test status.

    Per-column verdicts are the status of each column's ``ValueDrift`` test; the share is recomputed
    from them and checked against Evidently's own ``DriftedColumnsCount``, so the two cannot disagree.
    """
    metrics = {metric["id"]: metric for metric in results["metrics"]}
    status_by_metric = {test["metric_config"]["metric_id"]: test["status"] for test in results["tests"]}
    per_column: dict[str, dict[str, Any]] = {}
    for metric_id, metric in metrics.items():
        config = metric.get("config", {})
        if config.get("type", "").endswith(":ValueDrift"):
            per_column[config["column"]] = {
                "column": config["column"], "method": config.get("method"), "threshold": config.get("threshold"),
                "score": float(metric["value"]), "drifted": status_by_metric.get(metric_id) == "FAIL",
            }
    missing = [column for column in columns if column not in per_column]
    if missing:
        raise RuntimeError(f"Evidently returned no drift result for {missing}")
    table = [per_column[column] for column in columns]
    drifted = [row["column"] for row in table if row["drifted"]]
    share = len(drifted) / len(table)
    evidently_count = next(float(m["value"]["count"]) for m in metrics.values()
                           if m.get("config", {}).get("type", "").endswith(":DriftedColumnsCount"))
    if int(evidently_count) != len(drifted):
        raise RuntimeError(f"Evidently counts {evidently_count} drifted columns, its tests {len(drifted)}")
    tests = [{"name": test["name"], "status": test["status"], "description": test.get("description", "")}
             for test in results["tests"]]
    return {
        "drift_share": share,
        "drift_share_threshold": drift_share_threshold,
        "dataset_drift": share >= drift_share_threshold,
        "drifted_columns": drifted,
        "n_columns": len(table),
        "columns": table,
        "label_drift": per_column.get("label"),
        "tests": tests,
        "tests_passed": sum(test["status"] == "SUCCESS" for test in tests),
        "tests_failed": sum(test["status"] == "FAIL" for test in tests),
        "rows": dict(rows),
    }


def classification_quality(frame: pd.DataFrame) -> dict[str, float] | None:
    """Accuracy and macro-F1 of ``predicted_intent`` against ``label``; None for an unlabelled frame."""
    if not is_labelled(frame):
        return None
    from sklearn.metrics import accuracy_score, f1_score

    truth, predicted = frame["label"].astype(str), frame["predicted_intent"].astype(str)
    return {"accuracy": float(accuracy_score(truth, predicted)),
            "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0))}
