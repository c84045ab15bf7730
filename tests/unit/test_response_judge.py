"""Pairwise preference judges: the deterministic judge's tie margin, the preference metrics' definitions (ties
count half against the base, as a match against the teacher), the LLM judge's verdict parser, both-order asking
and its one-line errors (with a stand-in client; the HTTP path is in tests/integration)."""

import math
from dataclasses import dataclass
from types import SimpleNamespace

import openai
import pytest

from mangadistill.response.catalog import render_entry, store_knowledge
from mangadistill.response.judge import (
    DeterministicJudge,
    JudgeError,
    LLMJudge,
    judge_messages,
    parse_verdict,
    preference_metrics,
)
from mangadistill.response.rubric import score_answer

KNOWLEDGE = store_knowledge()
BERSERK = render_entry(KNOWLEDGE.entry("Berserk"))  # 42 volumes, $14.99, in stock
GOOD = "Berserk costs $14.99 per volume and is in stock."
WRONG_PRICE = "Berserk costs $12.99 per volume and is in stock."


@dataclass(frozen=True)
class Row:
    prompt: str
    context: tuple[str, ...]
    expected_action: str


ROW = Row("how much is Berserk?", (BERSERK,), "answer")


def rubric(answer: str) -> float:
    return score_answer(ROW.prompt, list(ROW.context), answer, ROW.expected_action, KNOWLEDGE).rubric


# --- deterministic judge -----------------------------------------------------------------------------------------

def test_deterministic_judge_prefers_the_higher_rubric_beyond_the_tie_margin():
    judge = DeterministicJudge(knowledge=KNOWLEDGE)
    assert rubric(GOOD) - rubric(WRONG_PRICE) > 0.25
    assert judge.prefer(ROW.prompt, ROW.context, "answer", GOOD, WRONG_PRICE) == "a"
    assert judge.prefer(ROW.prompt, ROW.context, "answer", WRONG_PRICE, GOOD) == "b"
    assert judge.prefer(ROW.prompt, ROW.context, "answer", GOOD, GOOD) == "tie"


def test_deterministic_judge_ties_within_the_margin_and_the_margin_is_inclusive():
    unfinished = GOOD.rstrip(".")  # format 1 -> 0.5: 5 * 0.15 * 0.5 = 0.375 rubric points lower
    gap = rubric(GOOD) - rubric(unfinished)
    assert gap == pytest.approx(0.375)
    args = (ROW.prompt, ROW.context, "answer", GOOD, unfinished)
    assert DeterministicJudge(knowledge=KNOWLEDGE).prefer(*args) == "a"  # default margin 0.25 < 0.375
    assert DeterministicJudge(knowledge=KNOWLEDGE, tie_margin=0.375).prefer(*args) == "tie"
    assert DeterministicJudge(knowledge=KNOWLEDGE, tie_margin=0.5).prefer(*args) == "tie"
    with pytest.raises(ValueError, match="tie_margin"):
        DeterministicJudge(tie_margin=-0.1)


# --- preference metrics --------------------------------------------------------------------------------------------

class ScriptedJudge:
    """Returns the next scripted verdict; records what it was asked."""

    name = "scripted"

    def __init__(self, verdicts):
        self.verdicts = list(verdicts)
        self.asked = []

    def prefer(self, prompt, context, expected_action, answer_a, answer_b):
        self.asked.append((answer_a, answer_b))
        return self.verdicts.pop(0)


def test_teacher_preference_match_counts_wins_and_ties_and_win_rate_counts_ties_half():
    rows = [ROW] * 4
    # against the teacher: a, tie, b, tie -> 3/4 not preferring the teacher; against the base: a, tie, b, a
    judge = ScriptedJudge(["a", "tie", "b", "tie", "a", "tie", "b", "a"])
    metrics = preference_metrics(judge, rows, ["s"] * 4, ["t"] * 4, ["base"] * 4)
    assert metrics["teacher_preference_match"] == pytest.approx(0.75)
    assert metrics["win_rate_vs_base"] == pytest.approx((2 + 0.5) / 4)
    assert (metrics["student_wins_vs_teacher"], metrics["ties_vs_teacher"], metrics["teacher_wins"]) == (1, 2, 1)
    assert (metrics["student_wins_vs_base"], metrics["ties_vs_base"], metrics["base_wins"]) == (2, 1, 1)
    assert all(a == "s" for a, _ in judge.asked)  # the student is always answer A


def test_preference_metrics_without_base_answers_is_nan_and_lengths_must_match():
    metrics = preference_metrics(ScriptedJudge(["tie"]), [ROW], ["s"], ["t"], None)
    assert metrics["teacher_preference_match"] == 1.0 and math.isnan(metrics["win_rate_vs_base"])
    with pytest.raises(ValueError, match="one per prompt"):
        preference_metrics(ScriptedJudge([]), [ROW, ROW], ["s", "s"], ["t"], None)
    with pytest.raises(ValueError, match="at least one"):
        preference_metrics(ScriptedJudge([]), [], [], [], None)


def test_preference_metrics_with_the_deterministic_judge_on_real_answers():
    judge = DeterministicJudge(knowledge=KNOWLEDGE)
    student, teacher, base = [GOOD, WRONG_PRICE], [GOOD, GOOD], [WRONG_PRICE, WRONG_PRICE]
    metrics = preference_metrics(judge, [ROW, ROW], student, teacher, base)
    assert metrics["teacher_preference_match"] == 0.5  # tie on the first, the teacher wins the second
    assert metrics["win_rate_vs_base"] == pytest.approx((1 + 0.5) / 2)  # win on the first, tie on the second


# --- LLM judge -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reply, verdict", [
    ("A", "A"), ("b", "B"), (" **B** ", "B"), ("TIE", "TIE"), ("tie.", "TIE"), ('"A"', "A"),
    ("Answer A", "A"), ("Answer B is better.", "B"), ("Verdict: TIE", "TIE"), ("Final verdict: **B**", "B"),
    ("I prefer Answer B because it is accurate.", "B"), ("The better answer is A.", "A"),
    ("A\n\nExplanation: A is more accurate.", "A"), ("Answer B. Answer A invents a title.", "B"),
    ("They are equally good.", "TIE"), ("Neither answer is better: TIE", "TIE"), ("B is better", "B"),
    ("I cannot decide", None), ("Both A and B are fine", None), ("A good answer would mention the price.", None),
    ("", None),
])
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) == verdict


class FakeCompletions:
    """Stands in for `client.chat.completions`: replies by a rule of the request, records the requests."""

    def __init__(self, rule):
        self.rule, self.requests = rule, []

    def create(self, **request):
        self.requests.append(request)
        reply = self.rule(request["messages"][-1]["content"])
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=reply))])


def llm_judge(rule) -> tuple[LLMJudge, FakeCompletions]:
    judge = LLMJudge(base_url="http://judge.invalid/v1", model="judge-model")
    completions = FakeCompletions(rule)
    judge._client = SimpleNamespace(chat=SimpleNamespace(completions=completions))
    return judge, completions


def _shown_first(content: str) -> str:
    return content.split("Answer A:\n<<<\n", 1)[1].split("\n>>>", 1)[0]


def test_llm_judge_asks_both_orders_and_a_position_biased_judge_ties():
    consistent, completions = llm_judge(lambda c: "A" if _shown_first(c) == GOOD else "B")
    assert consistent.prefer(ROW.prompt, ROW.context, "answer", GOOD, WRONG_PRICE) == "a"
    assert consistent.prefer(ROW.prompt, ROW.context, "answer", WRONG_PRICE, GOOD) == "b"
    assert len(completions.requests) == 4
    assert all(r["temperature"] == 0 and r["model"] == "judge-model" for r in completions.requests)
    always_first, _ = llm_judge(lambda c: "A")
    assert always_first.prefer(ROW.prompt, ROW.context, "answer", GOOD, WRONG_PRICE) == "tie"
    undecided, _ = llm_judge(lambda c: "TIE")
    assert undecided.prefer(ROW.prompt, ROW.context, "answer", GOOD, WRONG_PRICE) == "tie"


def test_llm_judge_errors_are_one_line():
    rambling, _ = llm_judge(lambda c: "Well,\nit depends on\nmany things")
    with pytest.raises(JudgeError, match="not A, B or TIE") as caught:
        rambling.prefer(ROW.prompt, ROW.context, "answer", GOOD, WRONG_PRICE)
    assert "\n" not in str(caught.value)

    def unreachable(content):
        raise openai.APIConnectionError(request=SimpleNamespace(method="POST", url="http://judge.invalid/v1"))

    broken, _ = llm_judge(unreachable)
    with pytest.raises(JudgeError, match="judge-model.*failed: APIConnectionError") as caught:
        broken.prefer(ROW.prompt, ROW.context, "answer", GOOD, WRONG_PRICE)
    assert "\n" not in str(caught.value)


def test_llm_judge_without_its_api_key_says_which_variable_to_set(monkeypatch):
    monkeypatch.delenv("MANGADISTILL_TEST_JUDGE_KEY", raising=False)
    judge = LLMJudge(base_url="http://judge.invalid/v1", model="m", api_key_env="MANGADISTILL_TEST_JUDGE_KEY")
    with pytest.raises(JudgeError, match="MANGADISTILL_TEST_JUDGE_KEY is not set"):
        judge.prefer(ROW.prompt, ROW.context, "answer", GOOD, WRONG_PRICE)


def test_judge_messages_show_the_context_the_required_action_and_both_answers():
    system, user = judge_messages(ROW.prompt, ROW.context, "escalate", GOOD, WRONG_PRICE)
    assert system["role"] == "system" and "A, B, or TIE" in system["content"]
    assert user["content"].startswith("Context:\n[1] " + BERSERK)
    assert "Customer: how much is Berserk?" in user["content"]
    assert "Required action: escalate" in user["content"]
    assert user["content"].index(GOOD) < user["content"].index(WRONG_PRICE)
