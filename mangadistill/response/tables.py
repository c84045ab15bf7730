"""The response track's tables and plots: the epoch table (runbook 8.3's shape, plus 7.6's columns) and the
final teacher vs base student vs distilled student comparison."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["COMPARISON_ROWS", "EPOCH_COLUMNS", "comparison_rows", "comparison_table", "epoch_rows", "epoch_table", "plot_epochs"]


def _fmt(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "rubric":
        return f"{value:.2f} / 5"
    if kind == "ms":
        return f"{value:,.0f} ms"
    if kind == "usd":
        return f"${value:.4f}"
    return f"{value:.3f}" if kind == "num" else f"{value:.1f}"


EPOCH_COLUMNS = ("Epoch", "Train loss", "Val rubric", "Teacher preference match", "Win rate vs base",
                 "Hallucination rate", "Refusal precision", "Escalation precision", "p95 latency", "Notes")


def epoch_rows(table: list[dict[str, Any]], chosen: int | None) -> list[list[str]]:
    """The epoch table as text cells, header first: `EPOCH_COLUMNS`, one row per epoch (notes: the stop rule's
    reading and the kept epoch)."""
    rows = [list(EPOCH_COLUMNS)]
    for row in table:
        note = "; ".join(part for part in ("kept" if row["epoch"] == chosen else "", row.get("stop_rule", "")) if part)
        rows.append([
            str(row["epoch"]), _fmt(row.get("train_loss"), "num"), _fmt(row.get("val_rubric"), "rubric"),
            _fmt(row.get("teacher_preference_match"), "pct"), _fmt(row.get("win_rate_vs_base"), "pct"),
            _fmt(row.get("hallucination_rate"), "pct"), _fmt(row.get("refusal_precision"), "pct"),
            _fmt(row.get("escalation_precision"), "pct"), _fmt(row.get("p95_ms"), "ms"), note])
    return rows


def epoch_table(table: list[dict[str, Any]], chosen: int | None) -> str:
    """The epoch table (`epoch_rows`) in Markdown."""
    header, *rows = epoch_rows(table, chosen)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plot_epochs(table: list[dict[str, Any]], chosen: int | None):
    """Validation rubric, hallucination rate and train loss per epoch, the kept epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in table]
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    series = (("val_rubric", "validation rubric (/5)"), ("hallucination_rate", "hallucination rate"),
              ("train_loss", "train loss (answer tokens)"))
    for ax, (key, title) in zip(axes, series, strict=True):
        ax.plot(epochs, [row.get(key, math.nan) for row in table], marker="o")
        if chosen is not None:
            ax.axvline(chosen, color="tab:green", linestyle="--", label=f"kept epoch {chosen}")
            ax.legend(loc="best", fontsize=8)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_xticks(epochs)
    figure.tight_layout()
    return figure


#: The comparison's rows: (label, metric key, format).
COMPARISON_ROWS: tuple[tuple[str, str, str], ...] = (
    ("Rubric (7.5)", "rubric", "rubric"),
    ("  factuality (0.30)", "factuality", "num"),
    ("  relevance (0.25)", "relevance", "num"),
    ("  policy / escalation (0.20)", "policy", "num"),
    ("  format (0.15)", "format", "num"),
    ("  conciseness (0.10)", "conciseness", "num"),
    ("Catalog hallucination rate", "hallucination_rate", "pct"),
    ("Refusal precision", "refusal_precision", "pct"),
    ("Refusal recall", "refusal_recall", "pct"),
    ("Escalation precision", "escalation_precision", "pct"),
    ("Teacher preference match", "teacher_preference_match", "pct"),
    ("Win rate vs base student", "win_rate_vs_base", "pct"),
    ("Generation p95", "latency_p95_ms", "ms"),
    ("Tokens / s", "tokens_per_s", "one"),
    ("Cost per 1K responses", "cost_per_1k_usd", "usd"),
)


def comparison_rows(models: dict[str, dict[str, Any]]) -> list[list[str]]:
    """One row per metric, one column per model (in `models`' order)."""
    return [[label, *(_fmt(metrics.get(key), kind) for metrics in models.values())]
            for label, key, kind in COMPARISON_ROWS]


def comparison_table(evaluation: dict[str, Any], split: str, title: str, headers: tuple[str, str, str]):
    """A rich table of `comparison_rows` for teacher, base and student on one split of an evaluation report;
    `headers` name the three model columns."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("Metric", *headers):
        table.add_column(column, justify="left" if column == "Metric" else "right")
    models = evaluation[split]
    for row in comparison_rows({name: models[name] for name in ("teacher", "base", "student")}):
        table.add_row(*row)
    return table
