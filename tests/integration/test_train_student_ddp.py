"""The train_student step with `num_processes: 2`: its training runs as 2 DDP processes (gloo on CPU)."""

import mlflow
import pytest

from mangadistill.config import (
    CheckpointConfig,
    DataConfig,
    Stage1Config,
    Stage2Config,
    StudentConfig,
    SyntheticDataConfig,
    TrainingConfig,
)
from mangadistill.models.encoders import load_model_dir
from steps import clean_intent_data, label_with_teacher, load_intent_data, train_student
from tests.tiny_models import tiny_classifier


@pytest.fixture
def mlflow_run():
    experiment = mlflow.set_experiment("integration-train-student-ddp")
    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        yield run


def test_train_student_step_runs_ddp_and_logs_from_rank_0(mlflow_run, tmp_path):
    data = DataConfig(synthetic=SyntheticDataConfig(n_rows=200, seed=5))
    dataset = clean_intent_data.entrypoint(load_intent_data.entrypoint(config=data), config=data)
    teacher, _, _ = tiny_classifier(tmp_path / "teacher", list(dataset.labels), role="teacher", hidden_size=32, layers=2)
    labels = label_with_teacher.entrypoint(dataset, teacher, low_confidence_threshold=0.2)
    fast = TrainingConfig(epochs=1, batch_size=16, max_length=32)
    config = StudentConfig(teacher_layers=(1,), vocab_size=None, stage1=Stage1Config(training=fast),
                           stage2=Stage2Config(training=fast.model_copy(update={"epochs": 2})),
                           checkpoints=CheckpointConfig(dir=tmp_path / "checkpoints"), num_processes=2)

    student = train_student.entrypoint(dataset, teacher, labels, config=config)

    model, _ = load_model_dir(student)
    assert model.config.num_hidden_layers == 1 and student.card["stages"] == ["stage1", "stage2"]
    client = mlflow.MlflowClient()
    run = client.get_run(mlflow_run.info.run_id)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "stage1/loss_feature")] == [1]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [1, 2]
    history = client.get_metric_history(run.info.run_id, "train_samples")
    assert history and history[0].value >= len(dataset.texts("train"))  # both ranks' rows, summed
    assert run.data.tags["stage2_stop_reason"].startswith("epoch budget reached (2 epochs); stage 2: continue after epoch 2")
    assert not list((tmp_path / "checkpoints").iterdir())  # removed after success
