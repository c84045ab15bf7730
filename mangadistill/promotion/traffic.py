"""Production-traffic logs: a user's CSV/JSONL file (`text`, optional `label`) or simulated traffic.

Malformed rows (empty text, unreadable JSON lines, labels outside the model's intents) are kept in a
quarantine with a reason and counted, never silently dropped. An empty log, or one without a `text`
column, is a `DataError` (exit code 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mangadistill.config import ReplayTrafficConfig
from mangadistill.data.loaders import iter_json_objects
from mangadistill.errors import DataError


@dataclass
class TrafficLog:
    """Replayable requests: ``rows`` has ``text`` and ``label`` (empty string when unlabelled)."""

    rows: pd.DataFrame
    source: str
    labelled: bool
    quarantine: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["text", "label", "reason"]))

    @property
    def counts(self) -> dict[str, int]:
        return {"rows": len(self.rows), "quarantined": len(self.quarantine),
                "labelled_rows": int((self.rows["label"] != "").sum())}


def simulate_traffic(n_rows: int, seed: int) -> pd.DataFrame:
    """Labelled MangaAssist requests from the bundled generator with its own seed (not the training seed).

    Keeps the generator's noise, PII, duplicates and malformed rows, as real traffic would have them.
    """
    from mangadistill.data.synthetic import generate_intent_dataset

    return generate_intent_dataset(n_rows, seed)


def _read_file(path: Path, source: str) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"traffic log not found: {path} (fix traffic.path in the config)")
    if source == "csv":
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            raise DataError(f"{path}: traffic log is empty (expected a header with 'text', optional 'label')") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not a readable CSV traffic log ({str(exc).splitlines()[0]})") from None
    else:
        records = [record if record is not None else {"text": "", "_invalid": f"invalid JSON on line {number}"}
                   for number, record, _ in iter_json_objects(path)]  # a bad line is kept, then quarantined
        frame = pd.DataFrame.from_records(records)
    if "text" not in frame.columns:
        found = ", ".join(map(str, frame.columns)) or "nothing"
        raise DataError(f"{path}: traffic log has no 'text' column (found {found}); add text and optional label")
    return frame


def load_traffic(config: ReplayTrafficConfig, known_labels: tuple[str, ...] | None = None) -> TrafficLog:
    """Read or simulate the log named by `config`; quarantine malformed rows; fail on an empty log."""
    if config.source == "simulated":
        frame = simulate_traffic(config.n_rows, config.seed)
        source = f"simulated(n={config.n_rows}, seed={config.seed})"
    else:
        frame, source = _read_file(Path(config.path), config.source), str(config.path)
    if config.max_rows is not None:
        frame = frame.head(config.max_rows)
    invalid = frame["_invalid"].fillna("") if "_invalid" in frame.columns else pd.Series("", index=frame.index)
    labelled = "label" in frame.columns
    rows = pd.DataFrame({"text": frame["text"].fillna("").astype(str).str.strip(),
                         "label": frame["label"].fillna("").astype(str).str.strip() if labelled else ""})
    reason = pd.Series("", index=frame.index)
    reason[rows["text"] == ""] = "empty text"
    reason[invalid != ""] = invalid[invalid != ""]
    if known_labels is not None and labelled:
        unknown = (rows["label"] != "") & ~rows["label"].isin(known_labels) & (reason == "")
        reason[unknown] = "label not among the model's intents: " + rows.loc[unknown, "label"]
    quarantine = rows[reason != ""].assign(reason=reason[reason != ""]).reset_index(drop=True)
    rows = rows[reason == ""].reset_index(drop=True)
    if rows.empty:
        raise DataError(f"{source}: traffic log has no usable rows ({len(quarantine)} quarantined); "
                        "it needs non-empty 'text' values")
    return TrafficLog(rows, source, labelled and bool((rows["label"] != "").any()), quarantine)
