"""Cleaning of runbook sections 2-3: quarantine, PII scrubbing, de-duplication, stratified split.

Order matters and is fixed: bad rows are quarantined first (so they are counted, never lost), PII is
scrubbed next (so duplicates that differ only in an e-mail address collapse), then exact and
near-duplicates are removed before splitting (so no query leaks from train into the gate set).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

import numpy as np
import pandas as pd

from mangadistill.config import DataConfig
from mangadistill.data.dataset import IntentDataset
from mangadistill.data.intents import MANGA_INTENTS, MANGA_RARE_INTENTS, MANGA_REFUSAL_INTENT
from mangadistill.errors import DataError

# ------------------------------------------------------------------------------------------- PII
# Order matters: e-mails before phones (digits in local parts), cards before phones (longer runs).
PII_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("email", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("card", re.compile(r"\b(?:\d[ -]?){12,18}\d\b")),
    ("phone", re.compile(r"(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)|\d{2,4})[\s.-]?\d{3,4}[\s.-]?\d{3,4}\b")),
    (
        "address",
        re.compile(
            r"\b\d{1,5}(?:\s+[A-Z][\w'.-]*){1,4}\s+"
            r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
            r"parkway|pkwy|terrace|square|sq)\b\.?"
            r"(?:,?\s+(?:apt|apartment|suite|ste|unit|flat|#)\.?\s*[\w-]+)?",
            re.IGNORECASE,
        ),
    ),
)
PII_TAGS = {name: f"[{name.upper()}]" for name, _ in PII_PATTERNS}


def scrub_pii(text: str) -> tuple[str, Counter[str]]:
    """Replace e-mails, card numbers, phone numbers and street addresses with tags like ``[EMAIL]``.

    Returns the scrubbed text and how many of each kind were replaced.
    """
    found: Counter[str] = Counter()
    for name, pattern in PII_PATTERNS:
        text, count = pattern.subn(PII_TAGS[name], text)
        if count:
            found[name] += count
    return text, found


# ------------------------------------------------------------------------------------ duplicates
_PUNCTUATION = str.maketrans("", "", string.punctuation.replace("[", "").replace("]", ""))


def near_duplicate_key(text: str) -> str:
    """Key under which near-duplicates collide: case, punctuation and whitespace are ignored."""
    return " ".join(text.lower().translate(_PUNCTUATION).split())


# ----------------------------------------------------------------------------------- label spec
def resolve_label_spec(config: DataConfig, labels_seen: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
    """Decide the allowed labels, the rare labels and the refusal label for a data config.

    Explicit config values win; otherwise the bundled dataset uses the MangaAssist taxonomy, CLINC150
    uses ``oos`` as refusal class, and user data accepts every non-empty label it contains.
    """
    seen = sorted({label for label in labels_seen if label.strip()})
    if config.labels is not None:
        labels = tuple(config.labels)
    elif config.source == "synthetic":
        labels = MANGA_INTENTS
    else:
        labels = tuple(seen)
    refusal = config.refusal_label
    if refusal is None:
        refusal = {"synthetic": MANGA_REFUSAL_INTENT, "clinc150": "oos"}.get(config.source)
    if refusal is not None and refusal not in labels:
        raise DataError(f"data.refusal_label '{refusal}' is not one of the dataset's labels")
    rare = tuple(config.rare_labels) if config.rare_labels is not None else ()
    if config.rare_labels is None and config.source == "synthetic":
        rare = MANGA_RARE_INTENTS
    unknown = [label for label in rare if label not in labels]
    if unknown:
        raise DataError(f"data.rare_labels {unknown} are not among the dataset's labels")
    return labels, rare, refusal


def default_rare_labels(train: pd.DataFrame, refusal: str | None, share: float = 0.1) -> tuple[str, ...]:
    """The least frequent `share` of labels in the training split (at least one), refusal excluded."""
    counts = train.loc[train["label"] != refusal, "label"].value_counts(ascending=True, sort=True)
    if counts.empty:
        return ()
    n_rare = max(1, int(round(len(counts) * share)))
    return tuple(sorted(counts.index[:n_rare]))


# ---------------------------------------------------------------------------------------- split
def stratified_split(
    frame: pd.DataFrame, val_fraction: float, gate_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split per label so every split keeps the label mix; each label keeps at least one train row."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "gate": []}
    for _, indices in sorted(frame.groupby("label").indices.items()):
        indices = rng.permutation(indices)
        n = len(indices)
        n_gate = int(round(n * gate_fraction)) if n >= 3 else 0
        n_val = int(round(n * val_fraction)) if n >= 3 else 0
        n_gate, n_val = min(n_gate, n - 1), min(n_val, max(0, n - 1 - n_gate))
        parts["gate"].append(indices[:n_gate])
        parts["val"].append(indices[n_gate : n_gate + n_val])
        parts["train"].append(indices[n_gate + n_val :])

    def take(name: str) -> pd.DataFrame:
        order = np.sort(np.concatenate(parts[name])) if parts[name] else np.array([], dtype=int)
        return frame.iloc[order][["text", "label"]].reset_index(drop=True)

    return take("train"), take("val"), take("gate")


_SOURCE_SPLITS = {"train": "train", "oos_train": "train", "val": "val", "oos_val": "val", "test": "gate", "oos_test": "gate"}


def _source_split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Keep a dataset's official splits (CLINC150: train/val/test, oos_* included)."""
    mapped = frame["source_split"].map(_SOURCE_SPLITS)
    return tuple(  # type: ignore[return-value]
        frame.loc[mapped == name, ["text", "label"]].reset_index(drop=True) for name in ("train", "val", "gate")
    )


# ---------------------------------------------------------------------------------------- clean
def clean_and_split(raw: pd.DataFrame, config: DataConfig) -> IntentDataset:
    """Quarantine bad rows, scrub PII, remove duplicates and split into train / val / frozen gate."""
    if raw.empty:
        raise DataError("the dataset has no rows (check data.path / data.source)")
    labels, rare, refusal = resolve_label_spec(config, raw["label"])
    frame = raw.copy()
    frame["text"] = frame["text"].fillna("").astype(str).str.strip()
    frame["label"] = frame["label"].fillna("").astype(str).str.strip()

    reasons = pd.Series("", index=frame.index)
    reasons[~frame["label"].isin(labels)] = "unknown_label"
    reasons[frame["text"] == ""] = "empty_text"
    quarantine = raw.loc[reasons != "", ["text", "label"]].assign(reason=reasons[reasons != ""])
    frame = frame.loc[reasons == ""]
    report: dict[str, int] = {
        "rows_in": len(raw),
        "quarantined": len(quarantine),
        "quarantined_empty_text": int((quarantine["reason"] == "empty_text").sum()),
        "quarantined_unknown_label": int((quarantine["reason"] == "unknown_label").sum()),
    }

    pii_total: Counter[str] = Counter()
    rows_with_pii = 0
    if config.cleaning.scrub_pii:
        scrubbed = []
        for text in frame["text"]:
            clean_text, found = scrub_pii(text)
            scrubbed.append(clean_text)
            pii_total.update(found)
            rows_with_pii += bool(found)
        frame = frame.assign(text=scrubbed)
    report["rows_with_pii"] = rows_with_pii
    report.update({f"pii_{name}": pii_total.get(name, 0) for name, _ in PII_PATTERNS})

    if config.cleaning.dedupe:
        exact = frame.duplicated(subset=["text", "label"], keep="first")
        frame = frame.loc[~exact]
        near = frame["text"].map(near_duplicate_key).duplicated(keep="first")
        frame = frame.loc[~near]
        report["exact_duplicates"] = int(exact.sum())
        report["near_duplicates"] = int(near.sum())

    if config.max_rows is not None and len(frame) > config.max_rows:
        capped = frame.groupby("label", group_keys=False).sample(
            frac=config.max_rows / len(frame), random_state=config.split.seed
        )
        report["rows_left_out_by_max_rows"] = len(frame) - len(capped)
        frame = capped
    frame = frame.reset_index(drop=True)
    report["rows_clean"] = len(frame)

    if "source_split" in frame.columns and frame["source_split"].isin(_SOURCE_SPLITS).all():
        train, val, gate = _source_split(frame)
    else:
        train, val, gate = stratified_split(frame, config.split.val_fraction, config.split.gate_fraction, config.split.seed)
    if train.empty or val.empty or gate.empty:
        raise DataError(
            f"after cleaning, a split is empty (train={len(train)}, val={len(val)}, gate={len(gate)}); "
            "provide more rows or lower data.split fractions"
        )
    report.update(train=len(train), val=len(val), gate=len(gate))
    labels = tuple(label for label in labels if label in set(frame["label"])) if config.labels is None else labels
    if config.rare_labels is None and config.source != "synthetic":
        rare = default_rare_labels(train, refusal)
    return IntentDataset(
        labels=labels,
        rare_labels=rare,
        refusal_label=refusal if refusal in labels else None,
        train=train,
        val=val,
        gate=gate,
        quarantine=quarantine.reset_index(drop=True),
        report=report,
    )
