"""Chat-format fine-tuning files for OpenAI's supervised fine-tuning API: build, validate, estimate (runbook 7.2-7.4).

- `write_chat_files` turns the response dataset into ``train.jsonl`` and ``validation.jsonl``, one
  ``{"messages": [system, user, assistant]}`` object per line. The 7.3 row weights are applied to the train split
  by resampling (`training_rows`), since OpenAI's SFT has no per-row weights; validation rows appear once each.
  Same dataset and seed give the same bytes, so a file's sha256 identifies it.
- `validate_chat_jsonl` checks a file the way OpenAI's fine-tuning docs and the cookbook notebook "Data
  preparation and analysis for chat model fine-tuning" describe, and counts each example's tokens. It takes a path
  or the uploaded bytes and a pluggable token counter, because the same check runs on the client before upload
  and in the project's own fine-tuning server when a file is uploaded or a job is created. Every bad line is
  reported with its number; nothing is dropped silently.
- `estimate_cost` gives 7.4's numbers: training rows, mean tokens per example, tokens per epoch, training
  tokens over all epochs, and their price.

Token counts follow the cookbook's chat accounting (`count_example_tokens`) but the counter is pluggable:
OpenAI's own tokenizer (tiktoken) is not installed and there is no internet to fetch its vocabulary, so
`student_token_counter` counts with the student's SmolLM2 tokenizer, read offline from its packaged GGUF. That
is an approximation of OpenAI's counts (a different BPE vocabulary), good for sizing a job, not for billing.

Never imports zenml; torch and transformers are imported only when `student_token_counter` is first called.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mangadistill.errors import DataError
from mangadistill.response.dataset import ResponseDataset, ResponseRow, training_rows

__all__ = [
    "ChatFile",
    "ChatFiles",
    "CostEstimate",
    "FileReport",
    "FineTuneDataError",
    "Problem",
    "TokenCounter",
    "chat_example",
    "count_example_tokens",
    "estimate_cost",
    "student_token_counter",
    "validate_chat_jsonl",
    "write_chat_files",
]

#: Tokens of one string.
TokenCounter = Callable[[str], int]

TRAIN_FILE = "train.jsonl"
VALIDATION_FILE = "validation.jsonl"

#: Roles and message keys OpenAI's chat fine-tuning format accepts.
ROLES = ("system", "developer", "user", "assistant", "tool")
MESSAGE_KEYS = ("role", "content", "name", "weight", "tool_calls", "function_call")
_TOOL_KEYS = ("tool_calls", "function_call")

#: The cookbook's accounting ("How to count tokens with tiktoken"): per message, per name, reply priming.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3

_SUMMARY_LISTED = 3  # problems named in a summary line before "and N more"


class FineTuneDataError(DataError):
    """A chat fine-tuning file that OpenAI (or the project's fine-tuning server) would reject; exit code 3."""


# ---------------------------------------------------------------------------------------------------------
# Writing the files
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatFile:
    """One written JSONL file."""

    path: Path
    sha256: str  # of the file's bytes
    examples: int
    bytes: int


@dataclass(frozen=True)
class ChatFiles:
    train: ChatFile
    validation: ChatFile
    resampled: dict[str, int]  # copies per row type in the train file (`training_rows`' Counter)


def chat_example(prompt_messages: list[dict[str, str]], answer: str) -> dict:
    """``{"messages": [*prompt_messages, {"role": "assistant", "content": answer}]}`` (the prompt is copied)."""
    return {"messages": [dict(m) for m in prompt_messages] + [{"role": "assistant", "content": answer}]}


def write_chat_files(dataset: ResponseDataset, out_dir: Path, *, seed: int) -> ChatFiles:
    """``train.jsonl`` and ``validation.jsonl`` in `out_dir` (created; existing files replaced).

    train: the train split through `training_rows(rows, seed)` (7.3 weights by resampling, shuffled);
    validation: the validation split, one example per row, in dataset order. Same dataset and seed give
    identical bytes. Raises `DataError` (one line) if a split is empty or a row has no answer.
    """
    train = _answered(dataset, "train")
    validation = _answered(dataset, "validation")
    rows, copies = training_rows(train, seed)
    train_examples = [chat_example(r["prompt"], r["completion"][0]["content"]) for r in rows]
    validation_examples = [chat_example(r.messages(), r.answer or "") for r in validation]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return ChatFiles(train=_write_jsonl(out_dir / TRAIN_FILE, train_examples),
                     validation=_write_jsonl(out_dir / VALIDATION_FILE, validation_examples),
                     resampled=dict(sorted(copies.items())))


def _answered(dataset: ResponseDataset, split: str) -> list[ResponseRow]:
    rows = dataset.split(split)
    if not rows:
        raise DataError(f"the response dataset has no {split} rows; a fine-tuning job needs both train and "
                        "validation rows (raise data.val_fraction, or give rows of your file a 'split')")
    missing = [r.id for r in rows if r.answer is None or not r.answer.strip()]
    if missing:
        raise DataError(f"{len(missing)} {split} rows have no answer (first: {missing[0]}); label every row "
                        "(teacher answers, then assemble_dataset) before writing chat files")
    return rows


def _write_jsonl(path: Path, examples: list[dict]) -> ChatFile:
    data = "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in examples).encode()
    path.write_bytes(data)
    return ChatFile(path=path, sha256=hashlib.sha256(data).hexdigest(), examples=len(examples), bytes=len(data))


# ---------------------------------------------------------------------------------------------------------
# Token counting
# ---------------------------------------------------------------------------------------------------------


def count_example_tokens(messages: Sequence[Mapping[str, Any]], count: TokenCounter) -> int:
    """Tokens of one chat example, in OpenAI's accounting (openai-cookbook, "How to count tokens with tiktoken").

    ``sum over messages of (3 + count(role) + count(content) + [count(name) + 1]) + 3``: 3 tokens frame each
    message, a name costs one more, and 3 prime the reply. A null content counts 0; `tool_calls` and
    `function_call` (not strings) are counted as their compact JSON text; `weight` is not text and counts 0.
    """
    total = TOKENS_REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key in ("role", "content", "name"):
            value = message.get(key)
            if isinstance(value, str):
                total += count(value)
        if message.get("name") is not None:
            total += TOKENS_PER_NAME
        for key in _TOOL_KEYS:
            if message.get(key) is not None:
                total += count(json.dumps(message[key], ensure_ascii=False, separators=(",", ":")))
    return total


@functools.lru_cache(maxsize=4)
def _student_tokenizer(cache_dir: Path | None):
    from mangadistill.response.student import smollm2_tokenizer  # torch + transformers: only when asked

    return smollm2_tokenizer(cache_dir)


def student_token_counter(cache_dir: Path | None = None) -> TokenCounter:
    """Counts tokens with the student's SmolLM2 tokenizer (offline; read from the GGUF, ~10 s, unless a
    tokenizer folder is cached under `cache_dir`; then kept in memory for the process).

    An approximation of OpenAI's counts (see the module docstring). Raises `ModelLoadError` if the packaged
    GGUF is missing.
    """
    tok = _student_tokenizer(Path(cache_dir) if cache_dir is not None else None)
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


# ---------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    line: int  # 1-based line number in the file; 0 for the file as a whole
    message: str


@dataclass(frozen=True)
class FileReport:
    name: str  # file name for messages
    examples: int  # valid examples
    problems: tuple[Problem, ...]
    tokens: tuple[int, ...]  # tokens per valid example, in file order

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens)

    @property
    def mean_tokens(self) -> float:
        return self.total_tokens / len(self.tokens) if self.tokens else 0.0

    @property
    def max_tokens(self) -> int:
        return max(self.tokens, default=0)

    def summary(self) -> str:
        """One line: the counts when the file is valid, else what is wrong (3 problems named) and what to do."""
        if self.ok:
            return f"{self.name}: {self.examples:,} examples, {self.total_tokens:,} tokens"
        lines = [p for p in self.problems if p.line > 0]
        parts = []
        if lines:
            named = [f"line {p.line}: {p.message}" for p in lines[:_SUMMARY_LISTED]]
            if len(lines) > _SUMMARY_LISTED:
                named.append(f"and {len(lines) - _SUMMARY_LISTED} more")
            parts.append(f"{len(lines):,} of {self.examples + len(lines):,} examples invalid ({'; '.join(named)})")
        parts += [p.message for p in self.problems if p.line <= 0]
        action = "fix them and upload again" if lines else "fix the file and upload again"
        return " ".join(f"{self.name}: {'; '.join(parts)}; {action}".splitlines())

    def raise_if_invalid(self) -> None:
        if not self.ok:
            raise FineTuneDataError(self.summary())


def read_examples(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, example) of a chat JSONL file `validate_chat_jsonl` accepted: UTF-8 (a BOM is dropped),
    lines split on ``\n`` only (U+2028 and friends may sit raw inside a JSON string), blank lines skipped."""
    text = Path(path).read_text(encoding="utf-8").removeprefix("\ufeff")
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield number, json.loads(line)


def validate_chat_jsonl(source: Path | bytes, *, name: str | None = None, count: TokenCounter,
                        max_tokens_per_example: int, min_examples: int = 10) -> FileReport:
    """Check a chat fine-tuning file (a path, or its bytes as uploaded) and count each valid example's tokens.

    The file must be UTF-8 (a leading byte-order mark is ignored); each non-blank line one JSON object with a
    non-empty ``messages`` list of messages with a ``role`` (system, developer, user, assistant, tool) and a
    string ``content`` (null or absent only on an assistant message with ``tool_calls`` / ``function_call``),
    no keys besides role, content, name, weight, tool_calls, function_call; ``weight`` only on assistant messages
    and only 0 or 1; at least one assistant message; at most `max_tokens_per_example` tokens
    (`count_example_tokens`). Blank lines are skipped. Each bad line gives one `Problem` (its first fault);
    problems about the whole file (empty, not UTF-8, fewer than `min_examples` valid examples) have line 0.
    Raises `FineTuneDataError` only when a path cannot be read.
    """
    if max_tokens_per_example < 1 or min_examples < 0:
        raise ValueError("max_tokens_per_example must be >= 1 and min_examples >= 0")
    if isinstance(source, Path):
        name = name or source.name
        try:
            data = source.read_bytes()
        except OSError as err:
            raise FineTuneDataError(f"cannot read {source}: {err.strerror or err}; check the path") from None
    elif isinstance(source, (bytes, bytearray, memoryview)):
        name, data = name or "file", bytes(source)
    else:
        raise TypeError(f"source must be a Path or the file's bytes, not {type(source).__name__}")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        message = f"not UTF-8 text (line {line}, byte {err.start:,}); save the file as UTF-8"
        return FileReport(name=name, examples=0, problems=(Problem(0, message),), tokens=())
    problems: list[Problem] = []
    tokens: list[int] = []
    seen_line = False
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): U+2028 may sit inside a string
        if not line.strip():
            continue
        seen_line = True
        problem, n_tokens = _check_line(line, count, max_tokens_per_example)
        if problem is None:
            tokens.append(n_tokens)
        else:
            problems.append(Problem(number, problem))
    if not seen_line:
        problems.append(Problem(0, "the file is empty; write one JSON object per line, each with a 'messages' list"))
    elif len(tokens) < min_examples:
        problems.append(Problem(0, f"{len(tokens):,} valid examples; fine-tuning needs at least {min_examples:,}"))
    return FileReport(name=name, examples=len(tokens), problems=tuple(problems), tokens=tuple(tokens))


def _check_line(line: str, count: TokenCounter, max_tokens: int) -> tuple[str | None, int]:
    """(the line's first problem, or None, and its tokens when it has none)."""
    try:
        record = json.loads(line, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        return f"not JSON ({err.msg} at column {err.colno})", 0
    except ValueError as err:  # NaN / Infinity, from _reject_constant
        return f"not JSON ({err})", 0
    except RecursionError:
        return "not JSON (nested too deeply)", 0
    if not isinstance(record, dict):
        return f"a JSON {_json_type(record)}, not an object like {{\"messages\": [...]}}", 0
    if "messages" not in record:
        return "no 'messages' key", 0
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list", 0
    for index, message in enumerate(messages, start=1):
        problem = _check_message(message)
        if problem is not None:
            return f"message {index}: {problem}", 0
    if not any(m["role"] == "assistant" for m in messages):
        return "no assistant message", 0
    n_tokens = count_example_tokens(messages, count)
    if n_tokens > max_tokens:
        return f"{n_tokens:,} tokens; the limit is {max_tokens:,}: shorten it", 0
    return None, n_tokens


def _check_message(message: Any) -> str | None:
    if not isinstance(message, dict):
        return f"a JSON {_json_type(message)}, not an object with 'role' and 'content'"
    unknown = [k for k in message if k not in MESSAGE_KEYS]
    if unknown:
        return f"unrecognised key {_show(unknown[0])} (use {_either(MESSAGE_KEYS)})"
    if "role" not in message:
        return "no 'role'"
    role = message["role"]
    if role not in ROLES:
        return f"unrecognised role {_show(role)} (use {_either(ROLES)})"
    tool_call = any(message.get(k) is not None for k in _TOOL_KEYS)
    if tool_call and role != "assistant":
        return "tool_calls / function_call are only allowed on assistant messages"
    content = message.get("content")
    if content is None:
        if not tool_call:
            return "no 'content'" if "content" not in message else (
                "content is null (only an assistant message with tool_calls or function_call may omit it)")
    elif not isinstance(content, str):
        return f"content must be a string, not a JSON {_json_type(content)}"
    elif not content.strip() and not tool_call:
        return "content is empty"
    if "name" in message and not isinstance(message["name"], str):
        return f"name must be a string, not a JSON {_json_type(message['name'])}"
    if "weight" in message:
        weight = message["weight"]
        if role != "assistant":
            return f"weight on a {role} message (only assistant messages take a weight)"
        if isinstance(weight, bool) or weight not in (0, 1):
            return f"weight must be 0 or 1, not {_show(weight)}"
    return None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _show(value: Any, limit: int = 40) -> str:
    """A value from the file, quoted and cut short, safe in a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _either(options: Sequence[str]) -> str:
    return f"{', '.join(options[:-1])} or {options[-1]}"


# ---------------------------------------------------------------------------------------------------------
# Estimate (runbook 7.4)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostEstimate:
    training_examples: int
    validation_examples: int
    mean_tokens_per_example: float
    tokens_per_epoch: int  # total tokens of the training file
    epochs: int
    training_tokens: int  # tokens_per_epoch * epochs
    price_per_1m_training_tokens_usd: float
    training_cost_usd: float
    tokenizer: str  # what counted the tokens

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """Human lines in runbook 7.4's shape."""
        return [
            f"training rows: {self.training_examples:,} (validation rows: {self.validation_examples:,})",
            f"average prompt + answer length: {_number(self.mean_tokens_per_example)} tokens ({self.tokenizer})",
            f"total tokens / epoch: {self.training_examples:,} x {_number(self.mean_tokens_per_example)} = "
            f"{self.tokens_per_epoch:,} tokens",
            f"{self.epochs} epochs: {self.training_tokens:,} training tokens",
            f"estimated training cost: {self.training_tokens:,} x ${self.price_per_1m_training_tokens_usd:,.2f} / 1M"
            f" = ${self.training_cost_usd:,.2f}",
        ]


def estimate_cost(train: FileReport, validation: FileReport | None, *, epochs: int,
                  price_per_1m_training_tokens_usd: float, tokenizer: str) -> CostEstimate:
    """7.4's estimate from validated files: tokens per epoch x epochs, priced per million training tokens.

    Validation tokens are not billed as training tokens and are left out of the cost. Raises
    `FineTuneDataError` if either file is invalid (OpenAI would reject the job, so there is nothing to price).
    """
    if epochs < 1 or price_per_1m_training_tokens_usd < 0:
        raise ValueError("epochs must be >= 1 and price_per_1m_training_tokens_usd >= 0")
    train.raise_if_invalid()
    if validation is not None:
        validation.raise_if_invalid()
    training_tokens = train.total_tokens * epochs
    return CostEstimate(
        training_examples=train.examples,
        validation_examples=validation.examples if validation is not None else 0,
        mean_tokens_per_example=train.mean_tokens,
        tokens_per_epoch=train.total_tokens,
        epochs=epochs,
        training_tokens=training_tokens,
        price_per_1m_training_tokens_usd=price_per_1m_training_tokens_usd,
        training_cost_usd=training_tokens * price_per_1m_training_tokens_usd / 1_000_000,
        tokenizer=tokenizer,
    )


def _number(value: float) -> str:
    """420 for a whole number, 415.3 otherwise (one decimal), with thousands separators."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
