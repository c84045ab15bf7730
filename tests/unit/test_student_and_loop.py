"""Student construction and the training loop, on tiny random BERTs with the packaged tokenizer."""

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from mangadistill.config import PACKAGED_MINILM, KDConfig, StudentArchitecture, StudentConfig, TrainingConfig
from mangadistill.errors import ModelLoadError
from mangadistill.losses.kd import distillation_loss, fine_tune_loss
from mangadistill.models.encoders import (
    build_student,
    count_parameters,
    load_pretrained_classifier,
    load_tokenizer,
    resolve_model_path,
)
from mangadistill.training.loop import ClassificationTask, LengthGroupedBatches, predict_logits, train_classifier

LABELS = ["greeting", "price", "shipping"]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(resolve_model_path(PACKAGED_MINILM))


@pytest.fixture
def teacher(tokenizer):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=128, num_labels=3, id2label=dict(enumerate(LABELS)),
                        label2id={label: i for i, label in enumerate(LABELS)})
    return BertForSequenceClassification(config).eval()


@pytest.fixture
def one_layer_minilm():
    """The packaged MiniLM cut to its first layer: pretrained, so a few steps learn a simple task."""
    model, _ = load_pretrained_classifier(PACKAGED_MINILM, LABELS)
    return build_student(model, StudentConfig(init="teacher_layers", teacher_layers=(0,)))


def test_student_from_teacher_layers_copies_those_layers(teacher):
    student = build_student(teacher, StudentConfig(init="teacher_layers", teacher_layers=(0, 3)))
    assert student.config.num_hidden_layers == 2 and len(student.bert.encoder.layer) == 2
    for s_layer, t_index in zip(student.bert.encoder.layer, (0, 3)):
        t_layer = teacher.bert.encoder.layer[t_index]
        assert torch.equal(s_layer.attention.self.query.weight, t_layer.attention.self.query.weight)
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    assert count_parameters(student) < count_parameters(teacher)
    assert teacher.config.num_hidden_layers == 4  # the teacher is untouched


def test_student_layer_out_of_range_is_a_clear_error(teacher):
    with pytest.raises(ModelLoadError, match="0..3"):
        build_student(teacher, StudentConfig(init="teacher_layers", teacher_layers=(0, 7)))


def test_tinybert_shaped_student_from_scratch(teacher, tokenizer):
    config = StudentConfig(init="scratch", architecture=StudentArchitecture(num_layers=4, hidden_size=312,
                                                                            num_attention_heads=12, intermediate_size=1200))
    student = build_student(teacher, config)
    assert (student.config.num_hidden_layers, student.config.hidden_size) == (4, 312)
    assert student.config.num_labels == 3 and student.config.id2label[1] == "price"
    logits = predict_logits(student, tokenizer, ["hello", "how much is berserk vol 1"], max_length=16)
    assert logits.shape == (2, 3)


def test_length_grouped_batches_cover_every_row_once():
    lengths = np.random.default_rng(0).integers(3, 40, size=103)
    sampler = LengthGroupedBatches(lengths, batch_size=8, seed=1, window=2)
    batches = list(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(103))
    assert len(batches) == len(sampler) == 13
    assert list(sampler) != batches  # a new order each epoch


def _task(n=48):
    texts = [f"{word} {i}" for i in range(n // 3) for word in ("hello there", "how much is it", "do you ship abroad")]
    labels = np.array([i % 3 for i in range(len(texts))])
    return ClassificationTask(texts, labels, texts[:12], labels[:12], num_labels=3, rare_ids=[2], refusal_id=0)


def test_fine_tuning_learns_a_separable_task_and_reports_epoch_metrics(one_layer_minilm, tokenizer):
    seen = []
    config = TrainingConfig(epochs=4, learning_rate=1.0e-3, batch_size=8, warmup_ratio=0.0, max_length=16, seed=0)
    result = train_classifier(one_layer_minilm, tokenizer, _task(), fine_tune_loss(), config, on_epoch_end=seen.append)
    assert [m["epoch"] for m in seen] == [1, 2, 3, 4]
    for key in ("loss_total", "loss_hard", "grad_norm", "lr", "samples_per_sec", "val_accuracy", "rare_class_recall",
                "refusal_precision", "student_entropy_mean"):
        assert key in seen[0]
    assert result.best_val_accuracy == max(m["val_accuracy"] for m in seen) >= 2 / 3  # chance is 1/3
    assert seen[-1]["loss_total"] < seen[0]["loss_total"]


def test_best_epoch_is_the_first_to_reach_the_best_accuracy_and_is_restored(teacher, tokenizer):
    # A random tiny BERT with a high learning rate: validation accuracy moves around between epochs.
    config = TrainingConfig(epochs=4, learning_rate=3.0e-3, batch_size=8, warmup_ratio=0.0, max_length=16, seed=0)
    history = []
    result = train_classifier(teacher, tokenizer, _task(), fine_tune_loss(), config, on_epoch_end=history.append)
    best = max(m["val_accuracy"] for m in history)
    assert result.best_epoch == next(m["epoch"] for m in history if m["val_accuracy"] == best)
    task = _task()
    restored = (predict_logits(teacher, tokenizer, task.val_texts, 16).argmax(-1) == task.val_labels).mean()
    assert restored == pytest.approx(result.best_val_accuracy)


def test_distillation_uses_cached_teacher_logits(teacher, tokenizer):
    task = _task()
    task.train_teacher_logits = predict_logits(teacher, tokenizer, task.train_texts, 16)
    task.val_teacher_logits = predict_logits(teacher, tokenizer, task.val_texts, 16)
    student = build_student(teacher, StudentConfig(init="teacher_layers", teacher_layers=(0,)))
    seen = []
    config = TrainingConfig(epochs=2, learning_rate=1.0e-3, batch_size=8, max_length=16)
    train_classifier(student, tokenizer, task, distillation_loss(KDConfig()), config, temperature=4.0,
                     on_epoch_end=seen.append)
    assert {"loss_kd", "loss_hard", "val_loss_kd", "teacher_entropy_mean"} <= set(seen[0])


def test_distillation_without_cached_logits_is_refused(teacher, tokenizer):
    with pytest.raises(ValueError, match="train_teacher_logits"):
        train_classifier(teacher, tokenizer, _task(), distillation_loss(KDConfig()), TrainingConfig(epochs=1))


# ------------------------------------------------------------------------------- checkpoint job folders
def _dataset(train_texts=("hi", "price of naruto"), gate_texts=("ship to canada?",)):
    import pandas as pd

    from mangadistill.data.dataset import IntentDataset

    def frame(texts):
        return pd.DataFrame({"text": list(texts), "label": [LABELS[i % 3] for i in range(len(texts))]})

    return IntentDataset(labels=tuple(LABELS), rare_labels=(), refusal_label=None, train=frame(train_texts),
                         val=frame(["hello"]), gate=frame(gate_texts))


def _weights(folder, value: float, name="model.safetensors"):
    from safetensors.torch import save_file

    from mangadistill.models.model_dir import ModelDir

    folder.mkdir(parents=True)
    if name.endswith(".safetensors"):
        save_file({"w": torch.full((4, 4), value)}, str(folder / name))
    else:
        torch.save({"w": torch.full((4, 4), value)}, folder / name)
    return ModelDir(str(folder))


def test_dataset_fingerprint_follows_the_training_rows_only():
    from mangadistill.training.checkpoints import dataset_fingerprint

    base = dataset_fingerprint(_dataset())
    assert dataset_fingerprint(_dataset()) == base
    assert dataset_fingerprint(_dataset(train_texts=("hi", "price of berserk"))) != base
    assert dataset_fingerprint(_dataset(gate_texts=("another gate query",))) == base  # the gate set is not trained on


def test_model_fingerprint_is_the_weights_not_the_folder(tmp_path):
    from mangadistill.training.checkpoints import model_fingerprint

    first = model_fingerprint(_weights(tmp_path / "a", 1.0))
    assert model_fingerprint(_weights(tmp_path / "elsewhere" / "a", 1.0)) == first
    assert model_fingerprint(_weights(tmp_path / "b", 2.0)) != first
    assert model_fingerprint(_weights(tmp_path / "c", 2.0, name="pytorch_model.bin")) != first  # .bin when no safetensors


def test_checkpoint_dir_is_one_per_job(tmp_path):
    from mangadistill.config import CheckpointConfig, KDConfig, Stage2Config
    from mangadistill.training.checkpoints import checkpoint_dir_for

    teacher = _weights(tmp_path / "teacher", 1.0)
    config = StudentConfig(checkpoints=CheckpointConfig(dir=tmp_path / "ckpt"))
    folder = checkpoint_dir_for(_dataset(), teacher, config)
    assert folder.parent == tmp_path / "ckpt" and folder.name.startswith("student-") and folder.is_absolute()
    assert checkpoint_dir_for(_dataset(), teacher, config) == folder
    # where the folder lives or whether to resume does not make it another job; the KD weights and the data do
    moved = config.model_copy(update={"checkpoints": CheckpointConfig(dir=tmp_path / "other", resume=False)})
    assert checkpoint_dir_for(_dataset(), teacher, moved).name == folder.name
    other_kd = config.model_copy(update={"stage2": Stage2Config(kd=KDConfig(alpha=0.5))})
    assert checkpoint_dir_for(_dataset(), teacher, other_kd) != folder
    assert checkpoint_dir_for(_dataset(train_texts=("hey",)), teacher, config) != folder
    assert checkpoint_dir_for(_dataset(), _weights(tmp_path / "teacher2", 3.0), config) != folder
    assert checkpoint_dir_for(_dataset(), teacher, config, ["hi there"]) != folder  # augmented queries train too
    off = config.model_copy(update={"checkpoints": CheckpointConfig(enabled=False)})
    assert checkpoint_dir_for(_dataset(), teacher, off) is None
