"""Teacher-labelled augmentation for the intent student (TinyBERT's task-specific augmentation; runbook 3.4).

The teacher can label far more text than people did. This module makes that text: extra queries built from
the training split by seeded, documented transformations, plus unlabelled queries from a production log when
one is given. None of them carries a human label. `label_with_teacher` labels them with the teacher's logits
(soft labels), and the student learns them through those logits only: Stage 1's feature and attention losses
and Stage 2's KD term see every augmented query, while the cross-entropy terms (Stage 2's CE, Stage 1's probe
head) skip them (`mangadistill.losses.kd.UNLABELLED`).

Transformations, each making one query out of one or two training queries (words = whitespace tokens):

- ``drop_word``: delete one word (queries of 3+ words).
- ``swap_words``: swap two neighbouring words (queries of 3+ words).
- ``replace_word``: replace one word by another word the training split uses between the same two
  neighbours ("what's my *bank* balance" -> "what's my *credit* balance"): a substitution learnt from the
  corpus itself, no word vectors or network needed; the new query may well belong to another intent, which
  is what the teacher's label is for.
- ``splice``: the first half of one query followed by the second half of a query of *another* intent; the
  teacher's soft label says how much of each it reads (mixup in text space: it shows the student the
  teacher's behaviour between classes, where out-of-scope decisions are made).

Nothing held out leaks into training: a made or logged query whose near-duplicate key (case, punctuation
and spacing ignored) equals a validation or gate query, a training query, or an earlier augmented query is
set aside and counted, never silently dropped. Logged queries are PII-scrubbed before anything else.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mangadistill.data.cleaning import near_duplicate_key, scrub_pii
from mangadistill.data.dataset import IntentDataset
from mangadistill.errors import DataError

#: The transformations by name, in the order the docs list them.
TRANSFORMATIONS = ("drop_word", "swap_words", "replace_word", "splice")
#: `AugmentedQueries.frame` columns: the query, how it was made, and the training rows it came from.
COLUMNS = ("text", "transformation", "source_rows")
LOG = "log"
#: Why a candidate query was set aside (the keys of `AugmentedQueries.report["set_aside"]`).
HELD_OUT, DUPLICATE, EMPTY, UNCHANGED = "matches a validation or gate query", "duplicate", "empty", "unchanged"


@dataclass
class AugmentedQueries:
    """Unlabelled queries for the teacher to label; ``frame`` has `COLUMNS` (``source_rows``: ``"12"`` or
    ``"12+407"``, training-row positions; ``""`` for logged queries). ``report`` counts what was made, logged
    and set aside, per transformation and reason."""

    frame: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(COLUMNS)))
    report: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def texts(self) -> list[str]:
        return self.frame["text"].tolist()

    def summary(self) -> str:
        """One line for the run summary, e.g. ``15,000 augmented queries (drop_word 3,750, ...); 212 set aside``."""
        if not len(self):
            return "no augmented queries"
        made = Counter(self.frame["transformation"])
        kinds = ", ".join(f"{name} {made[name]:,}" for name in (*TRANSFORMATIONS, LOG) if made[name])
        aside = sum(self.report.get("set_aside", {}).values())  # type: ignore[union-attr]
        return f"{len(self):,} augmented queries ({kinds}); {aside:,} candidates set aside"


# ----------------------------------------------------------------------------------- transformations
Words = list[str]


def drop_word(words: Words, rng: np.random.Generator) -> Words:
    if len(words) < 3:
        return words
    i = int(rng.integers(len(words)))
    return words[:i] + words[i + 1 :]


def swap_words(words: Words, rng: np.random.Generator) -> Words:
    if len(words) < 3:
        return words
    i = int(rng.integers(len(words) - 1))
    return words[:i] + [words[i + 1], words[i]] + words[i + 2 :]


class ContextSubstitutes:
    """Words seen between the same two neighbours in a corpus (sentence edges count as neighbours)."""

    def __init__(self, corpus: Sequence[Words]) -> None:
        seen: dict[tuple[str, str], set[str]] = defaultdict(set)
        for words in corpus:
            padded = ["<s>", *(w.lower() for w in words), "</s>"]
            for i in range(1, len(padded) - 1):
                seen[(padded[i - 1], padded[i + 1])].add(padded[i])
        self.by_context = {context: sorted(words) for context, words in seen.items() if len(words) > 1}

    def replace_word(self, words: Words, rng: np.random.Generator) -> Words:
        padded = ["<s>", *(w.lower() for w in words), "</s>"]
        options = [(i, [w for w in self.by_context.get((padded[i], padded[i + 2]), ()) if w != padded[i + 1]])
                   for i in range(len(words))]
        options = [(i, alternatives) for i, alternatives in options if alternatives]
        if not options:
            return words
        i, alternatives = options[int(rng.integers(len(options)))]
        return words[:i] + [alternatives[int(rng.integers(len(alternatives)))]] + words[i + 1 :]


def splice(first: Words, second: Words) -> Words:
    """The first half of `first` (rounded up) and the second half of `second` (rounded down)."""
    return first[: (len(first) + 1) // 2] + second[(len(second) + 1) // 2 :]


# ------------------------------------------------------------------------------------------- making
def augment_training_split(dataset: IntentDataset, copies: float, transformations: Sequence[str], seed: int,
                           log_texts: Sequence[str] = ()) -> AugmentedQueries:
    """About ``copies * len(train)`` new queries from the training split, plus `log_texts` as they are.

    Each new query comes from a training row (every row in turn, `copies` times over) and a transformation
    drawn uniformly from `transformations`; a candidate that is unchanged, empty or a near-duplicate of a
    held-out, training or earlier query is set aside and counted (so slightly fewer than asked may come out).
    Deterministic for a dataset, `copies`, `transformations`, `seed` and log.
    """
    unknown = sorted(set(transformations) - set(TRANSFORMATIONS))
    if unknown or not transformations:
        raise DataError(f"augment.transformations: {unknown or 'empty'}; choose from {', '.join(TRANSFORMATIONS)}")
    rng = np.random.default_rng(seed)
    train_texts = dataset.texts("train")
    train_words = [text.split() for text in train_texts]
    labels = dataset.split("train")["label"].to_numpy()
    held_out = {near_duplicate_key(text) for split in ("val", "gate") for text in dataset.texts(split)}
    taken = {near_duplicate_key(text) for text in train_texts}
    substitutes = ContextSubstitutes(train_words) if "replace_word" in transformations else None
    by_other_label = _rows_of_other_labels(labels)
    rows, aside = [], Counter()

    def keep(text: str, transformation: str, sources: str) -> None:
        key = near_duplicate_key(text)
        reason = EMPTY if not key else HELD_OUT if key in held_out else DUPLICATE if key in taken else None
        if reason is not None:
            aside[f"{transformation}: {reason}"] += 1
            return
        taken.add(key)
        rows.append((text, transformation, sources))

    made: dict[str, Callable[[int], tuple[Words, str]]] = {
        "drop_word": lambda i: (drop_word(train_words[i], rng), str(i)),
        "swap_words": lambda i: (swap_words(train_words[i], rng), str(i)),
        "replace_word": lambda i: (substitutes.replace_word(train_words[i], rng), str(i)),  # type: ignore[union-attr]
        "splice": lambda i: _splice_with_other_label(i, train_words, by_other_label, labels, rng),
    }
    wanted = int(round(copies * len(train_texts)))
    order = np.concatenate([rng.permutation(len(train_texts)) for _ in range(int(np.ceil(copies)) or 1)])[:wanted]
    choices = rng.integers(len(transformations), size=len(order))
    for i, choice in zip(order.tolist(), choices.tolist(), strict=True):
        name = transformations[choice]
        words, sources = made[name](i)
        if words == train_words[i]:
            aside[f"{name}: {UNCHANGED}"] += 1
            continue
        keep(" ".join(words), name, sources)
    for text in log_texts:
        keep(text, LOG, "")
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    report = {"copies": copies, "transformations": list(transformations), "seed": seed, "training_rows": len(train_texts),
              "made": dict(Counter(frame["transformation"])), "log_rows_in": len(log_texts), "rows": len(frame),
              "set_aside": dict(sorted(aside.items()))}
    return AugmentedQueries(frame, report)


def _rows_of_other_labels(labels: np.ndarray) -> dict[str, np.ndarray]:
    """For each label, the training-row positions of every other label."""
    return {label: np.flatnonzero(labels != label) for label in np.unique(labels)}


def _splice_with_other_label(i: int, words: list[Words], others: dict[str, np.ndarray], labels: np.ndarray,
                             rng: np.random.Generator) -> tuple[Words, str]:
    candidates = others[labels[i]]
    if not len(candidates):  # a single-label training split: nothing to splice with
        return words[i], str(i)
    j = int(candidates[int(rng.integers(len(candidates)))])
    return splice(words[i], words[j]), f"{i}+{j}"


# ---------------------------------------------------------------------------------------------- logs
def read_query_log(path: Path, max_rows: int | None = None) -> tuple[list[str], dict[str, int]]:
    """Unlabelled queries from a log: ``.txt`` (one query per line), ``.csv`` or ``.jsonl`` (a ``text`` column;
    a ``label`` column, if any, is ignored). PII is scrubbed first; blank lines and unreadable JSON lines are
    counted, not kept. Returns the queries (at most `max_rows`, in file order) and the counts."""
    if not path.is_file():
        raise DataError(f"query log not found: {path} (fix augment.log_path in the config)")
    counts = Counter()
    suffix = path.suffix.lower()
    if suffix == ".txt":
        raw = path.read_text(encoding="utf-8-sig").splitlines()
    elif suffix == ".csv":
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not a readable CSV file ({exc}); augment.log_path needs a 'text' column") from None
        if "text" not in frame.columns:
            raise DataError(f"{path}: no 'text' column (found {', '.join(map(str, frame.columns))}); "
                            "augment.log_path needs one query per row in a 'text' column")
        raw = frame["text"].tolist()
    elif suffix == ".jsonl":
        raw = []
        for line in path.read_text(encoding="utf-8-sig").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                counts["unreadable JSON line"] += 1
                continue
            if isinstance(record, dict) and isinstance(record.get("text"), str):
                raw.append(record["text"])
            else:
                counts["no 'text' string"] += 1
    else:
        raise DataError(f"{path}: augment.log_path must be a .txt, .csv or .jsonl file, got '{suffix or 'no suffix'}'")
    texts = []
    for value in raw:
        text, found = scrub_pii(" ".join(str(value).split()))
        if found:
            counts["pii_scrubbed"] += 1
        if not text:
            counts["blank"] += 1
            continue
        texts.append(text)
    if max_rows is not None and len(texts) > max_rows:
        counts["over max_log_rows"] = len(texts) - max_rows
        texts = texts[:max_rows]
    return texts, dict(counts)
