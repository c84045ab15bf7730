"""Cheap checks run before a pipeline starts, so mistakes surface as one line, not a failed step.

transformers and torch are imported only when a model reference is checked, after the file checks,
so a wrong path or a malformed file is reported in about a second rather than after ~10 s of imports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mangadistill.config import DistillIntentConfig, DriftReportConfig, TrafficConfig
from mangadistill.errors import ConfigError, DataError, ModelLoadError


def check_model_reference(key: str, model: str) -> Any:
    """Load only the model's config (no weights) to prove the reference resolves offline; returns it."""
    from transformers import AutoConfig

    from mangadistill.models.encoders import first_line, resolve_model_path

    path = resolve_model_path(model)
    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{key} '{model}' does not load offline ({first_line(exc)}); use a local model folder") from None


def preflight(config: BaseModel) -> None:
    """Validate what the config points at: input files exist and models resolve."""
    if isinstance(config, DriftReportConfig):
        _preflight_drift_report(config)
        return
    traffic = getattr(config, "traffic", None) or getattr(getattr(config, "shadow", None), "traffic", None)
    if isinstance(traffic, TrafficConfig):  # promote / monitor: the log must be readable
        _preflight_traffic(traffic)
    if not isinstance(config, DistillIntentConfig):
        return
    if config.data.path is not None and not Path(config.data.path).is_file():
        raise DataError(f"data.path: file not found: {config.data.path}")
    teacher = check_model_reference("teacher.model", config.teacher.model)
    if config.student.init == "teacher_layers":
        n_layers = getattr(teacher, "num_hidden_layers", None)
        bad = [i for i in config.student.teacher_layers if n_layers is not None and not 0 <= i < n_layers]
        if bad:
            raise ModelLoadError(f"student.teacher_layers: {bad} out of range; the teacher has layers 0..{n_layers - 1}")
    _preflight_layer_matching(config, teacher)


#: Probe texts for comparing tokenizers before any training starts.
_TOKENIZER_PROBES = ("where is my order of one piece vol. 104?", "Do you ship Chainsaw-Man box sets to Canada?")


def _preflight_layer_matching(config: DistillIntentConfig, teacher: Any) -> None:
    """Feature/attention KD: the layer map fits both depths, and the student tokenizes like the teacher."""
    student = config.student
    student_model = check_model_reference("student.model", student.model) if student.init == "pretrained" else None
    if not (student.stage1.enabled or student.stage2.kd.feature_weight or student.stage2.kd.attention_weight):
        return
    n_student = {"teacher_layers": len(student.teacher_layers), "scratch": student.architecture.num_layers}.get(
        student.init) or getattr(student_model, "num_hidden_layers", None)
    n_teacher = getattr(teacher, "num_hidden_layers", None)
    if student.stage1.layer_map is not None and n_student and n_teacher:
        from mangadistill.losses.intermediate import resolve_layer_map

        try:
            resolve_layer_map(student.stage1.layer_map, n_student, n_teacher)
        except ValueError as exc:
            raise ConfigError(f"student.stage1.{exc}") from None
    if student_model is not None:
        from mangadistill.models.encoders import load_tokenizer, resolve_model_path
        from mangadistill.models.vocabulary import token_id_map

        token_id_map(load_tokenizer(resolve_model_path(student.model)),
                     load_tokenizer(resolve_model_path(config.teacher.model)), _TOKENIZER_PROBES)


def _preflight_traffic(traffic: TrafficConfig) -> None:
    """A traffic log file reads, has a `text` column and a usable row (the simulator is not run here)."""
    if traffic.source != "simulator":
        from mangadistill.traffic import load_traffic

        load_traffic(traffic)  # a DataError names the file and what is wrong with it


def _preflight_drift_report(config: DriftReportConfig) -> None:
    """The traffic log reads; the embedding model resolves offline."""
    _preflight_traffic(config.traffic)
    check_model_reference("embedding.model", config.embedding.model)
