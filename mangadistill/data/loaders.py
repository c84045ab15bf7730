"""Readers for the dataset sources a config can choose: the bundled generator, CSV, JSONL, CLINC150.

Every reader returns a DataFrame with string columns ``text`` and ``label`` (and, for CLINC150, the
``source_split`` it came from), PII already scrubbed from both (`mangadistill.data.cleaning.scrub_frame`),
and a ``pii`` column naming what was replaced in each row (``"email phone"``, ``""`` for none). Readers are
where outside text enters, so every row is scrubbed here, including the ones cleaning will quarantine;
nothing downstream sees the original values. Nothing is filtered here: empty or unknown rows are the
cleaning stage's job, so that they are counted and quarantined rather than lost.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mangadistill.config import DataConfig
from mangadistill.data.cleaning import scrub_frame
from mangadistill.errors import DataError

REQUIRED_COLUMNS = ("text", "label")


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"dataset file not found: {path} (fix data.path in the config)")


def _as_text_frame(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, frame.columns))} "
            "(a dataset needs 'text' and 'label')"
        )
    frame = frame[list(REQUIRED_COLUMNS)].copy()
    for column in REQUIRED_COLUMNS:
        frame[column] = frame[column].fillna("").astype(str)
    return frame.reset_index(drop=True)


def read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV file with a header row containing ``text`` and ``label``; PII scrubbed."""
    _require_file(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    return scrub_frame(_as_text_frame(frame, path))


def iter_json_objects(path: Path) -> Iterator[tuple[int, dict | None, str | None, str]]:
    """``(line number, object, problem, raw line)`` for every non-blank line of a JSON-lines file.

    A line that is not a JSON object gives ``None`` and a short problem ("not JSON (...)", "not a JSON
    object"); callers decide what it means (quarantine the row, or stop naming the line). None is skipped.
    A byte-order mark (as Excel writes it) is ignored.
    """
    with path.open(encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield line_number, None, f"not JSON ({exc.msg})", line.strip()
                continue
            if isinstance(record, dict):
                yield line_number, record, None, line.strip()
            else:
                yield line_number, None, "not a JSON object", line.strip()


def read_jsonl(path: Path) -> pd.DataFrame:
    """Read a JSON-lines file of objects with ``text`` and ``label``; bad lines are kept as empty rows.

    PII is scrubbed; a bad line keeps only its number, never its content.
    """
    _require_file(path)
    records: list[dict[str, str]] = []
    for line_number, record, _, _ in iter_json_objects(path):
        if record is None:
            # Kept as an empty row so that cleaning quarantines and counts it.
            record = {"text": "", "label": f"<invalid json on line {line_number}>"}
        records.append(record)
    if not records:
        raise DataError(f"{path}: no rows found (expected one JSON object per line with text and label)")
    return scrub_frame(_as_text_frame(pd.DataFrame.from_records(records), path))


def read_clinc150(path: Path) -> pd.DataFrame:
    """Read a CLINC150 JSON file (split -> [[text, intent], ...]); ``oos`` is the out-of-scope class; PII scrubbed."""
    _require_file(path)
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a CLINC150 JSON file ({exc})") from None
    if not isinstance(splits, dict) or "train" not in splits:
        raise DataError(f"{path}: expected a CLINC150 object with keys like train/val/test/oos_train")
    rows = [
        {"text": str(pair[0]), "label": str(pair[1]), "source_split": split}
        for split, pairs in splits.items()
        for pair in pairs
    ]
    return scrub_frame(pd.DataFrame.from_records(rows, columns=[*REQUIRED_COLUMNS, "source_split"]))


def load_rows(config: DataConfig) -> pd.DataFrame:
    """Load the rows a `DataConfig` names, PII scrubbed, without any filtering."""
    if config.source == "synthetic":
        from mangadistill.data.synthetic import generate_intent_dataset

        knobs = config.synthetic
        generated = generate_intent_dataset(
            knobs.n_rows,
            knobs.seed,
            pii_rate=knobs.pii_rate,
            noise_rate=knobs.noise_rate,
            ambiguous_rate=knobs.ambiguous_rate,
            duplicate_rate=knobs.duplicate_rate,
            malformed_rate=knobs.malformed_rate,
        )
        return scrub_frame(generated)  # the generator injects PII on purpose, as customers do
    assert config.path is not None  # guaranteed by DataConfig validation
    readers = {"csv": read_csv, "jsonl": read_jsonl, "clinc150": read_clinc150}
    return readers[config.source](Path(config.path))


# ------------------------------------------------------------------------------------ cheap inspection
#: What each file source must hold, for the messages of `inspect_file` and `mangadistill.preflight`.
EXPECTED_LAYOUT = {
    "csv": "a csv dataset needs a header row with text and label, then one row per query",
    "jsonl": 'a jsonl dataset needs one JSON object per line, e.g. {"text": "where is my order?", "label": "shipping"}',
    "clinc150": "a clinc150 dataset is a JSON object of splits (train, val, test, oos_*) of [text, intent] pairs",
}
_CSV_ROWS_PER_CHUNK = 50_000
_UNCLOSED_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


@dataclass(frozen=True)
class FileSummary:
    """What a dataset file holds, learnt by `inspect_file` without building its rows.

    ``rows``: rows the reader will return that can be used (for JSONL, lines holding a JSON object; the
    other non-blank lines are ``bad_lines``, which the reader keeps as empty rows for cleaning to
    quarantine, and ``first_bad_line`` says what is wrong with the first). ``columns``: the CSV header, the
    keys of the JSONL objects (in order of first appearance), or CLINC150's fixed columns. ``splits``:
    CLINC150's rows per official split.
    """

    path: Path
    rows: int
    columns: tuple[str, ...]
    bad_lines: int = 0
    first_bad_line: str | None = None
    splits: Mapping[str, int] | None = None


def inspect_file(path: Path, source: str) -> FileSummary:
    """Header (or keys) and row count of a csv / jsonl / clinc150 file, read once without building a frame.

    Raises `DataError` naming the file when it is missing, empty, not UTF-8 text, or does not parse as
    its source says (e.g. a CSV quote that is never closed), with what the file should hold. Whether the
    columns and the count suit the config is the caller's question (`mangadistill.preflight`).
    """
    _require_file(path)
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; {EXPECTED_LAYOUT[source]}")
    inspect = {"csv": _inspect_csv, "jsonl": _inspect_jsonl, "clinc150": _inspect_clinc150}[source]
    try:
        return inspect(path)
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start : exc.start + 1].hex()
        raise DataError(
            f"{path}: not UTF-8 text (byte 0x{byte} cannot be decoded: {exc.reason}); a {source} dataset must be "
            "a text file saved as UTF-8"
        ) from None


def _inspect_csv(path: Path) -> FileSummary:
    """The header and the number of records, parsed by the same pandas parser and options as `read_csv`."""
    options = {"dtype": str, "keep_default_na": False}
    try:
        columns = tuple(map(str, pd.read_csv(path, nrows=0, **options).columns))
        rows = sum(len(chunk) for chunk in pd.read_csv(path, chunksize=_CSV_ROWS_PER_CHUNK, **options))
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file holds no header row (only blank lines); {EXPECTED_LAYOUT['csv']}") from None
    except pd.errors.ParserError as exc:
        unclosed = _UNCLOSED_QUOTE.search(str(exc))
        if unclosed:  # pandas counts rows from 0 with the header as row 0
            line = int(unclosed.group(1)) + 1
            raise DataError(
                f'{path}: not a readable CSV file: the quote (") opened on line {line} is never closed; '
                "close it, or double a quote inside a quoted field"
            ) from None
        raise DataError(f"{path}: not a readable CSV file ({str(exc).strip().splitlines()[-1]})") from None
    return FileSummary(path, rows, columns)


def _inspect_jsonl(path: Path) -> FileSummary:
    """Object lines, the keys they use and the bad lines, walked with the reader's own `iter_json_objects`."""
    rows = bad = 0
    keys: dict[str, None] = {}  # ordered set
    first_bad = None
    for line_number, record, problem, _ in iter_json_objects(path):
        if record is None:
            bad += 1
            first_bad = first_bad or f"line {line_number}: {problem}"
            continue
        rows += 1
        keys.update(dict.fromkeys(map(str, record)))
    return FileSummary(path, rows, tuple(keys), bad_lines=bad, first_bad_line=first_bad)


def _inspect_clinc150(path: Path) -> FileSummary:
    """Rows per official split of a CLINC150 JSON file (the file is one JSON document: parsed whole)."""
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not a CLINC150 JSON file ({exc})") from None
    if not isinstance(splits, dict) or "train" not in splits:
        raise DataError(f"{path}: expected a CLINC150 object with keys like train/val/test/oos_train")
    counts = {str(name): len(pairs) if isinstance(pairs, list) else 0 for name, pairs in splits.items()}
    return FileSummary(path, sum(counts.values()), (*REQUIRED_COLUMNS, "source_split"), splits=counts)
