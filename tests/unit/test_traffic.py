"""Production-traffic logs (`mangadistill.traffic`): the simulator, the reader's quarantine policy, the one-line
DataErrors, PII scrubbing on every path, and the de-duplication for drift reports."""

from __future__ import annotations

import json
import random
import re

import pandas as pd
import pytest

from mangadistill.config import TrafficConfig, TrafficSimulatorConfig, parse_config
from mangadistill.data.intents import MANGA_INTENTS
from mangadistill.data.synthetic import DEFAULT_CLASS_WEIGHTS
from mangadistill.errors import ConfigError, DataError
from mangadistill.traffic import TrafficLog, for_drift, load_traffic, simulate_traffic
from mangadistill.traffic import log as traffic_log
from mangadistill.traffic.simulator import NEW_TITLES, SHIFTED_CLASS_WEIGHTS, shifted_class_weights

NEW_TITLE_WORDS = tuple(title.lower() for title in NEW_TITLES)
EMAIL, PHONE, CARD = "ann.lee@example.com", "+1 415-555-0134", "4111 1111 1111 1111"
PLANTED = (EMAIL, PHONE, CARD, "415-555-0134", "4111111111111111", "example.com")


def _garbage(seed: int, alphabet: str, n: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(n))


def _new_title_share(frame: pd.DataFrame) -> float:
    return frame["text"].str.lower().map(lambda text: any(title in text for title in NEW_TITLE_WORDS)).mean()


def _csv(tmp_path, body: str, name: str = "log.csv") -> TrafficConfig:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return TrafficConfig(source="csv", path=path)


def _jsonl(tmp_path, lines: list[str], name: str = "log.jsonl") -> TrafficConfig:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return TrafficConfig(source="jsonl", path=path)


def _no_pii_survives(frame: pd.DataFrame) -> None:
    for column in frame.columns:
        for value in frame[column].astype(str):
            assert not any(planted in value for planted in PLANTED), f"{column}: {value!r}"
            assert not re.search(r"@|\d{3}[ -]?\d{4}|\d{4}[ -]\d{4}", value), f"{column}: {value!r}"


# ------------------------------------------------------------------------------------------ config
def test_one_config_spells_the_source_simulator_and_validates_path_and_max_rows():
    assert TrafficConfig().source == "simulator" and TrafficConfig().max_rows is None
    for raw, message in [({"source": "simulated"}, "source: Input should be 'simulator', 'csv' or 'jsonl'"),
                         ({"source": "csv"}, "path: required when source is 'csv'"),
                         ({"path": "x.csv"}, "path: only used with source csv or jsonl"),
                         ({"max_rows": 5}, "max_rows: Input should be greater than or equal to 10"),
                         ({"n_rows": 50}, "unknown key 'n_rows'")]:
        with pytest.raises(ConfigError) as error:
            parse_config(raw, TrafficConfig, source="x.yaml")
        assert message in str(error.value) and "\n" not in str(error.value)


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


def test_simulated_log_is_labelled_deterministic_and_keeps_every_row():
    config = TrafficConfig(simulator=TrafficSimulatorConfig(n_rows=200, seed=3, drift=0.5))
    first, again = load_traffic(config, MANGA_INTENTS), load_traffic(config, MANGA_INTENTS)
    pd.testing.assert_frame_equal(first.rows, again.rows)
    other = load_traffic(TrafficConfig(simulator=TrafficSimulatorConfig(n_rows=200, seed=4, drift=0.5)))
    assert not first.rows.equals(other.rows)
    assert first.source == "simulator(n_rows=200, seed=3, drift=0.5)" and first.labelled
    assert len(first.rows) + len(first.quarantine) == 200 and first.quarantine.empty
    assert set(first.rows["label"]) <= set(MANGA_INTENTS) and first.counts["labelled_rows"] == 200


def test_max_rows_replays_the_first_lines_of_the_simulator_and_of_a_file(tmp_path):
    simulated = load_traffic(TrafficConfig(simulator=TrafficSimulatorConfig(n_rows=100, seed=3), max_rows=30))
    assert len(simulated.rows) + len(simulated.quarantine) == 30
    lines = [f"query number {i}" for i in range(40)]
    read = load_traffic(_csv(tmp_path, "text\n" + "\n".join(lines) + "\n").model_copy(update={"max_rows": 12}))
    assert read.rows["text"].tolist() == lines[:12]


# --------------------------------------------------------------------------------- reader: good lines
def test_csv_and_jsonl_logs_read_with_and_without_labels(tmp_path):
    csv = load_traffic(_csv(tmp_path, "timestamp,text\n2026-11-01,hi there\n2026-11-01,where is my order\n"))
    assert csv.rows.to_dict("list") == {"text": ["hi there", "where is my order"], "label": ["", ""]}
    assert not csv.labelled and csv.quarantine.empty and csv.source == str(tmp_path / "log.csv")
    jsonl = load_traffic(_jsonl(tmp_path, [json.dumps({"text": "refund pls", "label": "returns_refunds"}), "",
                                           json.dumps({"text": "hello", "label": "greeting"})]))
    assert jsonl.rows.to_dict("list") == {"text": ["refund pls", "hello"], "label": ["returns_refunds", "greeting"]}
    assert jsonl.labelled and jsonl.counts == {"rows": 2, "quarantined": 0, "labelled_rows": 2, "rows_with_pii": 0}


def test_whitespace_is_collapsed_and_an_excel_bom_is_not_part_of_the_header(tmp_path):
    log = load_traffic(_csv(tmp_path, "\ufefftext,label\n\"  refund \n  please \",returns_refunds\n"))
    assert log.rows.to_dict("list") == {"text": ["refund please"], "label": ["returns_refunds"]}


# --------------------------------------------------------------------------------- reader: bad lines
def test_csv_quarantines_empty_text_and_unknown_labels_with_a_reason(tmp_path):
    config = _csv(tmp_path, 'text,label\nwhere is my order,order_status\n"   ",price\nhello,not_an_intent\nhi there,\n')
    log = load_traffic(config, MANGA_INTENTS)
    assert log.rows["text"].tolist() == ["where is my order", "hi there"]
    assert log.quarantine.to_dict("list") == {
        "text": ["", "hello"], "label": ["price", "not_an_intent"],
        "reason": ["empty text", "label not among the model's intents: not_an_intent"]}
    assert log.counts == {"rows": 2, "quarantined": 2, "labelled_rows": 1, "rows_with_pii": 0}
    assert log.labelled
    unchecked = load_traffic(config)  # without the model's labels, any label is kept
    assert unchecked.rows["label"].tolist() == ["order_status", "not_an_intent", ""]


def test_jsonl_quarantines_every_kind_of_bad_line_and_drops_none(tmp_path):
    lines = [json.dumps({"text": "recommend a manga"}), "not json", "", json.dumps(["a", "list"]),
             json.dumps({"text": "   "}), json.dumps({"text": None, "label": "price"}),
             json.dumps({"query": "no text field"}), json.dumps({"text": "price of berserk", "label": "price"}),
             json.dumps({"text": "cancel it", "label": "cancel_order"}), "42"]
    log = load_traffic(_jsonl(tmp_path, lines), MANGA_INTENTS)
    assert log.rows["text"].tolist() == ["recommend a manga", "price of berserk"]
    assert log.quarantine["reason"].tolist() == [
        "line 2: not JSON (Expecting value)", "line 4: not a JSON object", "empty text", "empty text",
        "line 7: no 'text' field", "label not among the model's intents: cancel_order", "line 10: not a JSON object"]
    assert log.quarantine["text"].tolist()[:2] == ["not json", '["a", "list"]']  # the raw line, for the reader
    n_lines = sum(bool(line.strip()) for line in lines)
    assert len(log.rows) + len(log.quarantine) == n_lines == log.counts["rows"] + log.counts["quarantined"]
    assert log.labelled  # one usable row has a label


def test_csv_rows_plus_quarantine_is_every_line_of_a_large_noisy_log(tmp_path):
    rng = random.Random(0)
    labels = [*MANGA_INTENTS, "", "bogus"]
    body = "".join(f'"{rng.choice(["where is my order", "  ", "", "hi"])} {i if rng.random() < 0.7 else ""}",'
                   f"{rng.choice(labels)}\n" for i in range(500))
    log = load_traffic(_csv(tmp_path, "text,label\n" + body), MANGA_INTENTS)
    assert len(log.rows) + len(log.quarantine) == 500
    assert set(log.quarantine["reason"]) == {"empty text", "label not among the model's intents: bogus"}
    assert (log.rows["text"] != "").all() and log.rows["label"].isin([*MANGA_INTENTS, ""]).all()


# ------------------------------------------------------------------------------------- bad files
@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.csv", None, "traffic log not found"),
    ("empty.csv", "", "the traffic log is empty"),
    ("blank.csv", "\n  \n", "the traffic log is empty"),
    ("empty.jsonl", "", "the traffic log is empty"),
    ("blank.jsonl", "\n  \n", "the traffic log is empty"),
    ("header.csv", "text,label\n", "has a header but no rows"),
    ("query.csv", "query,label\nhi,greeting\n", "missing column 'text' (found: query, label)"),
    ("query.jsonl", '{"query": "hi"}\n{"label": "price"}\n', "missing column 'text' (found: query, label)"),
    ("quote.csv", 'text,label\n"where is my order,order_status\nhi,greeting\n', "not a readable CSV file (Error"),
    ("ragged.csv", "text,label\nhi,greeting,extra\n", "not a readable CSV file"),
    ("ragged_late.csv", "text,label\nhi,greeting\nhi,greeting,extra\n", "not a readable CSV file"),
    ("latin1.csv", "text\ncaf\xe9 manga\n".encode("latin-1"), "not UTF-8 text"),
    ("random.csv", random.Random(0).randbytes(3000), "not UTF-8 text"),
    ("random.jsonl", random.Random(1).randbytes(3000), "not UTF-8 text"),
    ("printable.csv", _garbage(2, 'abc,;\t "\n', 3000), "not a readable CSV file"),
    ("blank_texts.csv", 'text,label\n"  ",greeting\n"",price\n', "no usable rows (2 read, all quarantined"),
    ("broken.jsonl", '{"text": \n[1]\n', "no usable rows (2 read, all quarantined; the first: line 1: not JSON"),
    ("log.parquet", "x", "unsupported traffic log format '.parquet' for traffic.source csv"),
    ("log.jsonl", "text\nhi\n", "format '.jsonl' for traffic.source csv; set traffic.source: jsonl"),
])
def test_bad_files_fail_with_one_line_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    source = "jsonl" if name.endswith(".jsonl") and name != "log.jsonl" else "csv"
    with pytest.raises(DataError) as error:
        load_traffic(TrafficConfig(source=source, path=path))
    text = str(error.value)
    assert message in text and str(path) in text and "\n" not in text and len(text) < 400, text
    assert error.value.exit_code == 3


# ------------------------------------------------------------------------------------------ PII
def test_reader_scrubs_pii_in_rows_and_quarantine(tmp_path):
    lines = [json.dumps({"text": f"my email is {EMAIL}, call {PHONE}", "label": "account_help"}),
             json.dumps({"text": f"refund to card {CARD}", "label": "not_an_intent"}),
             f'{{"text": "broken line from {EMAIL} {CARD}"',  # invalid JSON: the raw line is quarantined
             json.dumps({"text": "hi", "label": EMAIL})]
    log = load_traffic(_jsonl(tmp_path, lines), MANGA_INTENTS)
    assert log.rows["text"].tolist() == ["my email is [EMAIL], call [PHONE]"]
    assert len(log.quarantine) == 3 and log.counts["rows_with_pii"] == 4
    assert "refund to card [CARD]" in log.quarantine["text"].tolist()
    assert log.quarantine["reason"].iloc[-1] == "label not among the model's intents: [EMAIL]"
    _no_pii_survives(log.rows)
    _no_pii_survives(log.quarantine)
    csv = load_traffic(_csv(tmp_path, f"text\nship to {EMAIL}\n\"{CARD}   \"\n"))
    assert csv.rows["text"].tolist() == ["ship to [EMAIL]", "[CARD]"]
    _no_pii_survives(csv.rows)


def test_simulator_output_is_scrubbed_in_rows_and_quarantine(monkeypatch):
    raw = simulate_traffic(3000, seed=7, drift=0.0)
    assert raw["text"].str.contains("@").any()  # the simulator, like real logs, carries PII
    planted = pd.DataFrame({"text": [f"email {EMAIL}", f"call me {PHONE}", f"card {CARD} please", "hi"],
                            "label": ["account_help", "escalation", "price", "greeting"]})
    monkeypatch.setattr(traffic_log, "simulate_traffic", lambda n_rows, seed, drift: pd.concat([raw, planted]))
    known = tuple(label for label in MANGA_INTENTS if label != "price")  # price rows go to the quarantine
    log = load_traffic(TrafficConfig(simulator=TrafficSimulatorConfig(n_rows=3000, seed=7)), known)
    assert {"email [EMAIL]", "call me [PHONE]"} <= set(log.rows["text"])
    assert "card [CARD] please" in set(log.quarantine["text"])
    assert log.counts["rows_with_pii"] >= 3 + int(raw["text"].str.contains("@").sum())
    _no_pii_survives(log.rows)
    _no_pii_survives(log.quarantine)


def test_unpatched_simulator_through_load_traffic_has_no_email_left():
    log = load_traffic(TrafficConfig(simulator=TrafficSimulatorConfig(n_rows=3000, seed=7)))
    assert log.counts["rows_with_pii"] > 0 and not log.rows["text"].str.contains("@").any()


# ------------------------------------------------------------------------------------ for_drift
def _log(texts: list[str], labels: list[str], quarantined: int = 0) -> TrafficLog:
    quarantine = pd.DataFrame({"text": [""] * quarantined, "label": [""] * quarantined,
                               "reason": ["empty text"] * quarantined})
    return TrafficLog(pd.DataFrame({"text": texts, "label": labels}), quarantine, "test", any(labels), 1)


def test_for_drift_drops_near_duplicates_and_counts():
    log = _log(["where is order MA-123456? my email is [EMAIL]", "hi", "Hi!", "refund please"],
               ["order_status", "greeting", "greeting", "returns_refunds"], quarantined=1)
    frame, counts = for_drift(log)
    assert frame.to_dict("list") == {"text": ["where is order MA-123456? my email is [EMAIL]", "hi", "refund please"],
                                     "label": ["order_status", "greeting", "returns_refunds"]}
    assert counts == {"rows_in": 5, "quarantined": 1, "rows_with_pii": 1, "duplicates_dropped": 1,
                      "unlabelled_rows": 0, "rows": 3}


def test_for_drift_keeps_text_only_when_a_row_is_unlabelled():
    frame, counts = for_drift(_log(["a b", "c d"], ["price", ""]))
    assert list(frame.columns) == ["text"] and counts["unlabelled_rows"] == 1
    frame, _ = for_drift(_log(["a b", "c d"], ["", ""]))
    assert list(frame.columns) == ["text"]


def test_read_log_through_for_drift_end_to_end(tmp_path):
    config = _csv(tmp_path, f'text,label\n"  where is order MA-123456?  my email is {EMAIL}",order_status\n'
                            '"",greeting\nhi,greeting\nHi!,greeting\n"refund   please",returns_refunds\n')
    frame, counts = for_drift(load_traffic(config))
    assert frame.to_dict("list") == {
        "text": ["where is order MA-123456? my email is [EMAIL]", "hi", "refund please"],
        "label": ["order_status", "greeting", "returns_refunds"]}
    assert counts == {"rows_in": 5, "quarantined": 1, "rows_with_pii": 1, "duplicates_dropped": 1,
                      "unlabelled_rows": 0, "rows": 3}


def test_simulated_log_for_drift_keeps_labels():
    config = TrafficConfig(simulator=TrafficSimulatorConfig(n_rows=200, seed=3, drift=0.5))
    frame, counts = for_drift(load_traffic(config))
    assert counts["rows_in"] == 200 and counts["rows"] == len(frame) <= 200
    assert list(frame.columns) == ["text", "label"]
