"""Cleaning of runbook sections 2-3: PII scrubbing, quarantine, de-duplication, stratified split.

PII is scrubbed where outside text enters, by the one function here (`scrub_pii`, `scrub_frame` for a
frame): every dataset reader (`mangadistill.data.loaders`) and the traffic-log reader
(`mangadistill.traffic.load_traffic`) scrub every row, quarantined ones included, before anything else
sees it, so no quarantine table, artifact or log line carries an e-mail, IBAN, card or phone number,
street address or postal code. `clean_and_split` then works in a fixed order: bad rows are quarantined
first (so they are counted, never lost), then exact and near-duplicates are removed before splitting (rows
that differed only in an e-mail address now collapse; no query leaks from train into the gate set).
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
# The one scrubber of the project: the dataset readers (`mangadistill.data.loaders`) and the traffic-log
# reader (`mangadistill.traffic.load_traffic`) call it on every text that enters, so nothing downstream
# (quarantine tables, artifacts, log lines) ever sees the original values.
#
# A postal code as written after a town: UK (NW1 6XE), Canada (M5V 2T6), Japan (150-0002), a US ZIP(+4)
# or the 4-5 digit codes of most of Europe and Australia.
_POSTCODE = r"(?:[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}|[A-Z]\d[A-Z]\s?\d[A-Z]\d|〒?\s?\d{3}-\d{4}|\d{4,5}(?:-\d{4})?)"

# Order matters: e-mails first (digits in local parts), IBANs before cards (an IBAN's digits look like a
# card number), street addresses before cards and phones (a house number after a phone number would make
# a card of both; a ZIP+4 code looks like a phone number), cards before phones without a country code
# (longer runs), bare postal codes last. A kind may have more than one pattern.
PII_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("email", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    # country code, check digits, then the account in groups of four (DE89 3704 0044 0532 0130 00,
    # GB82WEST12345698765432); `_plausible` asks for 8+ digits after the country code, so words don't match
    ("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", re.IGNORECASE)),
    (
        "address",
        re.compile(
            r"\b\d{1,5}(?:\s+(?!(?:of|to|for|from|and|or|in|on|at|by)\b)[A-Z][\w'.-]*){1,4}\s+"
            r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
            r"parkway|pkwy|terrace|square|sq)\b\.?"
            r"(?:,?\s+(?:apt|apartment|suite|ste|unit|flat|#)\.?\s*[\w-]+)?"
            # then, when one follows, the town and region (up to three words) and the postal code
            rf"(?:(?:,?\s+[^\W\d_][\w'.-]*){{0,3}},?\s+{_POSTCODE}\b)?",
            re.IGNORECASE,
        ),
    ),
    # a phone number with its country code or area code in brackets (+44 20 7946 0018, (212) 555 0199) is
    # unmistakable: taken before cards, so a card number written right after it is not cut in two
    (
        "phone",
        re.compile(r"(?<![\w-])(?:\+\d{1,3}[\s.-]?(?:\(\d{2,4}\)|\d{2,4})|\(\d{2,4}\))[\s.-]?\d{3,4}[\s.-]?\d{3,4}\b"),
    ),
    # 13 or more digits in groups; a longer run (numbers written next to each other) goes whole
    ("card", re.compile(r"(?<![+\w-])(?:\d[ -]?){12,}\d\b")),
    # other phone numbers, not glued to a word or a dash: order numbers (MA-48392011) and ISBN parts stay
    ("phone", re.compile(r"(?<![\w-])\d{2,4}[\s.-]?\d{3,4}[\s.-]?\d{3,4}\b")),
    (
        "postcode",
        re.compile(
            # a Japanese postal mark and code, with the address written right after it (東京都渋谷区渋谷2-21-1)
            r"〒\s?\d{3}-?\d{4}(?:[ \u3000]?[^\x00-\x7f\s]\S*)?"
            # or a code named as one ("my zip is 62704", "postcode: NW1 6XE"): only the code is replaced
            rf"|\b(?:zip(?:[ -]?code)?|post(?:al)?[ -]?code)\s*(?:is\s+|:\s*|#\s*)?(?P<pii>{_POSTCODE})\b",
            re.IGNORECASE,
        ),
    ),
)
PII_TAGS = {name: f"[{name.upper()}]" for name, _ in PII_PATTERNS}
PII_KINDS = tuple(PII_TAGS)  # in order, each once
#: Column a reader adds to a scrubbed frame: the kinds replaced in each row, one per value ("email phone").
PII_COLUMN = "pii"


def _plausible(name: str, value: str) -> bool:
    """False for what has the shape of PII but is not: an ISBN-13 among card numbers, words among IBANs."""
    if name == "card":
        digits = re.sub(r"\D", "", value)
        return not (len(digits) == 13 and digits.startswith(("978", "979")))
    if name == "iban":
        return len(re.sub(r"\D", "", value[4:])) >= 8
    return True


def _tag(name: str, match: re.Match[str], found: Counter[str]) -> str:
    """The match with its PII (group ``pii`` where the pattern has one, else all of it) replaced by the tag."""
    group = "pii" if "pii" in match.re.groupindex and match.group("pii") is not None else 0
    if not _plausible(name, match.group(group)):
        return match.group(0)
    found[name] += 1
    (start, end), offset, whole = match.span(group), match.start(), match.group(0)
    return whole[: start - offset] + PII_TAGS[name] + whole[end - offset :]


def scrub_pii(text: str) -> tuple[str, Counter[str]]:
    """Replace e-mails, IBANs, card numbers, phone numbers, street addresses (with the town and postal code
    after them) and postal codes with tags like ``[EMAIL]``.

    Returns the scrubbed text and how many of each kind were replaced. Scrubbed text scrubs to itself.
    """
    found: Counter[str] = Counter()
    for name, pattern in PII_PATTERNS:
        text = pattern.sub(lambda match, name=name: _tag(name, match, found), text)
    return text, found


def _has_pii_tag(value: str) -> bool:
    return any(tag in value for tag in PII_TAGS.values())


def scrub_frame(frame: pd.DataFrame, columns: tuple[str, ...] = ("text", "label")) -> pd.DataFrame:
    """A copy of `frame` with `columns` scrubbed (`scrub_pii`) and a ``pii`` column of what was replaced.

    ``pii`` lists the kinds replaced in each row, one word per value (``"email phone"``; ``""`` for none),
    appended to the column's earlier value when the frame was scrubbed before. Missing cells become ``''``.
    """
    frame = frame.copy()
    kinds = [[] for _ in range(len(frame))]
    for column in columns:
        scrubbed = []
        for value, row_kinds in zip(frame[column].fillna("").astype(str), kinds, strict=True):
            clean, found = scrub_pii(value)
            scrubbed.append(clean)
            row_kinds.extend(sorted(found.elements()))
        frame[column] = scrubbed
    earlier = frame[PII_COLUMN].fillna("").astype(str) if PII_COLUMN in frame.columns else [""] * len(frame)
    frame[PII_COLUMN] = [" ".join([*before.split(), *now]) for before, now in zip(earlier, kinds, strict=True)]
    return frame


def pii_counts(frame: pd.DataFrame) -> tuple[int, Counter[str]]:
    """Rows with PII replaced, and replacements per kind, from a scrubbed frame's ``pii`` column."""
    if PII_COLUMN not in frame.columns:
        return 0, Counter()
    per_row = [value.split() for value in frame[PII_COLUMN].fillna("").astype(str)]
    return sum(bool(kinds) for kinds in per_row), Counter(kind for kinds in per_row for kind in kinds)


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
    """Quarantine bad rows, remove duplicates and split into train / val / frozen gate.

    PII was scrubbed by the reader (`mangadistill.data.loaders`), which left a ``pii`` column; its counts
    are reported here over every row read, quarantined ones included. With ``cleaning.scrub_pii`` a second
    pass scrubs again before anything else (for frames that did not come through a reader); what it finds
    is reported as ``pii_scrubbed_in_cleaning`` and is 0 for rows that did.
    """
    if raw.empty:
        raise DataError("the dataset has no rows (check data.path / data.source)")
    frame = raw.copy()
    frame["text"] = frame["text"].fillna("").astype(str).str.strip()
    frame["label"] = frame["label"].fillna("").astype(str).str.strip()
    _, kinds_before = pii_counts(frame)
    if config.cleaning.scrub_pii:
        frame = scrub_frame(frame)
    rows_with_pii, pii_total = pii_counts(frame)
    # a label that held PII names no intent: its rows are quarantined as unknown_label
    labels, rare, refusal = resolve_label_spec(config, [label for label in frame["label"] if not _has_pii_tag(label)])

    reasons = pd.Series("", index=frame.index)
    reasons[~frame["label"].isin(labels)] = "unknown_label"
    reasons[frame["text"] == ""] = "empty_text"
    quarantine = frame.loc[reasons != "", ["text", "label"]].assign(reason=reasons[reasons != ""])
    frame = frame.loc[reasons == ""]
    report: dict[str, int] = {
        "rows_in": len(raw),
        "quarantined": len(quarantine),
        "quarantined_empty_text": int((quarantine["reason"] == "empty_text").sum()),
        "quarantined_unknown_label": int((quarantine["reason"] == "unknown_label").sum()),
        "rows_with_pii": rows_with_pii,
        **{f"pii_{name}": pii_total.get(name, 0) for name in PII_KINDS},
        "pii_scrubbed_in_cleaning": sum((pii_total - kinds_before).values()),
    }

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
