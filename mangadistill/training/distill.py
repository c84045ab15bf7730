"""The two training jobs of the intent track: teacher fine-tuning and student distillation."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mangadistill.config import KDConfig, StudentConfig, TeacherConfig
from mangadistill.data.dataset import IntentDataset
from mangadistill.losses.kd import WeightedLoss, distillation_loss, fine_tune_loss
from mangadistill.models.encoders import ModelDir, build_student, describe, load_model_dir, load_pretrained_classifier
from mangadistill.models.vocabulary import trim_vocabulary
from mangadistill.teacher.labeling import TeacherLabels
from mangadistill.training.loop import ClassificationTask, TrainResult, train_classifier

logger = logging.getLogger(__name__)
EpochCallback = Callable[[dict[str, float]], None]


@dataclass
class Trained:
    """A trained network with its tokenizer, training history and the loss it optimised."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    result: TrainResult
    loss: WeightedLoss


def task_from_dataset(dataset: IntentDataset, teacher_labels: TeacherLabels | None = None) -> ClassificationTask:
    """The train/validation task of a dataset, with cached teacher logits when given."""
    if teacher_labels is not None and tuple(teacher_labels.labels) != tuple(dataset.labels):
        raise ValueError(
            "teacher labels were produced for a different label set than the dataset; re-run label_with_teacher"
        )
    return ClassificationTask(
        train_texts=dataset.texts("train"),
        train_labels=dataset.label_ids("train"),
        val_texts=dataset.texts("val"),
        val_labels=dataset.label_ids("val"),
        num_labels=len(dataset.labels),
        rare_ids=dataset.rare_label_ids,
        refusal_id=dataset.refusal_label_id,
        train_teacher_logits=None if teacher_labels is None else teacher_labels.splits["train"].logits,
        val_teacher_logits=None if teacher_labels is None else teacher_labels.splits["val"].logits,
    )


def fine_tune_teacher(dataset: IntentDataset, config: TeacherConfig, on_epoch_end: EpochCallback | None = None) -> Trained:
    """Fine-tune `config.model` with cross-entropy; the best validation epoch is kept."""
    model, tokenizer = load_pretrained_classifier(config.model, list(dataset.labels))
    loss = fine_tune_loss()
    logger.info("teacher %s (%s), loss %s", config.model, describe(model), loss)
    result = train_classifier(model, tokenizer, task_from_dataset(dataset), loss, config.training,
                              on_epoch_end=on_epoch_end, desc="teacher")
    return Trained(model, tokenizer, result, loss)


def distill_student(
    dataset: IntentDataset,
    teacher: ModelDir,
    teacher_labels: TeacherLabels,
    config: StudentConfig,
    kd: KDConfig,
    on_epoch_end: EpochCallback | None = None,
) -> Trained:
    """Build the student from the teacher and train it on cached teacher logits (runbook 5.2)."""
    teacher_model, tokenizer = load_model_dir(teacher)
    student = build_student(teacher_model, config)
    del teacher_model
    if config.vocab_size is not None:
        student, tokenizer, trim = trim_vocabulary(student, tokenizer, dataset.texts("train"), config.vocab_size)
        logger.info("student %s", trim.describe())
    loss = distillation_loss(kd)
    logger.info("student (%s, init=%s), loss %s", describe(student), config.init, loss)
    result = train_classifier(student, tokenizer, task_from_dataset(dataset, teacher_labels), loss, config.training,
                              temperature=kd.temperature, on_epoch_end=on_epoch_end, desc="student")
    return Trained(student, tokenizer, result, loss)
