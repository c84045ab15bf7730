"""Run-metric names: `<group>/<name>` so the MLflow UI sections them; Stage 2's epoch metrics stay unprefixed."""

import json

import mlflow
import pytest

from mangadistill.tracking import EpochLogger, grouped, log_grouped


@pytest.fixture
def run():
    experiment = mlflow.set_experiment("unit-tracking")
    with mlflow.start_run(experiment_id=experiment.experiment_id) as active:
        yield active


def _metrics(run) -> dict[str, float]:
    return mlflow.get_run(run.info.run_id).data.metrics


def test_grouped_prefixes_the_group_and_drops_nan_and_none():
    assert grouped("gate", {"student_accuracy": 0.9, "teacher_macro_f1": float("nan"), "threads": None, "rows": 3}) == {
        "gate/student_accuracy": 0.9, "gate/rows": 3.0}
    assert grouped("", {"loss_kd": 0.5}) == {"loss_kd": 0.5}  # Stage 2: the runbook 11.2 names as they are


@pytest.mark.parametrize("group", ["gate/", "/gate"])
def test_grouped_refuses_a_group_with_its_own_separator(group):
    with pytest.raises(ValueError, match="must not start or end with '/'"):
        grouped(group, {"accuracy": 1.0})


def test_log_grouped_logs_into_the_active_run(run):
    logged = log_grouped("serving", {"p95_ratio": 0.14, "int8_accuracy_delta": float("nan")})
    assert logged == {"serving/p95_ratio": 0.14}
    assert _metrics(run) == {"serving/p95_ratio": 0.14}


def test_epoch_logger_groups_metrics_but_keeps_the_event_schema(run):
    teacher = EpochLogger(stage="teacher_finetune", run_label="r", student="-", teacher="t", group="teacher",
                          artifact_name="teacher_epoch_end.jsonl")
    stage2 = EpochLogger(stage="output_kd", run_label="r", student="s", teacher="t")
    for epoch in (1, 2):
        teacher({"epoch": epoch, "loss_total": 1.0 / epoch, "val_accuracy": 0.5 + epoch / 10, "loss_kd": float("nan")})
        stage2({"epoch": epoch, "loss_total": 0.3, "loss_hard": 0.2, "val_accuracy": 0.8, "samples_per_sec": 99.0})

    metrics = _metrics(run)
    assert {"teacher/loss_total", "teacher/val_accuracy"} <= set(metrics) and "teacher/loss_kd" not in metrics
    assert {"loss_total", "loss_hard", "val_accuracy", "samples_per_sec"} <= set(metrics)  # Stage 2: unprefixed
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "teacher/val_accuracy")
    assert [(m.step, m.value) for m in history] == [(1, pytest.approx(0.6)), (2, pytest.approx(0.7))]
    event = teacher.events[0]  # the event keeps its own field names, whatever the metric group
    assert event["stage"] == "teacher_finetune" and event["loss_total"] == 1.0 and event["val_accuracy"] == 0.6
    assert not any("/" in key for key in event)
    artifact = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/events/teacher_epoch_end.jsonl")
    assert [json.loads(line) for line in artifact.splitlines()] == teacher.events
