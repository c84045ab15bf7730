"""Knowledge-distillation losses as small pure functions of tensors (runbook section 5).

Shapes: ``logits`` are (batch, classes) floats; ``labels`` are (batch,) int64 class ids.
A `WeightedLoss` combines named terms and prints itself, e.g. ``0.7*kd(T=4) + 0.3*ce``. The feature and
attention terms (TinyBERT, `mangadistill.losses.intermediate`) are computed inside the training module's
forward pass (so DDP sees every parameter) and arrive here as ready scalars in ``LossInputs.matched``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from mangadistill.config import KDConfig, Stage1Config

#: Label id of a row without a human label (a teacher-labelled augmented query): the CE terms skip it.
UNLABELLED = -100


def hard_label_loss(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_hard = -sum_c y_c log p_S(c|x), averaged over the batch's labelled rows (runbook 5.1).

    Rows labelled `UNLABELLED` do not count; a batch without a labelled row gives 0 (no gradient), not NaN.
    """
    labelled = labels != UNLABELLED
    if bool(labelled.all()):
        return F.cross_entropy(student_logits, labels)
    summed = F.cross_entropy(student_logits, labels, ignore_index=UNLABELLED, reduction="sum")
    return summed / labelled.sum().clamp(min=1)


def soft_label_kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """L_KD = T^2 * KL(p_T^(T) || p_S^(T)), batch mean (runbook 5.2; Hinton et al. 2015).

    ``p^(T) = softmax(z / T)``. The T^2 factor keeps the gradient scale of the soft term comparable to
    the hard term as T changes. Zero when the two logit tensors are identical.
    """
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)  # (B, C)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=-1)  # (B, C)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


def entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Per-example entropy (nats) of softmax(logits / T); shape (batch,)."""
    log_p = F.log_softmax(logits / temperature, dim=-1)
    return -(log_p.exp() * log_p).sum(dim=-1)


@dataclass(frozen=True)
class LossInputs:
    """What one training batch offers the loss terms; ``teacher_logits`` is None for plain fine-tuning.

    ``matched``: the layer-matching losses of this batch, ``{"feature": L_feature, "attention": L_attn}``.
    """

    student_logits: torch.Tensor
    labels: torch.Tensor
    teacher_logits: torch.Tensor | None = None
    matched: Mapping[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class LossTerm:
    """A named loss term with its weight; ``fn`` maps `LossInputs` to a scalar tensor."""

    name: str
    weight: float
    fn: Callable[[LossInputs], torch.Tensor]
    label: str


def _kd_term(weight: float, temperature: float) -> LossTerm:
    def fn(inputs: LossInputs) -> torch.Tensor:
        if inputs.teacher_logits is None:
            raise ValueError("the kd loss term needs teacher logits for every batch")
        return soft_label_kd_loss(inputs.student_logits, inputs.teacher_logits, temperature)

    return LossTerm("kd", weight, fn, f"kd(T={temperature:g})")


def _ce_term(weight: float, name: str = "hard", label: str = "ce") -> LossTerm:
    return LossTerm(name, weight, lambda inputs: hard_label_loss(inputs.student_logits, inputs.labels), label)


#: Layer-matching terms and how they print.
MATCHED_TERMS = {"feature": "mse(hidden)", "attention": "mse(attention)"}


def _matched_term(name: str, weight: float) -> LossTerm:
    def fn(inputs: LossInputs) -> torch.Tensor:
        if name not in inputs.matched:
            raise ValueError(f"the {name} loss term needs the student's and teacher's internals for every batch")
        return inputs.matched[name]

    return LossTerm(name, weight, fn, MATCHED_TERMS[name])


class WeightedLoss:
    """sum_i w_i * term_i; returns the total and each unweighted term (for logging as loss_<name>)."""

    def __init__(self, terms: list[LossTerm], keep_zero_weights: bool = False) -> None:
        """Terms with weight 0 are dropped (not computed) unless `keep_zero_weights` (computed and logged only)."""
        if not terms:
            raise ValueError("a WeightedLoss needs at least one term")
        self.terms = terms if keep_zero_weights else [term for term in terms if term.weight != 0.0] or terms[:1]

    @property
    def needs_teacher(self) -> bool:
        return any(term.name == "kd" for term in self.terms)

    @property
    def matched(self) -> tuple[str, ...]:
        """Layer-matching terms this loss uses ("feature", "attention"): the teacher must run online."""
        return tuple(term.name for term in self.terms if term.name in MATCHED_TERMS)

    def __call__(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts = {term.name: term.fn(inputs) for term in self.terms}
        total = sum(term.weight * parts[term.name] for term in self.terms)
        return total, parts  # type: ignore[return-value]

    def __str__(self) -> str:
        return " + ".join(f"{term.weight:g}*{term.label}" for term in self.terms)


def fine_tune_loss() -> WeightedLoss:
    """Plain cross-entropy, used to fine-tune the teacher."""
    return WeightedLoss([_ce_term(1.0)])


def distillation_loss(config: KDConfig) -> WeightedLoss:
    """Stage 2: alpha * T^2 * KL(p_T || p_S) + (1 - alpha) * CE (runbook 5.2), plus the optional
    lambda_feat * L_feature + lambda_attn * L_attn of the runbook 5 total; zero weights drop out."""
    return WeightedLoss([
        _kd_term(config.alpha, config.temperature),
        _ce_term(1.0 - config.alpha),
        _matched_term("feature", config.feature_weight),
        _matched_term("attention", config.attention_weight),
    ])


def feature_transfer_loss(config: Stage1Config) -> WeightedLoss:
    """Stage 1: lambda_feat * L_feature + lambda_attn * L_attn, plus the probe head's cross-entropy.

    A zero-weight matching term is still computed and logged (the stop rule reads both).
    The probe reads detached features (`training.loop.DistillationModule`), so its CE trains the
    classification head only and never pulls the encoder away from the teacher's representations.
    """
    return WeightedLoss([
        _matched_term("feature", config.feature_weight),
        _matched_term("attention", config.attention_weight),
        _ce_term(1.0, name="probe", label="ce(probe head, detached features)"),
    ], keep_zero_weights=True)  # both losses are logged: the Stage 1 stop rule reads both
