"""Drift steps through `.entrypoint()` on real Evidently, real MiniLM embeddings and a real registered model.

The production model is a small TF-IDF + logistic-regression intent classifier registered in the sandbox
MLflow store as a pyfunc that follows the serving contract (DataFrame with ``intent`` and ``confidence``).
It is trained on other generated data than the reference split, so its outputs are out-of-sample on
both sides, as they would be for traffic; what is tested here is the detector, not a model's overfit.
"""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mangadistill.config import (
    DataConfig,
    DriftDetectionConfig,
    EmbeddingConfig,
    ProductionModelConfig,
    ReferenceDataConfig,
    SyntheticDataConfig,
    TrafficConfig,
    TrafficSimulatorConfig,
)
from mangadistill.data.cleaning import clean_and_split
from mangadistill.data.loaders import load_rows
from mangadistill.drift.production import resolve_production_model
from mangadistill.errors import DataError, ModelLoadError
from steps import (
    describe_queries,
    load_reference_data,
    load_traffic_log,
    predict_intents,
    recommend_retraining,
    report_drift,
)

MODEL = "drift-test-intent"
DETECTION = DriftDetectionConfig()  # the shipped defaults: drift share 0.3, TVD for intents, Evidently's others


class IntentPyfunc(mlflow.pyfunc.PythonModel):
    """Serving contract of the registered intent model: texts in, DataFrame(intent, confidence) out."""

    def __init__(self, pipeline):
        self.pipeline = pipeline

    def predict(self, context, model_input, params=None):
        texts = model_input.iloc[:, 0].tolist() if isinstance(model_input, pd.DataFrame) else list(model_input)
        probabilities = self.pipeline.predict_proba(texts)
        return pd.DataFrame({"intent": self.pipeline.classes_[probabilities.argmax(axis=1)],
                             "confidence": probabilities.max(axis=1)})


def _rows(n_rows: int, seed: int) -> pd.DataFrame:
    return clean_and_split(load_rows(DataConfig(synthetic=SyntheticDataConfig(n_rows=n_rows, seed=seed))),
                           DataConfig()).train


@pytest.fixture(scope="module")
def artifact_root(tmp_path_factory):
    return tmp_path_factory.mktemp("drift-artifacts")


def _experiment(name: str, artifact_root) -> str:
    """An experiment whose artifacts go to a temporary folder (not ./mlruns of the working directory)."""
    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    experiment_id = found.experiment_id if found else client.create_experiment(
        name, artifact_location=(artifact_root / name).as_uri())
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@pytest.fixture(scope="module")
def registered(artifact_root):
    """Two versions of MODEL; alias `production` on version 1."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    train = _rows(400, seed=77)
    pipeline = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=1000, C=3.0))
    pipeline.fit(train["text"], train["label"])
    _experiment("integration-drift-model", artifact_root)
    for _ in range(2):
        with mlflow.start_run():
            mlflow.pyfunc.log_model(name="model", python_model=IntentPyfunc(pipeline), registered_model_name=MODEL,
                                    pip_requirements=["scikit-learn", "pandas"])
    MlflowClient().set_registered_model_alias(MODEL, "production", "1")
    return MODEL


@pytest.fixture
def mlflow_run(artifact_root):
    with mlflow.start_run(experiment_id=_experiment("integration-drift-steps", artifact_root)) as run:
        yield run


@pytest.fixture(scope="module")
def reference():
    return _rows(300, seed=13)[["text", "label"]]


def _report(reference, drift, registered):
    traffic = load_traffic_log.entrypoint(TrafficConfig(simulator=TrafficSimulatorConfig(n_rows=200, seed=101, drift=drift)))
    reference_scored, traffic_scored, model = predict_intents.entrypoint(
        reference, traffic, config=ProductionModelConfig(model_name=registered))
    reference_features, traffic_features = describe_queries.entrypoint(reference_scored, traffic_scored,
                                                                       config=EmbeddingConfig(components=3))
    source = {"artifact_version_id": "test", "artifact_version": "1", "split": "train", "run_name": "test"}
    html, summary = report_drift.entrypoint(reference_features, traffic_features, model, source, config=DETECTION)
    recommendation = recommend_retraining.entrypoint(summary, drift_share_threshold=DETECTION.drift_share)
    return html, summary, recommendation


def _explain(summary) -> str:
    return "; ".join(f"{row['column']} {row['method']} {row['score']:.3f}{' DRIFT' if row['drifted'] else ''}"
                     for row in summary["columns"])


def test_same_distribution_log_is_not_flagged(reference, registered, mlflow_run):
    html, summary, recommendation = _report(reference, 0.0, registered)
    assert not summary["dataset_drift"] and summary["drift_share"] < DETECTION.drift_share, _explain(summary)
    assert recommendation["retrain"] is False and recommendation["reason"].startswith("no retraining needed")
    # every monitored column, the model's confidence included (DataFrame contract), was tested
    assert [row["column"] for row in summary["columns"]] == [
        "text", "text_length", "word_count", "oov_rate", "emb_pc1", "emb_pc2", "emb_pc3", "predicted_intent",
        "confidence"]
    assert summary["production_model"]["uri"] == f"models:/{registered}/1"
    assert "<html" in html.lower() and len(html) > 100_000
    run = MlflowClient().get_run(mlflow_run.info.run_id)
    assert run.data.metrics["drift_share"] == summary["drift_share"] and run.data.tags["retrain_recommended"] == "false"
    artifacts = {a.path for a in MlflowClient().list_artifacts(mlflow_run.info.run_id, "drift")}
    assert {"drift/drift_report.html", "drift/drift_summary.json", "drift/evidently_results.json",
            "drift/retraining_recommendation.json"} <= artifacts


def test_drifted_log_is_flagged_with_the_reason(reference, registered, mlflow_run):
    _, summary, recommendation = _report(reference, 1.0, registered)
    assert summary["dataset_drift"] and summary["drift_share"] >= DETECTION.drift_share, _explain(summary)
    assert {"text", "oov_rate"} <= set(summary["drifted_columns"])  # new titles and slang
    assert recommendation["retrain"] is True and "oov_rate" in recommendation["reason"]
    assert summary["label_drift"]["drifted"]  # the labelled log's true intent mix moved too
    failed = {test["name"] for test in summary["tests"] if test["status"] == "FAIL"}
    assert "Share of Drifted Columns: Less 0.300" in failed
    assert summary["tests_failed"] == len([t for t in summary["tests"] if t["status"] == "FAIL"]) > 0
    for side in ("reference", "current"):  # labelled on both sides: classification quality is reported
        assert 0.0 <= summary["quality"][side]["accuracy"] <= 1.0 and 0.0 <= summary["quality"][side]["macro_f1"] <= 1.0
    assert MlflowClient().get_run(mlflow_run.info.run_id).data.tags["retrain_recommended"] == "true"


def test_production_version_is_the_alias_else_the_newest_else_the_pinned_one(registered):
    assert resolve_production_model(ProductionModelConfig(model_name=registered)).version == "1"
    newest = resolve_production_model(ProductionModelConfig(model_name=registered, alias="canary"))
    assert newest.version == "2" and newest.chosen_by == "newest version; no alias 'canary'"
    assert resolve_production_model(ProductionModelConfig(model_name=registered, version="2")).chosen_by == "pinned version"
    with pytest.raises(ModelLoadError, match="version 9 of"):
        resolve_production_model(ProductionModelConfig(model_name=registered, version="9"))
    with pytest.raises(ModelLoadError, match="no registered model 'nobody-registered-this'"):
        resolve_production_model(ProductionModelConfig(model_name="nobody-registered-this"))


def test_malformed_log_fails_the_load_step_with_a_clear_message(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty\.jsonl: the traffic log is empty"):
        load_traffic_log.entrypoint(TrafficConfig(source="jsonl", path=empty))
    missing = tmp_path / "no_text.csv"
    missing.write_text("message,label\nhi,greeting\n")
    with pytest.raises(DataError, match=r"no_text\.csv: missing column 'text' \(found: message, label\)"):
        load_traffic_log.entrypoint(TrafficConfig(source="csv", path=missing))


def test_load_step_quarantines_bad_lines_scrubbed_and_logs_them(tmp_path, mlflow_run):
    log = tmp_path / "today.jsonl"
    log.write_text('{"text": "where is my order? mail me at ann.lee@example.com", "label": "order_status"}\n'
                   'not json, from bob@example.com\n{"text": "hi"}\n{"text": "Hi!"}\n{"text": "  "}\n')
    frame = load_traffic_log.entrypoint(TrafficConfig(source="jsonl", path=log))
    assert frame.to_dict("list") == {"text": ["where is my order? mail me at [EMAIL]", "hi"]}  # partly labelled
    run_id = mlflow_run.info.run_id
    quarantine = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="traffic/quarantine.csv",
                                                                 dst_path=str(tmp_path / "q")), keep_default_na=False)
    assert quarantine.to_dict("list") == {"text": ["not json, from [EMAIL]", ""], "label": ["", ""],
                                          "reason": ["line 2: not JSON (Expecting value)", "empty text"]}
    metrics = MlflowClient().get_run(run_id).data.metrics
    assert {key: metrics[f"traffic_{key}"] for key in ("rows_in", "quarantined", "rows_with_pii", "duplicates_dropped",
                                                       "unlabelled_rows", "rows")} == {
        "rows_in": 5.0, "quarantined": 2.0, "rows_with_pii": 2.0, "duplicates_dropped": 1.0, "unlabelled_rows": 1.0,
        "rows": 2.0}


def test_reference_needs_a_distill_intent_run_or_a_pinned_version():
    with pytest.raises(DataError, match="no successful distill_intent run in the active ZenML store"):
        load_reference_data.entrypoint(ReferenceDataConfig())
    with pytest.raises(DataError, match="reference.artifact_version_id 00000000-0000-0000-0000-000000000000"):
        load_reference_data.entrypoint(ReferenceDataConfig(artifact_version_id="00000000-0000-0000-0000-000000000000"))
