"""What a registered version carries (`mangadistill.lifecycle.record`): tags round trip, glance tags, the
schema-0 migration, the size cap of the `record` tag, derived facts, and the registry I/O helpers."""

import json

import pytest

from mangadistill.lifecycle import record as records
from mangadistill.lifecycle.record import (
    ARCHIVED,
    MAX_RECORD_CHARS,
    PRODUCTION,
    SCHEMA_VERSION,
    STAGING,
    MonitorRecord,
    Provenance,
    RollbackEvent,
    VersionRecord,
)

GLANCE = {"family", "role", "stage", "gates", "rollout", "served_variant", "flag"}


def _rich_record() -> VersionRecord:
    record = VersionRecord(
        family="intent", role="student", served_variant="onnx_int8", serving_threads=2,
        provenance=Provenance(pipeline_run="distill_intent-2026_11_20-10_00_00_000000",
                              source_id="0a1b2c3d:onnx_int8", teacher="models:/mangaassist-intent/1",
                              artifacts={"student_onnx": "0a1b2c3d"}),
        benchmark={"accuracy": 0.9512, "rare_class_recall": 0.869, "refusal_precision": 0.961,
                   "latency_p95_ms": 2.81, "cost_reduction": 0.842},
    )
    record.record_gates("offline", "pass", "all 7 enabled gates passed (1 skipped)",
                        {"accuracy": "0.9512 >= 0.89 PASS", "cold_start": "412.3 <= 150 SKIPPED"},
                        "runs:/abc123/gates/offline.json")
    record.set_stage(STAGING, "offline gates passed")
    record.record_gates("shadow", "fail", "failed agreement: 0.81 >= 0.85 FAIL", {"agreement": "0.81 >= 0.85 FAIL"})
    record.record_rollout(0.05, "5% (shadow)")
    record.record_rollout(0.10, "10%")
    record.set_stage(PRODUCTION, "rollback: manual rollback")
    record.flag = "production version 3 has no passing gate record"
    record.record_rollback("restored", "manual rollback", "4")
    record.monitor = MonitorRecord(checked_at="2026-11-21T08:00:00+00:00", last_decision="no trigger fired",
                                   recommendation=None, retrain_recommended=True,
                                   retrain_reason="drift share 0.42 >= 0.3", drift_report_run="drift_report-7")
    return record


# ------------------------------------------------------------------------------------------ round trip
def test_rich_record_round_trips_through_its_tags():
    record = _rich_record()
    tags = record.to_tags()
    assert all(isinstance(value, str) for value in tags.values())
    assert VersionRecord.from_tags(tags, record.benchmark) == record
    # numbers are logged-model metrics, never tags: without them the benchmark is empty
    assert VersionRecord.from_tags(tags).benchmark == {}
    body = json.loads(tags["record"])
    assert "benchmark" not in body and "0.9512" not in json.dumps({k: v for k, v in body.items() if k != "gates"})
    assert body["schema"] == SCHEMA_VERSION


def test_glance_tags_are_few_readable_and_unset_optional_ones_are_left_out():
    tags = _rich_record().to_tags()
    assert len(tags) <= 8 and set(tags) <= GLANCE | {"record"}
    assert tags["gates"] == "offline pass, shadow fail"
    assert tags["rollout"] == "10%" and tags["stage"] == "production" and tags["family"] == "intent"
    assert tags["served_variant"] == "onnx_int8" and tags["flag"].startswith("production version 3")
    assert all("\n" not in value and len(value) <= 300 for key, value in tags.items() if key != "record")

    fresh = VersionRecord(family="intent").to_tags()
    assert set(fresh) == {"family", "role", "stage", "gates", "rollout", "record"}  # no variant or flag yet
    assert fresh["role"] == "student" and fresh["stage"] == "none"
    assert fresh["gates"] == "-" and fresh["rollout"] == "not started"  # fixed places in the UI's tag list
    assert VersionRecord(family="intent").gate_summary() == "-"


# ------------------------------------------------------------------------------------------- schema 0
#: A version as register_student, promote_intent and rollback_intent tagged it before schema 1: passed
#: offline, held at 10% by a failing shadow, then put back in production by hand (`--version 3`) and flagged.
LEGACY_TAGS = {
    "role": "student", "served_variant": "onnx_int8",
    "zenml_pipeline_run": "distill_intent-2026_11_20-10_00_00_000000", "source_id": "0a1b2c3d:onnx_int8",
    "teacher_gate_accuracy": "0.9580", "fp32_student_gate_accuracy": "0.9410", "retention": "0.9929",
    "cost_reduction": "0.8420", "serving_threads": "1",
    "gate_accuracy": "0.9512", "gate_macro_f1": "0.9401", "gate_rare_class_recall": "0.8690",
    "gate_refusal_precision": "0.9610", "gate_refusal_recall": "0.5800", "gate_latency_p50_ms": "1.9000",
    "gate_latency_p95_ms": "2.8100", "gate_size_mb": "17.1000",
    "stage": "production", "stage.changed_at": "2026-11-21T09:00:00+00:00",
    "stage.reason": "rollback: manual rollback", "production_since": "2026-11-21T09:00:00+00:00",
    "stage.flag": "production version 3 has no passing gate record",
    "gate.offline.decision": "pass", "gate.offline.reason": "all 7 enabled gates passed (1 skipped)",
    "gate.offline.evaluated_at": "2026-11-20T11:00:00+00:00", "gate.offline.record": "runs:/abc123/gates/offline.json",
    "gate.offline.accuracy": "0.9512 >= 0.89 PASS", "gate.offline.latency_p95": "2.81 <= 6 PASS",
    "gate.offline.cold_start": "412.3 <= 150 SKIPPED",
    "gate.shadow.decision": "fail", "gate.shadow.reason": "failed agreement: 0.81 >= 0.85 FAIL",
    "gate.shadow.agreement": "0.81 >= 0.85 FAIL",
    "rollout.share": "0.1", "rollout.stage": "10%",
    "rollout.history": json.dumps([{"at": "2026-11-20T12:00:00+00:00", "share": 0.05},
                                   {"at": "2026-11-20T13:00:00+00:00", "share": 0.1}]),
    "rollback.reason": "manual rollback", "rollback.at": "2026-11-21T09:00:00+00:00", "rollback.restored_from": "4",
    "monitor.checked_at": "2026-11-21T10:00:00+00:00", "monitor.last_decision": "no trigger fired",
}


def test_schema0_flat_tags_migrate_to_the_record_and_benchmark():
    record = VersionRecord.from_tags(LEGACY_TAGS)
    assert record.schema == 0 and record.family == "intent" and record.role == "student"
    assert record.served_variant == "onnx_int8" and record.serving_threads == 1
    assert record.provenance == Provenance(pipeline_run="distill_intent-2026_11_20-10_00_00_000000",
                                           source_id="0a1b2c3d:onnx_int8")
    assert record.stage == PRODUCTION and record.stage_reason == "rollback: manual rollback"
    assert record.production_since == "2026-11-21T09:00:00+00:00"
    assert record.flag == "production version 3 has no passing gate record"
    assert record.benchmark["accuracy"] == 0.9512 and record.benchmark["rare_class_recall"] == 0.869
    assert record.benchmark["refusal_precision"] == 0.961 and record.benchmark["latency_p95_ms"] == 2.81
    assert record.benchmark["cost_reduction"] == 0.842 and record.benchmark["retention"] == 0.9929
    offline, shadow = record.gates["offline"], record.gates["shadow"]
    assert offline.passed and offline.record_uri == "runs:/abc123/gates/offline.json"
    assert offline.evaluated_at == "2026-11-20T11:00:00+00:00"
    assert offline.results == {"accuracy": "0.9512 >= 0.89 PASS", "latency_p95": "2.81 <= 6 PASS",
                               "cold_start": "412.3 <= 150 SKIPPED"}
    assert not shadow.passed and shadow.results == {"agreement": "0.81 >= 0.85 FAIL"}
    assert not record.has_passing_gate_record and record.gate_summary() == "offline pass, shadow fail"
    assert record.rollout.share == 0.1 and record.rollout.label == "10%" and len(record.rollout.history) == 2
    assert record.rollbacks == [RollbackEvent("2026-11-21T09:00:00+00:00", "manual rollback", "restored", "4")]
    assert record.monitor.checked_at == "2026-11-21T10:00:00+00:00"
    assert record.monitor.last_decision == "no trigger fired"
    # a benchmark logged on the model wins over the numbers of the old tags
    assert VersionRecord.from_tags(LEGACY_TAGS, {"accuracy": 0.5}).benchmark["accuracy"] == 0.5


def test_schema0_migration_keeps_every_number_register_student_wrote():
    # student_record (schema 1) names these teacher_accuracy / fp32_student_accuracy; the old tags held them too
    benchmark = VersionRecord.from_tags(LEGACY_TAGS).benchmark
    assert benchmark.get("teacher_accuracy") == 0.958 and benchmark.get("fp32_student_accuracy") == 0.941


def test_schema0_replaced_side_of_a_rollback_and_a_teacher():
    replaced = VersionRecord.from_tags({"role": "student", "stage": "rolled_back", "rollback.reason": "r fired",
                                        "rollback.at": "t", "rollback.replaced_by": "3"})
    assert replaced.rollbacks == [RollbackEvent("t", "r fired", "replaced", "3")] and replaced.was_retired
    teacher = VersionRecord.from_tags({"role": "teacher", "stage": "archived", "served_variant": "pytorch_fp32"})
    assert teacher.role == "teacher" and teacher.gates == {} and teacher.rollout.share is None
    assert teacher.monitor == MonitorRecord()


def test_migrated_record_writes_the_new_layout():
    migrated = VersionRecord.from_tags(LEGACY_TAGS)
    tags = migrated.to_tags()
    assert set(tags) <= GLANCE | {"record"} and tags["gates"] == "offline pass, shadow fail"
    again = VersionRecord.from_tags(tags, migrated.benchmark)
    assert again.schema == SCHEMA_VERSION
    assert {**again.__dict__, "schema": 0} == migrated.__dict__


def test_a_record_from_newer_code_is_refused_with_what_to_do():
    tags = {"family": "intent", "record": json.dumps({"schema": SCHEMA_VERSION + 1, "stage": "production"})}
    with pytest.raises(ValueError, match=rf"schema {SCHEMA_VERSION + 1} is newer .*upgrade mangadistill"):
        VersionRecord.from_tags(tags)


# --------------------------------------------------------------------------------------------- size cap
def test_record_tag_stays_under_the_cap_keeping_the_newest_history():
    record = VersionRecord(family="intent")
    record.record_gates("offline", "pass", "ok", {f"gate_{i}": "1 >= 0.5 PASS" for i in range(8)})
    rollout = [{"at": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}+00:00", "share": round(i / 500, 3)}
               for i in range(500)]
    rollbacks = [RollbackEvent(f"2026-02-01T{i:04d}", f"reason {i}: " + "latency p95 rose past its limit " * 9,
                               "replaced", str(i)) for i in range(200)]
    record.rollout.share, record.rollout.label, record.rollout.history = 1.0, "100%", list(rollout)
    record.rollbacks = list(rollbacks)
    text = record.to_tags()["record"]
    assert len(text) <= MAX_RECORD_CHARS
    assert len(record.rollout.history) == 500 and len(record.rollbacks) == 200  # the record in memory is untouched
    back = VersionRecord.from_tags(record.to_tags())
    assert back.gates == record.gates and back.rollout.share == 1.0  # only history is dropped
    kept_rollout, kept_rollbacks = back.rollout.history, back.rollbacks
    assert kept_rollout and kept_rollout == rollout[-len(kept_rollout):]  # the newest, in order
    assert kept_rollbacks and kept_rollbacks == rollbacks[-len(kept_rollbacks):]  # the newest rollback survives


def test_recorded_history_and_reasons_are_bounded_as_they_are_written():
    record = VersionRecord(family="intent")
    for i in range(15):
        record.record_rollout(round(0.05 * (i + 1), 2), f"{5 * (i + 1)}%")
    assert len(record.rollout.history) == 10 and record.rollout.history[-1]["share"] == 0.75
    assert record.rollout.history[0]["share"] == 0.3
    record.record_rollback("replaced", "x" * 1000, "2")
    reason = record.rollbacks[-1].reason
    assert len(reason) == 300 and reason.endswith("…")


# ---------------------------------------------------------------------------------------- derived facts
@pytest.mark.parametrize(
    ("gates", "passing"),
    [
        ({}, False),
        ({"offline": "pass"}, False),
        ({"shadow": "pass"}, False),
        ({"offline": "pass", "shadow": "fail"}, False),
        ({"offline": "fail", "shadow": "pass"}, False),
        ({"offline": "fail", "shadow": "fail"}, False),
        ({"offline": "pass", "shadow": "pass"}, True),
        ({"offline": "pass", "shadow": "pass", "canary": "fail"}, True),  # only the required sets count
    ],
)
def test_passing_gate_record_truth_table(gates, passing):
    record = VersionRecord(family="intent")
    for gate_set, decision in gates.items():
        record.record_gates(gate_set, decision, "r", {})
    assert record.has_passing_gate_record is passing
    assert VersionRecord.from_tags(record.to_tags()).has_passing_gate_record is passing


def test_set_stage_clears_the_flag_when_leaving_production():
    record = VersionRecord(family="intent")
    record.set_stage(PRODUCTION, "promoted")
    since = record.production_since
    assert since is not None and record.stage_changed_at == since
    record.flag = "production version 1 has no passing gate record"
    record.set_stage(PRODUCTION, "alias moved outside the pipeline")
    assert record.flag is not None  # still in production: the flag stays
    record.set_stage(ARCHIVED, "replaced in production by version 2")
    assert record.flag is None and "flag" not in record.to_tags()
    assert record.stage == ARCHIVED and record.stage_reason == "replaced in production by version 2"
    assert record.production_since == since and record.was_retired
