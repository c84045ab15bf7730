"""Knowledge-distillation losses as small pure functions of tensors (runbook section 5).

Shapes: ``logits`` are (batch, classes) floats; ``labels`` are (batch,) int64 class ids.
A `WeightedLoss` combines named terms and prints itself, e.g. ``0.7*kd(T=4) + 0.3*ce``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mangadistill.config import KDConfig


def hard_label_loss(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_hard = -sum_c y_c log p_S(c|x), averaged over the batch (runbook 5.1)."""
    return F.cross_entropy(student_logits, labels)


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
    """What one training batch offers the loss terms; ``teacher_logits`` is None for plain fine-tuning."""

    student_logits: torch.Tensor
    labels: torch.Tensor
    teacher_logits: torch.Tensor | None = None


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


def _ce_term(weight: float) -> LossTerm:
    return LossTerm("hard", weight, lambda inputs: hard_label_loss(inputs.student_logits, inputs.labels), "ce")


class WeightedLoss:
    """sum_i w_i * term_i; returns the total and each unweighted term (for logging as loss_<name>)."""

    def __init__(self, terms: list[LossTerm]) -> None:
        if not terms:
            raise ValueError("a WeightedLoss needs at least one term")
        self.terms = [term for term in terms if term.weight != 0.0] or terms[:1]

    @property
    def needs_teacher(self) -> bool:
        return any(term.name == "kd" for term in self.terms)

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
    """(1 - alpha) * CE + alpha * T^2 * KL(p_T || p_S), the runbook 5.2 objective."""
    return WeightedLoss([_kd_term(config.alpha, config.temperature), _ce_term(1.0 - config.alpha)])
