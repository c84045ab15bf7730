"""monitor_intent's drift input: the newest drift_report run's summary -> a retraining recommendation on production."""

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from mangadistill.config import MonitorDriftConfig
from mangadistill.lifecycle import stages
from mangadistill.lifecycle.record import read_record
from steps import check_drift
from tests.integration._tiny_models import register, tiny_onnx_classifier, use_experiment

NAME = "monitor-drift-test"


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitor-drift")
    use_experiment("monitor-drift-registry", root / "artifacts")
    version = register(tiny_onnx_classifier(root, seed=3), NAME, "monitor-drift-1")
    stages.promote_to_production(MlflowClient(), NAME, version, "test setup")
    return version, root


def _log_drift_run(experiment: str, root, share: float, drifted: list[str]) -> str:
    use_experiment(experiment, root / experiment)
    with mlflow.start_run() as run:
        mlflow.log_dict({"drift_share": share, "drifted_columns": drifted, "n_columns": 9}, "drift/drift_summary.json")
    return run.info.run_id


def test_drift_above_threshold_recommends_retraining_on_production(production):
    version, root = production
    run_id = _log_drift_run("drift-high", root, 0.78, ["text", "text_length", "oov_rate"])
    check = check_drift.entrypoint(MonitorDriftConfig(experiment="drift-high"), NAME)
    assert check["status"] == "ok" and check["retrain"] is True and check["run_id"] == run_id
    assert "at or above the threshold 0.30" in check["reason"]
    monitor = read_record(MlflowClient(), NAME, version).monitor
    assert monitor.retrain_recommended is True and monitor.drift_report_run == run_id and "text" in monitor.retrain_reason


def test_drift_below_threshold_and_stale_or_missing_reports_do_not(production):
    _, root = production
    _log_drift_run("drift-low", root, 0.11, ["confidence"])
    low = check_drift.entrypoint(MonitorDriftConfig(experiment="drift-low"), NAME)
    assert low["status"] == "ok" and low["retrain"] is False and "below the threshold" in low["reason"]
    stale = check_drift.entrypoint(MonitorDriftConfig(experiment="drift-low", max_age_hours=1e-6), NAME)
    assert stale["status"] == "stale" and stale["retrain"] is False and "run drift_report" in stale["reason"]
    missing = check_drift.entrypoint(MonitorDriftConfig(experiment="no-such-experiment"), NAME)
    assert missing["status"] == "no_report" and missing["retrain"] is False
    assert check_drift.entrypoint(MonitorDriftConfig(enabled=False), NAME)["status"] == "disabled"
