"""TinyBERT-style intermediate-layer distillation: hidden-state and attention-map transfer (runbook 5, 6.3).

    L_feature = sum_l MSE(W_l h_S^(l), h_T^(m(l)))        L_attn = sum_l MSE(A_S^(l), A_T^(m(l)))

Conventions (the ones ``transformers`` uses with ``output_hidden_states`` / ``output_attentions``):

- ``hidden_states[0]`` is the embedding output and ``hidden_states[l]`` the output of layer ``l`` (1-based);
  each is (batch, seq, hidden). ``attentions[l - 1]`` is layer ``l``'s attention map, (batch, heads, seq, seq).
- The layer map ``m`` sends student layer ``l`` (1..L_S) to a teacher layer (1..L_T). Uniform by default:
  ``m(l) = round(l * L_T / L_S)``, so 3 student layers of a 6-layer teacher read teacher layers 2, 4, 6, and
  the student's last layer always reads the teacher's last one.
- Padding never counts: both MSEs average over real tokens only (rows and columns of attention maps).
- Head counts may differ: both maps are averaged into ``gcd(H_S, H_T)`` groups of adjacent heads first
  (12 vs 12 compares head by head, 12 vs 4 compares each student head with the mean of 3 teacher heads).
- Widths may differ: a learned linear projection ``W_l`` (student width -> teacher width) per matched layer;
  with equal widths ``W_l`` is the identity, so nothing extra is learned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def uniform_layer_map(student_layers: int, teacher_layers: int) -> tuple[int, ...]:
    """``m(l) = round(l * L_T / L_S)`` for l = 1..L_S: teacher layers (1-based) spread evenly, last to last."""
    if student_layers < 1 or teacher_layers < 1:
        raise ValueError("both models need at least one layer")
    return tuple(max(1, round(l * teacher_layers / student_layers)) for l in range(1, student_layers + 1))


def resolve_layer_map(layer_map: Sequence[int] | None, student_layers: int, teacher_layers: int) -> tuple[int, ...]:
    """The configured map, checked against both depths, or the uniform one; ValueError names what to fix."""
    if layer_map is None:
        return uniform_layer_map(student_layers, teacher_layers)
    layer_map = tuple(int(m) for m in layer_map)
    if len(layer_map) != student_layers:
        raise ValueError(
            f"layer_map has {len(layer_map)} entries but the student has {student_layers} layers: "
            "give one teacher layer (1-based) per student layer"
        )
    bad = [m for m in layer_map if not 1 <= m <= teacher_layers]
    if bad:
        raise ValueError(f"layer_map entries {bad} out of range: the teacher has layers 1..{teacher_layers}")
    return layer_map


def group_heads(attention: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, H, S, S) -> (B, groups, S, S): the mean of each run of H / groups adjacent heads."""
    batch, heads, seq, _ = attention.shape
    if heads % groups:
        raise ValueError(f"cannot split {heads} heads into {groups} equal groups")
    return attention.view(batch, groups, heads // groups, seq, seq).mean(dim=2)


def masked_mse(student: torch.Tensor, teacher: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """MSE over the real tokens of (B, S, D) tensors; `token_mask` is (B, S) with 1 for real tokens."""
    weights = token_mask.to(student.dtype).unsqueeze(-1)  # (B, S, 1)
    squared = (student - teacher).pow(2) * weights
    return squared.sum() / (weights.sum() * student.shape[-1]).clamp_min(1.0)


def masked_attention_mse(student: torch.Tensor, teacher: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """MSE over (query, key) pairs of real tokens for (B, G, S, S) attention maps."""
    mask = token_mask.to(student.dtype)
    pair = (mask.unsqueeze(-1) * mask.unsqueeze(-2)).unsqueeze(1)  # (B, 1, S, S)
    squared = (student - teacher).pow(2) * pair
    return squared.sum() / (pair.sum() * student.shape[1]).clamp_min(1.0)


class LayerMatcher(nn.Module):
    """The layer map plus the learned projections W_l; computes L_feature and L_attn for one batch.

    ``match_embeddings`` adds the embedding outputs (student 0 -> teacher 0) as one more feature term.
    The projections train with the student in Stage 1 and are dropped afterwards: they are not part of
    the deployed model.
    """

    def __init__(
        self,
        *,
        student_layers: int,
        teacher_layers: int,
        student_hidden: int,
        teacher_hidden: int,
        student_heads: int,
        teacher_heads: int,
        layer_map: Sequence[int] | None = None,
        match_embeddings: bool = True,
    ) -> None:
        super().__init__()
        self.layer_map = resolve_layer_map(layer_map, student_layers, teacher_layers)
        self.match_embeddings = match_embeddings
        self.head_groups = math.gcd(student_heads, teacher_heads)
        # (student hidden-state index, teacher hidden-state index) pairs, embeddings first when matched
        self.feature_pairs = ([(0, 0)] if match_embeddings else []) + [
            (l, m) for l, m in enumerate(self.layer_map, start=1)
        ]
        same_width = student_hidden == teacher_hidden
        self.projections = nn.ModuleList(
            nn.Identity() if same_width else nn.Linear(student_hidden, teacher_hidden) for _ in self.feature_pairs
        )

    def feature_loss(
        self, student_hidden: Sequence[torch.Tensor], teacher_hidden: Sequence[torch.Tensor], token_mask: torch.Tensor
    ) -> torch.Tensor:
        """sum over matched layers of MSE(W_l h_S^(l), h_T^(m(l))) on real tokens."""
        return sum(  # type: ignore[return-value]
            masked_mse(project(student_hidden[s]), teacher_hidden[t].to(student_hidden[s].dtype), token_mask)
            for project, (s, t) in zip(self.projections, self.feature_pairs)
        )

    def attention_loss(
        self, student_attn: Sequence[torch.Tensor], teacher_attn: Sequence[torch.Tensor], token_mask: torch.Tensor
    ) -> torch.Tensor:
        """sum over student layers of MSE(A_S^(l), A_T^(m(l))), heads grouped to a common count."""
        return sum(  # type: ignore[return-value]
            masked_attention_mse(
                group_heads(student_attn[l - 1], self.head_groups),
                group_heads(teacher_attn[m - 1].to(student_attn[l - 1].dtype), self.head_groups),
                token_mask,
            )
            for l, m in enumerate(self.layer_map, start=1)
        )

    def describe(self) -> str:
        """``student 1,2,3 <- teacher 2,4,6 (+ embeddings), heads in 12 groups``."""
        student = ",".join(str(l) for l in range(1, len(self.layer_map) + 1))
        teacher = ",".join(str(m) for m in self.layer_map)
        extra = " (+ embeddings)" if self.match_embeddings else ""
        return f"student layers {student} <- teacher layers {teacher}{extra}, attention heads in {self.head_groups} groups"


__all__ = [
    "LayerMatcher",
    "group_heads",
    "masked_attention_mse",
    "masked_mse",
    "resolve_layer_map",
    "uniform_layer_map",
]
