"""What each distillation stage reports: its per-epoch table (the shape of runbook tables 6.4 and 6.7), why it
stopped, and a one-line summary. Pure functions of a `TrainResult`; the training step only logs them."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from mangadistill.evaluation.report import render_markdown
from mangadistill.training.loop import TrainResult

#: (column header, metric key, kind) -- kind "loss" prints 3 decimals, "pct" a percentage.
STAGE1_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("Feature loss", "loss_feature", "loss"),
    ("Attention loss", "loss_attention", "loss"),
    ("Val acc (probe head)", "probe_val_accuracy", "pct"),
    ("Rare recall", "rare_class_recall", "pct"),
)
STAGE2_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("CE loss", "loss_hard", "loss"),
    ("KD loss", "loss_kd", "loss"),
    ("Total loss", "loss_total", "loss"),
    ("Val acc", "val_accuracy", "pct"),
    ("Rare recall", "rare_class_recall", "pct"),
    ("Refusal precision", "refusal_precision", "pct"),
)


def _fmt(value: float | None, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}" if kind == "loss" else f"{100 * value:.1f}%"


def _notes(result: TrainResult, epoch: int, deploys: bool) -> str:
    notes = []
    if deploys and epoch == result.best_epoch:
        notes.append("deployment candidate (first best val acc)")
    last = int(result.history[-1]["epoch"])
    if epoch == last and result.stop_reason:
        notes.append("stop rule fired" if result.stopped_by_rule else "epoch budget reached")
    return "; ".join(notes)


def epoch_table(result: TrainResult, columns: Sequence[tuple[str, str, str]], deploys: bool) -> tuple[str, str]:
    """(markdown, CSV) of a stage's epochs: epoch, the logged columns, notes (deployment candidate, why the stage
    ended); the CSV keeps full precision."""
    present = [c for c in columns if any(c[1] in row for row in result.history)]
    header = ("Epoch", *(name for name, _, _ in present), "Notes")
    rows = [(int(row["epoch"]), row, _notes(result, int(row["epoch"]), deploys)) for row in result.history]
    markdown = render_markdown([(str(epoch), *(_fmt(row.get(key), kind) for _, key, kind in present), notes)
                                for epoch, row, notes in rows], header)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([epoch, *(row.get(key, "") for _, key, _ in present), notes] for epoch, row, notes in rows)
    return markdown, buffer.getvalue()


@dataclass(frozen=True)
class StageSpec:
    """How one stage is reported: its name (artifact and tag prefix), table columns, plotted curves, the loss
    and accuracy of its summary line, its stop rule, and whether it picks a deployment epoch."""

    name: str
    columns: tuple[tuple[str, str, str], ...]
    curves: tuple[str, ...]
    loss_key: str
    accuracy_key: str
    rule: str
    deploys: bool


STAGE1 = StageSpec(
    "stage1", STAGE1_COLUMNS,
    curves=("loss_feature", "loss_attention", "loss_probe", "probe_val_accuracy", "rare_class_recall"),
    loss_key="loss_feature", accuracy_key="probe_val_accuracy", rule="runbook 6.5", deploys=False,
)
STAGE2 = StageSpec(
    "stage2", STAGE2_COLUMNS,
    curves=("loss_total", "loss_hard", "loss_kd", "val_accuracy", "rare_class_recall", "refusal_precision"),
    loss_key="loss_kd", accuracy_key="val_accuracy", rule="runbook 10.2", deploys=True,
)


@dataclass(frozen=True)
class StageReport:
    """A finished stage in text: epoch table (markdown, CSV), stop report (why it ended, what it kept, the rule's
    verdict after every epoch) and a one-line summary."""

    markdown: str
    csv: str
    stop_report: str
    summary: str


def stage_summary(result: TrainResult, spec: StageSpec) -> str:
    """``4 epochs (stop rule, runbook 6.5), loss_feature 0.812 -> 0.301, kept epoch 4 (probe_val_accuracy 90.1%)``."""
    first, last = result.history[0], result.history[-1]
    ended = f"stop rule, {spec.rule}" if result.stopped_by_rule else "epoch budget"
    return (f"{len(result.history)} epochs ({ended}), {spec.loss_key} {first.get(spec.loss_key, float('nan')):.3f} -> "
            f"{last.get(spec.loss_key, float('nan')):.3f}, kept epoch {result.best_epoch} ({spec.accuracy_key} "
            f"{100 * result.best_val_accuracy:.1f}%)")


def stop_report(result: TrainResult) -> str:
    """Why the stage stopped, which epoch it kept, and the stop rule's verdict after each epoch."""
    decisions = "\n".join(f"epoch {i}: {reason}" for i, reason in enumerate(result.decisions, start=1))
    return f"stopped: {result.stop_reason}\nkept: {result.deployment_reason}\n\n{decisions}\n"


def stage_report(result: TrainResult, spec: StageSpec) -> StageReport:
    """Everything a finished stage reports, ready to log."""
    markdown, table_csv = epoch_table(result, spec.columns, spec.deploys)
    return StageReport(markdown, table_csv, stop_report(result), stage_summary(result, spec))
