"""The fine-tuning server's worker: runs queued supervised jobs one at a time on the LoRA trainer.

A job's life: ``queued`` -> ``running`` -> ``succeeded`` | ``failed`` | ``cancelled``. Training is
`mangadistill.response.sft.train_lora` on the job's base model, into ``<root>/jobs/<job id>/sft``; each
epoch's adapter becomes a checkpoint served as ``ft:<base>:<suffix>:<id>:ckpt-step-<step>``, and the final
adapter is merged into the fine-tuned model ``ft:<base>:<suffix>:<id>``. Events go to the store as the job
runs (OpenAI's messages and ``metrics`` events), and every attempt is an MLflow run.

A process killed mid-job leaves the job ``running``; `recover` (called at start-up) puts it back in the
queue, and its next attempt resumes from the latest trainer checkpoint, so a restart finishes the job (or
fails it with a reason) instead of losing it. Cancelling ends training after the current optimizer step.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import shutil
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from mangadistill.config.openai_server import FineTuneBaseModelConfig, OpenAIServerConfig
from mangadistill.errors import UserError
from mangadistill.finetune.store import FineTuneStore

logger = logging.getLogger(__name__)

__all__ = ["FineTuneWorker", "checkpoint_model_name", "fine_tuned_model_name", "resolve_hyperparameters",
           "sft_rows_from_file"]

#: Roles the chat template of a Llama-architecture student understands; "developer" is read as "system".
_TEXT_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def fine_tuned_model_name(job: dict[str, Any]) -> str:
    """``ft:<base>:<suffix>:<id>``: OpenAI's naming, the id being the first 8 characters of the job's."""
    return f"ft:{job['model']}:{job.get('user_provided_suffix') or ''}:{job['id'].removeprefix('ftjob-')[:8]}"


def checkpoint_model_name(job: dict[str, Any], step: int) -> str:
    return f"{fine_tuned_model_name(job)}:ckpt-step-{step}"


def resolve_hyperparameters(requested: dict[str, Any], base: FineTuneBaseModelConfig) -> dict[str, Any]:
    """'auto' (or absent) -> this server's defaults for the base model: n_epochs, batch_size, multiplier."""
    def pick(name: str, default: Any) -> Any:
        value = requested.get(name)
        return default if value in (None, "auto") else value

    return {"n_epochs": int(pick("n_epochs", base.default_epochs)),
            "batch_size": int(pick("batch_size", base.default_batch_size)),
            "learning_rate_multiplier": float(pick("learning_rate_multiplier", 1.0))}


def sft_rows_from_file(path: Path) -> list[dict[str, Any]]:
    """Trainer rows of a validated chat JSONL file: the last trained assistant message of each example is the
    completion, every message before it the prompt (``developer`` read as ``system``)."""
    from mangadistill.finetune.data import read_examples
    from mangadistill.response.sft import sft_row

    rows = []
    for _, example in read_examples(path):
        messages = example["messages"]
        targets = [i for i, m in enumerate(messages) if m["role"] == "assistant" and m.get("weight", 1) != 0]
        if not targets:
            continue  # every assistant turn has weight 0: nothing to learn from this example
        last = targets[-1]
        prompt = [{"role": _TEXT_ROLES[m["role"]], "content": m["content"]} for m in messages[:last]]
        rows.append(sft_row(prompt, messages[last]["content"]))
    return rows


class FineTuneWorker:
    """A daemon thread that runs the store's queued jobs in order (see the module docstring)."""

    def __init__(self, store: FineTuneStore, config: OpenAIServerConfig, base_dir: Callable[[str], Path],
                 tracking_uri: str | None = None) -> None:
        self.store, self.config, self.base_dir, self.tracking_uri = store, config, base_dir, tracking_uri
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current_job: str | None = None

    # ------------------------------------------------------------------------------------------ control
    def recover(self) -> list[str]:
        """Requeue the jobs a dead process left running (call before `start`); returns their ids."""
        recovered = []
        for job in self.store.interrupted_jobs():
            _JobTracker.close_abandoned(self.tracking_uri, self.config.mlflow_experiment, job["id"])
            self.store.update_job(job["id"], status="queued", estimated_finish=None)
            self.store.add_event(job["id"], "The server restarted while this job was running; it is queued again "
                                 "and resumes from its last checkpoint", level="warn")
            recovered.append(job["id"])
        return recovered

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="fine-tuning-worker", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """A job was queued: look now instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking jobs; a running job stops after its current step (it stays ``running`` and resumes on the
        next start)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self.store.next_queued_job()
            if job is None:
                self._wake.wait(self.config.poll_seconds)
                self._wake.clear()
                continue
            self.current_job = job["id"]
            try:
                self.run(job)
            except Exception:  # never let one job kill the worker
                logger.exception("fine-tuning job %s crashed the worker loop", job["id"])
            finally:
                self.current_job = None

    # ------------------------------------------------------------------------------------------- one job
    def run(self, job: dict[str, Any]) -> None:
        """Run (or resume) one job to its end."""
        job_id = job["id"]
        started = self.store.update_job(job_id, only_if_status=("queued",), status="running")
        if started is None:  # cancelled while it waited
            return
        attempt = self.store.start_attempt(job_id)
        self.store.add_event(job_id, "Fine-tuning job started" if attempt == 1 else
                             f"Fine-tuning job resumed (attempt {attempt})")
        tracker = _JobTracker(self.tracking_uri, self.config.mlflow_experiment, job, attempt)
        try:
            outcome = self._train(started, tracker)
        except Exception as exc:  # the job fails with the reason; the server keeps running
            if self._stop.is_set() and not isinstance(exc, UserError):
                logger.warning("job %s interrupted by shutdown; it resumes on the next start", job_id)
                tracker.end("KILLED")
                return
            message = " ".join(str(exc).split()) or type(exc).__name__
            code = "invalid_training_file" if isinstance(exc, UserError) else "training_error"
            logger.error("fine-tuning job %s failed: %s\n%s", job_id, message, traceback.format_exc())
            self.store.update_job(job_id, only_if_status=("running",), status="failed", finished_at=int(time.time()),
                                  estimated_finish=None, error={"code": code, "message": message, "param": None})
            self.store.add_event(job_id, f"Fine-tuning job failed: {message}", level="error")
            tracker.end("FAILED", error=message)
            return
        tracker.end("KILLED" if outcome == "cancelled" else "FINISHED")

    def _cancelled(self, job_id: str) -> bool:
        job = self.store.get_job(job_id)
        return job is None or job["status"] == "cancelled" or self._stop.is_set()

    def _train(self, job: dict[str, Any], tracker: _JobTracker) -> str:
        from mangadistill.response.sft import SFTSettings, merge_adapter, train_lora

        job_id = job["id"]
        base = self.config.base_models[job["model"]]
        hyper = job["hyperparameters"]
        train_rows = sft_rows_from_file(self.store.file_path(job["training_file"]))
        val_rows = sft_rows_from_file(self.store.file_path(job["validation_file"])) if job.get("validation_file") else []
        settings = replace(
            SFTSettings(**base.sft.model_dump()), epochs=hyper["n_epochs"], per_device_batch_size=hyper["batch_size"],
            gradient_accumulation_steps=1, learning_rate=base.sft.learning_rate * hyper["learning_rate_multiplier"],
            max_length=base.max_tokens_per_example, seed=job["seed"])
        base_dir = self.base_dir(job["model"])
        total_steps = math.ceil(len(train_rows) / settings.per_device_batch_size) * settings.epochs
        tracker.start({**hyper, "base_model": job["model"], "training_examples": len(train_rows),
                       "validation_examples": len(val_rows), "learning_rate": settings.learning_rate,
                       "lora_r": settings.lora_r, "lora_layers": settings.lora_layers,
                       "training_file": job["training_file"], "validation_file": job.get("validation_file")})
        began = time.time()

        def on_log(logs: dict[str, float]) -> None:
            if "loss" not in logs:
                return
            step = int(logs["step"])
            self.store.add_event(job_id, f"Step {step}/{total_steps}: training loss={logs['loss']:.4f}",
                                 type="metrics", data={"step": step, "train_loss": float(logs["loss"]),
                                                       "total_steps": total_steps})
            tracker.metric("train_loss", float(logs["loss"]), step)
            if step:
                per_step = (time.time() - began) / step
                self.store.update_job(job_id, only_if_status=("running",),
                                      estimated_finish=int(time.time() + per_step * (total_steps - step)))

        def on_epoch_end(context) -> bool:
            record = context.record
            name = checkpoint_model_name(job, record.global_step)
            metrics = {"step": float(record.global_step), "train_loss": record.train_loss,
                       "valid_loss": None if math.isnan(record.eval_loss) else record.eval_loss,
                       "full_valid_loss": None if math.isnan(record.eval_loss) else record.eval_loss}
            checkpoint = {"id": "ftckpt-" + hashlib.sha256(f"{job_id}:{record.epoch}".encode()).hexdigest()[:24],
                          "object": "fine_tuning.job.checkpoint", "created_at": int(time.time()),
                          "fine_tuned_model_checkpoint": name, "fine_tuning_job_id": job_id,
                          "metrics": metrics, "step_number": record.global_step}
            self.store.put_checkpoint(job_id, checkpoint, Path(record.adapter_dir))
            self.store.add_event(job_id, f"Checkpoint created at step {record.global_step} (epoch {record.epoch}): "
                                 f"{name}", data={"epoch": record.epoch, "checkpoint": name})
            tracker.metric("epoch_train_loss", record.train_loss, record.global_step)
            if not math.isnan(record.eval_loss):
                tracker.metric("valid_loss", record.eval_loss, record.global_step)
            return False

        result = train_lora(base_dir, train_rows, val_rows, settings, self.store.job_dir(job_id) / "sft",
                            on_epoch_end=on_epoch_end, resume=True, should_cancel=lambda: self._cancelled(job_id),
                            on_log=on_log)
        if self._stop.is_set():
            raise RuntimeError("the server is shutting down")
        if result.cancelled or self._cancelled(job_id):
            self.store.add_event(job_id, "Training stopped: the job was cancelled")
            return "cancelled"
        model_dir = self.store.job_dir(job_id) / "model"
        if model_dir.exists():  # a merge cut short by a kill
            shutil.rmtree(model_dir)
        merge_adapter(base_dir, result.last_adapter_dir, model_dir)
        results = self.store.add_file_bytes(_results_csv(result.history), filename=f"{job_id}-results.csv",
                                            purpose="fine-tune-results")
        name = fine_tuned_model_name(job)
        trained = sum(record.train_tokens for record in result.history)
        self.store.add_event(job_id, f"New fine-tuned model created: {name}")
        finished = self.store.update_job(
            job_id, only_if_status=("running",), status="succeeded", fine_tuned_model=name,
            finished_at=int(time.time()), trained_tokens=trained, result_files=[results["id"]], estimated_finish=None)
        if finished is None:  # cancelled during the merge
            return "cancelled"
        self.store.add_event(job_id, "The job has successfully completed")
        tracker.metric("trained_tokens", float(trained), result.history[-1].global_step)
        return "succeeded"


def _results_csv(history) -> bytes:
    """OpenAI's result file: one row per epoch checkpoint (step, losses)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["step", "epoch", "train_loss", "valid_loss", "train_tokens"])
    for record in history:
        writer.writerow([record.global_step, record.epoch, f"{record.train_loss:.6f}",
                         "" if math.isnan(record.eval_loss) else f"{record.eval_loss:.6f}", record.train_tokens])
    return out.getvalue().encode("utf-8")


class _JobTracker:
    """One MLflow run per attempt of a job, in the server's experiment (no-op without a tracking URI)."""

    def __init__(self, tracking_uri: str | None, experiment: str, job: dict[str, Any], attempt: int) -> None:
        self.tracking_uri, self.experiment, self.job, self.attempt = tracking_uri, experiment, job, attempt
        self.client = None
        self.run_id: str | None = None

    def start(self, params: dict[str, Any]) -> None:
        if not self.tracking_uri:
            return
        from mlflow import MlflowClient

        try:
            self.client = MlflowClient(self.tracking_uri)
            found = self.client.get_experiment_by_name(self.experiment)
            experiment_id = found.experiment_id if found else self.client.create_experiment(self.experiment)
            run = self.client.create_run(experiment_id, run_name=f"{self.job['id']}-attempt-{self.attempt}", tags={
                "fine_tuning_job_id": self.job["id"], "attempt": str(self.attempt), "base_model": self.job["model"],
                "suffix": self.job.get("user_provided_suffix") or "", "fine_tuned_model": fine_tuned_model_name(self.job),
            })
            self.run_id = run.info.run_id
            for key, value in params.items():
                self.client.log_param(self.run_id, key, value)
        except Exception as exc:  # tracking must not fail a job
            logger.warning("MLflow tracking of job %s is off: %s", self.job["id"], exc)
            self.client = None

    @staticmethod
    def close_abandoned(tracking_uri: str | None, experiment: str, job_id: str) -> None:
        """Mark the MLflow runs a killed process left RUNNING for `job_id` as KILLED."""
        if not tracking_uri:
            return
        from mlflow import MlflowClient

        try:
            client = MlflowClient(tracking_uri)
            found = client.get_experiment_by_name(experiment)
            if found is None:
                return
            for run in client.search_runs([found.experiment_id], filter_string=(
                    f"tags.fine_tuning_job_id = '{job_id}' and attributes.status = 'RUNNING'")):
                client.set_terminated(run.info.run_id, status="KILLED")
        except Exception as exc:  # tracking must not stop a recovery
            logger.warning("MLflow runs of job %s not closed: %s", job_id, exc)

    def metric(self, key: str, value: float, step: int) -> None:
        if self.client is not None and self.run_id and math.isfinite(value):
            try:
                self.client.log_metric(self.run_id, key, value, step=step)
            except Exception as exc:
                logger.warning("MLflow metric %s of job %s not logged: %s", key, self.job["id"], exc)

    def end(self, status: str, error: str | None = None) -> None:
        if self.client is None or not self.run_id:
            return
        try:
            if error:
                self.client.set_tag(self.run_id, "error", error[:5000])
            self.client.set_terminated(self.run_id, status=status)
        except Exception as exc:
            logger.warning("MLflow run of job %s not closed: %s", self.job["id"], exc)
