"""The LLM judge over HTTP: `LLMJudge` talks to the project's OpenAI-compatible server on loopback through the
official `openai` client, asks both orders at temperature 0, ties a position-biased judge, and turns a wrong
model name into a one-line `JudgeError`."""

from collections.abc import Iterator

import pytest

from mangadistill.response.catalog import render_entry, store_knowledge
from mangadistill.response.chat import ChatResult
from mangadistill.response.judge import JudgeError, LLMJudge, preference_metrics
from mangadistill.serving.loopback import serve
from mangadistill.serving.openai_chat import create_chat_app

KEY_ENV = "MANGADISTILL_TEST_JUDGE_KEY"
KEY = "judge-key"
BERSERK = render_entry(store_knowledge().entry("Berserk"))  # 42 volumes, $14.99, in stock
GOOD = "Berserk costs $14.99 per volume and is in stock."
WRONG_PRICE = "Berserk costs $12.99 per volume and is in stock."


class RuleJudgeModel:
    """A judge model: prefers the answer quoting the catalog price, or (biased) always the first one shown."""

    def __init__(self, name: str, biased: bool = False) -> None:
        self.name, self.biased = name, biased
        self.temperatures: list[float] = []

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float) -> ChatResult:
        self.temperatures.append(temperature)
        first = messages[-1]["content"].split("Answer A:\n<<<\n", 1)[1].split("\n>>>", 1)[0]
        verdict = "A" if self.biased or "$14.99" in first else "B"
        return ChatResult(text=verdict, prompt_tokens=len(messages[-1]["content"].split()), completion_tokens=1)

    def stream(self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float) -> Iterator[str]:
        yield self.complete(messages, max_tokens=max_tokens, temperature=temperature).text


class Row:
    prompt, context, expected_action = "how much is Berserk?", (BERSERK,), "answer"


@pytest.fixture(scope="module")
def models():
    return {"fair-judge": RuleJudgeModel("fair-judge"), "biased-judge": RuleJudgeModel("biased-judge", biased=True)}


@pytest.fixture(scope="module")
def server(models):
    with serve(create_chat_app(models, api_key=KEY)) as running:
        yield running


@pytest.fixture
def judge_at(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return lambda model: LLMJudge(base_url=f"{server.url}/v1", model=model, api_key_env=KEY_ENV, max_retries=0,
                                  timeout_s=10)


def test_llm_judge_over_http_asks_both_orders_at_temperature_zero(judge_at, models):
    fair = judge_at("fair-judge")
    assert fair.prefer(Row.prompt, Row.context, "answer", GOOD, WRONG_PRICE) == "a"
    assert fair.prefer(Row.prompt, Row.context, "answer", WRONG_PRICE, GOOD) == "b"
    assert models["fair-judge"].temperatures == [0.0] * 4
    assert judge_at("biased-judge").prefer(Row.prompt, Row.context, "answer", GOOD, WRONG_PRICE) == "tie"
    metrics = preference_metrics(fair, [Row(), Row()], [GOOD, WRONG_PRICE], [WRONG_PRICE, GOOD], [WRONG_PRICE] * 2)
    # vs teacher: student wins, then loses; vs base: a win, then two equal answers the orders disagree on (a tie)
    assert metrics["teacher_preference_match"] == 0.5 and metrics["win_rate_vs_base"] == 0.75


def test_llm_judge_reports_a_wrong_model_in_one_line(judge_at):
    with pytest.raises(JudgeError, match="'no-such-judge' at http://127.0.0.1:.* failed: NotFoundError") as caught:
        judge_at("no-such-judge").prefer(Row.prompt, Row.context, "answer", GOOD, WRONG_PRICE)
    assert "\n" not in str(caught.value)
