"""What the response tracks' steps log the same way (self-hosted and managed)."""

from __future__ import annotations

import json
from typing import Any

import mlflow
import yaml

from mangadistill.families.responder import run_gates
from mangadistill.response.events import distilled_model_eval, gate_eval
from mangadistill.response.tables import epoch_table, plot_epochs
from mangadistill.tracking import flat_params, log_figure, log_grouped
from steps._context import log_output_metadata, run_label

#: Per-epoch metrics logged unprefixed at step=epoch (the 8.3 epoch table's columns and the 7.6 ones).
EPOCH_KEYS = ("train_loss", "eval_loss", "val_rubric", "factuality", "relevance", "policy", "format", "conciseness",
              "hallucination_rate", "refusal_precision", "refusal_recall", "escalation_precision",
              "teacher_preference_match", "win_rate_vs_base", "p95_ms", "tokens_per_s")


class EpochLogger:
    """Logs each evaluated epoch as it ends: its metrics at step=epoch, the 7.11 event, example answers."""

    def __init__(self, student: str, teacher: str) -> None:
        self.student, self.teacher = student, teacher
        self.events: list[dict[str, Any]] = []
        self.examples: list[dict[str, Any]] = []

    def __call__(self, row: dict[str, Any], answers: list[dict[str, Any]]) -> None:
        log_grouped("", {k: row[k] for k in EPOCH_KEYS if k in row}, step=row["epoch"])
        self.events.append(distilled_model_eval(student=self.student, teacher=self.teacher, epoch=row["epoch"],
                                                metrics=row))
        self.examples.extend(answers)
        mlflow.log_text("\n".join(json.dumps(e) for e in self.events) + "\n", "events/distilled_model_eval.jsonl")
        mlflow.log_text("\n".join(json.dumps(e) for e in self.examples) + "\n", "examples/validation_answers.jsonl")


def log_epoch_choice(table: list[dict[str, Any]], summary: dict[str, Any], output_name: str) -> None:
    """The epoch table and plot, the 7.8 choice, as MLflow artifacts and output metadata."""
    chosen = summary["chosen_epoch"]
    mlflow.log_text(epoch_table(table, chosen), "tables/epoch_table.md")
    log_figure(plot_epochs(table, chosen), "plots/epochs.png")
    log_grouped("student", {"chosen_epoch": chosen, "epochs_trained": len(table)})
    mlflow.log_dict(summary, "student/choice.json")
    log_output_metadata(summary, output_name=output_name)


def log_resolved_config(resolved_config: dict[str, Any]) -> None:
    """The run's whole resolved config as MLflow params and as ``config/resolved_config.yaml``."""
    mlflow.log_params(flat_params(resolved_config))
    mlflow.log_text(yaml.safe_dump(resolved_config, sort_keys=False), "config/resolved_config.yaml")


def log_response_evaluation(report: dict[str, Any], teacher_model: str) -> None:
    """Check the 7.7 gates a run can check (into ``report["gates_7_7"]``), then log every split's numbers, the
    example answers, the 7.11 gate event and the gate decision."""
    decision = run_gates(report["gate"]["student"])
    report["gates_7_7"] = decision.to_dict()
    event = gate_eval(run_id=run_label(), student="responder", teacher=teacher_model, metrics=report["gate"]["student"],
                      decision="promote_shadow" if decision.passed else "hold")
    report["gate_eval_event"] = event
    for split in ("gate", "golden"):
        for name, metrics in report.get(split, {}).items():
            log_grouped(f"{split}/{name}", metrics)
        if f"{split}_examples" in report:
            mlflow.log_text("\n".join(json.dumps(e) for e in report[f"{split}_examples"]) + "\n",
                            f"examples/{split}_answers.jsonl")
    mlflow.log_dict(event, "events/gate_eval.json")
    mlflow.log_dict(report["gates_7_7"], "gates/gates_7_7.json")
    log_output_metadata({"gates_7_7_passed": decision.passed, "gates_7_7": decision.reason})
