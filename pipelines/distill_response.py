"""`distill_response`: prompts -> teacher answers -> typed dataset -> LoRA SFT student -> ONNX/INT8 variants ->
evaluation -> registry."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from mangadistill.config import DistillResponseConfig
from steps import (
    assemble_response_dataset,
    build_response_prompts,
    evaluate_responders,
    export_responder,
    generate_teacher_answers,
    prepare_response_student,
    register_responder,
    train_responder,
)


@pipeline
def distill_response(config: DistillResponseConfig) -> None:
    """Distil the teacher's answers into a small Llama-architecture student (runbook 7-8) and register it."""
    prompts = build_response_prompts(config=config.data)
    teacher_answers = generate_teacher_answers(
        prompts, config=config.teacher, low_confidence_retrieval_score=config.data.low_confidence_retrieval_score)
    dataset = assemble_response_dataset(prompts, teacher_answers, config=config.data)
    student_base = prepare_response_student(config=config.student)
    responder_model, _training = train_responder(dataset, student_base, config=config.student,
                                                 evaluation=config.evaluation, teacher=config.teacher)
    served, variants = export_responder(dataset, responder_model, evaluation=config.evaluation, config=config.export)
    evaluation = evaluate_responders(dataset, teacher_answers, student_base, served,
                                     evaluation=config.evaluation, teacher=config.teacher)
    register_responder(served, evaluation, variants, config=config.registry,
                       resolved_config=config.model_dump(mode="json"))


def run_outputs(run: Any) -> dict[str, Any]:
    return {
        "evaluation": run.steps["evaluate_responders"].outputs["response_evaluation"][0].load(),
        "training": run.steps["train_responder"].outputs["responder_training"][0].load(),
        "variants": run.steps["export_responder"].outputs["variant_report"][0].load(),
        "registered_model": run.steps["register_responder"].outputs["registered_model"][0].load(),
    }


def summary(run: Any) -> list[Any]:
    """What `run.py` prints at the end: teacher vs base vs distilled student (gate and golden sets), the 7.7 gates."""
    from rich.table import Table

    from mangadistill.response.tables import comparison_table

    outputs = run_outputs(run)
    evaluation, training, registered = outputs["evaluation"], outputs["training"], outputs["registered_model"]
    variants = outputs["variants"]
    printed: list[Any] = []
    for split in ("golden", "gate"):
        if split not in evaluation:
            continue
        table = comparison_table(
            evaluation, split, f"{split.capitalize()} set ({evaluation[f'{split}_rows']} prompts): teacher vs base "
            f"student vs distilled student ({evaluation['serving_threads']} threads)",
            ("Teacher", "Base student", "Distilled student"))
        printed.append(table)
    table = Table(title=f"Serving variants of the distilled student (gate set, {variants['timed_prompts']} prompts "
                        f"timed one at a time, {variants['threads']} threads, one process)")
    for column in ("Variant", "Gate rubric", "Hallucination", "p50", "p95", "p95 vs PyTorch", "Tokens / s", "Size"):
        table.add_column(column, justify="left" if column == "Variant" else "right")
    for name, v in variants["variants"].items():
        table.add_row(name + (" (served)" if name == variants["served_variant"] else ""), f"{v['rubric']:.2f}",
                      f"{100 * v['hallucination_rate']:.1f}%", f"{v['latency_p50_ms']:,.0f} ms",
                      f"{v['latency_p95_ms']:,.0f} ms", f"{variants['p95_ratio_vs_pytorch'][name]:.2f}x",
                      f"{v['tokens_per_s']:.1f}", f"{v['size_mb']:.0f} MB")
    printed.append(table)
    printed.append(f"served variant {variants['served_reason']}")
    gates = evaluation["gates_7_7"]
    printed.append(f"7.7 gates (gate set): {'PASS' if gates['passed'] else 'FAIL'}: {gates['reason']}")
    printed.append(f"epochs: {training['epochs_trained']} trained, kept epoch {training['chosen_epoch']} "
                   f"({training['choice']}); stop: {training['stop_reason']}")
    how = "reused" if registered["reused"] else "registered"
    printed.append(f"{how} {registered['uri']}  (MLflow run {registered['run_id']})")
    return printed
