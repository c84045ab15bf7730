"""Dataset readers: CSV, JSONL and CLINC150, with clear errors for bad files."""

import json
from pathlib import Path

import pytest

from mangadistill.config import DataConfig
from mangadistill.data.loaders import inspect_file, load_rows, read_clinc150, read_csv, read_jsonl
from mangadistill.errors import DataError

CLINC = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "clinc150" / "data_full.json"


def test_csv_roundtrip_keeps_empty_cells_as_empty_strings(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("text,label,extra\nwhere is my order,order_status,1\n,price,2\n")
    frame = read_csv(path)
    assert list(frame.columns) == ["text", "label", "pii"]
    assert frame["text"].tolist() == ["where is my order", ""]


def test_csv_missing_column_is_named(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("query,label\nhi,greeting\n")
    with pytest.raises(DataError, match="missing column.*text"):
        read_csv(path)


def test_jsonl_keeps_bad_lines_for_quarantine(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "hi", "label": "greeting"}\nnot json\n\n{"text": "refund", "label": "returns_refunds"}\n')
    frame = read_jsonl(path)
    assert len(frame) == 3
    assert frame.loc[1, "text"] == "" and "line 2" in frame.loc[1, "label"]


def test_empty_jsonl_is_an_error(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n")
    with pytest.raises(DataError, match="no rows"):
        read_jsonl(path)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_csv(tmp_path / "absent.csv")


def test_clinc150_reader_on_the_real_file():
    if not CLINC.exists():
        pytest.skip("shared CLINC150 copy not present")
    frame = read_clinc150(CLINC)
    assert len(frame) == 15000 + 3000 + 4500 + 100 + 100 + 1000
    assert set(frame["source_split"]) == {"train", "val", "test", "oos_train", "oos_val", "oos_test"}
    assert frame.loc[frame["source_split"] == "oos_test", "label"].eq("oos").all()


def test_clinc150_wrong_shape_is_an_error(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps([["a", "b"]]))
    with pytest.raises(DataError, match="CLINC150"):
        read_clinc150(path)


def test_load_rows_dispatches_on_source(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "hi", "label": "greeting"}\n')
    frame = load_rows(DataConfig(source="jsonl", path=path))
    assert frame.to_dict("records") == [{"text": "hi", "label": "greeting", "pii": ""}]


# ----------------------------------------------------------------------- PII is scrubbed at the reader
EMAIL, PHONE, CARD = "reader.test.5521@example.org", "+44 20 7946 0321", "4556 7375 8689 9855"


def _assert_scrubbed(frame):
    """No planted value in any cell; the ``pii`` column names what was replaced."""
    cells = " ".join(frame.astype(str).to_numpy().ravel())
    for secret in (EMAIL, PHONE, CARD, "7946 0321", "4556737586899855"):
        assert secret not in cells
    assert frame.loc[0, "pii"] == "email phone" and frame.loc[1, "pii"] == "card"


def test_csv_reader_scrubs_text_and_label_of_every_row(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text(f"text,label\nmail {EMAIL} or call {PHONE},order_status\n,{CARD}\n")
    frame = read_csv(path)
    _assert_scrubbed(frame)
    assert frame.loc[0, "text"] == "mail [EMAIL] or call [PHONE]" and frame.loc[1, "label"] == "[CARD]"


def test_jsonl_reader_scrubs_rows_and_keeps_no_content_of_bad_lines(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"text": f"mail {EMAIL}", "label": PHONE}) + "\n"
                    + json.dumps({"text": CARD, "label": "unknown"}) + "\n"
                    + f'{{"text": "broken {EMAIL} {CARD}\n')
    frame = read_jsonl(path)
    _assert_scrubbed(frame)
    assert frame.loc[2, "text"] == "" and frame.loc[2, "label"] == "<invalid json on line 3>"


def test_clinc150_reader_scrubs(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"train": [[f"mail {EMAIL} {PHONE}", "a"], [CARD, "oos"]]}))
    frame = read_clinc150(path)
    _assert_scrubbed(frame)
    assert frame["source_split"].tolist() == ["train", "train"]


def test_synthetic_rows_are_scrubbed_and_counted():
    from mangadistill.data.cleaning import pii_counts
    from mangadistill.data.synthetic import generate_intent_dataset

    config = DataConfig.model_validate({"synthetic": {"n_rows": 300, "seed": 4, "pii_rate": 0.5}})
    raw = generate_intent_dataset(300, 4, pii_rate=0.5, noise_rate=config.synthetic.noise_rate,
                                  ambiguous_rate=config.synthetic.ambiguous_rate,
                                  duplicate_rate=config.synthetic.duplicate_rate,
                                  malformed_rate=config.synthetic.malformed_rate)
    frame = load_rows(config)
    assert frame["text"].str.contains("@").sum() == 0 < raw["text"].str.contains("@").sum()
    rows, kinds = pii_counts(frame)
    assert rows == int((frame["text"] != raw["text"]).sum()) > 100 and kinds["email"] > 0


# ------------------------------------------------------------------------- inspect_file (preflight's helper)
def test_inspect_csv_counts_records_as_the_reader_reads_them(tmp_path):
    path = tmp_path / "rows.csv"
    # a quoted cell spanning two lines is one record; a quoted comma stays in its cell
    path.write_text('text,label,extra\nhi,greeting,1\n"where is\nmy order, please",order_status,2\n,price,3\n')
    found = inspect_file(path, "csv")
    assert (found.rows, found.columns) == (3, ("text", "label", "extra")) and found.rows == len(read_csv(path))


def test_inspect_jsonl_counts_object_lines_keys_and_bad_lines(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "hi", "label": "greeting"}\n\n[1, 2]\nnot json\n{"text": "x", "intent": "price"}\n')
    found = inspect_file(path, "jsonl")
    assert (found.rows, found.bad_lines) == (2, 2)
    assert found.columns == ("text", "label", "intent")
    assert found.first_bad_line == "line 3: not a JSON object"
    assert len(read_jsonl(path)) == found.rows + found.bad_lines  # bad lines become rows for cleaning to quarantine


def test_inspect_clinc150_counts_rows_per_split(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"train": [["hi", "greeting"]] * 3, "val": [["x", "oos"]], "test": []}))
    found = inspect_file(path, "clinc150")
    assert found.rows == 4 and found.splits == {"train": 3, "val": 1, "test": 0}


@pytest.mark.parametrize("source", ["csv", "jsonl", "clinc150"])
def test_inspect_empty_file_says_what_the_file_should_hold(tmp_path, source):
    path = tmp_path / f"rows.{source}"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=rf"rows\.{source}: the file is empty; a {source} dataset"):
        inspect_file(path, source)


@pytest.mark.parametrize("source", ["csv", "jsonl", "clinc150"])
def test_inspect_binary_file_is_not_utf8_text(tmp_path, source):
    path = tmp_path / "rows.bin"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(128, 256)) * 4)
    with pytest.raises(DataError, match=r"rows\.bin: not UTF-8 text \(byte 0x89 cannot be decoded"):
        inspect_file(path, source)


def test_inspect_csv_unclosed_quote_names_the_line_it_opened_on(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text('text,label\nhello,greeting\n"where is my order,order_status\nok,greeting\n')
    with pytest.raises(DataError, match=r'the quote \(\"\) opened on line 3 is never closed'):
        inspect_file(path, "csv")
    with pytest.raises(DataError):  # the reader fails on the same file, so the check is no stricter than it
        read_csv(path)


def test_inspect_csv_of_blank_lines_has_no_header(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("\n\n")
    with pytest.raises(DataError, match="no header row"):
        inspect_file(path, "csv")


def test_inspect_missing_file_and_bad_clinc150(tmp_path):
    with pytest.raises(DataError, match="not found"):
        inspect_file(tmp_path / "absent.csv", "csv")
    path = tmp_path / "c.json"
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match="CLINC150"):
        inspect_file(path, "clinc150")
