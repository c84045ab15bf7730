"""Data steps called through `.entrypoint()` inside a real MLflow run (sandbox SQLite store)."""

import mlflow
import pytest

from mangadistill.config import DataConfig, SyntheticDataConfig
from steps import clean_intent_data, load_intent_data


@pytest.fixture
def mlflow_run():
    experiment = mlflow.set_experiment("integration-data-steps")
    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        yield run


def test_load_and_clean_steps_log_counts(mlflow_run):
    config = DataConfig(synthetic=SyntheticDataConfig(n_rows=300, seed=3, malformed_rate=0.02))
    raw = load_intent_data.entrypoint(config=config)
    assert len(raw) == 300 and list(raw.columns) == ["text", "label"]
    dataset = clean_intent_data.entrypoint(raw, config=config)
    report = dataset.report
    assert report["rows_in"] == 300 and report["quarantined"] >= 1
    assert report["rows_clean"] == report["train"] + report["val"] + report["gate"]
    assert report["rows_in"] == report["rows_clean"] + report["quarantined"] + report["exact_duplicates"] + report["near_duplicates"]
    metrics = mlflow.get_run(mlflow_run.info.run_id).data.metrics
    assert metrics["data/quarantined"] == report["quarantined"] and metrics["data/gate"] == report["gate"]
    assert {f"data/{key}" for key, value in report.items() if isinstance(value, int)} == set(metrics)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(mlflow_run.info.run_id, "data")}
    assert {"data/label_counts.csv", "data/quarantine.csv"} <= artifacts
