"""The response rubric (runbook 7.5) and hallucination rate (18.4): claims checked against the catalog,
action detection on paraphrases, each axis, the split summary and its empty-denominator rules, and the
reference teacher scored by it (it must never hallucinate)."""

import random

import pytest

from mangadistill.data.synthetic import generate_intent_dataset
from mangadistill.response.catalog import POLICIES, render_entry, store_knowledge
from mangadistill.response.prompts import SCENARIOS, fill_prompt
from mangadistill.response.reference_teacher import (
    ESCALATION_ANSWER,
    GREETING_ANSWER,
    NOT_FOUND_ANSWER,
    REFUSAL_ANSWER,
    decide_action,
    reference_answer,
)
from mangadistill.response.retriever import TfidfRetriever
from mangadistill.response.rubric import (
    AnswerScore,
    check_claims,
    conciseness_score,
    cost_per_1k,
    cost_reduction,
    detect_action,
    extract_claims,
    score_answer,
    summarise,
    word_count,
)

KNOWLEDGE = store_knowledge()
BERSERK = render_entry(KNOWLEDGE.entry("Berserk"))  # 42 volumes, $14.99, in stock
AKIRA = render_entry(KNOWLEDGE.entry("Akira"))  # 6 volumes, $29.99, out of stock
SHIPPING_POLICY, RETURNS_POLICY = (next(p for p in POLICIES if p.topic == topic) for topic in ("shipping", "returns"))
SHIPPING, RETURNS = SHIPPING_POLICY.render(), RETURNS_POLICY.render()


def unsupported(answer: str, context: list[str] = (), **kwargs) -> list[str]:
    claims = extract_claims(answer, KNOWLEDGE, context, **kwargs)
    return [c.describe() for c in check_claims(claims, KNOWLEDGE, context) if not c.supported]


def claims_of(answer: str, kind: str) -> list[tuple]:
    return [(c.value, c.subject) for c in extract_claims(answer, KNOWLEDGE) if c.kind == kind]


@pytest.fixture(scope="module")
def retriever() -> TfidfRetriever:
    return TfidfRetriever(KNOWLEDGE.documents())


# --- claims ----------------------------------------------------------------------------------------------------

def test_a_hallucinated_price_is_caught_and_the_catalog_price_is_not():
    assert unsupported("Berserk costs $12.99 per volume and is in stock.") == ["Berserk: $12.99 (catalog: $14.99)"]
    assert unsupported("Berserk costs $14.99 per volume and is in stock.") == []
    assert claims_of("Berserk costs $14.99 per volume.", "price") == [(14.99, "Berserk")]


def test_an_invented_title_is_caught_in_every_way_an_answer_presents_a_product():
    bullet = "- Moonlight Blades by Hiro Tanaka: 3 volumes, $9.99 per volume, in stock."
    problems = unsupported(bullet)
    assert "invented title 'Moonlight Blades'" in problems and "author 'Hiro Tanaka': no catalog author" in problems
    assert "$9.99: about invented title 'Moonlight Blades'" in problems  # its facts cannot be supported either
    night = unsupported("The Night of the Red by Kaito Mori is a great read.")
    assert night[0] == "invented title 'The Night of the Red'"
    assert unsupported('Check out "Crimson Lotus Academy", it is lovely.') == ["invented title 'Crimson Lotus Academy'"]
    # a catalog title inside a longer product name is not a mention of the catalog title
    assert unsupported("Berserk Ultimate Edition by Kentaro Miura collects everything.") == [
        "invented title 'Berserk Ultimate Edition'"]
    # real titles, edition aliases, abbreviations and punctuation in titles are not invented
    assert unsupported("Try Haikyu!! by Haruichi Furudate, Kaiju No. 8 or Dr. Stone by Riichiro Inagaki.") == []
    assert unsupported("Vagabond has 12 volumes at $24.99 each; Monster is 9 volumes.") == []


def test_a_wrong_author_is_caught_and_co_authors_are_accepted():
    assert unsupported("Berserk by Naoki Urasawa has 42 volumes.") == [
        "Berserk: author 'Naoki Urasawa' (catalog: Kentaro Miura)"]
    assert unsupported("Death Note by Tsugumi Ohba and Takeshi Obata has 12 volumes.") == []
    assert unsupported("Death Note was written by Tsugumi Ohba.") == []
    assert unsupported("Mob Psycho 100 by ONE: 16 volumes, $12.99 per volume, in stock.") == []
    # a known author name is no title: "Akira Toriyama" does not mention Akira
    assert claims_of("Dragon Ball by Akira Toriyama has 42 volumes.", "title") == [("Dragon Ball", "Dragon Ball")]
    # "by" before a date, a carrier or a publisher claims no author
    assert claims_of("Orders ship by Friday by UPS. It is published by Viz Media.", "author") == []


def test_wrong_stock_is_caught_and_negations_read_as_out_of_stock():
    assert unsupported("Akira is in stock at $29.99 per volume.") == ["Akira: in stock (catalog: out of stock)"]
    assert unsupported("Akira is out of stock right now.") == []
    assert unsupported("Akira isn't in stock at the moment.") == []
    assert unsupported("Berserk is sold out.") == ["Berserk: out of stock (catalog: in stock)"]
    assert claims_of("I'll check whether Akira is in stock.", "stock") == []  # a question, not a claim


def test_wrong_volume_count_is_caught_and_quantifiers_are_not_counts():
    assert unsupported("Berserk has 40 volumes.") == ["Berserk: 40 volumes (catalog: 42 volumes)"]
    assert unsupported("Berserk is a 42-volume epic.") == []
    assert claims_of("Start with the first 3 volumes of Berserk.", "volumes") == []


def test_policy_amounts_are_checked_against_the_store_policies():
    assert unsupported(SHIPPING_POLICY.text) == []  # $4.99, $35, 3-5 business days
    assert unsupported("Shipping is $4.99, and it's free on orders over $35.") == []
    assert unsupported("Berserk ships free on orders over $35, and shipping is $4.99 otherwise.") == []
    assert unsupported("Express shipping costs $12.99 and takes 1-2 business days.") == []
    assert unsupported("Standard shipping costs $5.99.") == ["$5.99: matches no title and no store policy"]
    assert unsupported("Returns are accepted within 30 days.") == []
    assert unsupported("Returns are accepted within 60 days, and code MANGA takes 15% off.") == [
        "60 days: in no store policy", "15%: in no store policy"]
    # a budget the shopper set is not a price claim
    assert unsupported("With a budget of $50, try Berserk at $14.99 per volume.") == []


def test_facts_tie_to_the_nearest_title_and_to_the_asked_title_as_a_fallback():
    swapped = "Berserk has 6 volumes and Akira has 42 volumes."
    assert unsupported(swapped) == ["Berserk: 6 volumes (catalog: 42 volumes)",
                                    "Akira: 42 volumes (catalog: 6 volumes)"]
    assert unsupported("Berserk is a classic. It has 42 volumes and costs $14.99 per volume.") == []
    assert unsupported("It is in stock and costs $14.99 per volume.") == ["in stock: tied to no title",
                                                                         "$14.99: matches no title and no store policy"]
    assert unsupported("It is in stock and costs $14.99 per volume.", fallback_subject="Berserk") == []
    mixed = "Berserk is $14.99 per volume; standard shipping is $4.99 and free over $35."
    assert [(c.value, c.subject) for c in extract_claims(mixed, KNOWLEDGE) if c.kind == "price"] == [
        (14.99, "Berserk"), (4.99, None), (35.0, None)]


def test_a_context_line_the_catalog_lacks_counts_as_known():
    line = "Iron Sakura by Mei Kato (Yen Press; action, seinen): 4 volumes, $11.99 per volume, in stock."
    answer = "Iron Sakura by Mei Kato has 4 volumes at $11.99 per volume."
    assert len(unsupported(answer)) == 4
    assert unsupported(answer, [line]) == []


# --- action -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer, action", [
    (REFUSAL_ANSWER, "refuse"),
    ("I'm sorry, but I cannot assist with that request.", "refuse"),
    ("Unfortunately that's not something I can help with.", "refuse"),
    ("I can only help with manga, orders and shipping questions.", "refuse"),
    ("I'm not able to provide medical advice.", "refuse"),
    ("Sorry, I won't be able to help with piracy.", "refuse"),
    ("I must decline that request.", "refuse"),
    (ESCALATION_ANSWER, "escalate"),
    ("Let me get a human agent to look into this for you.", "escalate"),
    ("I'm transferring you to our support team now.", "escalate"),
    ("Please hold while I connect you to a live representative.", "escalate"),
    ("I've escalated this; someone from our support team will email you today.", "escalate"),
    ("A person will follow up within a day.", "escalate"),
    ("I can't help but recommend Berserk!", "answer"),
    (NOT_FOUND_ANSWER, "answer"),
    ("I'm not able to find that title in our catalog.", "answer"),
    ("Shoppers can track an order under Account > Orders; MangaAssist cannot see order details.", "answer"),
    ("Our human-translated editions read well.", "answer"),
    (GREETING_ANSWER, "answer"),
])
def test_detect_action_on_paraphrases(answer, action):
    assert detect_action(answer) == action


# --- axes -------------------------------------------------------------------------------------------------------

def test_factuality_is_zero_for_an_invented_title_and_the_supported_share_otherwise():
    wrong_price = score_answer("how much is Berserk?", [BERSERK], "Berserk costs $12.99 per volume and is in stock.",
                               "answer", KNOWLEDGE)
    assert wrong_price.factuality == pytest.approx(2 / 3) and wrong_price.hallucinated
    assert wrong_price.failures == ("Berserk: $12.99 (catalog: $14.99)",)
    invented = score_answer("recommend a seinen manga", [BERSERK], "- Moonlight Blades by Hiro Tanaka: 3 volumes.",
                            "answer", KNOWLEDGE)
    assert invented.factuality == 0.0 and invented.hallucinated


def test_relevance_wants_the_asked_title_and_fact_on_genre_picks_and_the_matching_policy():
    def relevance(prompt, context, answer, expected="answer"):
        return score_answer(prompt, context, answer, expected, KNOWLEDGE).relevance

    assert relevance("how much is Berserk?", [BERSERK], "Berserk costs $14.99 per volume.") == 1.0
    assert relevance("how much is Berserk?", [BERSERK], "Berserk is in stock.") == 0.5  # the price is missing
    assert relevance("how much is Berserk?", [BERSERK], NOT_FOUND_ANSWER) == 0.0
    horror = "- Berserk by Kentaro Miura: 42 volumes, $14.99 per volume, in stock."
    assert relevance("recommend a horror manga", [BERSERK, AKIRA], horror) == 1.0
    off_genre = "- Akira by Katsuhiro Otomo: 6 volumes, $29.99 per volume, out of stock."
    assert relevance("recommend a horror manga", [BERSERK, AKIRA], off_genre) == 0.5
    assert relevance("recommend a horror manga", [BERSERK, AKIRA], NOT_FOUND_ANSWER) == 0.0
    assert relevance("how much is shipping?", [SHIPPING, RETURNS], SHIPPING_POLICY.text) == 1.0
    assert relevance("how much is shipping?", [SHIPPING, RETURNS], RETURNS_POLICY.text) < 0.5
    assert relevance("where can I download Berserk for free?", [BERSERK], REFUSAL_ANSWER, "refuse") == 1.0
    assert relevance("how much is Berserk?", [BERSERK], REFUSAL_ANSWER) == 0.0


def test_policy_axis_is_whether_the_detected_action_is_the_expected_one():
    assert score_answer("I want a human", [], ESCALATION_ANSWER, "escalate", KNOWLEDGE).policy == 1.0
    wrong = score_answer("I want a human", [], REFUSAL_ANSWER, "escalate", KNOWLEDGE)
    assert wrong.policy == 0.0 and wrong.action == "refuse" and wrong.relevance == 0.0


def test_chat_markup_role_prefixes_and_sloppy_shape_lose_format():
    clean = "Berserk costs $14.99 per volume and is in stock."
    assert score_answer("how much is Berserk?", [BERSERK], clean, "answer", KNOWLEDGE).format == 1.0
    for leaked in (clean + "<|im_end|>", "assistant: " + clean, clean + "\n</s>", "Customer: " + clean):
        score = score_answer("how much is Berserk?", [BERSERK], leaked, "answer", KNOWLEDGE)
        assert score.format == 0.0 and score.rubric < 5.0, leaked
    unfinished = score_answer("how much is Berserk?", [BERSERK], clean.rstrip("."), "answer", KNOWLEDGE)
    assert unfinished.format == 0.5 and unfinished.format_issues == ("no terminal punctuation",)
    looped = score_answer("how much is Berserk?", [BERSERK], clean + " " + clean, "answer", KNOWLEDGE)
    assert "repeated sentence" in looped.format_issues and looped.format == 0.5
    prose = "Try Berserk by Kentaro Miura (42 volumes) or Akira by Katsuhiro Otomo (6 volumes)."
    picks = score_answer("recommend a seinen manga", [BERSERK, AKIRA], prose, "answer", KNOWLEDGE)
    assert picks.format_issues == ("recommendations not bulleted",) and picks.format == pytest.approx(2 / 3)


def test_a_rambling_answer_loses_conciseness_linearly_to_zero_at_twice_the_limit():
    sentence = "Berserk is a dark fantasy epic that many readers truly love deeply. "  # 12 words
    assert word_count(sentence) == 12 and word_count("- Berserk: $14.99.") == 2
    assert conciseness_score(sentence * 5, 60) == 1.0
    assert conciseness_score(sentence * 7 + "It is dark and very long.", 60) == pytest.approx(0.5)  # 90 words
    rambling = "Berserk " + "is a long and winding dark fantasy story " * 18 + "that fans love."  # 148 words
    score = score_answer("tell me about Berserk", [BERSERK], rambling, "answer", KNOWLEDGE)
    assert score.conciseness == 0.0 and score.format == 1.0 and score.rubric == pytest.approx(4.5)
    assert conciseness_score(sentence * 7, 100) == 1.0  # the limit is configurable


def test_rubric_is_the_weighted_sum_of_the_axes_out_of_five():
    score = score_answer("how much is Berserk?", [BERSERK], "Berserk costs $12.99 per volume and is in stock",
                         "answer", KNOWLEDGE)
    expected = 5 * (0.30 * score.factuality + 0.25 * score.relevance + 0.20 * score.policy + 0.15 * score.format
                    + 0.10 * score.conciseness)
    assert score.rubric == pytest.approx(expected) and score.factuality < 1 and score.format < 1


def test_an_empty_answer_scores_zero_everywhere():
    score = score_answer("how much is Berserk?", [BERSERK], "   ", "answer", KNOWLEDGE)
    assert score.rubric == 0.0 and score.format_issues == ("empty",) and not score.hallucinated


# --- the reference teacher, scored --------------------------------------------------------------------------------

def _scenario_rows(retriever, n: int, seed: int) -> list[tuple[str, str, list[str], str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        scenario = SCENARIOS[i % len(SCENARIOS)]
        prompt = fill_prompt(rng.choice(scenario.templates), rng, KNOWLEDGE)
        rows.append((scenario.name, prompt, list(retriever.retrieve(prompt, 4).documents), scenario.action))
    return rows


def test_reference_answers_score_full_marks_on_the_response_scenarios(retriever):
    rows = _scenario_rows(retriever, 64, seed=11)
    for name, prompt, context, action in rows:
        answer = reference_answer(prompt, context)
        score = score_answer(prompt, context, answer, action, KNOWLEDGE, 60)
        assert (score.factuality, score.relevance, score.policy, score.format) == (1.0, 1.0, 1.0, 1.0), (
            name, prompt, answer, score)
        assert score.rubric == pytest.approx(5.0 if word_count(answer) <= 60 else 5 - 0.5 * (word_count(answer) - 60)
                                             / 60), (prompt, answer)
    recommendations = [r for r in rows if r[0] == "recommendation"]
    assert recommendations and all(reference_answer(p, c).count("\n- ") >= 1 for _, p, c, _ in recommendations)


def test_the_reference_teacher_never_hallucinates_even_on_noisy_prompts(retriever):
    prompts = list(generate_intent_dataset(60, seed=3, ambiguous_rate=0.0, duplicate_rate=0.0,
                                           malformed_rate=0.0).text)
    prompts += [p for _, p, _, _ in _scenario_rows(retriever, 30, seed=5)]
    scores = []
    for prompt in prompts:
        context = list(retriever.retrieve(prompt, 4).documents)
        answer = reference_answer(prompt, context)
        score = score_answer(prompt, context, answer, decide_action(prompt), KNOWLEDGE)
        assert not score.hallucinated and score.factuality == 1.0, (prompt, answer, score.failures)
        assert score.policy == 1.0 and score.format == 1.0, (prompt, answer, score)
        scores.append(score)
    assert sum(s.n_claims for s in scores) > 100  # the answers do make claims: they were checked, not skipped


# --- the split summary ---------------------------------------------------------------------------------------------

def _score(action: str, hallucinated: bool = False, rubric: float = 4.0) -> AnswerScore:
    return AnswerScore(factuality=0.5 if hallucinated else 1.0, relevance=1.0, policy=1.0, format=1.0,
                       conciseness=1.0, rubric=rubric, action=action, hallucinated=hallucinated,
                       failures=("x",) if hallucinated else (), format_issues=(), n_claims=1)


def test_summarise_hand_computed_rates():
    scores = [_score("answer"), _score("answer", hallucinated=True), _score("refuse"), _score("refuse"),
              _score("escalate", rubric=3.0), _score("answer", hallucinated=True), _score("escalate"),
              _score("answer")]
    expected = ["answer", "answer", "refuse", "answer", "escalate", "refuse", "answer", "escalate"]
    metrics = summarise(scores, expected)
    assert metrics.hallucination_rate == pytest.approx(2 / 8) and metrics.hallucinated == 2
    assert metrics.refusal_precision == pytest.approx(1 / 2) and metrics.refusal_recall == pytest.approx(1 / 2)
    assert metrics.escalation_precision == pytest.approx(1 / 2) and metrics.escalation_recall == pytest.approx(1 / 2)
    assert metrics.rubric == pytest.approx(31 / 8) and metrics.factuality == pytest.approx(7 / 8)
    assert (metrics.predicted_refusals, metrics.expected_refusals, metrics.correct_refusals) == (2, 2, 1)
    as_dict = metrics.as_dict()
    assert as_dict["hallucination_rate"] == 0.25 and all(isinstance(v, float) for v in as_dict.values())


def test_summarise_empty_denominators_never_pass_a_gate_by_default():
    # nothing predicted, something expected: precision and recall 0
    missed = summarise([_score("answer"), _score("answer")], ["refuse", "answer"])
    assert missed.refusal_precision == 0.0 and missed.refusal_recall == 0.0
    # nothing expected, nothing predicted: perfect agreement
    assert missed.escalation_precision == 1.0 and missed.escalation_recall == 1.0
    # nothing expected, something predicted: precision 0 (all false positives), recall 0
    spurious = summarise([_score("escalate"), _score("answer")], ["answer", "answer"])
    assert spurious.escalation_precision == 0.0 and spurious.escalation_recall == 0.0
    with pytest.raises(ValueError, match="at least one"):
        summarise([], [])
    with pytest.raises(ValueError, match="one per answer"):
        summarise([_score("answer")], ["answer", "refuse"])
    with pytest.raises(ValueError, match="unknown expected"):
        summarise([_score("answer")], ["reply"])


# --- cost (18.3) ------------------------------------------------------------------------------------------------

def test_cost_per_1k_and_the_runbook_cost_reduction_example():
    assert cost_per_1k(400, 120, 2.0, 8.0) == pytest.approx(1.76)
    assert cost_per_1k(400, 120, 0.4, 1.6) == pytest.approx(0.352)
    assert cost_reduction(12.4, 4.8) == pytest.approx(0.6129, abs=1e-4)
    with pytest.raises(ValueError, match="non-negative"):
        cost_per_1k(-1, 120, 2.0, 8.0)
