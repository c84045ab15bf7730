"""Data steps called through `.entrypoint()` inside a real MLflow run (sandbox SQLite store)."""

import mlflow
import pandas as pd
import pytest

from mangadistill.config import DataConfig, SyntheticDataConfig
from mangadistill.data.intents import MANGA_INTENTS
from mangadistill.data.synthetic import generate_intent_dataset
from steps import clean_intent_data, load_intent_data


@pytest.fixture
def mlflow_run():
    experiment = mlflow.set_experiment("integration-data-steps")
    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        yield run


def test_load_and_clean_steps_log_counts(mlflow_run):
    config = DataConfig(synthetic=SyntheticDataConfig(n_rows=300, seed=3, malformed_rate=0.02))
    raw = load_intent_data.entrypoint(config=config)
    assert len(raw) == 300 and list(raw.columns) == ["text", "label", "pii"]  # pii: what the reader scrubbed
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


def test_quarantine_logged_to_mlflow_carries_no_pii(mlflow_run, tmp_path):
    planted = [("refund me, I am planted.bob.4410@example.org", "no_such_intent"),   # unknown label
               ("   ", "call +44 20 7946 0733"),                                       # empty text, PII label
               ("where is my order? card 4556 7375 8689 9855", "order_status")]       # kept
    rows = pd.concat([generate_intent_dataset(200, 5), pd.DataFrame(planted, columns=["text", "label"])])
    rows.to_csv(tmp_path / "rows.csv", index=False)
    config = DataConfig(source="csv", path=tmp_path / "rows.csv", labels=MANGA_INTENTS)
    raw = load_intent_data.entrypoint(config=config)
    dataset = clean_intent_data.entrypoint(raw, config=config)
    quarantine = mlflow.artifacts.download_artifacts(run_id=mlflow_run.info.run_id, artifact_path="data/quarantine.csv",
                                                     dst_path=str(tmp_path / "download"))
    text = open(quarantine, encoding="utf-8").read()
    assert "[EMAIL]" in text and "[PHONE]" in text  # the planted rows are there, scrubbed
    for secret in ("planted.bob.4410", "7946 0733", "4556"):
        assert secret not in text
    assert dataset.report["rows_with_pii"] >= 3 and dataset.report["pii_scrubbed_in_cleaning"] == 0
    assert mlflow.get_run(mlflow_run.info.run_id).data.metrics["data/rows_with_pii"] == dataset.report["rows_with_pii"]
