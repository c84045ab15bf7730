"""Traffic logs: quarantine (never drop) malformed rows; empty or text-less logs are one-line DataErrors."""

import pytest

from mangadistill.config import ReplayTrafficConfig
from mangadistill.data.intents import MANGA_INTENTS
from mangadistill.errors import DataError
from mangadistill.promotion.traffic import load_traffic


def test_csv_quarantines_empty_text_and_unknown_labels(tmp_path):
    log = tmp_path / "t.csv"
    log.write_text('text,label\nwhere is my order,order_status\n"   ",price\nhello,not_an_intent\nhi there,\n')
    traffic = load_traffic(ReplayTrafficConfig(source="csv", path=log), MANGA_INTENTS)
    assert traffic.rows["text"].tolist() == ["where is my order", "hi there"]
    assert traffic.quarantine["reason"].tolist() == ["empty text", "label not among the model's intents: not_an_intent"]
    assert traffic.counts == {"rows": 2, "quarantined": 2, "labelled_rows": 1}
    assert traffic.labelled


def test_jsonl_without_labels_and_with_a_broken_line(tmp_path):
    log = tmp_path / "t.jsonl"
    log.write_text('{"text": "recommend a manga"}\nnot json\n\n{"text": "price of berserk"}\n')
    traffic = load_traffic(ReplayTrafficConfig(source="jsonl", path=log))
    assert len(traffic.rows) == 2 and not traffic.labelled
    assert traffic.quarantine["reason"].tolist() == ["invalid JSON on line 2"]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("empty.csv", "", "empty"),
    ("header.csv", "text,label\n", "no usable rows"),
    ("nocol.csv", "query,label\nhi,greeting\n", "no 'text' column"),
    ("blank.jsonl", "\n\n", "no 'text' column"),
])
def test_empty_or_columnless_logs_are_data_errors(tmp_path, name, content, message):
    log = tmp_path / name
    log.write_text(content)
    with pytest.raises(DataError, match=message) as error:
        load_traffic(ReplayTrafficConfig(source="jsonl" if name.endswith("jsonl") else "csv", path=log))
    assert error.value.exit_code == 3 and "\n" not in str(error.value)


def test_simulated_traffic_is_deterministic_and_differs_from_training_seed():
    a = load_traffic(ReplayTrafficConfig(n_rows=50, seed=2027), MANGA_INTENTS)
    b = load_traffic(ReplayTrafficConfig(n_rows=50, seed=2027), MANGA_INTENTS)
    c = load_traffic(ReplayTrafficConfig(n_rows=50, seed=13), MANGA_INTENTS)
    assert a.rows.equals(b.rows) and not a.rows.equals(c.rows)
    assert a.labelled and set(a.rows["label"]) <= set(MANGA_INTENTS)
    assert len(a.rows) + len(a.quarantine) == 50
