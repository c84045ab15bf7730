"""Unit tests of the bundled MangaAssist generator (`mangadistill.data.synthetic`)."""

from __future__ import annotations

import dataclasses
import re
import time

import pandas as pd
import pytest

from mangadistill.data.intents import MANGA_INTENTS
from mangadistill.data.synthetic import (
    AMBIGUOUS_QUERIES,
    BORDERLINE_TEMPLATES,
    DEFAULT_CLASS_WEIGHTS,
    INDIRECT_TEMPLATES,
    INTENT_TEMPLATES,
    CatalogEntry,
    generate_intent_dataset,
    load_catalog,
)

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
CARD = re.compile(r"\b(?:\d[ -]?){15}\d\b")
PHONE = re.compile(r"\+\d{1,3} \d|\(\d{3}\) \d{3}|\b\d{3}[.]?555[.]?\d{4}\b|\b0\d{3} \d{3} \d{3}\b")
ADDRESS = re.compile(r"\b\d{1,4} [A-Z][a-z]+ (?:Street|St|Ave|Blvd|Drive|Lane|Road|Terrace|Pkwy|Way)\b")


@pytest.fixture(scope="module")
def default_frame() -> pd.DataFrame:
    """One default-argument sample shared by the read-only tests."""
    return generate_intent_dataset(2000, seed=13)


def _is_malformed(frame: pd.DataFrame) -> pd.Series:
    return frame["text"].str.strip().eq("") | ~frame["label"].isin(MANGA_INTENTS)


def _near_key(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s@]", "", text.lower()).split())


# ----------------------------------------------------------------------------------------- catalog
def test_catalog_loads_with_required_fields() -> None:
    catalog = load_catalog()
    assert 60 <= len(catalog) <= 80
    assert all(isinstance(entry, CatalogEntry) for entry in catalog)
    assert len({entry.title for entry in catalog}) == len(catalog)
    for entry in catalog:
        assert entry.title.strip() and entry.author.strip() and entry.publisher.strip()
        assert isinstance(entry.volumes, int) and entry.volumes >= 1
        assert isinstance(entry.price_usd, float) and 5.0 <= entry.price_usd <= 300.0
        assert entry.genres and all(isinstance(genre, str) and genre for genre in entry.genres)
    titles = {entry.title for entry in catalog}
    assert {"One Piece", "Berserk", "Vinland Saga", "Chainsaw Man", "Nana", "Yotsuba&!"} <= titles
    assert any("Box Set" in title or "Omnibus" in title for title in titles)


def test_catalog_entries_are_frozen() -> None:
    entry = load_catalog()[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.title = "changed"  # type: ignore[misc]


# ------------------------------------------------------------------------------------- templates
def test_every_intent_has_many_templates_and_valid_distributions() -> None:
    for label in MANGA_INTENTS:
        assert len(INTENT_TEMPLATES[label]) + len(INDIRECT_TEMPLATES[label]) >= 25, label
    assert abs(sum(DEFAULT_CLASS_WEIGHTS.values()) - 1.0) < 1e-9
    for _, distribution in (*AMBIGUOUS_QUERIES, *BORDERLINE_TEMPLATES):
        assert all(label in MANGA_INTENTS for label, _ in distribution)
        assert abs(sum(p for _, p in distribution) - 1.0) < 1e-9


# ------------------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_frame() -> None:
    pd.testing.assert_frame_equal(generate_intent_dataset(500, seed=5), generate_intent_dataset(500, seed=5))


def test_different_seed_gives_different_frame() -> None:
    assert not generate_intent_dataset(500, seed=5).equals(generate_intent_dataset(500, seed=6))


# ------------------------------------------------------------------------------------------ shape
@pytest.mark.parametrize("n_rows", [1, 7, 199, 200, 1234])
def test_exact_row_count_and_columns(n_rows: int) -> None:
    frame = generate_intent_dataset(n_rows, seed=1)
    assert list(frame.columns) == ["text", "label"]
    assert len(frame) == n_rows
    assert all(isinstance(value, str) for value in frame["text"])
    assert all(isinstance(value, str) for value in frame["label"])


def test_every_intent_present_and_imbalanced(default_frame: pd.DataFrame) -> None:
    counts = default_frame["label"].value_counts()
    assert set(MANGA_INTENTS) <= set(counts.index)
    assert counts["escalation"] < counts["recommendation"]
    assert 0.015 <= counts["escalation"] / len(default_frame) <= 0.06
    assert counts["recommendation"] > counts["account_help"]


def test_generation_is_fast() -> None:
    start = time.perf_counter()
    generate_intent_dataset(4000, seed=13)
    assert time.perf_counter() - start < 5.0  # about 0.3 s in practice; loose bound for slow CI


# ------------------------------------------------------------------------------------------ content
def test_escalation_and_refusal_content(default_frame: pd.DataFrame) -> None:
    escalation = " ".join(default_frame.loc[default_frame["label"] == "escalation", "text"]).lower()
    assert any(cue in escalation for cue in ("chargeback", "lawyer", "manager", "human", "bank", "sue"))
    refusals = " ".join(default_frame.loc[default_frame["label"] == "out_of_scope", "text"]).lower()
    assert any(cue in refusals for cue in ("scans", "pdf", "torrent", "fanfic", "for free", "raws"))


def test_short_ambiguous_queries_present(default_frame: pd.DataFrame) -> None:
    valid = default_frame.loc[~_is_malformed(default_frame)]
    short = valid.loc[valid["text"].str.split().str.len() <= 3]
    assert len(short) >= 0.04 * len(valid)
    # The same short text appears with more than one label: irreducible ambiguity.
    labels_per_text = short.assign(key=short["text"].map(_near_key)).groupby("key")["label"].nunique()
    assert (labels_per_text > 1).any()


def test_no_ambiguous_rows_when_rate_is_zero() -> None:
    frame = generate_intent_dataset(1000, seed=2, ambiguous_rate=0.0, malformed_rate=0.0)
    ambiguous_texts = {template for template, _ in AMBIGUOUS_QUERIES if "{" not in template}
    assert not frame["text"].str.strip().isin(ambiguous_texts - {"hello??", "thanks"}).any()


# ---------------------------------------------------------------------------------------------- PII
def _pii_share(frame: pd.DataFrame) -> float:
    text = frame["text"]
    hit = (
        text.str.contains(EMAIL)
        | text.str.contains(CARD)
        | text.str.contains(PHONE)
        | text.str.contains(ADDRESS)
    )
    return float(hit.mean())


def test_pii_absent_when_rate_is_zero() -> None:
    frame = generate_intent_dataset(1500, seed=3, pii_rate=0.0)
    assert not frame["text"].str.contains(EMAIL).any()
    assert not frame["text"].str.contains(CARD).any()
    assert _pii_share(frame) == 0.0


@pytest.mark.parametrize("pii_rate", [0.06, 0.2])
def test_pii_present_at_roughly_the_requested_rate(pii_rate: float) -> None:
    frame = generate_intent_dataset(3000, seed=4, pii_rate=pii_rate)
    share = _pii_share(frame)
    assert 0.6 * pii_rate <= share <= 1.4 * pii_rate
    assert frame["text"].str.contains(EMAIL).any()
    assert frame["text"].str.contains(CARD).any()


def test_card_numbers_are_luhn_valid() -> None:
    frame = generate_intent_dataset(2000, seed=5, pii_rate=0.5)
    cards = [re.sub(r"\D", "", match) for text in frame["text"] for match in CARD.findall(text)]
    assert cards
    for number in cards:
        digits = [int(d) for d in number]
        checksum = sum(digits[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
        assert checksum % 10 == 0, number


# ------------------------------------------------------------------------------------------- noise
def test_noise_changes_surface_form() -> None:
    clean = generate_intent_dataset(1000, seed=6, noise_rate=0.0, pii_rate=0.0)
    noisy = generate_intent_dataset(1000, seed=6, noise_rate=1.0, pii_rate=0.0)

    def noisy_share(frame: pd.DataFrame) -> float:
        text = frame["text"]
        marks = (
            text.str.contains(r"\s{2,}|^\s|\s$")
            | text.str.contains(r"\b(?:pls|u|thx|ur|wanna|gonna)\b")
            | (text.str.upper().eq(text) & text.str.contains("[A-Z]{4,}"))
        )
        return float(marks.mean())

    assert noisy_share(noisy) > noisy_share(clean) + 0.15


# -------------------------------------------------------------------------------------- duplicates
def test_exact_and_near_duplicates_present(default_frame: pd.DataFrame) -> None:
    valid = default_frame.loc[~_is_malformed(default_frame)]
    exact = int(valid.duplicated(["text", "label"]).sum())
    near = int(valid["text"].map(_near_key).duplicated().sum())
    assert exact >= 0.02 * len(default_frame)
    assert near > exact


def test_duplicate_rate_adds_duplicates() -> None:
    base = generate_intent_dataset(1000, seed=8, duplicate_rate=0.0)
    more = generate_intent_dataset(1000, seed=8, duplicate_rate=0.2)
    assert more.duplicated(["text", "label"]).sum() > base.duplicated(["text", "label"]).sum() + 50


# -------------------------------------------------------------------------------------- malformed
def test_malformed_rows_present_from_200_rows() -> None:
    frame = generate_intent_dataset(200, seed=9)
    assert 1 <= int(_is_malformed(frame).sum()) <= 5


def test_malformed_rows_cover_blank_text_and_unknown_labels() -> None:
    frame = generate_intent_dataset(2000, seed=10, malformed_rate=0.02)
    malformed = frame.loc[_is_malformed(frame)]
    assert 20 <= len(malformed) <= 60
    assert malformed["text"].str.strip().eq("").any()
    assert (~malformed["label"].isin(MANGA_INTENTS)).any()


def test_no_malformed_rows_when_rate_is_zero() -> None:
    frame = generate_intent_dataset(1000, seed=11, malformed_rate=0.0)
    assert not _is_malformed(frame).any()


# ------------------------------------------------------------------------------------ class weights
def test_class_weights_override() -> None:
    frame = generate_intent_dataset(300, seed=12, class_weights={"greeting": 1.0}, malformed_rate=0.0)
    assert set(frame["label"]) == {"greeting"}


def test_class_weights_shift_the_mix() -> None:
    weights = dict(DEFAULT_CLASS_WEIGHTS, escalation=0.3)
    frame = generate_intent_dataset(1000, seed=12, class_weights=weights)
    assert (frame["label"] == "escalation").mean() > 0.15


# ------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"n_rows": 0}, "n_rows"),
        ({"n_rows": -5}, "n_rows"),
        ({"n_rows": 2.5}, "n_rows"),
        ({"n_rows": 10, "seed": "a"}, "seed"),
        ({"n_rows": 10, "pii_rate": 1.5}, "pii_rate"),
        ({"n_rows": 10, "noise_rate": -0.1}, "noise_rate"),
        ({"n_rows": 10, "ambiguous_rate": float("nan")}, "ambiguous_rate"),
        ({"n_rows": 10, "duplicate_rate": 2}, "duplicate_rate"),
        ({"n_rows": 10, "malformed_rate": -1}, "malformed_rate"),
        ({"n_rows": 10, "class_weights": {"unknown_intent": 1.0}}, "class_weights"),
        ({"n_rows": 10, "class_weights": {"price": -1.0}}, "class_weights"),
        ({"n_rows": 10, "class_weights": {"price": 0.0}}, "class_weights"),
    ],
)
def test_invalid_arguments_raise_value_error(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        generate_intent_dataset(**kwargs)  # type: ignore[arg-type]
