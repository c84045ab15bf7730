"""Cheap checks run before a pipeline starts, so mistakes surface as one line, not a failed step.

A user's data file is inspected (header and row count, `mangadistill.data.loaders.inspect_file`), not
cleaned: readable, the right columns, and enough rows for the configured train/validation/gate split.
transformers and torch are imported only when a model reference is checked, after the file checks,
so a wrong path or a malformed file is reported in about a second rather than after ~10 s of imports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mangadistill.config import (
    DataConfig,
    DistillIntentConfig,
    DistillRerankerConfig,
    DistillResponseConfig,
    DistillResponseManagedConfig,
    DriftReportConfig,
    SplitConfig,
    TrafficConfig,
)
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
    if isinstance(config, DistillResponseConfig):
        _preflight_distill_response(config)
        return
    if isinstance(config, DistillResponseManagedConfig):
        _preflight_distill_response_managed(config)
        return
    if isinstance(config, DistillRerankerConfig):
        _preflight_distill_reranker(config)
        return
    if not isinstance(config, DistillIntentConfig):
        return
    check_data(config.data)
    teacher = check_model_reference("teacher.model", config.teacher.model)
    if config.student.init == "teacher_layers":
        n_layers = getattr(teacher, "num_hidden_layers", None)
        bad = [i for i in config.student.teacher_layers if n_layers is not None and not 0 <= i < n_layers]
        if bad:
            raise ModelLoadError(f"student.teacher_layers: {bad} out of range; the teacher has layers 0..{n_layers - 1}")
    _preflight_layer_matching(config, teacher)


def _preflight_distill_reranker(config: DistillRerankerConfig) -> None:
    """The input files exist, the teacher resolves and has the layers the student keeps."""
    for key in ("path", "corpus_path", "queries_path"):
        path = getattr(config.data, key)
        if path is not None and not Path(path).is_file():
            raise DataError(f"data.{key}: {path} does not exist")
    teacher = check_model_reference("teacher.model", config.teacher.model)
    n_layers = getattr(teacher, "num_hidden_layers", None)
    bad = [i for i in config.student.teacher_layers if n_layers is not None and not 0 <= i < n_layers]
    if bad:
        raise ModelLoadError(f"student.teacher_layers: {bad} out of range; the teacher has layers 0..{n_layers - 1}")


def check_data(data: DataConfig) -> None:
    """A user's data file reads, has text and label, and holds enough rows for the split (header and count only)."""
    if data.path is None:  # the bundled generator
        return
    from mangadistill.data.cleaning import scrub_pii
    from mangadistill.data.loaders import EXPECTED_LAYOUT, REQUIRED_COLUMNS, inspect_file

    path = Path(data.path)
    if not path.is_file():
        raise DataError(f"data.path: file not found: {path}")
    found = inspect_file(path, data.source)
    what = "key(s)" if data.source == "jsonl" else "column(s)"
    if data.source == "jsonl" and found.rows == 0 and found.bad_lines:
        raise DataError(f"{path}: none of its {found.bad_lines} line(s) is a JSON object ({found.first_bad_line}); "
                        f"{EXPECTED_LAYOUT['jsonl']}")
    missing = [column for column in REQUIRED_COLUMNS if column not in found.columns]
    if missing and found.columns:
        shown = ", ".join(scrub_pii(column)[0] for column in found.columns)  # a headerless file's first row
        raise DataError(f"{path}: missing {what} {', '.join(missing)}; found {shown} "
                        f"({EXPECTED_LAYOUT[data.source]})")
    if found.rows == 0:
        raise DataError(f"{path}: no rows{' below the header' if data.source == 'csv' else ''}; "
                        f"{EXPECTED_LAYOUT[data.source]}")
    if found.splits is not None:  # CLINC150 keeps its official splits
        empty = [name for name in ("train", "val", "test") if not found.splits.get(name)]
        if empty:
            raise DataError(f"{path}: CLINC150 split(s) {', '.join(empty)} missing or empty; the official "
                            "train/val/test splits are kept, so each needs rows")
        return
    needed = rows_needed_to_split(data.split)
    if found.rows < needed:
        raise DataError(
            f"{path}: only {found.rows} row(s); the train/validation/gate split (data.split.val_fraction "
            f"{data.split.val_fraction:g}, gate_fraction {data.split.gate_fraction:g}) needs at least {needed}, one in "
            "each split, and more when the rows spread over several labels; add rows"
        )


def rows_needed_to_split(split: SplitConfig) -> int:
    """The fewest rows that `stratified_split` gives a train, a validation and a gate row, with `split`'s fractions.

    Counted for rows of one label (the split is per label, so rows spread over several labels need more):
    a lower bound that a file must reach before cleaning even starts.
    """
    import pandas as pd

    from mangadistill.data.cleaning import stratified_split

    # round(n * f) >= 1 needs n * f > 0.5, so no smaller n can work; the loop then takes a step or two
    n = max(3, int(0.5 / min(split.val_fraction, split.gate_fraction)))
    while True:
        one_label = pd.DataFrame({"text": [""] * n, "label": ["label"] * n})
        if all(len(part) for part in stratified_split(one_label, split.val_fraction, split.gate_fraction, split.seed)):
            return n
        n += 1


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


def _preflight_distill_response(config: DistillResponseConfig) -> None:
    """Your chat files exist, the student's base model is there, the teacher's key is set (for a remote teacher)."""
    _preflight_response_inputs(config)
    from mangadistill.response.student import SMOLLM2, smollm2_gguf, validate_causal_lm_folder

    if config.student.base_model == SMOLLM2:
        smollm2_gguf()
    else:
        validate_causal_lm_folder(Path(config.student.base_model).expanduser())


def _preflight_distill_response_managed(config: DistillResponseManagedConfig) -> None:
    """Your chat files exist, the teacher's key is set (remote teacher), the endpoint's key is set (unless a dry
    run, which talks to no endpoint but the teacher's)."""
    _preflight_response_inputs(config)
    if not config.managed.dry_run:
        from mangadistill.finetune.workflow import ManagedEndpoint

        ManagedEndpoint.of(config.managed).api_key()


def _preflight_response_inputs(config: DistillResponseConfig | DistillResponseManagedConfig) -> None:
    """Both response tracks: the chat files exist, a remote teacher's key is set."""
    for key, path in (("data.path", config.data.path), ("data.golden_path", config.data.golden_path)):
        if config.data.source == "jsonl" and path is not None and not Path(path).is_file():
            raise DataError(f"{key}: file not found: {path}")
    if config.teacher.backend == "openai":
        from mangadistill.response.labeling import teacher_endpoint

        with teacher_endpoint(config.teacher) as endpoint:
            endpoint.api_key()
