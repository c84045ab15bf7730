"""`distill_response_managed`: prompts -> teacher answers -> typed dataset -> chat JSONL (validated, estimated) ->
upload + supervised fine-tuning job at an OpenAI-compatible endpoint -> every epoch checkpoint evaluated -> the
7.8 choice on the gate and golden sets -> a registered responder version that calls the endpoint (runbook 7)."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from mangadistill.config import DistillResponseManagedConfig
from steps import (
    assemble_response_dataset,
    build_response_prompts,
    evaluate_finetune_checkpoints,
    evaluate_managed_responder,
    generate_teacher_answers,
    prepare_finetune_files,
    register_managed_responder,
    run_finetune_job,
)


@pipeline
def distill_response_managed(config: DistillResponseManagedConfig) -> None:
    """Distil the teacher's answers into a managed student by supervised fine-tuning (runbook 7) and register it.
    With ``managed.dry_run`` it stops after the files are validated and the bill is estimated."""
    prompts = build_response_prompts(config=config.data)
    teacher_answers = generate_teacher_answers(
        prompts, config=config.teacher, low_confidence_retrieval_score=config.data.low_confidence_retrieval_score)
    dataset = assemble_response_dataset(prompts, teacher_answers, config=config.data)
    files = prepare_finetune_files(dataset, config=config.managed)
    if config.managed.dry_run:
        return
    job = run_finetune_job(dataset, files, config=config.managed)
    training = evaluate_finetune_checkpoints(dataset, job, managed=config.managed, evaluation=config.evaluation,
                                             stop=config.stop, teacher=config.teacher)
    # the life cycle (promote's bootstrap) reads the evaluation of a responder run under this step id
    evaluation = evaluate_managed_responder(dataset, teacher_answers, training, managed=config.managed,
                                            evaluation=config.evaluation, teacher=config.teacher,
                                            id="evaluate_responders")
    register_managed_responder(training, evaluation, job, config=config.registry, managed=config.managed,
                               resolved_config=config.model_dump(mode="json"))


def run_outputs(run: Any) -> dict[str, Any]:
    outputs: dict[str, Any] = {"files": run.steps["prepare_finetune_files"].outputs["finetune_files"][0].load()}
    if "register_managed_responder" in run.steps:
        outputs.update({
            "job": run.steps["run_finetune_job"].outputs["finetune_job"][0].load(),
            "training": run.steps["evaluate_finetune_checkpoints"].outputs["responder_training"][0].load(),
            "evaluation": run.steps["evaluate_responders"].outputs["response_evaluation"][0].load(),
            "registered_model": run.steps["register_managed_responder"].outputs["registered_model"][0].load(),
        })
    return outputs


def summary(run: Any) -> list[Any]:
    """What `run.py` prints at the end: the 7.4 estimate; then the job, the epoch table (7.6), the gate and golden
    comparison, the 7.7 gates and the registered version."""
    from rich.table import Table

    from mangadistill.response.tables import comparison_table, epoch_rows

    outputs = run_outputs(run)
    files = outputs["files"]
    printed: list[Any] = ["Fine-tuning files and estimate (runbook 7.4):", *[f"  {line}" for line in
                                                                              files["estimate_lines"]]]
    if "job" not in outputs:
        printed.append("dry run: nothing was uploaded and no job was started")
        return printed
    job, training, evaluation, registered = (outputs[k] for k in ("job", "training", "evaluation", "registered_model"))
    reused = [name for name, was in job["reused"].items() if was]
    printed.append(f"job {job['job_id']} at {job['base_url']}: {job['status']}, {job['trained_tokens']:,} trained tokens, "
                   f"model {job['fine_tuned_model']}" + (f" (reused: {', '.join(reused)})" if reused else ""))
    table = Table(title=f"Epoch checkpoints on the validation set (runbook 7.6), kept epoch {training['chosen_epoch']}")
    header, *rows = epoch_rows(training["table"], training["chosen_epoch"])
    for column in header:
        table.add_column(column, justify="left" if column == "Epoch" else "right")
    for row in rows:
        table.add_row(*row)
    printed.append(table)
    for split in ("golden", "gate"):
        if split not in evaluation:
            continue
        table = comparison_table(
            evaluation, split, f"{split.capitalize()} set ({evaluation[f'{split}_rows']} prompts): teacher vs base "
            f"model vs fine-tuned student (through {job['base_url']})", ("Teacher", "Base model", "Fine-tuned student"))
        printed.append(table)
    gates = evaluation["gates_7_7"]
    printed.append(f"7.7 gates (gate set): {'PASS' if gates['passed'] else 'FAIL'}: {gates['reason']}")
    printed.append(f"kept epoch {training['chosen_epoch']} ({training['choice']}): {training['chosen_model']}")
    how = "reused" if registered["reused"] else "registered"
    printed.append(f"{how} {registered['uri']} -> {registered['model']} at {registered['base_url']}  "
                   f"(MLflow run {registered['run_id']})")
    return printed
