"""Teacher-vs-student comparison in the shape of runbook 6.10, and the confusion-matrix figure."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: (metric key, display name, kind) rows of the comparison table.
COMPARISON_ROWS: tuple[tuple[str, str, str], ...] = (
    ("accuracy", "Accuracy", "pct"),
    ("macro_f1", "Macro-F1", "pct"),
    ("rare_class_recall", "Rare-class recall", "pct"),
    ("refusal_precision", "Refusal precision", "pct"),
    ("refusal_recall", "Refusal recall", "pct"),
    ("in_scope_accuracy", "In-scope accuracy", "pct"),
    ("latency_p50_ms", "Warm latency p50", "ms"),
    ("latency_p95_ms", "Warm latency p95", "ms"),
    ("cold_start_ms", "Cold start (new process)", "ms"),
    ("size_mb", "Model size", "mb"),
    ("num_parameters", "Parameters", "params"),
    ("cost_per_million_usd", "Cost per 1M requests", "usd"),
)


def _fmt(value: float | None, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return {
        "pct": f"{100 * value:.1f}%",
        "ms": f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms",
        "mb": f"{value:.1f} MB",
        "params": f"{value / 1e6:.1f}M",
        "usd": f"${value:.2f}",
    }[kind]


def _delta(teacher: float | None, student: float | None, kind: str) -> str:
    if teacher is None or student is None or any(isinstance(v, float) and math.isnan(v) for v in (teacher, student)):
        return "n/a"
    if kind == "pct":
        return f"{100 * (student - teacher):+.1f} pt"
    if kind == "usd":
        return f"{100 * (teacher - student) / teacher:.0f}% lower" if teacher > 0 else "n/a"
    if student <= 0:
        return "n/a"
    ratio = teacher / student
    word = "faster" if kind == "ms" else "smaller"
    return f"{ratio:.1f}x {word}"


def comparison_table(teacher: dict[str, float], student: dict[str, float]) -> list[tuple[str, str, str, str]]:
    """Rows (metric, teacher, student, delta) like runbook 6.10, for metrics present in either dict."""
    rows = []
    for key, name, kind in COMPARISON_ROWS:
        if key not in teacher and key not in student:
            continue
        t, s = teacher.get(key), student.get(key)
        rows.append((name, _fmt(t, kind), _fmt(s, kind), _delta(t, s, kind)))
    return rows


def render_markdown(rows: Sequence[tuple[str, ...]], header: Sequence[str] = ("Metric", "Teacher", "Student", "Delta")) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def confusion_figure(matrix: np.ndarray, labels: Sequence[str], title: str):
    """A matplotlib figure of a confusion matrix (rows true, columns predicted), counts annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(5.0, 0.55 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(labels) <= 30:
        peak = matrix.max() or 1
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=7, color="white" if count > peak / 2 else "black")
    fig.tight_layout()
    return fig


def curves_figure(history: Sequence[dict[str, float]], keys: Sequence[str], title: str):
    """Per-epoch curves of the given metric keys, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [key for key in keys if any(key in row for row in history)]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), squeeze=False)
    epochs = [row["epoch"] for row in history]
    for ax, key in zip(axes[0], keys):
        ax.plot(epochs, [row.get(key, float("nan")) for row in history], marker="o")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("epoch")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def latency_figure(variants: dict[str, dict[str, float]]):
    """Grouped bars of warm p50/p95/p99 per serving variant (log scale), sizes in the labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(variants)
    fig, ax = plt.subplots(figsize=(1.9 * len(names) + 2, 3.6))
    width = 0.27
    for offset, key in enumerate(("latency_p50_ms", "latency_p95_ms", "latency_p99_ms")):
        positions = [i + (offset - 1) * width for i in range(len(names))]
        ax.bar(positions, [variants[n][key] for n in names], width, label=key.split("_")[1])
    ax.set_xticks(range(len(names)), [f"{n}\n{variants[n]['size_mb']:.1f} MB" for n in names], fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("warm single-query latency (ms)")
    ax.legend(fontsize=8)
    ax.set_title("Serving latency per variant (same queries, one process)")
    fig.tight_layout()
    return fig
