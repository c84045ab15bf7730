"""The version record against a real SQLite MLflow registry: written once as a few glance tags plus one
JSON tag, the benchmark on the logged model, read back whole; a version written by the pre-record code
(schema 0: about twenty flat tags) is upgraded on its first write without losing its approved benchmark.
"""

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from mangadistill.lifecycle import record as records
from mangadistill.lifecycle.record import ARCHIVED, GateSetRecord, Provenance, VersionRecord
from mangadistill.lifecycle.registration import register_version
from tests.integration._tiny_models import use_experiment
from tests.unit.test_version_record import LEGACY_TAGS

NAME = "record-registry-test"


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


def _log_model():
    return mlflow.pyfunc.log_model(name="echo", python_model=_Echo(), registered_model_name=NAME,
                                   pip_requirements=["mlflow"])


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    use_experiment("record-registry-test", tmp_path_factory.mktemp("record-artifacts"))
    return MlflowClient()


def test_register_read_update_and_find(client):
    record = VersionRecord(family="intent", served_variant="onnx_int8_dynamic", serving_threads=1,
                           provenance=Provenance(pipeline_run="distill_intent-1", source_id="abc:onnx_int8_dynamic"),
                           benchmark={"accuracy": 0.9512, "latency_p95_ms": 2.81})
    with mlflow.start_run():
        mlflow.log_metric("loss", 0.1)  # a run metric is not part of the benchmark
        registered = register_version(NAME, record, _log_model)
    assert not registered.reused
    tags = client.get_model_version(NAME, registered.version).tags
    assert set(tags) == {"family", "role", "stage", "gates", "rollout", "served_variant", "record"}
    assert list(tags)[-1] == "record"  # the UI lists tags in the order they were first set: JSON last
    read = records.read_record(client, NAME, registered.version)
    assert read.benchmark == {"accuracy": 0.9512, "latency_p95_ms": 2.81}
    assert read.provenance == record.provenance and read.serving_threads == 1

    def gated_and_flagged(r: VersionRecord) -> None:
        r.gates["offline"] = GateSetRecord("pass", "all passed", "now", {"accuracy": "0.95 >= 0.89 PASS"})
        r.flag = "production version 1 has no passing gate record"

    records.update_record(client, NAME, registered.version, gated_and_flagged)
    tags = client.get_model_version(NAME, registered.version).tags
    assert tags["gates"] == "offline pass" and tags["flag"].startswith("production version")
    records.update_record(client, NAME, registered.version, lambda r: r.set_stage(ARCHIVED, "replaced"))
    tags = client.get_model_version(NAME, registered.version).tags
    assert "flag" not in tags and tags["stage"] == "archived"  # a tag the record no longer has is deleted

    with mlflow.start_run():  # the same weights again: the version is reused, not duplicated
        assert register_version(NAME, record, _log_model).reused
    assert records.find_by_source(client, NAME, "abc:onnx_int8_dynamic") == registered.version
    assert records.find_by_source(client, NAME, "missing") is None


def test_a_schema0_version_upgrades_without_losing_its_benchmark(client):
    with mlflow.start_run():
        version = str(_log_model().registered_model_version)
    for key, value in {**LEGACY_TAGS, "someone_elses_tag": "kept"}.items():  # what the pre-record code wrote
        client.set_model_version_tag(NAME, version, key, value)
    before = records.read_record(client, NAME, version)
    assert before.schema == 0 and before.benchmark["accuracy"] == 0.9512

    records.update_record(client, NAME, version, lambda r: r.record_rollout(0.25, "25%"))
    tags = client.get_model_version(NAME, version).tags
    assert set(tags) <= {"family", "role", "stage", "gates", "rollout", "served_variant", "flag", "record",
                         "someone_elses_tag"} and tags["someone_elses_tag"] == "kept"
    after = records.read_record(client, NAME, version)
    assert after.schema == 1 and tags["rollout"] == "25%" and tags["gates"] == "offline pass, shadow fail"
    assert after.benchmark == before.benchmark  # moved onto the logged model, not lost with the flat tags
    assert after.provenance.source_id == "0a1b2c3d:onnx_int8" and after.rollbacks[0].other_version == "4"
