"""The traffic-log contract: read or simulate a log, scrub its PII at the door, quarantine its bad lines.

What every consumer of production traffic (drift reports, shadow evaluation, monitoring) gets is a
`TrafficLog`:

- ``rows``: string columns ``text`` (whitespace collapsed, PII replaced with tags such as ``[EMAIL]``)
  and ``label`` (the true intent; ``''`` when the line has none);
- ``quarantine``: the lines that cannot be used, scrubbed the same way, with a ``reason``;
- nothing is dropped silently: ``len(rows) + len(quarantine)`` is the number of non-blank lines read
  (the first ``max_rows`` of them when the config sets it).

A bad **line** is quarantined with its reason: an empty text, a JSON line that does not parse or is
not an object, an object without ``text``, and, when the model's labels are given, a label outside them.
A bad **file** is a one-line `DataError` (exit code 3) naming the file and what to fix: missing, empty,
not UTF-8, an unreadable CSV (unbalanced quotes, more fields than the header), no ``text`` column, a
suffix that contradicts ``traffic.source``, or no usable line at all.

PII is scrubbed (`mangadistill.data.cleaning.scrub_pii`) in `load_traffic`, the only way in for both a
user's file and the simulator, so no stored artifact or log line carries an e-mail, phone or card number.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mangadistill.config import TrafficConfig
from mangadistill.data.cleaning import near_duplicate_key, scrub_pii
from mangadistill.data.loaders import iter_json_objects
from mangadistill.errors import DataError
from mangadistill.traffic.simulator import simulate_traffic

#: File suffixes each `traffic.source` reads.
SUFFIXES = {"csv": (".csv",), "jsonl": (".jsonl", ".ndjson")}
QUARANTINE_COLUMNS = ("text", "label", "reason")
_PROBLEM = "_problem"  # internal column of a JSONL frame: why a line could not be read as a record
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class TrafficLog:
    """Usable ``rows`` (``text``, ``label``) and the ``quarantine`` (``text``, ``label``, ``reason``) of a log.

    ``source`` says where it came from (the file, or the simulator and its knobs); ``labelled`` is true
    when at least one usable row has a label; ``rows_with_pii`` counts lines, usable or quarantined,
    in which PII was replaced.
    """

    rows: pd.DataFrame
    quarantine: pd.DataFrame
    source: str
    labelled: bool
    rows_with_pii: int

    @property
    def counts(self) -> dict[str, int]:
        return {"rows": len(self.rows), "quarantined": len(self.quarantine),
                "labelled_rows": int((self.rows["label"] != "").sum()), "rows_with_pii": self.rows_with_pii}


def load_traffic(config: TrafficConfig, known_labels: tuple[str, ...] | None = None) -> TrafficLog:
    """The configured log, simulated or read, scrubbed and split into usable rows and quarantine.

    `known_labels` (the model's intents) quarantines rows labelled with anything else; unlabelled rows
    are usable either way. Raises `DataError` for a bad file (module docstring).
    """
    if config.source == "simulator":
        knobs = config.simulator
        raw = simulate_traffic(knobs.n_rows, knobs.seed, knobs.drift)
        source = f"simulator(n_rows={knobs.n_rows}, seed={knobs.seed}, drift={knobs.drift})"
    else:
        assert config.path is not None  # guaranteed by TrafficConfig validation
        path = Path(config.path)
        raw, source = _read_file(path, config.source), str(path)
    if config.max_rows is not None:
        raw = raw.head(config.max_rows)
    return _admit(raw, source, known_labels)


def for_drift(log: TrafficLog) -> tuple[pd.DataFrame, dict[str, int]]:
    """The usable rows made comparable with the cleaned training data, and counts of what was done.

    The reference split had its exact and near-duplicates removed (`mangadistill.data.cleaning`); doing
    the same here compares like with like: without it, the many repeats of short queries ("hi",
    "refund") in raw traffic shift the length distribution against the de-duplicated reference even when
    nothing changed. (PII is already scrubbed by `load_traffic`.) The frame has ``text`` and, only when
    every kept row has one, ``label``: quality metrics need every row labelled, drift does not.
    """
    duplicate = log.rows["text"].map(near_duplicate_key).duplicated(keep="first")
    frame = log.rows.loc[~duplicate, ["text", "label"]].reset_index(drop=True)
    unlabelled = int((frame["label"] == "").sum())
    if unlabelled:
        frame = frame[["text"]]
    counts = {"rows_in": len(log.rows) + len(log.quarantine), "quarantined": len(log.quarantine),
              "rows_with_pii": log.rows_with_pii, "duplicates_dropped": int(duplicate.sum()),
              "unlabelled_rows": unlabelled, "rows": len(frame)}
    return frame, counts


# ------------------------------------------------------------------------------------------ admit
def _admit(raw: pd.DataFrame, source: str, known_labels: tuple[str, ...] | None) -> TrafficLog:
    """Scrub and normalise every line of a raw frame (``text``, optional ``label`` and ``_problem``), then split."""
    texts = [_WHITESPACE.sub(" ", value).strip() for value in _strings(raw, "text")]
    labels = [value.strip() for value in _strings(raw, "label")]
    scrubbed_texts, scrubbed_labels = [scrub_pii(value) for value in texts], [scrub_pii(value) for value in labels]
    lines = pd.DataFrame({"text": [value for value, _ in scrubbed_texts],
                          "label": [value for value, _ in scrubbed_labels]})
    rows_with_pii = sum(bool(text_found) or bool(label_found)
                        for (_, text_found), (_, label_found) in zip(scrubbed_texts, scrubbed_labels, strict=True))
    reason = pd.Series(_strings(raw, _PROBLEM), index=lines.index, dtype=str)
    reason[(reason == "") & (lines["text"] == "")] = "empty text"
    if known_labels is not None:
        unknown = (reason == "") & (lines["label"] != "") & ~lines["label"].isin(known_labels)
        reason[unknown] = "label not among the model's intents: " + lines.loc[unknown, "label"]
    bad = reason != ""
    quarantine = lines[bad].assign(reason=reason[bad]).reset_index(drop=True)[list(QUARANTINE_COLUMNS)]
    rows = lines[~bad].reset_index(drop=True)
    if rows.empty:
        example = f"; the first: {quarantine['reason'].iloc[0]}" if len(quarantine) else ""
        raise DataError(f"{source}: the traffic log has no usable rows ({len(quarantine)} read, all quarantined"
                        f"{example}); it needs non-empty 'text' values")
    return TrafficLog(rows, quarantine, source, bool((rows["label"] != "").any()), rows_with_pii)


def _strings(frame: pd.DataFrame, column: str) -> list[str]:
    """A column as strings (missing values and a missing column are ``''``)."""
    if column not in frame.columns:
        return [""] * len(frame)
    return ["" if value is None or (isinstance(value, float) and value != value) else str(value)
            for value in frame[column]]


# ------------------------------------------------------------------------------------------ files
def _read_file(path: Path, source: str) -> pd.DataFrame:
    """The raw lines of a CSV or JSONL log; `DataError` for a file that cannot be read as a log."""
    if not path.is_file():
        raise DataError(f"traffic log not found: {path} (fix traffic.path in the config)")
    if path.suffix.lower() not in SUFFIXES[source]:
        other = next((name for name, suffixes in SUFFIXES.items() if path.suffix.lower() in suffixes), None)
        fix = f"set traffic.source: {other}" if other else f"export it as {' or '.join(SUFFIXES[source])}"
        raise DataError(f"{path}: unsupported traffic log format '{path.suffix}' for traffic.source {source}; {fix}")
    try:
        frame = _read_csv(path) if source == "csv" else _read_jsonl(path)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the log as UTF-8 "
                        f"{source.upper()}") from None
    if "text" not in frame.columns:
        raise _missing_text(path, [str(column) for column in frame.columns])
    if frame.empty:
        raise DataError(f"{path}: the traffic log has a header but no rows")
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    """Header row + one query per line; ragged lines and unbalanced quotes are errors, not guesses."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # extra fields would be dropped silently
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", index_col=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the traffic log is empty (expected a header with 'text', optionally "
                        "'label', and one query per line)") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        raise DataError(f"{path}: not a readable CSV file ({_first_line(exc)}); quote texts that contain "
                        "commas, quotes or line breaks") from None
    return frame.rename(columns=lambda column: str(column).strip())


def _read_jsonl(path: Path) -> pd.DataFrame:
    """One JSON object per line; a line that is not one is kept (text = the raw line) with a problem."""
    records: list[dict[str, object]] = []
    keys: dict[str, None] = {}  # of every object, in order of appearance
    for number, record, problem, line in iter_json_objects(path):
        if record is None:
            records.append({"text": line, _PROBLEM: f"line {number}: {problem}"})
            continue
        keys.update(dict.fromkeys(map(str, record)))
        records.append(record if "text" in record else {**record, _PROBLEM: f"line {number}: no 'text' field"})
    if not records:
        raise DataError(f"{path}: the traffic log is empty (expected one JSON object with 'text', optionally "
                        "'label', per line)")
    if keys and "text" not in keys:  # no object has the field: the file's schema is wrong, not a line
        raise _missing_text(path, list(keys))
    return pd.DataFrame.from_records(records)


def _missing_text(path: Path, found: list[str]) -> DataError:
    shown = ", ".join(name[:40] for name in found[:8]) + (", ..." if len(found) > 8 else "") or "none"
    return DataError(f"{path}: missing column 'text' (found: {shown}); a traffic log needs 'text' and optionally "
                     "'label'")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
