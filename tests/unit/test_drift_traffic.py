"""The production-traffic simulator and the traffic-log reader (`mangadistill.drift.traffic`)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mangadistill.config import TrafficConfig, TrafficSimulatorConfig
from mangadistill.data.intents import MANGA_INTENTS
from mangadistill.data.synthetic import DEFAULT_CLASS_WEIGHTS
from mangadistill.drift.traffic import (
    NEW_TITLES,
    SHIFTED_CLASS_WEIGHTS,
    load_traffic,
    prepare_traffic,
    read_traffic_log,
    shifted_class_weights,
    simulate_traffic,
)
from mangadistill.errors import DataError

NEW_TITLE_WORDS = tuple(title.lower() for title in NEW_TITLES)


def _new_title_share(frame: pd.DataFrame) -> float:
    return frame["text"].str.lower().map(lambda text: any(title in text for title in NEW_TITLE_WORDS)).mean()


# ------------------------------------------------------------------------------------------ simulator
def test_same_arguments_give_the_same_log_and_another_seed_another():
    first, again = simulate_traffic(400, seed=5, drift=0.4), simulate_traffic(400, seed=5, drift=0.4)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(simulate_traffic(400, seed=6, drift=0.4))
    assert list(first.columns) == ["text", "label"] and len(first) == 400
    assert set(first["label"]) <= set(MANGA_INTENTS)


def test_drift_zero_is_the_training_generator_without_new_titles():
    frame = simulate_traffic(1500, seed=11, drift=0.0)
    assert _new_title_share(frame) == 0.0
    shares = frame["label"].value_counts(normalize=True)
    for label, weight in DEFAULT_CLASS_WEIGHTS.items():  # within sampling noise of the training mix
        assert abs(shares.get(label, 0.0) - weight) < 0.04, label


def test_drift_knob_adds_new_titles_slang_and_out_of_scope_monotonically():
    logs = {drift: simulate_traffic(1500, seed=11, drift=drift) for drift in (0.0, 0.5, 1.0)}
    titles = [_new_title_share(logs[d]) for d in (0.0, 0.5, 1.0)]
    out_of_scope = [logs[d]["label"].eq("out_of_scope").mean() for d in (0.0, 0.5, 1.0)]
    slang = [logs[d]["text"].str.contains(r"\b(?:ngl|fr|lowkey|no cap|istg|bruh)\b").mean() for d in (0.0, 0.5, 1.0)]
    assert titles[0] == 0.0 < titles[1] < titles[2]
    assert out_of_scope[0] < out_of_scope[1] < out_of_scope[2]
    assert out_of_scope[2] > 1.8 * DEFAULT_CLASS_WEIGHTS["out_of_scope"]
    assert slang[0] < slang[1] < slang[2]


def test_shifted_mix_interpolates_and_sums_to_one():
    assert shifted_class_weights(0.0) == pytest.approx(dict(DEFAULT_CLASS_WEIGHTS))
    assert shifted_class_weights(1.0) == pytest.approx(dict(SHIFTED_CLASS_WEIGHTS))
    assert sum(shifted_class_weights(0.37).values()) == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs", [{"drift": -0.1}, {"drift": 1.5}, {"n_rows": 0}])
def test_invalid_knobs_are_rejected(kwargs):
    with pytest.raises(ValueError):
        simulate_traffic(**{"n_rows": 10, "seed": 1, **kwargs})


# ---------------------------------------------------------------------------------------- user logs
def test_csv_and_jsonl_logs_read_with_and_without_labels(tmp_path):
    csv = tmp_path / "log.csv"
    csv.write_text("timestamp,text\n2026-11-01,hi there\n2026-11-01,where is my order\n")
    assert read_traffic_log(csv).to_dict("list") == {"text": ["hi there", "where is my order"]}
    jsonl = tmp_path / "log.jsonl"
    jsonl.write_text(json.dumps({"text": "refund pls", "label": "returns_refunds"}) + "\n\n"
                     + json.dumps({"text": "hello", "label": "greeting"}) + "\n")
    assert read_traffic_log(jsonl).to_dict("list") == {"text": ["refund pls", "hello"],
                                                       "label": ["returns_refunds", "greeting"]}


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.csv", None, "traffic log not found"),
    ("empty.csv", "", "the traffic log is empty"),
    ("blank.jsonl", "\n  \n", "the traffic log is empty"),
    ("header.csv", "text,label\n", "has a header but no rows"),
    ("query.csv", "query,label\nhi,greeting\n", "missing column 'text' (found: query, label)"),
    ("query.jsonl", '{"query": "hi"}\n', "missing column 'text' (found: query)"),
    ("broken.jsonl", '{"text": "hi"}\n{"text": \n', "line 2 is not JSON"),
    ("list.jsonl", '["hi"]\n', "line 1 is not a JSON object"),
    ("log.parquet", "x", "unsupported traffic log format '.parquet'"),
])
def test_malformed_logs_fail_with_one_clear_line(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError) as error:
        read_traffic_log(path)
    text = str(error.value)
    assert message in text and str(path) in text and "\n" not in text


def test_a_log_of_blank_texts_fails_naming_the_file(tmp_path):
    path = tmp_path / "blank_texts.csv"
    path.write_text('text,label\n"  ",greeting\n"",price\n')
    with pytest.raises(DataError, match=r"blank_texts\.csv: the traffic log has no non-empty 'text' values"):
        load_traffic(TrafficConfig(source="csv", path=path))


# ------------------------------------------------------------------------------------------ prepare
def test_prepare_scrubs_pii_drops_blanks_and_duplicates_and_counts():
    raw = pd.DataFrame({"text": ["  where is order MA-123456?  my email is ann.lee@example.com", "", "hi", "Hi!",
                                 "refund   please"],
                        "label": ["order_status", "greeting", "greeting", "greeting", "returns_refunds"]})
    prepared, counts = prepare_traffic(raw)
    assert prepared.to_dict("list") == {
        "text": ["where is order MA-123456? my email is [EMAIL]", "hi", "refund please"],
        "label": ["order_status", "greeting", "returns_refunds"],
    }
    assert counts == {"rows_in": 5, "empty_text_dropped": 1, "rows_with_pii": 1, "duplicates_dropped": 1,
                      "unlabelled_rows": 0, "rows": 3}


def test_partly_labelled_log_keeps_text_only():
    prepared, counts = prepare_traffic(pd.DataFrame({"text": ["a b", "c d"], "label": ["price", " "]}))
    assert list(prepared.columns) == ["text"] and counts["unlabelled_rows"] == 1


def test_load_traffic_simulates_with_the_configured_knobs():
    config = TrafficConfig(simulator=TrafficSimulatorConfig(n_rows=200, seed=3, drift=0.5))
    frame, counts = load_traffic(config)
    assert counts["rows_in"] == 200 and counts["rows"] == len(frame) <= 200
    assert list(frame.columns) == ["text", "label"]
