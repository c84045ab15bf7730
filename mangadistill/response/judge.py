"""Pairwise preference judges: teacher preference match and win rate vs the base student (runbook 7.6-7.7).

Every judge answers one question through one interface::

    judge.prefer(prompt, context, expected_action, answer_a, answer_b) -> "a" | "b" | "tie"

- `DeterministicJudge`: the offline stand-in for a human or LLM judge. It scores both answers with the 7.5
  rubric (`rubric.score_answer`) and prefers the higher score unless the two are within `tie_margin` rubric
  points (default 0.25 on the 5-point scale; a difference equal to the margin is a tie). It is symmetric,
  deterministic and free, and it sees exactly what the rubric sees, no more: a stand-in, not a human.
- `LLMJudge`: an OpenAI-compatible chat model asked, at temperature 0, to reply with exactly one of A, B or
  TIE. Each pair is asked in both orders to cancel position bias; unless both orders name the same answer,
  the verdict is a tie.

`preference_metrics` turns a judge's verdicts into the two gate metrics (definitions in its docstring).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from mangadistill.errors import UserError
from mangadistill.response.catalog import StoreKnowledge
from mangadistill.response.chat import user_message
from mangadistill.response.reference_teacher import Action
from mangadistill.response.rubric import DEFAULT_WORD_LIMIT, score_answer

__all__ = [
    "DeterministicJudge",
    "Judge",
    "JudgeError",
    "JudgedPrompt",
    "LLMJudge",
    "Preference",
    "judge_messages",
    "parse_verdict",
    "preference_metrics",
]

Preference = Literal["a", "b", "tie"]
Verdict = Literal["A", "B", "TIE"]


class JudgeError(UserError):
    """The LLM judge's endpoint failed, or its reply named no answer."""


class Judge(Protocol):
    """Anything that prefers one of two answers to the same prompt, or neither."""

    name: str

    def prefer(self, prompt: str, context: Sequence[str], expected_action: Action, answer_a: str,
               answer_b: str) -> Preference:
        ...


class JudgedPrompt(Protocol):
    """What a judge needs of a row (`dataset.ResponseRow` has it)."""

    prompt: str
    context: Sequence[str]
    expected_action: Action


@dataclass
class DeterministicJudge:
    """Rubric-based preference: the higher `score_answer` rubric wins; |difference| <= `tie_margin` is a tie."""

    knowledge: StoreKnowledge | None = None
    word_limit: int = DEFAULT_WORD_LIMIT
    tie_margin: float = 0.25
    name: str = "deterministic-rubric"

    def __post_init__(self) -> None:
        if not 0.0 <= self.tie_margin <= 5.0:
            raise ValueError(f"tie_margin is in rubric points and must lie in [0, 5], got {self.tie_margin}")

    def prefer(self, prompt: str, context: Sequence[str], expected_action: Action, answer_a: str,
               answer_b: str) -> Preference:
        score_a, score_b = (score_answer(prompt, list(context), answer, expected_action, self.knowledge,
                                         self.word_limit).rubric for answer in (answer_a, answer_b))
        if abs(score_a - score_b) <= self.tie_margin + 1e-9:
            return "tie"
        return "a" if score_a > score_b else "b"


JUDGE_SYSTEM_PROMPT = (
    "You are an impartial judge of answers written by MangaAssist, a manga store's shopping assistant. "
    "Compare two answers to the same customer message. Judge, in this order: factual accuracy against the "
    "store context (no invented titles, authors, prices, volume counts or stock status); whether the answer "
    "takes the required action (answer, refuse, or hand the customer to a human agent); relevance to the "
    "message; clean formatting; concision. The order in which the answers are shown does not matter. "
    "Reply with exactly one word: A, B, or TIE."
)
_ACTION_WORDS = {
    "answer": "answer the customer from the store context",
    "refuse": "politely refuse: the store does not help with this request",
    "escalate": "hand the customer to a human support agent",
}


def judge_messages(prompt: str, context: Sequence[str], expected_action: Action, answer_a: str,
                   answer_b: str) -> list[dict[str, str]]:
    """The judging conversation: the store context and customer message in the one chat layout
    (`chat.user_message`), the required action, both answers, and the instruction to reply A, B or TIE."""
    request = user_message(prompt, list(context))
    body = (f"{request}\n\nRequired action: {expected_action} ({_ACTION_WORDS[expected_action]}).\n\n"
            f"Answer A:\n<<<\n{answer_a}\n>>>\n\nAnswer B:\n<<<\n{answer_b}\n>>>\n\n"
            "Which answer is better? Reply with exactly one word: A, B, or TIE.")
    return [{"role": "system", "content": JUDGE_SYSTEM_PROMPT}, {"role": "user", "content": body}]


_EXPLICIT = re.compile(r"(?i:\b(?:final\s+)?(?:verdict|winner|choice|preference|judge?ment)\b)\s*(?:(?i:is)\s*)?"
                       r"[:=\-]?\s*[*_`\"']*\s*(?:(?i:answer|response|option)\s+)?(A|B|(?i:tie))\b")
_LEADING = re.compile(r"^[\s*_`\"'#>]*(?:(?i:answer|response|option)\s+)?(A|B|(?i:tie))"
                      r"(?:[*_`\"')]*\s*(?:[.!:,;\n]|$)|\s+(?i:is|wins)\b)")
_NAMED = re.compile(r"(?i:\b(?:answer|response|option))\s+[*_`\"']*(A|B)\b")
_TIE_WORDS = re.compile(r"\b(?:tie|tied|equal(?:ly)?|draw|neither|same quality)\b", re.IGNORECASE)
#: A capital A or B standing alone, not the article of "A good answer" (but "A is better" counts).
_LONE_LETTER = re.compile(r"(?<![\w'])([AB])(?![\w'])(?!\s+(?!(?:is|was|has|wins|seems|looks|gives|does)\b)[a-z])")


def parse_verdict(reply: str) -> Verdict | None:
    """The judge's verdict in `reply`, or None when it names no single answer.

    Tried in order: the whole reply is A, B or TIE (any case, with markdown, quotes or a full stop around it);
    an explicit label ("Verdict: B", "Final choice: **TIE**"; the last one counts); a leading verdict ("A",
    "Answer B. Answer A invents a title.", "B is better"); answers named by label ("I prefer Answer B"), when
    they name one answer only; a tie word ("equal", "neither") with no lone capital A or B; exactly one
    distinct lone capital A or B. Anything else ("I cannot decide", "A and B are both fine") is None.
    """
    bare = re.sub(r"[\s*_`\"'.!:()\[\]]+", " ", reply).strip()
    if bare.upper() in ("A", "B", "TIE"):
        return bare.upper()  # type: ignore[return-value]
    if explicit := _EXPLICIT.findall(reply):
        return explicit[-1].upper()  # type: ignore[return-value]
    if leading := _LEADING.match(reply):
        return leading.group(1).upper()  # type: ignore[return-value]
    if len(named := set(_NAMED.findall(reply))) == 1:
        return named.pop()  # type: ignore[return-value]
    letters = set(_LONE_LETTER.findall(reply))
    tie_words = bool(_TIE_WORDS.search(reply))
    if tie_words and not letters:
        return "TIE"
    if len(letters) == 1 and not tie_words:
        return letters.pop()  # type: ignore[return-value]
    return None


@dataclass
class LLMJudge:
    """A chat model at an OpenAI-compatible endpoint as the pairwise judge (see the module docstring).

    The API key is read from the environment variable `api_key_env` when the first request is made.
    """

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    max_retries: int = 2
    max_tokens: int = 16
    name: str = field(init=False)
    _client: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.name = f"llm:{self.model}"

    def prefer(self, prompt: str, context: Sequence[str], expected_action: Action, answer_a: str,
               answer_b: str) -> Preference:
        """Ask in both orders; the answer both orders name wins, any disagreement is a tie."""
        first = self._verdict(judge_messages(prompt, context, expected_action, answer_a, answer_b))
        swapped = self._verdict(judge_messages(prompt, context, expected_action, answer_b, answer_a))
        second = {"A": "B", "B": "A", "TIE": "TIE"}[swapped]
        if first != second or first == "TIE":
            return "tie"
        return "a" if first == "A" else "b"

    def _verdict(self, messages: list[dict[str, str]]) -> Verdict:
        import openai

        try:
            response = self._openai().chat.completions.create(model=self.model, messages=messages, temperature=0,
                                                              max_tokens=self.max_tokens)
        except openai.OpenAIError as exc:
            detail = " ".join(str(exc).split())[:200]
            raise JudgeError(f"LLM judge {self.model!r} at {self.base_url} failed: {type(exc).__name__}: {detail}; "
                             "check judge.base_url, judge.model and the API key") from exc
        reply = (response.choices[0].message.content or "") if response.choices else ""
        verdict = parse_verdict(reply)
        if verdict is None:
            shown = " ".join(reply.split())[:120]
            raise JudgeError(f"LLM judge {self.model!r} replied {shown!r}, not A, B or TIE; use a model that "
                             "follows the one-word instruction, or raise judge max_tokens if it was cut off")
        return verdict

    def _openai(self) -> Any:
        if self._client is None:
            import openai

            key = os.environ.get(self.api_key_env)
            if not key:
                raise JudgeError(f"LLM judge: environment variable {self.api_key_env} is not set; export the "
                                 "judge endpoint's API key there (any non-empty value for a local server)")
            self._client = openai.OpenAI(base_url=self.base_url, api_key=key, timeout=self.timeout_s,
                                         max_retries=self.max_retries)
        return self._client


def preference_metrics(judge: Judge, rows: Sequence[JudgedPrompt], student_answers: Sequence[str],
                       teacher_answers: Sequence[str] | None,
                       base_answers: Sequence[str] | None) -> dict[str, float]:
    """The two preference gate metrics (runbook 7.7), from one verdict per prompt and reference:

    - ``teacher_preference_match``: share of prompts where the judge does not prefer the teacher's answer over
      the student's (the student wins or ties): how often the student is as good as its teacher;
    - ``win_rate_vs_base``: share of prompts where the judge prefers the student over the base (not fine-tuned)
      model, ties counting half.

    Each is NaN when its reference answers are None. The verdict counts come along (``*_wins``, ``*_ties``).
    The student is always passed as answer A; `LLMJudge` asks both orders itself.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("preference_metrics needs at least one prompt")
    for name, answers in (("student", student_answers), ("teacher", teacher_answers), ("base", base_answers)):
        if answers is not None and len(answers) != len(rows):
            raise ValueError(f"{len(answers)} {name} answers for {len(rows)} prompts; pass one per prompt")
    out: dict[str, float] = {"teacher_preference_match": math.nan, "win_rate_vs_base": math.nan}
    for key, reference in (("teacher", teacher_answers), ("base", base_answers)):
        if reference is None:
            continue
        verdicts = [judge.prefer(row.prompt, list(row.context), row.expected_action, student, other)
                    for row, student, other in zip(rows, student_answers, reference)]
        wins, ties, losses = (sum(v == w for v in verdicts) for w in ("a", "tie", "b"))
        out.update({f"student_wins_vs_{key}": float(wins), f"ties_vs_{key}": float(ties),
                    f"{key}_wins": float(losses)})
        if key == "teacher":
            out["teacher_preference_match"] = (wins + ties) / len(rows)
        else:
            out["win_rate_vs_base"] = (wins + 0.5 * ties) / len(rows)
    return out
