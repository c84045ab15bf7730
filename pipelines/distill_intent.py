"""`distill_intent`: data -> teacher (+ augmented queries) -> teacher labels -> student -> gate evaluation -> ONNX/INT8 -> serving benchmark -> registry."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from mangadistill.config import DistillIntentConfig
from steps import (
    augment_intent_data,
    benchmark_serving,
    clean_intent_data,
    evaluate_models,
    export_student,
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
    augmented_queries = augment_intent_data(intent_dataset, config=config.augment)
    teacher_labels = label_with_teacher(intent_dataset, teacher_model, augmented_queries=augmented_queries,
                                        low_confidence_threshold=config.teacher.low_confidence_threshold)
    student_model = train_student(intent_dataset, teacher_model, teacher_labels, config=config.student)
    evaluation = evaluate_models(intent_dataset, teacher_model, student_model, refusal=config.refusal)
    student_onnx, export_report = export_student(intent_dataset, student_model, evaluation, config=config.export)
    serving = benchmark_serving(intent_dataset, teacher_model, student_model, student_onnx, evaluation, export_report,
                                config=config.evaluation, export=config.export, cost=config.cost)
    register_student(student_onnx, evaluation, serving, config=config.registry, resolved_config=config.model_dump(mode="json"))


def run_outputs(run: Any) -> dict[str, Any]:
    """The evaluation, serving-benchmark and registration results of a finished `distill_intent` run."""
    return {
        "evaluation": run.steps["evaluate_models"].outputs["evaluation"][0].load(),
        "serving_report": run.steps["benchmark_serving"].outputs["serving_report"][0].load(),
        "registered_model": run.steps["register_student"].outputs["registered_model"][0].load(),
    }


def summary(run: Any) -> list[Any]:
    """What `run.py` prints at the end of a run: runbook 6.10 (teacher vs served student) and 13.3 (variants)."""
    from rich.table import Table

    from mangadistill.evaluation.report import comparison_table
    from mangadistill.evaluation.serving import VARIANT_HEADER, variant_table

    outputs = run_outputs(run)
    evaluation, serving, registered = outputs["evaluation"], outputs["serving_report"], outputs["registered_model"]
    served = serving["served_variant"]
    teacher = {**serving["variants"]["teacher_pytorch_fp32"], "num_parameters": evaluation["teacher"]["num_parameters"]}
    student = {**serving["variants"][f"student_{served}"], "num_parameters": evaluation["student"]["num_parameters"]}
    business = Table(title=f"Gate set ({evaluation['teacher']['rows']:.0f} rows): teacher vs served student ({served})")
    for column in ("Metric", "Teacher", "Student", "Delta"):
        business.add_column(column, justify="left" if column == "Metric" else "right")
    for row in comparison_table(teacher, student):
        business.add_row(*row)
    variants = Table(title=f"Serving variants (threads: {serving['serving_threads']}; same queries, one process)")
    for column in VARIANT_HEADER:
        variants.add_column(column, justify="left" if column == "Variant" else "right")
    accuracy = {name: m["accuracy"] for name, m in serving["variants"].items()}
    for row in variant_table(serving["variants"], accuracy):
        variants.add_row(*row)
    how = "reused" if registered["reused"] else "registered"
    trained = run.steps["train_student"].outputs["student_model"][0].run_metadata
    stages = [f"{name.replace('stage', 'stage ')}: {trained[f'{name}_summary']}"
              for name in ("stage1", "stage2") if f"{name}_summary" in trained]
    taught = run.steps["train_teacher"].outputs["teacher_model"][0].run_metadata
    if "epochs_trained" in taught:
        ended = "stop rule" if taught.get("stopped_by_rule") else "epoch budget"
        n = int(taught["epochs_trained"])
        stages.insert(0, f"teacher: {n} epoch{'s' if n != 1 else ''} ({ended}), kept epoch {taught['best_epoch']} "
                         f"(val_accuracy {100 * float(taught['best_val_accuracy']):.1f}%)")
    augmented = run.steps["augment_intent_data"].outputs["augmented_queries"][0].run_metadata
    if int(augmented.get("rows", 0)):
        stages.insert(0, f"augmentation: {augmented['summary']} (teacher-labelled; the student learns them from its logits)")
    return [
        business,
        variants,
        *stages,
        (f"served {served}: {serving['served_reason']}; keeps {100 * student['accuracy'] / teacher['accuracy']:.1f}% "
         f"of the teacher's gate accuracy at {1 / serving['p95_ratio']:.1f}x lower p95 and "
         f"{100 * serving['cost_reduction']:.0f}% lower cost"),
        f"{how} {registered['uri']}  (MLflow run {registered['run_id']})",
    ]
