"""Dataset readers: CSV, JSONL and CLINC150, with clear errors for bad files."""

import json
from pathlib import Path

import pytest

from mangadistill.config import DataConfig
from mangadistill.data.loaders import load_rows, read_clinc150, read_csv, read_jsonl
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
