"""The promotion life cycle against a real SQLite MLflow registry, through the steps' entrypoints.

candidate passes -> staging; a failing gate (refusal precision) -> stays, gate named; staging -> shadow ->
production; a newer model promoted -> the first archived (last-known-good); a trigger fires -> rollback to
last-known-good; an alias moved by hand (as in the UI) is honoured by the resolver and mirrored to tags.
"""

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mangadistill.config import MonitorConfig, PromoteConfig, parse_config
from mangadistill.lifecycle import stages
from mangadistill.lifecycle.record import read_record
from steps import (
    act_on_triggers,
    advance_rollout,
    check_production,
    evaluate_shadow,
    gate_candidate,
    rollback_production,
    select_candidate,
)
from tests.integration._tiny_models import register, tiny_onnx_classifier, use_experiment

NAME = "lifecycle-test"
SMOKE_PROMOTION = {
    "model_name": NAME,
    "shadow": {"traffic": {"source": "simulator", "simulator": {"n_rows": 30, "seed": 5}},
               "gates": {"agreement": {"category": "shadow", "metric": "agreement_rate", "min": 0.0},
                         "p95": {"category": "shadow", "metric": "staging_p95_latency_ms", "max": 1000.0}},
               "latency_warmup": 1},
    "rollout": {"steps_per_run": None},
}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("lifecycle")
    first, second = tiny_onnx_classifier(root, 1), tiny_onnx_classifier(root, 2)
    use_experiment("lifecycle-test", root / "artifacts")
    client = MlflowClient()
    versions = {
        "first": register(first, NAME, "first"),
        "second": register(second, NAME, "second"),
    }
    return client, versions, first, second


def _step(step, *args, **kwargs):
    """Run a step's body outside a pipeline; close the MLflow run it opened (the tracker does that in a pipeline)."""
    try:
        return step.entrypoint(*args, **kwargs)
    finally:
        mlflow.end_run()


def _promote(config, version):
    candidate = _step(select_candidate, NAME, "intent", int(version))
    offline = _step(gate_candidate, candidate, {"version": None}, family="intent", gates=config.offline_gate_set())
    shadow = _step(evaluate_shadow, candidate, offline, config=config)
    return offline, shadow, _step(advance_rollout, candidate, shadow, config=config)


def test_full_life_cycle(registry):
    client, versions, first, second = registry
    config = parse_config(SMOKE_PROMOTION, PromoteConfig)
    v1, v2 = versions["first"], versions["second"]

    # the first version goes to production as a bootstrap (what bootstrap_teacher does for the teacher)
    stages.promote_to_production(client, NAME, v1, "bootstrap")
    assert stages.version_in_stage(client, NAME, stages.PRODUCTION) == v1
    assert stages.sync_stage_mirrors(client, NAME) == [f"FLAG: production version {v1} has no passing gate record"]
    assert read_record(client, NAME, v1).flag.endswith("no passing gate record")
    assert client.get_model_version(NAME, v1).tags["flag"].endswith("no passing gate record")  # a glance tag

    # candidate passes the offline gates -> staging (alias + tag + legacy stage), gate record on the version
    candidate = _step(select_candidate, NAME, "intent", None)
    assert candidate["version"] == v2
    offline = _step(gate_candidate, candidate, {"version": v1}, family="intent", gates=config.offline_gate_set())
    assert offline["passed"] and offline["staged"], offline["reason"]
    staged = client.get_model_version(NAME, v2)
    assert stages.version_in_stage(client, NAME, stages.STAGING) == v2
    assert staged.tags["stage"] == "staging" and staged.current_stage == "Staging"
    gates = read_record(client, NAME, v2).gates["offline"]
    assert gates.decision == "pass" and staged.tags["gates"] == "offline pass"
    assert gates.results["rollback_target"] == "1 >= 1 PASS"
    record = json.loads(Path(mlflow.artifacts.download_artifacts(gates.record_uri)).read_text())
    assert record["passed"] and {g["name"] for g in record["gates"]} >= {"accuracy", "cost_reduction", "observability"}

    # a third version with refusal precision under the threshold stays where it was, the gate named
    v3 = register(first, NAME, "bad-refusal", refusal_precision=0.91)
    bad = _step(gate_candidate, _step(select_candidate, NAME, "intent", None), {"version": v1}, family="intent",
                gates=config.offline_gate_set())
    assert not bad["passed"] and not bad["staged"] and "refusal_precision: 0.91 >= 0.94 FAIL" in bad["reason"]
    failed = read_record(client, NAME, v3)
    assert failed.gates["offline"].decision == "fail"
    assert failed.gates["offline"].results["refusal_precision"] == "0.91 >= 0.94 FAIL"
    assert failed.stage == "none" and stages.version_in_stage(client, NAME, stages.STAGING) == v2  # nothing moved

    # staging -> shadow (replay, disagreement CSV, event) -> rollout to 100% -> production; v1 archived, last-known-good
    shadow = _step(evaluate_shadow, _step(select_candidate, NAME, "intent", int(v2)), offline, config=config)
    assert shadow["passed"] and shadow["production_version"] == v1
    assert shadow["event"]["event"] == "online_shadow_compare" and shadow["event"]["sample_size"] > 20
    assert 0.0 <= shadow["metrics"]["agreement_rate"] <= 1.0
    bucket = pd.read_csv(mlflow.artifacts.download_artifacts(shadow["disagreements_csv"]))
    assert len(bucket) == shadow["metrics"]["disagreements"]
    assert list(bucket.columns)[:3] == ["text", "label", "production_intent"]
    promotion = _step(advance_rollout, _step(select_candidate, NAME, "intent", int(v2)), shadow, config=config)
    assert promotion["promoted"] and promotion["rollout"] == "100%" and promotion["flags"] == []
    assert stages.aliases(client, NAME) == {"production": v2, "last-known-good": v1}
    old = client.get_model_version(NAME, v1)
    assert old.tags["stage"] == "archived" and old.current_stage == "Archived"
    assert client.get_model_version(NAME, v2).current_stage == "Production"
    assert read_record(client, NAME, v2).rollout.history[-1]["share"] == 1.0
    assert client.get_model_version(NAME, v2).tags["rollout"] == "100%"

    # a newer model is promoted -> v2 archived and last-known-good
    v4 = register(second, NAME, "newer", latency_p95_ms=0.001)  # an approved p95 nothing can meet
    offline4, shadow4, promotion4 = _promote(config, v4)
    assert offline4["staged"] and shadow4["passed"] and promotion4["promoted"] and promotion4["archived"] == v2
    assert stages.aliases(client, NAME) == {"production": v4, "last-known-good": v2}

    # a rollback trigger fires (observed p95 > approved 0.001 ms + 20%) -> production back to last-known-good
    monitor = parse_config({"model_name": NAME, "traffic": {"simulator": {"n_rows": 30, "seed": 9}},
                            "latency_queries": 10, "latency_warmup": 1}, MonitorConfig)
    report = _step(check_production, config=monitor)
    assert report["version"] == v4 and report["fired"]
    assert [t["status"] for t in report["triggers"] if t["name"] == "latency_p95_ms"] == ["fired"]
    action = _step(act_on_triggers, report, model_name=NAME, action="rollback")
    assert action["rolled_back"] and action["restored"] == v2 and action["replaced"] == v4
    assert stages.aliases(client, NAME) == {"production": v2, "last-known-good": v1}
    bad_record, restored = read_record(client, NAME, v4), read_record(client, NAME, v2)
    assert bad_record.stage == "rolled_back" and "latency_p95_ms" in bad_record.rollbacks[-1].reason
    assert bad_record.rollbacks[-1].role == "replaced" and bad_record.rollbacks[-1].other_version == v2
    assert restored.rollbacks[-1].reason == bad_record.rollbacks[-1].reason
    assert restored.rollbacks[-1].role == "restored" and restored.rollbacks[-1].other_version == v4
    # the rolled-back version is never picked as the next candidate by default
    assert _step(select_candidate, NAME, "intent", None)["version"] == v3

    # recommend-only (a trigger a random model cannot pass: accuracy may not drop at all): records the
    # recommendation, moves nothing
    strict = monitor.model_copy(update={"triggers": parse_config(
        {"triggers": {"accuracy": {"benchmark": "accuracy", "max_drop_points": 0.0}}}, MonitorConfig).triggers})
    report = _step(check_production, config=strict)
    recommended = _step(act_on_triggers, report, model_name=NAME, action="recommend")
    assert recommended["action"] == "recommend" and recommended["target"] == v1
    assert stages.version_in_stage(client, NAME, stages.PRODUCTION) == v2
    assert read_record(client, NAME, v2).monitor.recommendation.startswith("roll back")

    # a manual rollback by the pipeline step
    manual = _step(rollback_production, NAME, "manual test rollback")
    assert manual["restored"] == v1 and manual["replaced"] == v2
    assert stages.version_in_stage(client, NAME, stages.LAST_KNOWN_GOOD) is None  # nothing archived left
    with pytest.raises(stages.RegistryStateError, match="no last-known-good"):
        stages.rollback_production(client, NAME, "again")

    # a person moves the production alias in the UI: the resolver follows; sync mirrors tags, archives, flags
    client.set_registered_model_alias(NAME, "production", v3)
    assert stages.version_in_stage(client, NAME, stages.PRODUCTION) == v3
    changes = stages.sync_stage_mirrors(client, NAME)
    assert f"version {v3}: tag unset -> production (follows its alias)" in changes
    assert f"version {v1}: tag production -> archived (its alias was moved)" in changes
    assert f"FLAG: production version {v3} has no passing gate record" in changes  # v3 failed its gates
    assert client.get_model_version(NAME, v3).current_stage == "Production"
    assert stages.version_in_stage(client, NAME, stages.LAST_KNOWN_GOOD) == v1


def test_a_candidate_of_another_family_is_refused(registry):
    from mangadistill.lifecycle.service import CandidateError
    from mangadistill.lifecycle.service import select_candidate as choose

    client = registry[0]
    with pytest.raises(CandidateError, match="belongs to family 'intent', not 'reranker'"):
        choose(client, NAME, None, "reranker")
