"""The training jobs of the intent track: teacher fine-tuning, and two-stage (TinyBERT) student distillation."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mangadistill.config import Stage1Config, Stage1StopConfig, Stage2StopConfig, StudentConfig, TeacherConfig
from mangadistill.data.dataset import IntentDataset
from mangadistill.errors import ConfigError
from mangadistill.losses.intermediate import LayerMatcher
from mangadistill.losses.kd import UNLABELLED, WeightedLoss, distillation_loss, feature_transfer_loss, fine_tune_loss
from mangadistill.models.encoders import ModelDir, build_student, describe, load_model_dir, load_pretrained_classifier
from mangadistill.models.vocabulary import token_id_map, trim_vocabulary
from mangadistill.teacher.labeling import AUGMENTED, TeacherLabels
from mangadistill.training.checkpoints import StageCheckpoints
from mangadistill.training.loop import ClassificationTask, OnlineTeacher, TrainResult, train_classifier
from mangadistill.training.stop_rules import Stage1StopRule, Stage2StopRule, TeacherStopRule

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
    """The train/validation task of a dataset, with cached teacher logits when given.

    Teacher labels that carry augmented queries (`mangadistill.data.augment`) add them after the training
    rows, labelled `UNLABELLED`: the student learns them from the teacher's logits only.
    """
    train_texts, train_labels = dataset.texts("train"), dataset.label_ids("train")
    train_logits = val_logits = None
    if teacher_labels is not None:
        if tuple(teacher_labels.labels) != tuple(dataset.labels):
            raise ValueError(
                "teacher labels were produced for a different label set than the dataset; re-run label_with_teacher"
            )
        train_logits, val_logits = teacher_labels.splits["train"].logits, teacher_labels.splits["val"].logits
        if teacher_labels.augmented_texts:
            extra = teacher_labels.splits[AUGMENTED].logits
            train_texts = train_texts + list(teacher_labels.augmented_texts)
            train_labels = np.concatenate([train_labels, np.full(len(extra), UNLABELLED, dtype=np.int64)])
            train_logits = np.concatenate([train_logits, extra])
    return ClassificationTask(
        train_texts=train_texts,
        train_labels=train_labels,
        val_texts=dataset.texts("val"),
        val_labels=dataset.label_ids("val"),
        num_labels=len(dataset.labels),
        rare_ids=dataset.rare_label_ids,
        refusal_id=dataset.refusal_label_id,
        train_teacher_logits=train_logits,
        val_teacher_logits=val_logits,
    )


def fine_tune_teacher(dataset: IntentDataset, config: TeacherConfig, on_epoch_end: EpochCallback | None = None) -> Trained:
    """Fine-tune `config.model` with cross-entropy; the best validation epoch is kept."""
    model, tokenizer = load_pretrained_classifier(config.model, list(dataset.labels))
    loss = fine_tune_loss()
    logger.info("teacher %s (%s), loss %s", config.model, describe(model), loss)
    rule = None
    if config.stop.enabled:
        rule = TeacherStopRule(min_accuracy_gain=config.stop.min_accuracy_gain,
                               min_loss_improvement=config.stop.min_loss_improvement, patience=config.stop.patience)
    result = train_classifier(model, tokenizer, task_from_dataset(dataset), loss, config.training,
                              on_epoch_end=on_epoch_end, desc="teacher", stop_rule=rule)
    return Trained(model, tokenizer, result, loss)


@dataclass
class Distilled(Trained):
    """The student after both stages; `result` is the last stage that ran, `stage1`/`stage2` each stage's.

    `max_length` is the tokenizer truncation of the last stage that ran: the length the student serves with.
    """

    max_length: int = 0
    stage1: TrainResult | None = None
    stage2: TrainResult | None = None
    stage1_loss: WeightedLoss | None = None
    layer_matching: str = ""


def build_layer_matcher(student: PreTrainedModel, teacher: PreTrainedModel, stage1: Stage1Config,
                        copied_layers: tuple[int, ...] | None = None) -> LayerMatcher:
    """Layer map and projections between two BERT-shaped encoders (`ConfigError` if the map does not fit).

    Without an explicit `stage1.layer_map`, a student made of copied teacher layers (`copied_layers`,
    0-based) matches each layer to the teacher layer it was copied from (copied layer i reads teacher
    output i + 1); any other student gets the uniform map.
    """
    s, t = student.config, teacher.config
    layer_map = stage1.layer_map
    if layer_map is None and copied_layers is not None:
        layer_map = tuple(i + 1 for i in copied_layers)
    try:
        return LayerMatcher(
            student_layers=s.num_hidden_layers, teacher_layers=t.num_hidden_layers,
            student_hidden=s.hidden_size, teacher_hidden=t.hidden_size,
            student_heads=s.num_attention_heads, teacher_heads=t.num_attention_heads,
            layer_map=layer_map, match_embeddings=stage1.match_embeddings,
        )
    except ValueError as exc:
        raise ConfigError(f"student.stage1.{exc}") from None


def stage1_stop_rule(config: Stage1StopConfig) -> Stage1StopRule | None:
    """The runbook 6.5 rule with the configured thresholds; None when switched off."""
    return Stage1StopRule(**config.model_dump(exclude={"enabled"})) if config.enabled else None


def stage2_stop_rule(config: Stage2StopConfig) -> Stage2StopRule | None:
    """The runbook 10.2 rule with the configured thresholds and KD-loss metric; None when switched off."""
    if not config.enabled:
        return None
    return Stage2StopRule(**config.model_dump(exclude={"enabled", "kd_loss"}), kd_loss_key=config.kd_loss)


def distill_student(
    dataset: IntentDataset,
    teacher: ModelDir,
    teacher_labels: TeacherLabels,
    config: StudentConfig,
    on_epoch_end: EpochCallback | None = None,
    *,
    on_stage1_epoch_end: EpochCallback | None = None,
    checkpoint_dir: Path | None = None,
) -> Distilled:
    """Build the student and run Stage 1 (feature/attention transfer) then Stage 2 (output KD + CE).

    Stage 1 runs the teacher online; Stage 2 reads cached teacher logits (and runs the teacher online only
    when `stage2.kd` weights feature or attention terms). Each stage ends by its stop rule or epoch budget, and
    checkpoints every epoch under `checkpoint_dir` when given (re-running resumes).
    """
    teacher_model, teacher_tokenizer = load_model_dir(teacher)
    labels = list(dataset.labels)
    if config.init == "pretrained":
        student, tokenizer = load_pretrained_classifier(config.model, labels)
    else:
        student, tokenizer = build_student(teacher_model, config), teacher_tokenizer
    task = task_from_dataset(dataset, teacher_labels)
    if config.vocab_size is not None:
        student, tokenizer, trim = trim_vocabulary(student, tokenizer, task.train_texts, config.vocab_size)
        logger.info("student %s", trim.describe())
    kd = config.stage2.kd
    stage2_loss = distillation_loss(kd)
    online = matcher = None
    if config.stage1.enabled or stage2_loss.matched:
        online = OnlineTeacher(teacher_model, token_id_map(tokenizer, teacher_tokenizer, task.train_texts))
        copied = config.teacher_layers if config.init == "teacher_layers" else None
        matcher = build_layer_matcher(student, teacher_model, config.stage1, copied)
        logger.info("layer matching: %s", matcher.describe())
    else:
        del teacher_model
    stage_dir = (lambda stage: None) if checkpoint_dir is None else (lambda stage: StageCheckpoints(checkpoint_dir / stage))
    out = Distilled(student, tokenizer, TrainResult(), stage2_loss,
                    layer_matching=matcher.describe() if matcher is not None else "")

    if config.stage1.enabled:
        loss = feature_transfer_loss(config.stage1)
        logger.info("stage 1 (%s), loss %s", describe(student), loss)
        out.stage1 = train_classifier(
            student, tokenizer, task, loss, config.stage1.training, temperature=kd.temperature,  # of val_loss_kd
            on_epoch_end=on_stage1_epoch_end, desc="stage 1", teacher=online, matcher=matcher, probe=True,
            stop_rule=stage1_stop_rule(config.stage1.stop), restore_best=False, checkpoints=stage_dir("stage1"),
        )
        out.stage1_loss, out.result, out.max_length = loss, out.stage1, config.stage1.training.max_length
        logger.info("stage 1 ended: %s", out.stage1.stop_reason)
    if config.stage2.enabled:
        logger.info("stage 2 (%s, init=%s%s), loss %s", describe(student), config.init,
                    " + stage 1" if config.stage1.enabled else "", stage2_loss)
        out.stage2 = train_classifier(
            student, tokenizer, task, stage2_loss, config.stage2.training, temperature=kd.temperature,
            on_epoch_end=on_epoch_end, desc="stage 2", teacher=online, matcher=matcher,
            stop_rule=stage2_stop_rule(config.stage2.stop), restore_best=True, checkpoints=stage_dir("stage2"),
        )
        out.result, out.max_length = out.stage2, config.stage2.training.max_length
        logger.info("stage 2 ended: %s; deployed: %s", out.stage2.stop_reason, out.stage2.deployment_reason)
    return out
