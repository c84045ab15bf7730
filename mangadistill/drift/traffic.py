"""Production-traffic logs: a deterministic simulator with a drift knob, and the reader for users' logs.

A traffic log is a frame with a string column ``text`` (one customer query per row) and, when the
queries were annotated, a string column ``label`` (their true intent).

The simulator stands in for a day of MangaAssist production traffic. At ``drift=0`` it draws from the
same generator as the training data (:func:`mangadistill.data.synthetic.generate_intent_dataset`,
default intent mix, a different seed), so a drift report should not flag it. ``drift`` in (0, 1]
moves the log away from the training distribution in the three ways the runbook warns about
(sections 3.4 and 10.3, "shift/noise if logs are stale"):

- **a shifted intent mix**: the class weights are interpolated from
  :data:`~mangadistill.data.synthetic.DEFAULT_CLASS_WEIGHTS` towards :data:`SHIFTED_CLASS_WEIGHTS`
  (a holiday rush: more order-status and shipping questions, more out-of-scope traffic);
- **new titles and slang**: a share ``NEW_STYLE_SHARE * drift`` of the rows is written in a newer
  register (:data:`DRIFTED_TEMPLATES`): series that are not in the catalog (:data:`NEW_TITLES`) and
  chat slang ("ngl", "fr", "lowkey") the training data never contains;
- **more out-of-scope traffic**: part of the shifted mix, plus new out-of-scope topics among the
  new-style rows (gacha banners, AI art, streaming).

Determinism: the base rows come from the seeded generator, the new-style rows from one
``random.Random`` seeded with a string derived from ``seed``; the same arguments give the same frame
in any process.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import pandas as pd

from mangadistill.config import TrafficConfig
from mangadistill.data.cleaning import near_duplicate_key, scrub_pii
from mangadistill.data.intents import MANGA_INTENTS
from mangadistill.data.loaders import iter_json_objects
from mangadistill.data.synthetic import DEFAULT_CLASS_WEIGHTS, generate_intent_dataset
from mangadistill.errors import DataError

#: Intent mix at ``drift=1``: a holiday rush with a viral new series (sums to 1).
SHIFTED_CLASS_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "recommendation": 0.10,
        "product_details": 0.10,
        "price": 0.08,
        "order_status": 0.20,
        "shipping": 0.14,
        "returns_refunds": 0.06,
        "account_help": 0.03,
        "escalation": 0.04,
        "greeting": 0.05,
        "out_of_scope": 0.20,
    }
)

#: Share of new-style rows (new titles, slang) at ``drift=1``; it scales linearly with ``drift``.
NEW_STYLE_SHARE = 0.5

#: Series customers ask about that are not in the bundled catalog (newer than the training data).
NEW_TITLES: tuple[str, ...] = (
    "Kagurabachi", "Gachiakuta", "Akane-banashi", "Ichi the Witch", "Kill Blue", "Hima-Ten",
    "Nue's Exorcist", "Me and Roboco", "Shinobi Undercover", "Rooster Fighter", "Kowloon Generic Romance",
    "Medalist", "Zom 100", "Ruri Dragon", "Undead Unluck", "Hell's Paradise", "Mission Yozakura Family",
    "Wind Breaker", "Dandelion Academy", "Starfall Kitchen",
)

_OPENERS = ("yo ", "ngl ", "ok so ", "bruh ", "lowkey ", "fr ", "")
_CLOSERS = (" fr", " no cap", " ngl", " istg", " rn", " lol", " pls", "")

#: New-style phrasings per intent: slang and titles the training data does not contain.
DRIFTED_TEMPLATES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "recommendation": (
            "{open}{title} was peak, whats the next banger like it{close}",
            "{open}need smth w the same aura as {title}{close}",
            "{open}finished {title} and im cooked, recs?{close}",
            "{open}which new series is giving {title} vibes{close}",
        ),
        "product_details": (
            "{open}is {title} vol {vol} out yet{close}",
            "{open}how many vols of {title} r there{close}",
            "{open}does {title} vol {vol} have the color pages{close}",
        ),
        "price": (
            "{open}how much is {title} vol {vol}{close}",
            "{open}{title} box when?? and how much{close}",
            "{open}is {title} on sale or nah{close}",
        ),
        "order_status": (
            "{open}where tf is my {title} order {order}{close}",
            "{open}my pkg {order} been stuck for days{close}",
            "{open}order {order} still says processing, whats up{close}",
            "{open}did my {title} preorder even go thru{close}",
        ),
        "shipping": (
            "{open}do u ship {title} overseas{close}",
            "{open}how long til {title} gets here if i order rn{close}",
            "{open}express shipping for {title} vol {vol}?{close}",
        ),
        "returns_refunds": (
            "{open}{title} vol {vol} came bent, i want my money back{close}",
            "{open}got the wrong {title} vol, how do i send it back{close}",
        ),
        "account_help": (
            "{open}cant log in, app keeps crashing{close}",
            "{open}how do i change my email on here{close}",
        ),
        "escalation": (
            "{open}this is the 3rd time {order} got messed up, get me a real person{close}",
            "{open}im done w this bot, manager now{close}",
        ),
        "greeting": (
            "{open}heyyy{close}",
            "{open}wsg{close}",
            "{open}sup bot{close}",
        ),
        "out_of_scope": (
            "{open}is the new gacha banner worth pulling{close}",
            "{open}make me an ai pic of {title} characters{close}",
            "{open}where do i stream the {title} anime{close}",
            "{open}rate my {title} tier list{close}",
            "{open}whats the best crypto to buy rn{close}",
            "{open}write a diss track about {title}{close}",
        ),
    }
)


def shifted_class_weights(drift: float) -> dict[str, float]:
    """Intent mix at a drift level: ``(1 - drift) * default + drift * shifted`` (sums to 1)."""
    return {label: (1.0 - drift) * DEFAULT_CLASS_WEIGHTS[label] + drift * SHIFTED_CLASS_WEIGHTS[label]
            for label in MANGA_INTENTS}


def simulate_traffic(n_rows: int, seed: int, drift: float = 0.0) -> pd.DataFrame:
    """``n_rows`` labelled production queries; ``drift=0`` is the training distribution (module docstring).

    Returns a frame with string columns ``text`` and ``label`` in shuffled order. Like real logs it
    contains duplicates, PII and typos; unlike a training dump it has no rows with invalid labels.
    """
    if not 0.0 <= drift <= 1.0:
        raise ValueError(f"drift must be in [0, 1], got {drift!r}")
    if n_rows < 1:
        raise ValueError(f"n_rows must be >= 1, got {n_rows!r}")
    weights = shifted_class_weights(drift) if drift > 0 else None
    n_new = round(n_rows * NEW_STYLE_SHARE * drift)
    base = generate_intent_dataset(n_rows - n_new, seed, class_weights=weights, malformed_rate=0.0) \
        if n_rows > n_new else pd.DataFrame(columns=["text", "label"])
    rng = random.Random(f"traffic:{seed}:{drift}")
    new = pd.DataFrame([_new_style_row(rng, weights or DEFAULT_CLASS_WEIGHTS) for _ in range(n_new)],
                       columns=["text", "label"])
    frame = pd.concat([base, new], ignore_index=True)
    order = list(range(len(frame)))
    rng.shuffle(order)
    return frame.iloc[order].reset_index(drop=True).astype(str)


def _new_style_row(rng: random.Random, weights: Mapping[str, float]) -> tuple[str, str]:
    """One query in the newer register: an intent from ``weights``, a slang template, a new title."""
    label = rng.choices(MANGA_INTENTS, weights=[weights[label] for label in MANGA_INTENTS])[0]
    template = rng.choice(DRIFTED_TEMPLATES[label])
    text = template.format(open=rng.choice(_OPENERS), close=rng.choice(_CLOSERS), title=rng.choice(NEW_TITLES),
                           vol=rng.randint(1, 15), order=f"MA-{rng.randint(100000, 999999)}")
    return text, label


# --------------------------------------------------------------------------------------- user logs
TRAFFIC_SUFFIXES = (".csv", ".jsonl")


def read_traffic_log(path: Path) -> pd.DataFrame:
    """Read a CSV (header row) or JSON-lines traffic log with a ``text`` column and an optional ``label``.

    Raises `DataError` (one line, naming the file) when the file is missing, empty, unreadable, or has
    no ``text`` column. Values are read as strings; nothing is filtered here (see `prepare_traffic`).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"traffic log not found: {path} (fix traffic.path in the config)")
    if path.suffix.lower() not in TRAFFIC_SUFFIXES:
        raise DataError(f"{path}: unsupported traffic log format '{path.suffix}'; use .csv or .jsonl")
    if not path.read_text(encoding="utf-8", errors="replace").strip():
        raise DataError(f"{path}: the traffic log is empty (expected a 'text' column and one query per row)")
    frame = _read_csv(path) if path.suffix.lower() == ".csv" else _read_jsonl(path)
    if "text" not in frame.columns:
        found = ", ".join(map(str, frame.columns)) or "none"
        raise DataError(f"{path}: missing column 'text' (found: {found}); a traffic log needs 'text' "
                        "and optionally 'label'")
    if frame.empty:
        raise DataError(f"{path}: the traffic log has a header but no rows")
    columns = [column for column in ("text", "label") if column in frame.columns]
    return frame[columns].fillna("").astype(str).reset_index(drop=True)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({_first_line(exc)})") from None


def _read_jsonl(path: Path) -> pd.DataFrame:
    records = []
    for number, record, problem in iter_json_objects(path):
        if record is None:
            detail = " with a 'text' field" if problem == "not a JSON object" else ""
            raise DataError(f"{path}: line {number} is {problem}{detail}")
        records.append(record)
    return pd.DataFrame.from_records(records)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


_WHITESPACE = re.compile(r"\s+")


def prepare_traffic(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Make a log comparable with the cleaned training split: the same PII scrubbing and de-duplication.

    The training split had its PII replaced with tags (``[EMAIL]``, ...) and its exact and
    near-duplicates removed (`mangadistill.data.cleaning`). Doing the same here compares like with
    like: without it, the many repeats of short queries ("hi", "refund") in raw traffic shift the length
    distribution against the de-duplicated reference even when nothing changed, and PII would reach
    the report. Blank texts are dropped. Returns the frame (``text`` and, when every kept row has one,
    ``label``) and counts of what was done.
    """
    text = frame["text"].fillna("").astype(str).map(lambda value: _WHITESPACE.sub(" ", value).strip())
    labels = frame["label"].fillna("").astype(str).str.strip() if "label" in frame.columns else None
    keep = text != ""
    counts = {"rows_in": len(frame), "empty_text_dropped": int((~keep).sum())}
    scrubbed = [scrub_pii(value) for value in text[keep]]
    prepared = pd.DataFrame({"text": [value for value, _ in scrubbed]})
    if labels is not None:
        prepared["label"] = labels[keep].to_numpy()
    counts["rows_with_pii"] = sum(bool(found) for _, found in scrubbed)
    duplicate = prepared["text"].map(near_duplicate_key).duplicated(keep="first")
    prepared = prepared.loc[~duplicate].reset_index(drop=True)
    counts["duplicates_dropped"] = int(duplicate.sum())
    if prepared.empty:
        raise DataError("the traffic log has no non-empty 'text' values")
    if labels is not None:
        counts["unlabelled_rows"] = int((prepared["label"] == "").sum())
        if counts["unlabelled_rows"]:  # quality metrics need every row labelled; drift does not
            prepared = prepared.drop(columns="label")
    counts["rows"] = len(prepared)
    return prepared, counts


def load_traffic(config: TrafficConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    """The configured log (simulated or read), prepared with `prepare_traffic`; errors name the file."""
    if config.source == "simulator":
        knobs = config.simulator
        return prepare_traffic(simulate_traffic(knobs.n_rows, knobs.seed, knobs.drift))
    assert config.path is not None  # guaranteed by TrafficConfig validation
    raw = read_traffic_log(Path(config.path))
    try:
        return prepare_traffic(raw)
    except DataError as exc:
        raise DataError(f"{config.path}: {exc}") from None
