"""Chat fine-tuning files (runbook 7.2-7.4): writing them from the response dataset (deterministic bytes, 7.3
weights by resampling), validating them as OpenAI documents (one problem per bad line, with its number), the
cookbook's token accounting, and 7.4's token and cost estimate with the runbook's own numbers."""

import hashlib
import json
from collections import Counter

import pytest

from mangadistill.errors import DataError
from mangadistill.finetune.data import (
    ChatFiles,
    FileReport,
    FineTuneDataError,
    Problem,
    chat_example,
    count_example_tokens,
    estimate_cost,
    student_token_counter,
    validate_chat_jsonl,
    write_chat_files,
)
from mangadistill.response.chat import SYSTEM_PROMPT
from mangadistill.response.dataset import ResponseDataset, ResponseRow


def words(text: str) -> int:
    """Whitespace token counter: easy to count by hand."""
    return len(text.split())


ROW_TYPES = {  # row type -> (expected action, how many train rows)
    "teacher_clean": ("answer", 4),
    "human_corrected": ("answer", 2),
    "refusal_escalation": ("refuse", 4),
    "teacher_low_confidence": ("answer", 6),
}


def _row(index: int, split: str, row_type: str, action: str = "answer",
         answer: str | None = "In stock.") -> ResponseRow:
    return ResponseRow(id=f"r{index:03d}", split=split, scenario="custom", prompt=f"question {index:03d}?",
                       context=("Berserk by Kentaro Miura, 42 volumes",), expected_action=action, answer=answer,
                       row_type=row_type)


def _dataset() -> ResponseDataset:
    rows, index = [], 0
    for row_type, (action, n) in ROW_TYPES.items():
        for _ in range(n):
            rows.append(_row(index, "train", row_type, action))
            index += 1
    rows.append(_row(index, "validation", "teacher_clean", answer="Ça coûte ¥1,200 — en stock."))
    rows += [_row(index + 1, "validation", "refusal_escalation", "refuse"), _row(index + 2, "gate", "teacher_clean")]
    return ResponseDataset(rows=tuple(rows))


def _prompt_of(example: dict) -> str:
    return example["messages"][1]["content"].rpartition("Customer: ")[2]


# --------------------------------------------------------------------------------------------- writing


def test_chat_example_appends_the_answer_as_an_assistant_turn():
    prompt = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    example = chat_example(prompt, "hello")
    assert example == {"messages": [*prompt, {"role": "assistant", "content": "hello"}]}
    example["messages"][0]["content"] = "changed"
    assert prompt[0]["content"] == "be brief", "the caller's prompt must not be shared with the example"


def test_write_chat_files_is_deterministic(tmp_path):
    first = write_chat_files(_dataset(), tmp_path / "a", seed=3)
    again = write_chat_files(_dataset(), tmp_path / "b", seed=3)
    assert isinstance(first, ChatFiles)
    assert (first.train.sha256, first.validation.sha256) == (again.train.sha256, again.validation.sha256)
    assert first.train.path.read_bytes() == again.train.path.read_bytes()
    for chat_file in (first.train, first.validation):
        data = chat_file.path.read_bytes()
        assert chat_file.sha256 == hashlib.sha256(data).hexdigest()
        assert chat_file.bytes == len(data) and data.endswith(b"\n") and b"\n\n" not in data
        assert chat_file.examples == data.count(b"\n")
    other_seed = write_chat_files(_dataset(), tmp_path / "c", seed=4)
    assert other_seed.train.sha256 != first.train.sha256


def test_train_file_resamples_by_row_type_and_validation_has_each_row_once(tmp_path):
    files = write_chat_files(_dataset(), tmp_path, seed=0)
    train = [json.loads(line) for line in files.train.path.read_text(encoding="utf-8").splitlines()]
    copies = Counter(_prompt_of(e) for e in train)
    by_type: Counter = Counter()
    for row in _dataset().split("train"):
        n = copies[row.prompt]
        assert n in {"teacher_clean": {1}, "human_corrected": {2}, "refusal_escalation": {2, 3},
                     "teacher_low_confidence": {0, 1}}[row.row_type], (row.row_type, n)
        by_type[row.row_type] += n
    assert files.resampled == dict(by_type)
    assert sum(files.resampled.values()) == len(train) == files.train.examples
    assert by_type["refusal_escalation"] > 2 * ROW_TYPES["refusal_escalation"][1] - 1  # 2.5 each: 8 to 12 copies
    assert all(e["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT} for e in train)
    assert all(e["messages"][-1] == {"role": "assistant", "content": "In stock."} for e in train)

    validation = files.validation.path.read_text(encoding="utf-8")
    assert "Ça coûte ¥1,200 — en stock." in validation, "written with ensure_ascii=False"
    assert [_prompt_of(json.loads(line)) for line in validation.splitlines()] == [
        r.prompt for r in _dataset().split("validation")]


def test_every_written_line_passes_validation(tmp_path):
    files = write_chat_files(_dataset(), tmp_path, seed=0)
    for chat_file in (files.train, files.validation):
        report = validate_chat_jsonl(chat_file.path, count=words, max_tokens_per_example=200, min_examples=1)
        assert report.ok, report.summary()
        assert report.name == chat_file.path.name and report.examples == chat_file.examples


@pytest.mark.parametrize("rows, message", [
    ([_row(0, "validation", "teacher_clean")], "no train rows"),
    ([_row(0, "train", "teacher_clean")], "no validation rows"),
    ([_row(0, "train", "teacher_clean", answer=None), _row(1, "validation", "teacher_clean")],
     "1 train rows have no answer (first: r000)"),
    ([_row(0, "train", "teacher_clean"), _row(1, "validation", "teacher_clean", answer="  ")],
     "1 validation rows have no answer (first: r001)"),
])
def test_write_chat_files_refuses_an_empty_split_or_an_unanswered_row(tmp_path, rows, message):
    with pytest.raises(DataError, match="^[^\n]+$") as caught:
        write_chat_files(ResponseDataset(rows=tuple(rows)), tmp_path, seed=0)
    assert message in str(caught.value)
    assert not (tmp_path / "train.jsonl").exists()


# ---------------------------------------------------------------------------------------- token counting


def test_count_example_tokens_follows_the_cookbook_accounting():
    messages = [
        {"role": "system", "content": "be brief"},  # 3 + 1 + 2 = 6
        {"role": "user", "content": "where is volume 3", "name": "ann"},  # 3 + 1 + 4 + 1 + 1 (name) = 10
        {"role": "assistant", "content": "in stock", "weight": 1},  # 3 + 1 + 2 = 6
    ]
    assert count_example_tokens(messages, words) == 6 + 10 + 6 + 3
    assert count_example_tokens([], words) == 3
    tool = [{"role": "assistant", "content": None, "tool_calls": [{"id": "a b"}]}]  # '[{"id":"a b"}]' is 2 words
    assert count_example_tokens(tool, words) == 3 + 1 + 2 + 3


# -------------------------------------------------------------------------------------------- validation


def _line(*messages: dict, **extra) -> str:
    return json.dumps({"messages": list(messages), **extra})


USER = {"role": "user", "content": "where is volume 3"}
ANSWER = {"role": "assistant", "content": "in stock"}
GOOD = _line(USER, ANSWER)  # 17 words-tokens


@pytest.mark.parametrize("bad, message", [
    ('{"messages": [', "not JSON (Expecting value at column 15)"),
    ('{"messages": [{"role": "user", "content": NaN}]}', "not JSON (NaN is not valid JSON)"),
    ("[1, 2]", "a JSON array, not an object"),
    ('{"prompt": "hi"}', "no 'messages' key"),
    ('{"messages": []}', "'messages' must be a non-empty list"),
    ('{"messages": "hi"}', "'messages' must be a non-empty list"),
    (_line("hi", ANSWER), "message 1: a JSON string, not an object"),
    (_line(USER, {"role": "bot", "content": "x"}),
     "message 2: unrecognised role 'bot' (use system, developer, user, assistant or tool)"),
    (_line({"content": "hi"}, ANSWER), "message 1: no 'role'"),
    (_line({"role": "user"}, ANSWER), "message 1: no 'content'"),
    (_line({"role": "user", "content": 5}, ANSWER), "message 1: content must be a string, not a JSON number"),
    (_line({"role": "user", "content": None}, ANSWER), "message 1: content is null"),
    (_line(USER, {"role": "assistant", "content": ""}), "message 2: content is empty"),
    (_line({**USER, "weight": 1}, ANSWER), "message 1: weight on a user message"),
    (_line(USER, {**ANSWER, "weight": 2}), "message 2: weight must be 0 or 1, not 2"),
    (_line(USER, {**ANSWER, "weight": True}), "message 2: weight must be 0 or 1, not True"),
    (_line({**USER, "foo": 1}, ANSWER), "message 1: unrecognised key 'foo'"),
    (_line({**USER, "tool_calls": []}, ANSWER), "message 1: tool_calls / function_call are only allowed on assistant"),
    (_line({**USER, "name": 7}, ANSWER), "message 1: name must be a string"),
    (_line(USER), "no assistant message"),
    (_line(USER, {"role": "assistant", "content": "word " * 30}), "45 tokens; the limit is 40: shorten it"),  # 8+34+3
])
def test_each_bad_line_gives_one_problem_naming_its_line(bad, message):
    data = "\n".join([GOOD, bad, GOOD, ""]).encode()
    report = validate_chat_jsonl(data, name="train.jsonl", count=words, max_tokens_per_example=40, min_examples=2)
    assert len(report.problems) == 1, report.problems
    assert report.problems[0].line == 2 and message in report.problems[0].message, report.problems[0]
    assert report.examples == 2 and report.tokens == (17, 17), "the good lines are still counted"
    assert not report.ok


def test_valid_variants_of_the_format_pass():
    lines = [
        _line({"role": "developer", "content": "be brief"}, {**USER, "name": "ann"}, {**ANSWER, "weight": 0},
              {"role": "user", "content": "and volume 4"}, {**ANSWER, "weight": 1}),
        _line(USER, {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
              {"role": "tool", "content": "42 volumes"}, ANSWER),
        _line(USER, {"role": "assistant", "function_call": {"name": "stock", "arguments": "{}"}}),
        _line(USER, ANSWER, tools=[{"type": "function"}]),
    ]
    data = ("\ufeff" + "\r\n".join(lines) + "\r\n").encode()  # Excel's byte-order mark and Windows line ends
    report = validate_chat_jsonl(data, count=words, max_tokens_per_example=100, min_examples=4)
    assert report.ok, report.summary()
    assert report.examples == 4 and report.name == "file"


def test_every_bad_line_is_counted_and_the_summary_is_one_line():
    lines = [GOOD, "oops", _line(USER), "", _line({**USER, "foo": 1}, ANSWER), "[]", "{}", GOOD]
    report = validate_chat_jsonl("\n".join(lines).encode(), name="train.jsonl", count=words,
                                 max_tokens_per_example=100, min_examples=2)
    assert [p.line for p in report.problems] == [2, 3, 5, 6, 7], "blank line 4 is skipped, not a problem"
    assert report.examples == 2
    assert report.summary() == (
        "train.jsonl: 5 of 7 examples invalid (line 2: not JSON (Expecting value at column 1); "
        "line 3: no assistant message; line 5: message 1: unrecognised key 'foo' (use role, content, name, "
        "weight, tool_calls or function_call); and 2 more); fix them and upload again")


def test_too_few_valid_examples_is_a_file_level_problem():
    report = validate_chat_jsonl(("\n".join([GOOD] * 7) + "\n").encode(), name="train.jsonl", count=words,
                                 max_tokens_per_example=100)
    assert report.problems == (Problem(0, "7 valid examples; fine-tuning needs at least 10"),)
    assert report.examples == 7
    assert report.summary() == ("train.jsonl: 7 valid examples; fine-tuning needs at least 10; "
                                "fix the file and upload again")
    enough = validate_chat_jsonl(("\n".join([GOOD] * 10)).encode(), count=words, max_tokens_per_example=100)
    assert enough.ok and enough.examples == 10


@pytest.mark.parametrize("data, message", [
    (b"", "the file is empty"),
    (b"\n  \n\n", "the file is empty"),
    (GOOD.encode() + b"\n\xff\xfe\n", "not UTF-8 text (line 2, byte 111)"),
])
def test_an_empty_or_undecodable_file_is_one_file_level_problem(data, message):
    report = validate_chat_jsonl(data, name="train.jsonl", count=words, max_tokens_per_example=100)
    assert len(report.problems) == 1 and report.problems[0].line == 0
    assert message in report.problems[0].message
    assert report.examples == 0 and report.tokens == ()


def test_a_path_and_its_bytes_give_the_same_report(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join([GOOD, "oops", GOOD]), encoding="utf-8")
    from_path = validate_chat_jsonl(path, count=words, max_tokens_per_example=100, min_examples=1)
    from_bytes = validate_chat_jsonl(path.read_bytes(), name="mine.jsonl", count=words,
                                     max_tokens_per_example=100, min_examples=1)
    assert from_path == from_bytes and from_path.name == "mine.jsonl"
    with pytest.raises(FineTuneDataError, match="cannot read"):
        validate_chat_jsonl(tmp_path / "absent.jsonl", count=words, max_tokens_per_example=100)
    with pytest.raises(TypeError, match="Path or the file's bytes"):
        validate_chat_jsonl(str(path), count=words, max_tokens_per_example=100)  # type: ignore[arg-type]


def test_raise_if_invalid_raises_a_one_line_data_error():
    report = validate_chat_jsonl(b"oops\n" + "\n".join([GOOD] * 10).encode(), name="train.jsonl", count=words,
                                 max_tokens_per_example=100)
    with pytest.raises(FineTuneDataError) as caught:
        report.raise_if_invalid()
    assert isinstance(caught.value, DataError) and caught.value.exit_code == 3
    assert str(caught.value) == report.summary() and "\n" not in str(caught.value)
    assert str(caught.value).startswith("train.jsonl: 1 of 11 examples invalid (line 1: not JSON")

    good = validate_chat_jsonl(("\n".join([GOOD] * 10)).encode(), name="train.jsonl", count=words,
                               max_tokens_per_example=100)
    good.raise_if_invalid()
    assert good.summary() == "train.jsonl: 10 examples, 170 tokens"
    assert (good.total_tokens, good.mean_tokens, good.max_tokens) == (170, 17.0, 17)


# -------------------------------------------------------------------------------------------- estimate


def test_estimate_cost_reproduces_the_runbooks_numbers():
    train = FileReport(name="train.jsonl", examples=25_600, problems=(), tokens=(420,) * 25_600)
    validation = FileReport(name="validation.jsonl", examples=3_200, problems=(), tokens=(410,) * 3_200)
    estimate = estimate_cost(train, validation, epochs=4, price_per_1m_training_tokens_usd=25.0,
                             tokenizer="whitespace words")
    assert estimate.tokens_per_epoch == 25_600 * 420 == 10_752_000
    assert estimate.training_tokens == 43_008_000
    assert estimate.training_cost_usd == pytest.approx(43.008 * 25.0, rel=1e-12)
    assert (estimate.training_examples, estimate.validation_examples, estimate.mean_tokens_per_example) == (
        25_600, 3_200, 420.0)
    assert estimate.lines() == [
        "training rows: 25,600 (validation rows: 3,200)",
        "average prompt + answer length: 420 tokens (whitespace words)",
        "total tokens / epoch: 25,600 x 420 = 10,752,000 tokens",
        "4 epochs: 43,008,000 training tokens",
        "estimated training cost: 43,008,000 x $25.00 / 1M = $1,075.20",
    ]
    assert estimate.as_dict()["training_tokens"] == 43_008_000 and estimate.as_dict()["tokenizer"] == "whitespace words"
    json.dumps(estimate.as_dict())  # serialisable as run metadata


def test_estimate_cost_of_uneven_examples_and_no_validation_file():
    train = FileReport(name="train.jsonl", examples=3, problems=(), tokens=(400, 415, 431))
    estimate = estimate_cost(train, None, epochs=2, price_per_1m_training_tokens_usd=3.0, tokenizer="t")
    assert estimate.validation_examples == 0 and estimate.tokens_per_epoch == 1_246
    assert "total tokens / epoch: 3 x 415.3 = 1,246 tokens" in estimate.lines()
    assert estimate.training_tokens == 2_492 and estimate.training_cost_usd == pytest.approx(2_492 * 3.0 / 1e6)


def test_estimate_cost_refuses_an_invalid_file():
    bad = FileReport(name="train.jsonl", examples=9, problems=(Problem(4, "no assistant message"),), tokens=(1,) * 9)
    with pytest.raises(FineTuneDataError, match="line 4: no assistant message"):
        estimate_cost(bad, None, epochs=4, price_per_1m_training_tokens_usd=25.0, tokenizer="t")
    good = FileReport(name="train.jsonl", examples=1, problems=(), tokens=(1,))
    with pytest.raises(ValueError, match="epochs"):
        estimate_cost(good, None, epochs=0, price_per_1m_training_tokens_usd=25.0, tokenizer="t")


@pytest.mark.slow  # loads the SmolLM2 tokenizer from its GGUF file (~15 s with the torch import)
def test_student_token_counter_counts_with_the_smollm2_tokenizer():
    count = student_token_counter()
    assert count("") == 0
    assert 5 <= count("Is volume 12 of One Piece in stock?") <= 15
    assert count("<|im_end|>") == 1, "special tokens count as one, and none are added"
    report = validate_chat_jsonl(("\n".join([GOOD] * 10)).encode(), count=count, max_tokens_per_example=100)
    assert report.ok and report.mean_tokens > 10
