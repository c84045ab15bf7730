"""Cleaning (runbook 2-3): PII scrubbed, duplicates removed, bad rows quarantined and counted, split stratified."""

import pandas as pd
import pytest

from mangadistill.config import DataConfig
from mangadistill.data.cleaning import (
    clean_and_split,
    near_duplicate_key,
    pii_counts,
    scrub_frame,
    scrub_pii,
    stratified_split,
)
from mangadistill.errors import DataError


@pytest.mark.parametrize(
    ("text", "kind", "secret"),
    [
        ("my email is yuki.tanaka+manga@example.co.jp thanks", "email", "yuki.tanaka+manga@example.co.jp"),
        ("call me at +1 415-555-0134 please", "phone", "415-555-0134"),
        ("my number is (212) 555 0199", "phone", "555 0199"),
        ("charge card 4111 1111 1111 1111 again", "card", "4111 1111 1111 1111"),
        ("card 5500-0000-0000-0004 was declined", "card", "5500-0000-0000-0004"),
        ("ship it to 221 Baker Street, London", "address", "221 Baker Street"),
        ("send to 1600 Amphitheatre Pkwy, Mountain View", "address", "1600 Amphitheatre Pkwy"),
        ("I live at 1422 Church Road Apt 31D, Toronto", "address", "Apt 31D"),
    ],
)
def test_pii_is_scrubbed(text, kind, secret):
    scrubbed, found = scrub_pii(text)
    assert secret not in scrubbed
    assert f"[{kind.upper()}]" in scrubbed
    assert found[kind] == 1


def test_text_without_pii_is_unchanged():
    text = "how much is volume 12 of one piece? is it $9.99"
    assert scrub_pii(text) == (text, {})


# What each kind looks like: (text, kind, the part that must go, what must stay).
PII_POSITIVES = [
    ("ship to 12 Baker Street, London NW1 6XE today", "address", "NW1 6XE", "ship to [ADDRESS] today"),
    ("123 Main St, Springfield, IL 62704", "address", "62704", "[ADDRESS]"),
    ("I live at 1422 Church Road Apt 31D, Toronto, ON M5V 2T6.", "address", "M5V 2T6", "I live at [ADDRESS]."),
    ("deliver to 9 Willow Way, Portland, OR 97205-1234 pls", "address", "97205", "deliver to [ADDRESS] pls"),
    ("send it to 4 Hauptstrasse Lane, Berlin 10115", "address", "10115", "send it to [ADDRESS]"),
    ("my address is 〒150-0002", "postcode", "150-0002", "my address is [POSTCODE]"),
    ("〒150-0002 東京都渋谷区渋谷2-21-1 に送って", "postcode", "渋谷2-21-1", "[POSTCODE] に送って"),
    ("my zip is 62704, is shipping free?", "postcode", "62704", "my zip is [POSTCODE], is shipping free?"),
    ("postcode: NW1 6XE", "postcode", "NW1 6XE", "postcode: [POSTCODE]"),
    ("refund to DE89 3704 0044 0532 0130 00 please", "iban", "3704 0044", "refund to [IBAN] please"),
    ("IBAN GB82WEST12345698765432", "iban", "12345698765432", "IBAN [IBAN]"),
    ("my iban is fr7630006000011234567890189", "iban", "30006000011234567890189", "my iban is [IBAN]"),
    ("card 4111 1111 1111 1111 and order MA-483920", "card", "4111", "card [CARD] and order MA-483920"),
    ("call +44 20 7946 0018 about MA-1234567", "phone", "7946", "call [PHONE] about MA-1234567"),
]


@pytest.mark.parametrize(("text", "kind", "secret", "expected"), PII_POSITIVES)
def test_new_pii_shapes_are_scrubbed(text, kind, secret, expected):
    scrubbed, found = scrub_pii(text)
    assert secret not in scrubbed and scrubbed == expected
    assert found == {kind: 1}


PII_NEGATIVES = [
    "where is order MA-483920?",
    "order #123456 never came",
    "is MA-1234567 shipped? and MA-12345678?",
    "how much is vol 104 of One Piece, $9.99 or ¥1,320?",
    "I own volumes 1 to 18 of Dr. Stone, which one is next",
    "can you explain chapter 100 of Dr. Stone",
    "ISBN 978-4-08-880723-0, or 9784088807230, or 4-08-880723-X",
    "the FY24 SALE 2024 ONLY, vol 12 and vol 13",
    "my order came on 6/27 at 3:15, card exp 09/27",
    "it was 25% off, 2 for 1500 yen",
    "ship to London please, zip file of the previews?",
]


@pytest.mark.parametrize("text", PII_NEGATIVES)
def test_order_numbers_volumes_prices_and_isbns_are_not_pii(text):
    assert scrub_pii(text) == (text, {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+44 20 7946 0615 5312 7731 9904 4128", "[PHONE] [CARD]"),
        ("+44 20 7946 0615 17 Quillfeather Lane, London EC1V 4PW", "[PHONE] [ADDRESS]"),
        ("(212) 555 0199 4111-1111-1111-1111", "[PHONE] [CARD]"),
        ("DE89 3704 0044 0532 0130 00 4111 1111 1111 1111", "[IBAN] [CARD]"),
        ("a@b.co 415.555.0134 12 Baker Street, London NW1 6XE", "[EMAIL] [PHONE] [ADDRESS]"),
        ("0412 345 678 1234 5678 9012 3456", "[CARD]"),  # one run of digits: all of it goes, as a card
    ],
)
def test_values_written_next_to_each_other_go_whole(text, expected):
    assert scrub_pii(text)[0] == expected


def test_scrubbing_scrubbed_text_changes_nothing():
    once, _ = scrub_pii(" ".join(text for text, *_ in PII_POSITIVES))
    assert scrub_pii(once) == (once, {})


def test_scrub_frame_scrubs_every_column_named_and_records_the_kinds():
    frame = scrub_frame(_frame([("mail a@b.co or +1 415-555-0134", "x@y.org"), ("hi", "greeting")]))
    assert frame["text"].tolist() == ["mail [EMAIL] or [PHONE]", "hi"]
    assert frame["label"].tolist() == ["[EMAIL]", "greeting"]
    assert frame["pii"].tolist() == ["email phone email", ""]
    again = scrub_frame(frame)  # a second pass adds nothing
    assert again["pii"].tolist() == frame["pii"].tolist()
    assert pii_counts(again) == (1, {"email": 2, "phone": 1})


def test_near_duplicate_key_ignores_case_punctuation_and_spaces():
    assert near_duplicate_key("Where is  my ORDER?!") == near_duplicate_key("where is my order")
    assert near_duplicate_key("refund [EMAIL]") == "refund [email]"


def _frame(rows):
    return pd.DataFrame(rows, columns=["text", "label"])


LABELS = ("price", "shipping", "out_of_scope")


def _config(**kwargs):
    base = {"source": "csv", "path": "x.csv", "labels": LABELS, "refusal_label": "out_of_scope",
            "split": {"gate_fraction": 0.1}}  # the split counts below are worked out for 10% val, 10% gate
    return DataConfig.model_validate({**base, **kwargs})


def _rows(n_per_label=10):
    return [(f"{label} question number {i}", label) for label in LABELS for i in range(n_per_label)]


def test_quarantine_counts_empty_text_and_unknown_labels_and_keeps_them():
    raw = _frame([*_rows(), ("", "price"), ("   ", "shipping"), ("tell me a joke", "jokes"), ("what?", "")])
    dataset = clean_and_split(raw, _config())
    assert dataset.report["quarantined"] == 4
    assert dataset.report["quarantined_empty_text"] == 2
    assert dataset.report["quarantined_unknown_label"] == 2
    assert sorted(dataset.quarantine["reason"]) == ["empty_text", "empty_text", "unknown_label", "unknown_label"]
    assert "tell me a joke" in set(dataset.quarantine["text"])
    kept = len(dataset.train) + len(dataset.val) + len(dataset.gate)
    assert kept + dataset.report["quarantined"] == len(raw) == dataset.report["rows_in"]


def test_duplicates_are_removed_before_the_split():
    raw = _frame([*_rows(), ("price question number 1", "price"), ("PRICE question, number 1!", "price"),
                  ("Price  question number 2", "price")])
    dataset = clean_and_split(raw, _config())
    assert dataset.report["exact_duplicates"] == 1
    assert dataset.report["near_duplicates"] == 2
    all_keys = pd.concat([dataset.train, dataset.val, dataset.gate])["text"].map(near_duplicate_key)
    assert all_keys.is_unique


def test_pii_is_scrubbed_and_counted_in_the_dataset():
    raw = _frame([*_rows(), ("refund to jo@example.com or call 415-555-0134", "price")])
    dataset = clean_and_split(raw, _config())
    texts = " ".join(pd.concat([dataset.train, dataset.val, dataset.gate])["text"])
    assert "jo@example.com" not in texts and "[EMAIL]" in texts and "[PHONE]" in texts
    assert dataset.report["rows_with_pii"] == 1
    assert dataset.report["pii_email"] == 1 and dataset.report["pii_phone"] == 1


def _stored_text(dataset):
    frames = [dataset.train, dataset.val, dataset.gate, dataset.quarantine]
    return " ".join(pd.concat(frames).fillna("").to_numpy().ravel())


PII_ROWS = [("refund to jo@example.com or call 415-555-0134", "price"),  # kept
            ("jo@example.com", ""),                                      # quarantined: no label
            ("", "+44 20 7946 0018"),                                    # quarantined: empty text, PII label
            ("what does this cost", "jo@example.com")]                   # quarantined: a label that held PII


def test_quarantined_rows_are_scrubbed_too():
    dataset = clean_and_split(_frame([*_rows(), *PII_ROWS]), _config(labels=None))
    stored = _stored_text(dataset)
    assert "jo@example.com" not in stored and "7946" not in stored and "555-0134" not in stored
    assert dataset.report["quarantined"] == 3 and "[EMAIL]" not in dataset.labels
    assert dataset.report["rows_with_pii"] == 4 and dataset.report["pii_email"] == 3
    assert dataset.report["pii_scrubbed_in_cleaning"] == 5  # this frame did not come through a reader


def test_rows_from_a_reader_are_counted_once_and_the_second_pass_finds_nothing(tmp_path):
    from mangadistill.data.loaders import read_csv

    path = tmp_path / "rows.csv"
    _frame([*_rows(), *PII_ROWS]).to_csv(path, index=False)
    raw = read_csv(path)
    for scrub in (True, False):  # cleaning.scrub_pii only switches the second pass
        dataset = clean_and_split(raw, _config(labels=None, cleaning={"scrub_pii": scrub}))
        assert "jo@example.com" not in _stored_text(dataset)
        assert dataset.report["rows_with_pii"] == 4 and dataset.report["pii_email"] == 3
        assert dataset.report["pii_phone"] == 2 and dataset.report["pii_scrubbed_in_cleaning"] == 0


def test_split_is_stratified_deterministic_and_disjoint():
    raw = _frame(_rows(20))
    first = clean_and_split(raw, _config())
    again = clean_and_split(raw, _config())
    pd.testing.assert_frame_equal(first.gate, again.gate)
    counts = first.label_counts()
    assert (counts["gate"] == 2).all() and (counts["val"] == 2).all() and (counts["train"] == 16).all()
    splits = [set(first.train["text"]), set(first.val["text"]), set(first.gate["text"])]
    assert not (splits[0] & splits[1]) and not (splits[0] & splits[2]) and not (splits[1] & splits[2])


def test_rare_label_keeps_a_training_row():
    frame = _frame([*_rows(20), ("a lone shipping-ish oddity", "shipping")])
    train, val, gate = stratified_split(frame[frame["label"] != "shipping"].iloc[:1], 0.1, 0.1, seed=0)
    assert len(train) == 1 and val.empty and gate.empty


def test_default_rare_labels_are_the_least_frequent():
    rows = [*[(f"price q {i}", "price") for i in range(40)], *[(f"ship q {i}", "shipping") for i in range(8)],
            *[(f"oos q {i}", "out_of_scope") for i in range(30)]]
    config = DataConfig.model_validate({"source": "csv", "path": "x.csv"})
    dataset = clean_and_split(_frame(rows), config)
    assert dataset.rare_labels == ("shipping",)


def test_refusal_label_must_exist():
    with pytest.raises(DataError, match="refusal_label"):
        clean_and_split(_frame(_rows()), _config(refusal_label="nonsense"))


def test_everything_quarantined_is_a_clear_error():
    with pytest.raises(DataError, match="split is empty"):
        clean_and_split(_frame([("", "price"), ("x", "nope")]), _config())


def test_source_splits_are_kept_for_clinc150():
    rows = [{"text": f"q{i} {s}", "label": "a" if i % 2 else "oos", "source_split": s}
            for s in ("train", "val", "test", "oos_train") for i in range(6)]
    config = DataConfig.model_validate({"source": "clinc150", "path": "x.json"})
    dataset = clean_and_split(pd.DataFrame(rows), config)
    assert dataset.refusal_label == "oos"
    assert all(text.endswith("test") for text in dataset.gate["text"])
    assert len(dataset.train) == 12


def test_max_rows_caps_per_label_and_counts_what_it_left_out():
    dataset = clean_and_split(_frame(_rows(20)), _config(max_rows=30))
    kept = len(dataset.train) + len(dataset.val) + len(dataset.gate)
    assert kept == 30 and dataset.report["rows_left_out_by_max_rows"] == 30
    assert set(dataset.label_counts()["train"]) == {8}  # 10 per label kept, 1 val + 1 gate each
