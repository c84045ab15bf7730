"""KD loss: the formula of runbook 5.2, checked without a model."""

import math

import pytest
import torch
import torch.nn.functional as F

from mangadistill.config import KDConfig
from mangadistill.losses.kd import LossInputs, distillation_loss, entropy, hard_label_loss, soft_label_kd_loss


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g), torch.randint(0, 5, (8,), generator=g)


def test_kd_is_zero_for_identical_logits(logits):
    student, _, _ = logits
    assert soft_label_kd_loss(student, student.clone(), temperature=4.0).item() == pytest.approx(0.0, abs=1e-6)


def test_kd_is_positive_when_distributions_differ(logits):
    student, teacher, _ = logits
    assert soft_label_kd_loss(student, teacher, temperature=4.0).item() > 0.0


def test_kd_matches_the_textbook_formula(logits):
    student, teacher, _ = logits
    temperature = 3.0
    p_t = F.softmax(teacher / temperature, dim=-1)
    log_p_s = F.log_softmax(student / temperature, dim=-1)
    expected = (p_t * (p_t.log() - log_p_s)).sum(-1).mean() * temperature**2
    assert soft_label_kd_loss(student, teacher, temperature).item() == pytest.approx(expected.item(), rel=1e-5)


def test_kd_scales_with_temperature_squared(logits):
    student, teacher, _ = logits
    # The KL at temperature T, computed directly, times T^2 is what the loss returns, for several T.
    for temperature in (1.0, 2.0, 4.0, 8.0):
        kl = F.kl_div(F.log_softmax(student / temperature, -1), F.softmax(teacher / temperature, -1), reduction="batchmean")
        assert soft_label_kd_loss(student, teacher, temperature).item() == pytest.approx(kl.item() * temperature**2, rel=1e-5)
    # Scaling both logits by T leaves the softened distributions (and so the KL) unchanged, so only T^2 remains.
    base = soft_label_kd_loss(student, teacher, 1.0)
    scaled = soft_label_kd_loss(student * 4.0, teacher * 4.0, 4.0)
    assert scaled.item() == pytest.approx(16.0 * base.item(), rel=1e-4)


def test_alpha_zero_equals_cross_entropy(logits):
    student, teacher, labels = logits
    loss = distillation_loss(KDConfig(alpha=0.0, temperature=4.0))
    total, parts = loss(LossInputs(student, labels, teacher))
    assert total.item() == pytest.approx(F.cross_entropy(student, labels).item(), rel=1e-6)
    assert set(parts) == {"hard"}


def test_alpha_one_is_pure_kd(logits):
    student, teacher, labels = logits
    total, _ = distillation_loss(KDConfig(alpha=1.0, temperature=2.0))(LossInputs(student, labels, teacher))
    assert total.item() == pytest.approx(soft_label_kd_loss(student, teacher, 2.0).item(), rel=1e-6)


def test_default_combination_weights_and_description(logits):
    student, teacher, labels = logits
    loss = distillation_loss(KDConfig())
    total, parts = loss(LossInputs(student, labels, teacher))
    expected = 0.3 * hard_label_loss(student, labels) + 0.7 * soft_label_kd_loss(student, teacher, 4.0)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(parts) == {"kd", "hard"}
    assert str(loss) == "0.7*kd(T=4) + 0.3*ce"


def test_kd_term_without_teacher_logits_is_an_error(logits):
    student, _, labels = logits
    with pytest.raises(ValueError, match="teacher logits"):
        distillation_loss(KDConfig())(LossInputs(student, labels, None))


def test_gradient_flows_to_student_only(logits):
    student, teacher, labels = logits
    student = student.clone().requires_grad_(True)
    total, _ = distillation_loss(KDConfig())(LossInputs(student, labels, teacher))
    total.backward()
    assert student.grad is not None and torch.isfinite(student.grad).all()


def test_entropy_of_uniform_is_log_classes():
    assert entropy(torch.zeros(3, 10)).tolist() == pytest.approx([math.log(10)] * 3, rel=1e-6)
