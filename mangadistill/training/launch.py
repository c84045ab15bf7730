"""Student distillation in N data-parallel processes, started from inside a pipeline step.

The step hands its inputs to ``torchrun`` through a job folder; every process runs the same
`distill_student` (DDP through accelerate: NCCL on GPUs, gloo on CPU), rank 0 logs epochs to the
step's MLflow run and saves the result, and the step reads it back. One process needs none of this:
the step calls `distill_student` directly.

    python -m torch.distributed.run --standalone --nproc_per_node N -m mangadistill.training.launch JOB
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

JOB, RESULT = "job.pkl", "result.pkl"


def distill_in_processes(num_processes: int, dataset, teacher, teacher_labels, config, checkpoint_dir):
    """Run `distill_student` in `num_processes` DDP processes; returns rank 0's `Distilled`."""
    from mangadistill.models.encoders import load_model_dir

    job = Path(tempfile.mkdtemp(prefix="distill-ddp-"))
    with open(job / JOB, "wb") as f:
        pickle.dump({"dataset": dataset, "teacher": teacher, "teacher_labels": teacher_labels, "config": config,
                     "checkpoint_dir": checkpoint_dir}, f)
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["ACCELERATE_USE_CPU"] = "1"  # DDP over CPU processes (gloo)
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // num_processes)))
    import mlflow

    if mlflow.active_run() is not None:  # rank 0 logs epochs into the step's run
        env["MLFLOW_RUN_ID"] = mlflow.active_run().info.run_id
        env["MLFLOW_TRACKING_URI"] = mlflow.get_tracking_uri()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={num_processes}",
               "-m", "mangadistill.training.launch", str(job)]
    completed = subprocess.run(command, env=env, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"distributed training failed (exit {completed.returncode}); see the log above")
    with open(job / RESULT, "rb") as f:
        distilled = pickle.load(f)
    distilled.model, distilled.tokenizer = load_model_dir(distilled.model)
    return distilled


def _main(job: Path) -> None:
    from accelerate import PartialState

    from mangadistill.models.encoders import save_model_dir
    from mangadistill.tracking import EpochLogger
    from mangadistill.training.distill import distill_student

    with open(job / JOB, "rb") as f:
        inputs = pickle.load(f)
    state = PartialState(cpu=os.environ.get("ACCELERATE_USE_CPU") == "1")  # the singleton the training loop reuses
    callbacks = {}
    run = None
    if state.is_main_process and os.environ.get("MLFLOW_RUN_ID"):
        import mlflow

        run = mlflow.start_run(run_id=os.environ["MLFLOW_RUN_ID"])
        teacher_name = inputs["teacher"].card.get("source_model", "teacher")
        callbacks = {
            "on_stage1_epoch_end": EpochLogger(stage="feature_kd", run_label=run.info.run_name, student="ddp",
                                               teacher=teacher_name, group="stage1",
                                               artifact_name="stage1_epoch_end.jsonl"),
            "on_epoch_end": EpochLogger(stage="output_kd", run_label=run.info.run_name, student="ddp",
                                        teacher=teacher_name),
        }
    distilled = distill_student(inputs["dataset"], inputs["teacher"], inputs["teacher_labels"], inputs["config"],
                                checkpoint_dir=inputs["checkpoint_dir"], **callbacks)
    if state.is_main_process:
        distilled.model = save_model_dir(distilled.model, distilled.tokenizer, job / "student", role="student",
                                         labels=list(inputs["dataset"].labels), max_length=distilled.max_length)
        distilled.tokenizer = None
        distilled.loss, distilled.stage1_loss = str(distilled.loss), str(distilled.stage1_loss or "")  # closures: print form
        with open(job / RESULT, "wb") as f:
            pickle.dump(distilled, f)
        if run is not None:
            import mlflow

            mlflow.end_run()
    state.wait_for_everyone()


if __name__ == "__main__":
    _main(Path(sys.argv[1]))
