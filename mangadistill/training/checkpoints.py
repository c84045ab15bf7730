"""Epoch checkpoints of a training job, so a killed run resumes after its last finished epoch.

A job's folder is named by a hash of everything that defines it (`checkpoint_dir_for`: the data, the
teacher's weights, the student config), so running the same job again finds its checkpoints. Layout under
the job's folder (one folder per stage)::

    <root>/<job>/<stage>/epoch-0003/state/        accelerate's save_state: model, optimiser, scheduler, RNG
    <root>/<job>/<stage>/epoch-0003/trainer.json  history, stop decisions, best epoch, whether the stage ended
    <root>/<job>/<stage>/best.safetensors         weights of the deployment-candidate epoch so far

An epoch folder is written under a temporary name and renamed when complete, so a kill mid-save leaves
the previous checkpoint intact; older epochs are deleted once a newer one is complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

if TYPE_CHECKING:
    from mangadistill.config import StudentConfig
    from mangadistill.data.dataset import IntentDataset
    from mangadistill.models.model_dir import ModelDir

logger = logging.getLogger(__name__)

TRAINER_STATE = "trainer.json"
BEST_WEIGHTS = "best.safetensors"


def job_key(*parts: Any) -> str:
    """A short stable hash of everything that defines a training job (inputs' ids, configs as JSON)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dataset_fingerprint(dataset: IntentDataset) -> str:
    """Hash of the rows training reads (train and val texts with their label ids); the gate split is left out."""
    digest = hashlib.sha256()
    for split in ("train", "val"):
        for text, label in zip(dataset.texts(split), dataset.label_ids(split)):
            digest.update(f"{text}\t{label}\n".encode())
    return digest.hexdigest()[:16]


def model_fingerprint(model_dir: ModelDir) -> str:
    """Hash of a model folder's weights (safetensors, else .bin): the same wherever the artifact store put the
    folder, different for two teachers."""
    folder = Path(model_dir.path)
    digest = hashlib.sha256()
    for weights in sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin")):
        with open(weights, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def checkpoint_dir_for(dataset: IntentDataset, teacher: ModelDir, config: StudentConfig,
                       augmented_texts: Sequence[str] = ()) -> Path | None:
    """The folder of this student job's checkpoints, ``<checkpoints.dir>/student-<job key>`` (absolute); None
    when checkpoints are off. The key covers the data (with the augmented queries, if any), the teacher's
    weights and the student config except `checkpoints` itself (moving the folder or switching `resume` is
    the same job)."""
    if not config.checkpoints.enabled:
        return None
    parts = [dataset_fingerprint(dataset), model_fingerprint(teacher), config.model_dump(mode="json", exclude={"checkpoints"})]
    if augmented_texts:
        parts.append(hashlib.sha256("\n".join(augmented_texts).encode()).hexdigest()[:16])
    key = job_key(*parts)
    return Path(config.checkpoints.dir).absolute() / f"student-{key}"


@dataclass
class Resumed:
    """What a checkpoint restores besides the accelerate state."""

    epoch: int
    trainer: dict[str, Any]
    best_state: dict[str, torch.Tensor] | None


class StageCheckpoints:
    """Save and find the epoch checkpoints of one training stage in `folder`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def latest(self) -> Path | None:
        """The newest complete epoch folder, or None."""
        if not self.folder.is_dir():
            return None
        complete = sorted(p for p in self.folder.glob("epoch-*") if (p / TRAINER_STATE).is_file())
        return complete[-1] if complete else None

    def save(self, accelerator, epoch: int, trainer: dict[str, Any], best_state: dict[str, torch.Tensor] | None,
             best_changed: bool) -> Path:
        """Write epoch `epoch` (main process writes; every process must call, accelerate syncs inside)."""
        final = self.folder / f"epoch-{epoch:04d}"
        partial = self.folder / f".epoch-{epoch:04d}.partial"
        if accelerator.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(partial / "state"))
        accelerator.wait_for_everyone()  # every rank has written its part (RNG state) before the folder is renamed
        if accelerator.is_main_process:
            if best_changed and best_state is not None:
                tmp = self.folder / f".{BEST_WEIGHTS}.partial"
                save_file({k: v.contiguous() for k, v in best_state.items()}, str(tmp))
                tmp.replace(self.folder / BEST_WEIGHTS)
            (partial / TRAINER_STATE).write_text(json.dumps({**trainer, "epoch": epoch}, indent=1), encoding="utf-8")
            shutil.rmtree(final, ignore_errors=True)
            partial.rename(final)
            for older in self.folder.glob("epoch-*"):
                if older != final:
                    shutil.rmtree(older, ignore_errors=True)
        accelerator.wait_for_everyone()
        return final

    def resume(self, accelerator) -> Resumed | None:
        """Load the newest complete checkpoint into the prepared objects; None when there is none."""
        latest = self.latest()
        if latest is None:
            return None
        accelerator.load_state(str(latest / "state"))
        trainer = json.loads((latest / TRAINER_STATE).read_text(encoding="utf-8"))
        best_file = self.folder / BEST_WEIGHTS
        best_state = load_file(str(best_file)) if best_file.is_file() else None
        logger.info("resuming %s from %s (epoch %d)", self.folder.name, latest, trainer["epoch"])
        return Resumed(epoch=int(trainer["epoch"]), trainer=trainer, best_state=best_state)


def remove_job(folder: str | Path) -> None:
    """Delete a finished job's checkpoints."""
    shutil.rmtree(folder, ignore_errors=True)
