"""Preflight's data check: a user's file is readable, has text and label, and can be split, before any pipeline."""

import json

import pandas as pd
import pytest

from mangadistill.config import DataConfig, DistillIntentConfig, SplitConfig
from mangadistill.data.cleaning import clean_and_split, stratified_split
from mangadistill.data.loaders import load_rows
from mangadistill.errors import DataError
from mangadistill.preflight import check_data, preflight, rows_needed_to_split


def _csv(path, rows):
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    return path


def _jsonl(path, rows):
    path.write_text("".join(json.dumps({"text": text, "label": label}) + "\n" for text, label in rows))
    return path


def _config(path, source, **split):
    return DistillIntentConfig(data=DataConfig(source=source, path=path, split=SplitConfig(**split)))


def _error(path, source="csv", **split) -> str:
    """The one-line message preflight stops with (the data check comes before any model is loaded)."""
    with pytest.raises(DataError) as caught:
        preflight(_config(path, source, **split))
    assert caught.value.exit_code == 3 and "\n" not in str(caught.value)
    return str(caught.value)


# --------------------------------------------------------------------------------- the five bad files
def test_csv_without_text_and_label_columns_names_what_it_found(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("message,intent\nwhere is my order,order_status\n")
    assert _error(path) == (f"{path}: missing column(s) text, label; found message, intent "
                            "(a csv dataset needs a header row with text and label, then one row per query)")


def test_random_bytes_are_not_utf8_text(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\x89\x9f\x00\xff" * 64)
    assert _error(path).startswith(f"{path}: not UTF-8 text (byte 0x89 cannot be decoded: invalid start byte)")


def test_csv_with_an_unclosed_quote_names_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('text,label\nhello,greeting\n"where is my order,order_status\nthanks,greeting\n')
    assert 'the quote (") opened on line 3 is never closed' in _error(path)


@pytest.mark.parametrize("source", ["csv", "jsonl"])
def test_empty_file(tmp_path, source):
    path = tmp_path / f"empty.{source}"
    path.write_text("")
    assert _error(path, source).startswith(f"{path}: the file is empty; a {source} dataset needs")


def test_jsonl_too_small_to_split_says_how_many_rows_are_needed(tmp_path):
    path = _jsonl(tmp_path / "small.jsonl", [("hi", "greeting"), ("refund", "returns"), ("hello", "greeting")])
    message = _error(path, "jsonl")
    assert message.startswith(f"{path}: only 3 row(s); the train/validation/gate split (data.split.val_fraction 0.1, "
                              "gate_fraction 0.15) needs at least 6")


# --------------------------------------------------------------------------------- other bad files
def test_missing_file(tmp_path):
    assert _error(tmp_path / "absent.csv") == f"data.path: file not found: {tmp_path / 'absent.csv'}"


def test_jsonl_whose_lines_are_not_objects(tmp_path):
    path = tmp_path / "lists.jsonl"
    path.write_text('["hi", "greeting"]\n["refund", "returns"]\n')
    assert _error(path, "jsonl").startswith(f"{path}: none of its 2 line(s) is a JSON object (line 1: not a JSON object)")


def test_jsonl_objects_without_text(tmp_path):
    path = tmp_path / "keys.jsonl"
    path.write_text('{"query": "hi", "label": "greeting"}\n')
    assert _error(path, "jsonl").startswith(f"{path}: missing key(s) text; found query, label")


def test_a_headerless_csv_shows_its_first_row_without_pii(tmp_path):
    path = tmp_path / "headerless.csv"
    path.write_text("mail me at someone.9932@example.org,order_status\nhi,greeting\n")
    message = _error(path)
    assert "found mail me at [EMAIL], order_status" in message and "someone.9932" not in message


def test_csv_with_a_header_and_no_rows(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("text,label\n")
    assert _error(path).startswith(f"{path}: no rows below the header")


def test_clinc150_without_a_val_split(tmp_path):
    path = tmp_path / "clinc.json"
    path.write_text(json.dumps({"train": [["hi", "greeting"]], "test": [["yo", "greeting"]]}))
    assert "CLINC150 split(s) val missing or empty" in _error(path, "clinc150")


# --------------------------------------------------------------------------------- what passes
def test_a_few_bad_jsonl_lines_pass_because_cleaning_quarantines_them(tmp_path):
    path = _jsonl(tmp_path / "rows.jsonl", [(f"query {i}", "greeting") for i in range(6)])
    path.write_text(path.read_text() + "not json\n")
    check_data(DataConfig(source="jsonl", path=path))  # no error


def test_synthetic_source_has_no_file_to_check():
    check_data(DataConfig())


@pytest.mark.parametrize("fractions", [(0.1, 0.15), (0.49, 0.49), (0.02, 0.3), (0.2, 0.05)])
def test_rows_needed_is_the_smallest_count_the_split_fills(fractions):
    split = SplitConfig(val_fraction=fractions[0], gate_fraction=fractions[1])
    needed = rows_needed_to_split(split)

    def fills(n):
        frame = pd.DataFrame({"text": [str(i) for i in range(n)], "label": ["a"] * n})
        return all(len(part) for part in stratified_split(frame, split.val_fraction, split.gate_fraction, split.seed))

    assert fills(needed) and not any(fills(n) for n in range(1, needed))


def test_the_needed_count_passes_preflight_and_splits_after_cleaning_one_less_does_not(tmp_path):
    rows = [(f"where is order number {i} {'x' * i}", "order_status") for i in range(6)]  # not near-duplicates
    enough = _csv(tmp_path / "enough.csv", rows)
    check_data(DataConfig(source="csv", path=enough))
    dataset = clean_and_split(load_rows(DataConfig(source="csv", path=enough)), DataConfig(source="csv", path=enough))
    assert all(len(part) for part in (dataset.train, dataset.val, dataset.gate))
    assert "needs at least 6" in _error(_csv(tmp_path / "short.csv", rows[:5]))
