"""Rich tables shared by the promotion, monitoring and rollback summaries (printed by run.py)."""

from __future__ import annotations

from typing import Any


def gate_table(title: str, decision: dict[str, Any]):
    from rich.table import Table

    table = Table(title=title)
    for column in ("gate", "category", "metric", "rule", "value", "result"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for gate in decision["gates"]:
        value = "missing" if gate["value"] is None else f"{gate['value']:.4g}"
        table.add_row(gate["name"], gate["category"], gate["metric"], f"{gate['op']} {gate['threshold']:g}", value,
                      gate["status"].upper())
    return table


def trigger_table(title: str, report: dict[str, Any]):
    from rich.table import Table

    table = Table(title=title)
    for column in ("trigger", "approved", "observed", "limit", "rule", "result"):
        table.add_column(column)
    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4g}"

    for t in report["triggers"]:
        table.add_row(t["name"], fmt(t["baseline"]), fmt(t["observed"]), fmt(t["limit"]), t["rule"],
                      t["status"].upper())
    return table


def stage_table(name: str, rows: list[dict[str, str]]):
    """The registry's versions, aliases and stage tags as the last step of the run left them."""
    from rich.table import Table

    table = Table(title=f"Registry stages of {name} (aliases are the source of truth)")
    for column in ("version", "role", "aliases", "stage tag", "gate record", "rollout", "flag"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(row[key] for key in ("version", "role", "aliases", "stage", "gates", "rollout", "flag")))
    return table
