"""`drift_report`: reference split + production traffic -> production-model predictions -> features ->
Evidently drift report -> retraining recommendation.

The reference is by default the held-out `gate` split of the dataset version the production model was
trained on: queries from the training distribution that the model never saw, so its predictions and
confidence on them are what new traffic from the same distribution would get.
"""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from mangadistill.config import DriftReportConfig
from steps import (
    describe_queries,
    load_reference_data,
    load_traffic_log,
    predict_intents,
    recommend_retraining,
    report_drift,
)


@pipeline
def drift_report(config: DriftReportConfig) -> None:
    """Compare production traffic with held-out queries of the dataset the production model learned from."""
    reference_queries, reference_source = load_reference_data(config=config.reference)
    traffic_log = load_traffic_log(config=config.traffic)
    reference_predictions, traffic_predictions, production_model = predict_intents(
        reference_queries, traffic_log, config=config.production_model)
    reference_features, traffic_features = describe_queries(reference_predictions, traffic_predictions,
                                                            config=config.embedding)
    _, drift_summary = report_drift(reference_features, traffic_features, production_model, reference_source,
                                    config=config.detection)
    recommend_retraining(drift_summary, drift_share_threshold=config.detection.drift_share)


def run_outputs(run: Any) -> dict[str, Any]:
    """The drift summary, the retraining recommendation and the report artifact of a finished run."""
    report_step = run.steps["report_drift"]
    return {
        "drift_summary": report_step.outputs["drift_summary"][0].load(),
        "retraining_recommendation": run.steps["recommend_retraining"].outputs["retraining_recommendation"][0].load(),
        "drift_report_artifact_id": str(report_step.outputs["drift_report"][0].id),
    }


def summary(run: Any) -> list[Any]:
    """What `run.py` prints at the end of a run: per-column drift, test counts, recommendation, where to look."""
    from rich.table import Table

    outputs = run_outputs(run)
    drift, recommendation = outputs["drift_summary"], outputs["retraining_recommendation"]
    reference, model, rows = drift["reference_source"], drift["production_model"], drift["rows"]
    table = Table(title=f"Drift: {rows['current']} traffic queries vs {rows['reference']} {reference['split']} queries "
                        f"(intent_dataset v{reference['artifact_version']})")
    for column in ("Column", "Test", "Score", "Threshold", "Drifted"):
        table.add_column(column, justify="left" if column in ("Column", "Test") else "right")
    for row in drift["columns"]:
        table.add_row(row["column"], str(row["method"]), f"{row['score']:.3f}", f"{row['threshold']:.3g}",
                      "[bold red]yes[/]" if row["drifted"] else "no")
    verdict = "DRIFT" if drift["dataset_drift"] else "no dataset drift"
    counts = (f"{verdict}: {len(drift['drifted_columns'])} of {drift['n_columns']} columns drifted "
              f"(share {drift['drift_share']:.2f}, threshold {drift['drift_share_threshold']:.2f}); "
              f"Evidently tests: {drift['tests_passed']} passed, {drift['tests_failed']} failed")
    lines: list[Any] = [table, counts]
    failed = [test["name"] for test in drift["tests"] if test["status"] != "SUCCESS"]
    if failed:
        lines.append("failed tests: " + "; ".join(failed))
    current, ref_quality = drift["quality"]["current"], drift["quality"]["reference"]
    if current and ref_quality:
        lines.append(f"production model on labelled traffic: accuracy {100 * current['accuracy']:.1f}% "
                     f"(reference {100 * ref_quality['accuracy']:.1f}%), macro-F1 {100 * current['macro_f1']:.1f}% "
                     f"(reference {100 * ref_quality['macro_f1']:.1f}%)")
    lines.append(f"production model {model['uri']} ({model['chosen_by']})")
    if model.get("training_run") and reference.get("run_name") and model["training_run"] != reference["run_name"]:
        lines.append(f"[yellow]note: the reference comes from run {reference['run_name']}, the production model "
                     f"was trained in run {model['training_run']}; pin reference.artifact_version_id to compare "
                     "with the dataset version the model was trained on[/]")
    outputs_drifted = [c for c in ("predicted_intent", "confidence") if c in drift["drifted_columns"]]
    if outputs_drifted and reference["split"] == "train":
        lines.append(f"[yellow]note: part of the {' and '.join(outputs_drifted)} drift may come from comparing with "
                     "the model's own training split, where it is more accurate and more confident than on any new "
                     "queries; the default reference.split: gate compares with queries it never saw[/]")
    lines.append(f"[bold]{recommendation['reason']}[/]")
    lines.append(f"report: {drift['report_uri']}")
    lines.append(f"also in the MLflow UI (run {drift['mlflow_run_id']}, experiment drift_report, Artifacts tab) and "
                 f"the ZenML dashboard (artifact drift_report, version id {outputs['drift_report_artifact_id']})")
    return lines

