"""`distill_intent`: data -> teacher -> teacher labels -> student -> gate evaluation -> registry."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from mangadistill.config import DistillIntentConfig
from steps import (
    clean_intent_data,
    evaluate_models,
    label_with_teacher,
    load_intent_data,
    register_student,
    train_student,
    train_teacher,
)


@pipeline
def distill_intent(config: DistillIntentConfig) -> None:
    """Distil the fine-tuned intent teacher into a smaller student and register it in MLflow."""
    raw_rows = load_intent_data(config=config.data)
    intent_dataset = clean_intent_data(raw_rows, config=config.data)
    teacher_model = train_teacher(intent_dataset, config=config.teacher)
    teacher_labels = label_with_teacher(intent_dataset, teacher_model,
                                        low_confidence_threshold=config.teacher.low_confidence_threshold)
    student_model = train_student(intent_dataset, teacher_model, teacher_labels, config=config.student, kd=config.kd)
    evaluation = evaluate_models(intent_dataset, teacher_model, student_model, config=config.evaluation)
    register_student(student_model, evaluation, config=config.registry,
                     resolved_config=config.model_dump(mode="json"))


def run_outputs(run: Any) -> dict[str, Any]:
    """The evaluation and registration results of a finished `distill_intent` run."""
    return {
        "evaluation": run.steps["evaluate_models"].outputs["evaluation"][0].load(),
        "registered_model": run.steps["register_student"].outputs["registered_model"][0].load(),
    }


def summary(run: Any) -> list[Any]:
    """What `run.py` prints at the end of a run: the teacher-vs-student table and the registered version."""
    from rich.table import Table

    from mangadistill.evaluation.report import comparison_table

    outputs = run_outputs(run)
    evaluation, registered = outputs["evaluation"], outputs["registered_model"]
    table = Table(title=f"Gate set ({evaluation['teacher']['rows']:.0f} rows): teacher vs distilled student")
    for column in ("Metric", "Teacher", "Student", "Delta"):
        table.add_column(column, justify="left" if column == "Metric" else "right")
    for row in comparison_table(evaluation["teacher"], evaluation["student"]):
        table.add_row(*row)
    how = "reused" if registered["reused"] else "registered"
    return [
        table,
        (f"student keeps {100 * evaluation['retention']:.1f}% of the teacher's gate accuracy "
         f"({100 * evaluation['student']['accuracy']:.1f}% vs {100 * evaluation['teacher']['accuracy']:.1f}%)"),
        f"{how} {registered['uri']}  (MLflow run {registered['run_id']})",
    ]
