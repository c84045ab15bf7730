"""The reranker student's objective (runbook 9.2), with the pairwise term 9.4 logs beside it.

For one batch of queries, each with G candidates (scores and labels of shape (Q, G))::

    L = alpha * L_sup + (1 - alpha) * MSE(s_student, s_teacher) + pairwise_weight * L_pair

- ``L_sup``: listwise softmax cross-entropy (ListNet): the softmax of a query's candidate scores against
  its candidates' DCG gains ``2^label - 1`` normalised to sum to 1, the loss the teacher is fine-tuned with
  too (queries without a relevant candidate take no part). A pointwise BCE on ``label / 3`` was tried first:
  it learned the ranking far more slowly (NDCG@10 0.58 against 0.88 after the same steps on a small set);
- ``MSE``: the student's score against the teacher's, both centred on their query's mean (``centre_mse``,
  the default). A cross-encoder's ranking of one query's candidates does not change when every score
  moves by the same amount, and the listwise loss the teacher learns with leaves that offset free, so
  matching raw logits spends the student's capacity on an arbitrary per-query constant. Measured on the
  default data (Intel Xeon, 2 cores, one fixed teacher at gate NDCG@10 0.889, 3-layer students, 4 epochs):
  raw MSE (alpha 0.3, w 0.5) 0.823 and labels only 0.819, against 0.877 without the offset;
- ``L_pair``: Margin-MSE (Hofstaetter et al., 2020): for every pair of candidates of a query, the student's
  score margin against the teacher's, so the student learns the teacher's *ordering*, not only its scale.

alpha = 1 with pairwise_weight = 0 is training on labels only (the base student, and the teacher).
Padding candidates (``mask`` False) take no part in any term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["RerankLoss", "RerankLossTerms"]


@dataclass(frozen=True)
class RerankLossTerms:
    total: torch.Tensor
    supervised: torch.Tensor
    mse: torch.Tensor
    pairwise: torch.Tensor

    def items(self) -> dict[str, float]:
        """The terms as floats under the names the epoch table and MLflow use."""
        return {"loss_total": float(self.total.detach()), "loss_sup": float(self.supervised.detach()),
                "loss_mse": float(self.mse.detach()),
                "loss_pairwise": float(self.pairwise.detach())}


@dataclass(frozen=True)
class RerankLoss:
    alpha: float = 1.0
    pairwise_weight: float = 0.0
    centre_mse: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.pairwise_weight < 0:
            raise ValueError(f"pairwise_weight must be >= 0, got {self.pairwise_weight}")

    @property
    def needs_teacher(self) -> bool:
        return self.alpha < 1.0 or self.pairwise_weight > 0.0

    def __call__(self, student: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor | None = None,
                 mask: torch.Tensor | None = None, labelled: torch.Tensor | None = None) -> RerankLossTerms:
        """`student`, `labels`, `teacher`, `mask`: (Q, G); `labelled` (Q,): False for a query without labels (a
        transfer query), which takes part in the teacher terms only. Returns every term (each averaged over
        real candidates)."""
        mask = torch.ones_like(student, dtype=torch.bool) if mask is None else mask.bool()
        weights = mask.float()
        n = weights.sum().clamp_min(1.0)
        gains = (torch.pow(2.0, labels.float()) - 1.0) * weights  # (Q, G): the DCG gain of each candidate
        has_relevant = gains.sum(dim=1) > 0
        if labelled is not None:
            has_relevant = has_relevant & labelled.bool()
        target = gains / gains.sum(dim=1, keepdim=True).clamp_min(1e-9)
        log_probs = torch.log_softmax(student.masked_fill(~mask, -1e4), dim=1)
        listwise = -(target * log_probs).sum(dim=1)  # (Q,)
        supervised = listwise[has_relevant].mean() if has_relevant.any() else (student * 0).sum()  # keeps the graph
        zero = student.new_zeros(())
        if teacher is None:
            if self.needs_teacher:
                raise ValueError("this loss weights the teacher's scores (alpha < 1 or pairwise_weight > 0); pass them")
            mse = pairwise = zero
        else:
            diff = (student - teacher) * weights
            if self.centre_mse:  # remove each query's mean difference (its real candidates only)
                diff = (diff - diff.sum(dim=1, keepdim=True) / weights.sum(dim=1, keepdim=True).clamp_min(1.0)) * weights
            mse = (diff ** 2).sum() / n
            eye = torch.eye(student.shape[1], dtype=torch.bool, device=student.device)
            pair_mask = mask.unsqueeze(2) & mask.unsqueeze(1) & ~eye  # (Q, G, G): pairs of distinct real candidates
            student_margin = student.unsqueeze(2) - student.unsqueeze(1)
            teacher_margin = teacher.unsqueeze(2) - teacher.unsqueeze(1)
            pairs = pair_mask.float()
            pairwise = ((student_margin - teacher_margin) ** 2 * pairs).sum() / pairs.sum().clamp_min(1.0)
        total = self.alpha * supervised + (1 - self.alpha) * mse + self.pairwise_weight * pairwise
        return RerankLossTerms(total, supervised, mse, pairwise)
