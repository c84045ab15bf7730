"""Step: teacher vs base student vs distilled student on the gate and golden sets, against the 7.7 gates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import mlflow
from zenml import step

from mangadistill.config import ResponseEvaluationConfig, ResponseTeacherConfig
from mangadistill.families.responder import ResponderFamily
from mangadistill.lifecycle.gates import evaluate_gates
from mangadistill.models.model_dir import ModelDir
from mangadistill.response.dataset import ResponseDataset
from mangadistill.response.evaluate import evaluate_all
from mangadistill.response.events import gate_eval
from mangadistill.tracking import log_grouped
from steps._context import compute_timer, log_output_metadata, run_label

#: The 7.7 gates a run can check by itself (rollback target and observability depend on the registry).
_RUN_GATES = ("teacher_preference_match", "win_rate_vs_base", "hallucination_rate", "refusal_precision",
              "cost_reduction")


@step(experiment_tracker=True)
def evaluate_responders(
    response_dataset: ResponseDataset, teacher_answers: dict[str, Any], student_base: ModelDir,
    responder_model: ModelDir, evaluation: ResponseEvaluationConfig, teacher: ResponseTeacherConfig,
) -> Annotated[dict[str, Any], "response_evaluation"]:
    """Score all three on both sets; check the distilled student's gate-set numbers against runbook 7.7."""
    with compute_timer():
        report = evaluate_all(response_dataset, teacher_answers["answers"], Path(student_base.path),
                              Path(responder_model.path), evaluation, teacher)
    gates = {name: spec for name, spec in ResponderFamily().default_offline_gates().items() if name in _RUN_GATES}
    decision = evaluate_gates("offline", gates, report["gate"]["student"])
    report["gates_7_7"] = decision.to_dict()
    event = gate_eval(run_id=run_label(), student="responder", teacher=teacher.model, metrics=report["gate"]["student"],
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
    return report
