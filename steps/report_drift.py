"""Step: the Evidently drift report, as a ZenML HTML artifact and in MLflow, with its summary metrics."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

import mlflow
import pandas as pd
from zenml import step
from zenml.types import HTMLString

from mangadistill.config import DriftDetectionConfig
from mangadistill.drift.report import build_report, classification_quality, summarize
from steps._context import compute_timer, log_output_metadata

logger = logging.getLogger(__name__)

REPORT_HTML = "drift/drift_report.html"


@step(enable_cache=False, experiment_tracker=True)
def report_drift(
    reference_features: pd.DataFrame,
    traffic_features: pd.DataFrame,
    production_model: dict[str, Any],
    reference_source: dict[str, Any],
    config: DriftDetectionConfig,
) -> tuple[Annotated[HTMLString, "drift_report"], Annotated[dict[str, Any], "drift_summary"]]:
    """Per-column drift tests, the dataset verdict and (labelled logs) classification quality."""
    with compute_timer():
        snapshot, columns = build_report(reference_features, traffic_features, config)
        results = json.loads(snapshot.json())  # plain JSON types (numpy values converted by Evidently's encoder)
        html = snapshot.get_html_str(as_iframe=False)
    summary = summarize(results, columns, config.drift_share,
                        rows={"reference": len(reference_features), "current": len(traffic_features)})
    summary["quality"] = {"reference": classification_quality(reference_features),
                          "current": classification_quality(traffic_features)}
    summary.update(production_model=production_model, reference_source=reference_source)
    mlflow.log_text(html, REPORT_HTML)
    mlflow.log_dict(results, "drift/evidently_results.json")
    summary.update(report_uri=mlflow.get_artifact_uri(REPORT_HTML), mlflow_run_id=mlflow.active_run().info.run_id)
    mlflow.log_dict(summary, "drift/drift_summary.json")
    mlflow.log_metrics({"drift_share": summary["drift_share"], "drifted_columns": len(summary["drifted_columns"]),
                        "monitored_columns": summary["n_columns"], "dataset_drift": float(summary["dataset_drift"]),
                        "tests_passed": summary["tests_passed"], "tests_failed": summary["tests_failed"],
                        **{f"drift_score_{row['column']}": row["score"] for row in summary["columns"]},
                        **{f"drift_detected_{row['column']}": float(row["drifted"]) for row in summary["columns"]},
                        **{f"{side}_{key}": value for side, quality in summary["quality"].items() if quality
                           for key, value in quality.items()}})
    logger.info("drift: %d/%d columns drifted (share %.2f, threshold %.2f): %s; tests %d passed, %d failed; %s",
                len(summary["drifted_columns"]), summary["n_columns"], summary["drift_share"], config.drift_share,
                ", ".join(summary["drifted_columns"]) or "none", summary["tests_passed"], summary["tests_failed"],
                summary["report_uri"])
    log_output_metadata({"drift_share": summary["drift_share"], "dataset_drift": summary["dataset_drift"],
                         "drifted_columns": summary["drifted_columns"]}, output_name="drift_summary")
    return HTMLString(html), summary
