"""Readers for the dataset sources a config can choose: the bundled generator, CSV, JSONL, CLINC150.

Every reader returns a DataFrame with string columns ``text`` and ``label`` (and, for CLINC150, the
``source_split`` it came from). Nothing is filtered here: empty or unknown rows are the cleaning
stage's job, so that they are counted and quarantined rather than lost.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from mangadistill.config import DataConfig
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
    """Read a CSV file with a header row containing ``text`` and ``label``."""
    _require_file(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    return _as_text_frame(frame, path)


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
    """Read a JSON-lines file of objects with ``text`` and ``label``; bad lines are kept as empty rows."""
    _require_file(path)
    records: list[dict[str, str]] = []
    for line_number, record, _, _ in iter_json_objects(path):
        if record is None:
            # Kept as an empty row so that cleaning quarantines and counts it.
            record = {"text": "", "label": f"<invalid json on line {line_number}>"}
        records.append(record)
    if not records:
        raise DataError(f"{path}: no rows found (expected one JSON object per line with text and label)")
    return _as_text_frame(pd.DataFrame.from_records(records), path)


def read_clinc150(path: Path) -> pd.DataFrame:
    """Read a CLINC150 JSON file (split -> [[text, intent], ...]); ``oos`` is the out-of-scope class."""
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
    return pd.DataFrame.from_records(rows, columns=[*REQUIRED_COLUMNS, "source_split"])


def load_rows(config: DataConfig) -> pd.DataFrame:
    """Load the raw rows a `DataConfig` names, without any filtering."""
    if config.source == "synthetic":
        from mangadistill.data.synthetic import generate_intent_dataset

        knobs = config.synthetic
        return generate_intent_dataset(
            knobs.n_rows,
            knobs.seed,
            pii_rate=knobs.pii_rate,
            noise_rate=knobs.noise_rate,
            ambiguous_rate=knobs.ambiguous_rate,
            duplicate_rate=knobs.duplicate_rate,
            malformed_rate=knobs.malformed_rate,
        )
    assert config.path is not None  # guaranteed by DataConfig validation
    readers = {"csv": read_csv, "jsonl": read_jsonl, "clinc150": read_clinc150}
    return readers[config.source](Path(config.path))
