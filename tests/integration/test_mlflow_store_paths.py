"""MLflow artifacts land beside the SQLite store, whatever form the ``sqlite:///`` URI takes."""

import mlflow

from pipelines.stack import _ensure_experiments, sqlite_path


def test_sqlite_path_reads_sqlalchemy_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert sqlite_path(f"sqlite:///{tmp_path / 'm.db'}") == tmp_path / "m.db"  # sqlite:////abs/m.db
    assert sqlite_path("sqlite:///rel/m.db") == tmp_path / "rel" / "m.db"  # relative to the working directory
    assert sqlite_path("http://mlflow.internal:5000") is None


def test_logged_artifacts_are_written_under_the_store_folder(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"  # absolute: sqlite:////...
    _ensure_experiments(uri)
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("drift_report")
    assert experiment.artifact_location == (tmp_path / "store" / "artifacts" / "drift_report").as_uri()
    run = client.create_run(experiment.experiment_id)
    client.log_text(run.info.run_id, "hello", "drift/probe.txt")
    expected = tmp_path / "store" / "artifacts" / "drift_report" / run.info.run_id / "artifacts" / "drift" / "probe.txt"
    assert expected.read_text() == "hello"
