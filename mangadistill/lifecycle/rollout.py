"""The staged rollout plan of runbook 15.2 (1-5% shadow -> 10% -> 25% -> 50% -> 100%) as a pure state machine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RolloutState:
    """Where a version stands in the plan: `step` indexes `plan` (-1 = not started)."""

    plan: tuple[float, ...]
    step: int = -1

    @property
    def share(self) -> float:
        return 0.0 if self.step < 0 else self.plan[self.step]

    @property
    def complete(self) -> bool:
        return self.step == len(self.plan) - 1

    def label(self) -> str:
        if self.step < 0:
            return "not started"
        return f"{100 * self.share:g}%" + (" (shadow)" if self.step == 0 and self.share < 1.0 else "")


def parse_state(plan: Sequence[float], share_tag: str | None) -> RolloutState:
    """The state a version's ``rollout.share`` tag records; a tag not on this plan restarts the rollout."""
    plan = tuple(plan)
    if share_tag is None:
        return RolloutState(plan)
    try:
        share = float(share_tag)
    except ValueError:
        return RolloutState(plan)
    matches = [i for i, value in enumerate(plan) if abs(value - share) < 1e-9]
    return RolloutState(plan, matches[0] if matches else -1)


def advance(state: RolloutState, shadow_passed: bool, max_steps: int | None) -> tuple[RolloutState, str]:
    """Advance up to `max_steps` steps (all remaining when None) if the shadow evaluation passed; else hold."""
    if not shadow_passed:
        return state, f"held at {state.label()}: shadow evaluation failed"
    if state.complete:
        return state, "already at 100%"
    remaining = len(state.plan) - 1 - state.step
    steps = remaining if max_steps is None else min(max_steps, remaining)
    new = RolloutState(state.plan, state.step + steps)
    path = " -> ".join(f"{100 * s:g}%" for s in state.plan[state.step + 1: new.step + 1])
    return new, f"advanced {path}"
