"""The response track's data side: catalog lines, the TF-IDF retriever, the chat layout, the reference
teacher's decisions and grounded answers, and the dataset (generated prompts and splits, row typing per
runbook 7.3, resampled training rows, your chat JSONL with its quarantine and PII scrubbing)."""

import json
from collections import Counter

import pytest

from mangadistill.data.synthetic import CatalogEntry
from mangadistill.errors import DataError
from mangadistill.response.catalog import POLICIES, Policy, parse_document, render_entry, store_knowledge
from mangadistill.response.chat import SYSTEM_PROMPT, ChatModel, messages_for, parse_user_message, user_message
from mangadistill.response.dataset import (
    ROW_TYPE_WEIGHTS,
    ResponseDataset,
    ResponseRow,
    as_prompt_completion,
    assemble_dataset,
    generate_prompts,
    read_chat_jsonl,
    training_rows,
)
from mangadistill.response.prompts import SCENARIOS
from mangadistill.response.reference_teacher import (
    ESCALATION_ANSWER,
    NOT_FOUND_ANSWER,
    REFUSAL_ANSWER,
    ReferenceTeacher,
    decide_action,
    reference_answer,
)
from mangadistill.response.responder import store_retriever
from mangadistill.response.retriever import TfidfRetriever

KNOWLEDGE = store_knowledge()
RETRIEVER = store_retriever()
BERSERK_ENTRY = KNOWLEDGE.entry("Berserk")  # 42 volumes, $14.99, in stock
BERSERK = render_entry(BERSERK_ENTRY)
CHAINSAW = render_entry(KNOWLEDGE.entry("Chainsaw Man"))
POLICY = {p.topic: p for p in POLICIES}

# ---------------------------------------------------------------------------------------------- catalog


def test_every_catalog_entry_renders_and_parses_back_equal():
    assert len(KNOWLEDGE.entries) > 50
    not_round_tripped = [e.title for e in KNOWLEDGE.entries if parse_document(render_entry(e)) != e]
    assert not_round_tripped == []


def test_an_awkward_entry_round_trips_too():
    """One volume (singular), out of stock, ' by ' and parentheses inside the title, a dotted author."""
    entry = CatalogEntry(title="Stand by Me (Collector's Edition)", author="A. B-C", volumes=1, price_usd=5.0,
                         genres=("slice of life",), publisher="Kodansha", in_stock=False)
    line = render_entry(entry)
    assert "1 volume, $5.00 per volume, out of stock." in line
    assert parse_document(line) == entry


def test_every_policy_renders_and_parses_back_equal():
    for policy in POLICIES:
        assert parse_document(policy.render()) == policy
    assert POLICY["shipping"].render().startswith("Shipping policy: ")


@pytest.mark.parametrize("line", [
    "",
    "hello there",
    "Berserk by Kentaro Miura: 42 volumes",  # no publisher/genres block
    "Berserk by Kentaro Miura (Dark Horse; seinen): 42 volumes, $14.9 per volume, in stock.",  # price not x.xx
    "Berserk by Kentaro Miura (Dark Horse; seinen): 42 volumes, $14.99 per volume, maybe.",
    "shipping policy: lowercase topic is not a policy line",
])
def test_an_unparseable_line_gives_none(line):
    assert parse_document(line) is None


def test_entry_lookup_is_case_insensitive():
    assert KNOWLEDGE.entry("bErSeRk") is KNOWLEDGE.entry("BERSERK") is BERSERK_ENTRY
    assert BERSERK_ENTRY.title == "Berserk"
    assert KNOWLEDGE.entry("Starlight Courier") is None  # an unlisted title


def test_documents_are_entries_then_policies():
    documents = KNOWLEDGE.documents()
    assert len(documents) == len(KNOWLEDGE.entries) + len(POLICIES)
    assert documents[0] == render_entry(KNOWLEDGE.entries[0])
    assert documents[-len(POLICIES):] == [p.render() for p in POLICIES]


# -------------------------------------------------------------------------------------------- retriever


@pytest.mark.parametrize("prompt, expected", [
    ("how much is Berserk?", BERSERK),
    ("is Chainsaw Man in stock?", CHAINSAW),
    ("how long does shipping take", POLICY["shipping"].render()),
    ("can I get express shipping?", POLICY["express"].render()),
    ("how do I reset my password?", POLICY["account"].render()),
    ("how can I track my order?", POLICY["orders"].render()),
])
def test_the_right_document_is_retrieved_first(prompt, expected):
    retrieved = RETRIEVER.retrieve(prompt, 3)
    assert retrieved.documents[0] == expected
    assert list(retrieved.scores) == sorted(retrieved.scores, reverse=True)
    assert retrieved.top_score == retrieved.scores[0] > RETRIEVER.min_score


@pytest.mark.parametrize("prompt", ["what is your return policy?", "can I return a manga I haven't opened?",
                                    "how do refunds work?"])
def test_returns_prompts_retrieve_the_returns_policy(prompt):
    assert POLICY["returns"].render() in RETRIEVER.retrieve(prompt, 3).documents


def test_a_prompt_with_no_known_words_retrieves_nothing():
    retrieved = RETRIEVER.retrieve("xyzzy qwerty plugh", 3)
    assert retrieved.documents == () and retrieved.scores == ()
    assert retrieved.top_score == 0.0


def test_min_score_drops_weak_matches():
    strict = TfidfRetriever(KNOWLEDGE.documents(), min_score=0.99)
    assert strict.retrieve("how much is Berserk?", 3).documents == ()
    loose = TfidfRetriever(KNOWLEDGE.documents(), min_score=0.2)
    assert all(score >= 0.2 for score in loose.retrieve("is Chainsaw Man in stock?", 10).scores)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_k_is_respected(k):
    retrieved = RETRIEVER.retrieve("dark fantasy action manga volumes in stock", k)
    assert len(retrieved.documents) == len(retrieved.scores) == k


def test_a_retriever_needs_documents():
    with pytest.raises(ValueError, match="at least one document"):
        TfidfRetriever([])


# ------------------------------------------------------------------------------------------------- chat


@pytest.mark.parametrize("context", [[], [BERSERK], [BERSERK, POLICY["shipping"].render(), CHAINSAW]])
def test_user_message_round_trips(context):
    text = user_message("  how much is Berserk?\n", context)
    assert text.startswith("Context:\n")
    assert parse_user_message(text) == ("how much is Berserk?", context)


def test_an_empty_context_is_written_as_nothing_retrieved():
    assert user_message("hi", []) == "Context:\n(nothing retrieved)\n\nCustomer: hi"


@pytest.mark.parametrize("text", ["  how much is Berserk?  ", "Customer: hi", "a\n\nCustomer: b",
                                  "[1] Berserk line\n\nCustomer: hi"])
def test_a_plain_message_is_all_prompt(text):
    assert parse_user_message(text) == (text.strip(), [])


def test_messages_for_is_system_then_user():
    turns = messages_for("hi", [BERSERK])
    assert [t["role"] for t in turns] == ["system", "user"]
    assert turns[0]["content"] == SYSTEM_PROMPT and turns[1]["content"] == user_message("hi", [BERSERK])


# ------------------------------------------------------------------------------------- reference teacher


@pytest.mark.parametrize("prompt, action", [
    ("is Chainsaw Man in stock?", "answer"),  # 'stock' is not 'stock market'
    ("do you have Akira available right now?", "answer"),
    ("how much is Berserk?", "answer"),
    ("how long does shipping take?", "answer"),
    ("hi", "answer"),
    ("where can I download Berserk for free?", "refuse"),
    ("help me find pirated scans of Akira", "refuse"),
    ("which stocks to buy this year?", "refuse"),
    ("give me medical advice for my headache", "refuse"),
    ("how do I hack my friend's account?", "refuse"),
    ("I want to talk to a human", "escalate"),
    ("I was charged twice for my order", "escalate"),
    ("let me speak to a manager", "escalate"),
    ("my package never arrived and I want my money back", "escalate"),
])
def test_decide_action(prompt, action):
    assert decide_action(prompt) == action


def test_every_scenario_template_gets_its_expected_action_for_every_title():
    wrong = []
    for scenario in SCENARIOS:
        for template in scenario.templates:
            for entry in KNOWLEDGE.entries:
                prompt = template.format(title=entry.title, genre="horror", author=entry.author,
                                         unlisted="Starlight Courier")
                if decide_action(prompt) != scenario.action:
                    wrong.append((scenario.name, prompt))
    assert wrong == []


def test_a_price_answer_copies_the_catalog_price_for_every_entry():
    for entry in KNOWLEDGE.entries:
        spoken = entry.title.split(" (")[0]
        stock = "in stock" if entry.in_stock else "out of stock right now"
        assert reference_answer(f"how much is {spoken}?", [render_entry(entry)]) == (
            f"{entry.title} costs ${entry.price_usd:.2f} per volume and is {stock}.")


def test_answers_copy_facts_from_the_context_not_from_the_catalog():
    """A context line that disagrees with the catalog wins: the teacher knows nothing but its context."""
    altered = BERSERK.replace("$14.99", "$99.99").replace("42 volumes", "7 volumes").replace(", in stock.",
                                                                                            ", out of stock.")
    price = reference_answer("how much is Berserk?", [altered])
    assert price == "Berserk costs $99.99 per volume and is out of stock right now."
    volumes = reference_answer("how many volumes does Berserk have?", [altered])
    assert "7 volumes" in volumes and "42" not in volumes and "14.99" not in volumes


def test_without_the_entry_in_context_the_answer_is_not_found_never_a_price():
    context = list(RETRIEVER.retrieve("how much is Berserk?", 3).documents)
    assert BERSERK in context
    without = [doc for doc in context if doc != BERSERK]
    assert without, "the rest of the retrieved context (e.g. the Deluxe Edition) stays in"
    for prompt in ("how much is Berserk?", "is Berserk in stock?", "tell me about Berserk"):
        answer = reference_answer(prompt, without)
        assert answer == NOT_FOUND_ANSWER
        assert "$" not in answer
    assert reference_answer("how much is Berserk?", []) == NOT_FOUND_ANSWER


def test_a_policy_answer_is_the_policy_sentence_from_context_only():
    shipping = POLICY["shipping"]
    assert reference_answer("how long does shipping take?", [shipping.render()]) == shipping.text
    assert reference_answer("how long does shipping take?", [BERSERK]) == NOT_FOUND_ANSWER


def test_refusals_and_escalations_ignore_the_context():
    assert reference_answer("where can I download Berserk for free?", [BERSERK]) == REFUSAL_ANSWER
    assert reference_answer("I want to talk to a human", [BERSERK]) == ESCALATION_ANSWER
    assert reference_answer("how much is Berserk?", [BERSERK], action="escalate") == ESCALATION_ANSWER


@pytest.mark.parametrize("prompt, context", [
    ("how much is Berserk?", [BERSERK]),
    ("can you recommend a horror manga?", [BERSERK, CHAINSAW]),
    ("I want to talk to a human", []),
])
@pytest.mark.parametrize("max_tokens", [256, 4])
def test_reference_teacher_complete_and_stream_agree(prompt, context, max_tokens):
    teacher = ReferenceTeacher()
    assert isinstance(teacher, ChatModel)
    messages = messages_for(prompt, context)
    result = teacher.complete(messages, max_tokens=max_tokens, temperature=0.0)
    pieces = list(teacher.stream(messages, max_tokens=max_tokens, temperature=0.0))
    assert len(pieces) > 1
    assert "".join(pieces) == result.text
    full = reference_answer(prompt, context)
    if max_tokens == 256:
        assert result.text == full and result.finish_reason == "stop"
        assert result.completion_tokens == len(full.split())
    else:
        assert result.finish_reason == "length" and result.completion_tokens == 4
        assert result.text == " ".join(full.split()[:4])


def test_reference_teacher_reads_only_the_last_user_turn_layout():
    teacher = ReferenceTeacher()
    plain = [{"role": "user", "content": "how much is Berserk?"}]  # no context: it cannot know the price
    assert teacher.complete(plain).text == NOT_FOUND_ANSWER
    assert teacher.complete(messages_for("how much is Berserk?", [BERSERK])).text.startswith("Berserk costs $14.99")


# ------------------------------------------------------------------------------------ generated prompts


def _generated(n_rows=240, n_golden=60, seed=13):
    return generate_prompts(KNOWLEDGE, RETRIEVER, n_rows=n_rows, n_golden=n_golden, seed=seed, context_k=3)


DEFAULT = _generated()  # the sizes and seed of configs/distill_response.yaml


def test_generate_prompts_is_deterministic_for_a_seed_and_differs_across_seeds():
    again = _generated()
    assert [r.model_dump() for r in again.rows] == [r.model_dump() for r in DEFAULT.rows]
    other = _generated(seed=14)
    assert [r.prompt for r in other.rows] != [r.prompt for r in DEFAULT.rows]


def test_generated_rows_carry_their_scenario_action_and_retrieval():
    assert len(DEFAULT.rows) == 300 and len(DEFAULT.split("golden")) == 60
    action = {s.name: s.action for s in SCENARIOS}
    for row in DEFAULT.rows:
        assert row.expected_action == action[row.scenario]
        assert row.answer is None and row.row_type is None
        retrieved = RETRIEVER.retrieve(row.prompt, 3)
        assert row.context == retrieved.documents and row.retrieval_score == retrieved.top_score
    assert len({r.id for r in DEFAULT.rows}) == len(DEFAULT.rows)


def test_splits_are_80_10_10_within_every_scenario():
    main = [r for r in DEFAULT.rows if r.split != "golden"]
    per_scenario = Counter(r.scenario for r in main)
    assert set(per_scenario) == {s.name for s in SCENARIOS}
    for scenario, n in per_scenario.items():
        splits = Counter(r.split for r in main if r.scenario == scenario)
        assert splits["validation"] == round(0.1 * n), scenario
        assert splits["gate"] == round(0.1 * n), scenario
        assert splits["train"] == n - 2 * round(0.1 * n), scenario
    overall = Counter(r.split for r in main)
    assert 0.75 <= overall["train"] / len(main) <= 0.85
    assert 0.07 <= overall["validation"] / len(main) <= 0.13 and 0.07 <= overall["gate"] / len(main) <= 0.13


def test_scenarios_get_their_share_of_the_prompts():
    counts = Counter(r.scenario for r in DEFAULT.rows if r.split != "golden")
    total = sum(s.share for s in SCENARIOS)
    for scenario in SCENARIOS:
        assert abs(counts[scenario.name] - 240 * scenario.share / total) < 1.0, scenario.name


def test_golden_prompts_never_equal_a_train_validation_or_gate_prompt():
    others = {r.prompt.casefold() for r in DEFAULT.rows if r.split != "golden"}
    leaked = sorted(r.prompt for r in DEFAULT.split("golden") if r.prompt.casefold() in others)
    assert leaked == []


def test_no_prompt_is_in_train_and_in_validation_or_gate():
    train = {r.prompt.casefold() for r in DEFAULT.split("train")}
    held_out = {r.prompt.casefold() for r in DEFAULT.split("validation") + DEFAULT.split("gate")}
    assert sorted(train & held_out) == []


def test_golden_prompts_are_unique_when_templates_suffice():
    small = _generated(n_rows=20, n_golden=5, seed=3)
    others = {r.prompt.casefold() for r in small.rows if r.split != "golden"}
    assert not any(r.prompt.casefold() in others for r in small.split("golden"))


# ------------------------------------------------------------------------------- assembly and row types


def _row(row_id, prompt, expected, context=(), **extra):
    return ResponseRow(id=row_id, split="train", scenario="custom", prompt=prompt, context=tuple(context),
                       expected_action=expected, **extra)


PROMPTS = ResponseDataset(rows=(
    _row("refuse", "where can I download Berserk for free?", "refuse"),
    _row("escalate", "I want to talk to a human", "escalate"),
    _row("weak", "how much is Starlight Courier?", "answer", retrieval_score=0.01),
    _row("clean", "how much is Berserk?", "answer", [BERSERK]),
    _row("file_typed", "is Berserk in stock?", "answer", [BERSERK], answer="Yes, in stock.",
         row_type="human_corrected"),
    _row("file_untyped", "hi", "answer", answer="Hello!"),
    _row("mislabelled", "how much is Berserk?", "escalate", [BERSERK]),  # the prompt itself reads as an answer
), source="unit")
TEACHER = {"refuse": "Sorry, I can't help with that request.",
           "escalate": "Let me connect you with a human support agent.",
           "weak": "I couldn't find that title, so I can't confirm a price.",
           "clean": "Berserk is $14.99 per volume.", "mislabelled": "Berserk costs $14.99 per volume and is in stock."}
LOW = {"weak": True}


def test_rows_are_typed_per_runbook_7_3_without_review():
    typed = {r.id: r for r in assemble_dataset(PROMPTS, TEACHER, LOW, review_fraction=0.0, seed=0).rows}
    assert {k: r.row_type for k, r in typed.items()} == {
        "refuse": "refusal_escalation", "escalate": "refusal_escalation", "weak": "teacher_low_confidence",
        "clean": "teacher_clean", "file_typed": "human_corrected", "file_untyped": "teacher_clean",
        "mislabelled": "refusal_escalation"}
    for key in ("refuse", "escalate", "weak", "clean"):
        assert typed[key].answer == TEACHER[key]  # unreviewed teacher answers are kept as written
    assert typed["file_typed"].answer == "Yes, in stock." and typed["file_untyped"].answer == "Hello!"
    # the prompt's own action (answer) is not the expected one: the careful agent's answer for 'escalate'
    assert typed["mislabelled"].answer == ESCALATION_ANSWER
    assert [typed[r.id].training_weight() for r in PROMPTS.rows] == [2.5, 2.5, 0.5, 1.0, 2.0, 1.0, 2.5]


def test_reviewed_rows_become_human_corrected_or_refusal_escalation():
    typed = {r.id: r for r in assemble_dataset(PROMPTS, TEACHER, LOW, review_fraction=1.0, seed=0).rows}
    assert typed["weak"].row_type == typed["clean"].row_type == "human_corrected"
    assert typed["clean"].answer == "Berserk costs $14.99 per volume and is in stock."
    assert typed["weak"].answer == NOT_FOUND_ANSWER
    assert (typed["refuse"].row_type, typed["refuse"].answer) == ("refusal_escalation", REFUSAL_ANSWER)
    assert (typed["escalate"].row_type, typed["escalate"].answer) == ("refusal_escalation", ESCALATION_ANSWER)
    assert typed["file_typed"].answer == "Yes, in stock."  # rows of your file are never re-reviewed


def test_review_fraction_is_seeded_and_roughly_honoured():
    rows = tuple(_row(f"r{i}", "how much is Berserk?", "answer", [BERSERK]) for i in range(400))
    answers = {r.id: "teacher" for r in rows}
    first = assemble_dataset(ResponseDataset(rows=rows), answers, {}, review_fraction=0.15, seed=5)
    again = assemble_dataset(ResponseDataset(rows=rows), answers, {}, review_fraction=0.15, seed=5)
    assert first == again
    reviewed = sum(r.row_type == "human_corrected" for r in first.rows)
    assert 40 <= reviewed <= 80  # 60 expected, binomial sd ~7


def test_assembly_keeps_the_quarantine_and_source():
    from mangadistill.response.dataset import QuarantinedRow

    prompts = PROMPTS.model_copy(update={"quarantined": (QuarantinedRow(file="rows.jsonl", line=3, reason="x", raw="{"),)})
    out = assemble_dataset(prompts, TEACHER, LOW, review_fraction=0.0, seed=0)
    assert out.quarantined == prompts.quarantined and out.source == "unit"


def test_a_teacher_answer_taking_the_wrong_action_is_corrected():
    prompts = ResponseDataset(rows=(_row("a", "how much is Berserk?", "answer", [BERSERK]),))
    row = assemble_dataset(prompts, {"a": REFUSAL_ANSWER}, {}, review_fraction=0.0, seed=0).rows[0]
    assert row.answer == "Berserk costs $14.99 per volume and is in stock."
    assert row.row_type == "human_corrected"


# ------------------------------------------------------------------------------------------ training rows


def _typed_rows(n_per_type):
    return [_row(f"{row_type}-{i}", f"prompt {i}", "answer", answer=f"{row_type}|{i}", row_type=row_type)
            for row_type in ROW_TYPE_WEIGHTS for i in range(n_per_type)]


def test_training_rows_resample_by_the_7_3_weights():
    assert ROW_TYPE_WEIGHTS == {"human_corrected": 2.0, "teacher_clean": 1.0, "refusal_escalation": 2.5,
                                "teacher_low_confidence": 0.5}
    n = 400
    out, copies = training_rows(_typed_rows(n), seed=0)
    per_row = Counter(row["completion"][0]["content"] for row in out)
    per_type = Counter()
    for answer, count in per_row.items():
        per_type[answer.split("|")[0]] += count
    assert copies == per_type and sum(copies.values()) == len(out)
    for i in range(n):
        assert per_row[f"human_corrected|{i}"] == 2
        assert per_row[f"teacher_clean|{i}"] == 1
        assert per_row[f"refusal_escalation|{i}"] in (2, 3)
        assert per_row[f"teacher_low_confidence|{i}"] in (0, 1)
    assert copies["human_corrected"] == 2 * n and copies["teacher_clean"] == n
    # the fractional parts: 0.5 of a copy per row on average (binomial sd 10 over 400 rows)
    assert abs(copies["refusal_escalation"] - 2.5 * n) <= 40
    assert abs(copies["teacher_low_confidence"] - 0.5 * n) <= 40
    assert 0 < copies["teacher_low_confidence"] < n


def test_training_rows_are_seeded_shuffled_and_honour_an_explicit_weight():
    rows = _typed_rows(20) + [_row("heavy", "p", "answer", answer="heavy|0", row_type="teacher_clean", weight=3.0)]
    out, copies = training_rows(rows, seed=1)
    assert training_rows(rows, seed=1) == (out, copies)
    assert sum(row["completion"][0]["content"] == "heavy|0" for row in out) == 3
    assert copies["teacher_clean"] == 20 + 3
    order = [*ROW_TYPE_WEIGHTS, "heavy"]
    types = [row["completion"][0]["content"].split("|")[0] for row in out]
    assert types != sorted(types, key=order.index)  # not in input order


def test_as_prompt_completion_is_system_and_user_then_assistant():
    row = _row("a", "how much is Berserk?", "answer", [BERSERK], answer="Berserk costs $14.99.", system="Be brief.")
    example = as_prompt_completion(row)
    assert example == {
        "prompt": [{"role": "system", "content": "Be brief."},
                   {"role": "user", "content": user_message("how much is Berserk?", [BERSERK])}],
        "completion": [{"role": "assistant", "content": "Berserk costs $14.99."}],
    }
    with pytest.raises(ValueError, match="no answer"):
        as_prompt_completion(_row("b", "hi", "answer"))


# ----------------------------------------------------------------------------------------- chat JSONL

EMAIL, CARD = "jane.doe@example.com", "4111 1111 1111 1111"


def _user(text):
    return {"role": "user", "content": text}


def _write(path, records):
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


VALID = [
    {"messages": [_user("how much is Berserk?"), {"role": "assistant", "content": "Berserk costs $14.99."}]},
    {"messages": [{"role": "system", "content": "Be brief."}, _user("hi")]},
    {"messages": [_user(user_message("is Berserk in stock?", [BERSERK, POLICY["shipping"].render()]))]},
    {"messages": [_user("where can I get scans?"), {"role": "assistant", "content": REFUSAL_ANSWER}],
     "weight": 3.0, "row_type": "human_corrected", "expected_action": "refuse", "split": "gate"},
    {"messages": [_user(f"I'm {EMAIL}, card {CARD}: how much is Akira?"),
                  {"role": "assistant", "content": f"Noted {EMAIL}. Akira costs $29.99."}]},
]
BAD = [  # (line, reason it must be quarantined with)
    ('{"messages": [', "not JSON"),
    ({"prompt": "hi"}, "no 'messages' list"),
    ({"messages": [{"role": "tool", "content": "x"}, _user("hi")]}, "unknown role"),
    ({"messages": [_user("hi"), _user("again")]}, "one exchange per row"),
    ({"messages": [_user("hi"), {"role": "assistant", "content": "  "}]}, "the assistant turn is empty"),
    ({"messages": [_user(f"mail {EMAIL} card {CARD}")], "weight": -1}, "weight -1 is not a positive number"),
    ({"messages": [_user("hi")], "row_type": "gold"}, "row_type 'gold' is not one of"),
    ({"messages": [_user("hi")], "expected_action": "maybe"}, "expected_action 'maybe' is not one of"),
    (f'{{"messages": [{{"role": "user", "content": "{EMAIL} {CARD}"', "not JSON"),
]


def test_read_chat_jsonl_reads_valid_rows_and_quarantines_every_bad_line(tmp_path):
    records = VALID + [""] + [line for line, _ in BAD]  # a blank line is not a row
    dataset = read_chat_jsonl(_write(tmp_path / "rows.jsonl", records), seed=0)
    assert len(dataset.rows) == len(VALID) and len(dataset.quarantined) == len(BAD)
    assert dataset.counts()["quarantined"] == {"rows": len(BAD)}
    assert dataset.source == str(tmp_path / "rows.jsonl")
    first_bad_line = len(VALID) + 2
    assert [q.line for q in dataset.quarantined] == list(range(first_bad_line, first_bad_line + len(BAD)))
    for quarantined, (_, reason) in zip(dataset.quarantined, BAD, strict=True):
        assert reason in quarantined.reason, (quarantined.reason, reason)

    rows = dataset.rows
    assert (rows[0].prompt, rows[0].answer, rows[0].context, rows[0].system) == (
        "how much is Berserk?", "Berserk costs $14.99.", (), SYSTEM_PROMPT)
    assert (rows[1].prompt, rows[1].answer, rows[1].system) == ("hi", None, "Be brief.")
    assert (rows[2].prompt, rows[2].context) == ("is Berserk in stock?", (BERSERK, POLICY["shipping"].render()))
    assert [r.expected_action for r in rows[:3]] == ["answer", "answer", "answer"]
    gate = rows[3]
    assert (gate.split, gate.weight, gate.row_type, gate.expected_action) == ("gate", 3.0, "human_corrected", "refuse")
    assert gate.training_weight() == 3.0
    assert all(r.scenario == "custom" and not r.id.startswith("unsplit-") for r in rows)


def test_personal_data_is_scrubbed_from_rows_and_from_the_quarantine(tmp_path):
    dataset = read_chat_jsonl(_write(tmp_path / "rows.jsonl", VALID + [line for line, _ in BAD]), seed=0)
    row = dataset.rows[4]
    assert "[EMAIL]" in row.prompt and "[CARD]" in row.prompt and row.prompt.endswith("how much is Akira?")
    assert "[EMAIL]" in row.answer
    stored = json.dumps([r.model_dump(mode="json") for r in dataset.rows + tuple(dataset.quarantined)])
    assert EMAIL not in stored and CARD not in stored and "4111" not in stored
    planted = [q for q in dataset.quarantined if "[EMAIL]" in q.raw]
    assert len(planted) == 2 and all("[CARD]" in q.raw for q in planted)  # the weight line and the broken JSON


def test_personal_data_in_a_system_turn_is_scrubbed(tmp_path):
    record = {"messages": [{"role": "system", "content": f"Shopper {EMAIL}, card {CARD}."}, _user("hi")]}
    row = read_chat_jsonl(_write(tmp_path / "rows.jsonl", [record]), seed=0).rows[0]
    assert EMAIL not in row.system and CARD not in row.system


def test_rows_without_a_split_are_cut_80_10_10(tmp_path):
    records = [{"messages": [_user(f"how much is volume {i} of Berserk?")]} for i in range(50)]
    records.append({"messages": [_user("kept in train")], "split": "train"})
    dataset = read_chat_jsonl(_write(tmp_path / "rows.jsonl", records), seed=7)
    unsplit = Counter(r.split for r in dataset.rows if r.prompt != "kept in train")
    assert unsplit == {"train": 40, "validation": 5, "gate": 5}
    assert next(r for r in dataset.rows if r.prompt == "kept in train").split == "train"
    again = read_chat_jsonl(tmp_path / "rows.jsonl", seed=7)
    assert [r.split for r in again.rows] == [r.split for r in dataset.rows]


def test_golden_path_rows_land_in_the_golden_split(tmp_path):
    rows = _write(tmp_path / "rows.jsonl", VALID[:2])
    golden = _write(tmp_path / "golden.jsonl", [{"messages": [_user("is Akira in stock?")], "split": "train"},
                                                {"messages": [_user("hi again")]}, "not json"])
    dataset = read_chat_jsonl(rows, seed=0, golden_path=golden)
    assert [r.prompt for r in dataset.split("golden")] == ["is Akira in stock?", "hi again"]
    assert not any(r.id.startswith("unsplit-") for r in dataset.rows)
    assert len(dataset.quarantined) == 1 and "not JSON" in dataset.quarantined[0].reason


@pytest.mark.parametrize("records, reason", [
    ([{"prompt": "hi"}, {"prompt": "again"}, "{"], "no 'messages' list"),
    ([], None),
])
def test_a_file_with_no_usable_rows_is_a_one_line_data_error(tmp_path, records, reason):
    path = _write(tmp_path / "bad.jsonl", records)
    with pytest.raises(DataError) as raised:
        read_chat_jsonl(path, seed=0)
    message = str(raised.value)
    assert "\n" not in message
    assert str(path) in message and "no usable chat rows" in message and "'messages' list" in message
    if reason:
        assert f"most common problem: {reason}" in message


def test_policy_and_entry_types_are_distinct():
    """`parse_document` tells the two kinds apart (the teacher relies on it)."""
    assert isinstance(parse_document(BERSERK), CatalogEntry)
    assert isinstance(parse_document(POLICY["returns"].render()), Policy)
