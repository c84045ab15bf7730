"""Per-epoch tables of the two distillation stages, in the shape of runbook tables 6.4 and 6.7."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence

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
