"""The reference teacher: a deterministic, catalog-grounded responder that stands in for gpt-4.1 offline.

It writes the answers a careful human agent would, from the prompt and its retrieval context only:

- it never states a fact absent from the context: every title, author, volume count, price and stock status
  it writes is copied from a context line, every policy number from a policy line;
- it refuses what the store does not do (piracy, unsafe or unrelated requests) and hands a shopper to a human
  agent when the policy says so (complaints, damaged or missing orders, billing disputes, explicit requests);
- when the context does not hold the answer, it says so instead of guessing.

It is a `ChatModel`, so it answers in-process and, served by the project's OpenAI-compatible server, through
the official `openai` client like any remote teacher. It is not a language model: it is the offline default so
`distill_response` runs with no network; point `teacher` at a real endpoint for production labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Literal

from mangadistill.data.synthetic import CatalogEntry
from mangadistill.response.catalog import Policy, parse_document
from mangadistill.response.chat import ChatResult, parse_user_message

__all__ = [
    "ESCALATION_ANSWER",
    "REFUSAL_ANSWER",
    "Action",
    "ReferenceTeacher",
    "decide_action",
    "reference_answer",
]

Action = Literal["answer", "refuse", "escalate"]

#: What the assistant says when it declines (the refusal the rubric's policy axis looks for).
REFUSAL_ANSWER = ("Sorry, I can't help with that. I can help you find manga, check prices and stock, "
                  "and answer questions about orders, shipping and returns.")
#: What the assistant says when it hands the shopper to a person.
#: Each action opens with its own words ("Sorry, I can't", "Let me connect you", an answer's subject), so the
#: first tokens a student generates already commit it to one action.
ESCALATION_ANSWER = ("Let me connect you with a human support agent now. I'm sorry about this; they can see "
                     "your order and will make it right.")
GREETING_ANSWER = ("Hi! I'm MangaAssist. I can recommend manga, check prices and stock, and answer questions "
                   "about orders, shipping and returns.")
THANKS_ANSWER = "You're welcome! Let me know if you need another recommendation or help with an order."
NOT_FOUND_ANSWER = ("I couldn't find that in our catalog, so I can't confirm its details. Tell me a genre or "
                    "a series you like and I'll suggest something we carry.")

_REFUSE = re.compile(
    r"\b(pirat\w*|torrent\w*|free (pdf|download|scans?)|for free|scanlation\w*|illegal\w*|crack(ed)?|hack\w*|"
    r"steal\w*|shoplift\w*|homework|essay|stock market|stocks to buy|invest\w*|crypto\w*|bitcoin|medical|diagnos\w*|"
    r"prescri\w*|medicine|medication|weapon\w*|bomb\w*|lawyer|legal advice|vote|election|"
    r"someone'?s (home )?(address|password)|fake [\w-]*\s?(review|id)|explicit|nsfw|porn\w*)", re.IGNORECASE)
_ESCALATE = re.compile(
    r"\b(human|real person|agent|manager|supervisor|representative|complain\w*|lawsuit|sue\b|"
    r"charged twice|double charged|fraud\w*|never arrived|didn'?t arrive|not arrived|missing package|"
    r"wrong item|damaged|broken|torn|unacceptable|furious|chargeback)", re.IGNORECASE)
_GREETING = re.compile(r"^\W*(hi|hello|hey|good (morning|afternoon|evening)|thanks|thank you|yo)\b(\W+\w+){0,3}\W*$",
                       re.IGNORECASE)  # a greeting and at most 3 more words
_PRICE = re.compile(r"\b(price|cost|how much|cheap\w*|expensive|\$)", re.IGNORECASE)
_STOCK = re.compile(r"\b(in stock|stock|available|availability|sold out|have it|carry)\b", re.IGNORECASE)
_VOLUMES = re.compile(r"\b(how many volumes|volumes|how long is|complete|finished)\b", re.IGNORECASE)
_RECOMMEND = re.compile(r"\b(recommend\w*|suggest\w*|similar|like\b|looking for|what should i read|gift|"
                        r"good\b|best|into\b|try)\b", re.IGNORECASE)
_POLICY_TOPICS: dict[str, re.Pattern[str]] = {
    "express": re.compile(r"\b(express|overnight|faster shipping|next day|rush)\b", re.IGNORECASE),
    "shipping": re.compile(r"\b(ship\w*|deliver\w*|postage)\b", re.IGNORECASE),
    "returns": re.compile(r"\b(return\w*|refund\w*|exchange\w*|send (it )?back)\b", re.IGNORECASE),
    "orders": re.compile(r"\b(order status|track\w*|where is my (order|package)|my order)\b", re.IGNORECASE),
    "account": re.compile(r"\b(password|log ?in|sign ?in|account)\b", re.IGNORECASE),
    "preorders": re.compile(r"\b(pre-?order\w*)\b", re.IGNORECASE),
}
_MAX_RECOMMENDATIONS = 3


def decide_action(prompt: str) -> Action:
    """What a careful agent does with this prompt: refuse it, hand it to a human, or answer it."""
    if _REFUSE.search(prompt):
        return "refuse"
    if _ESCALATE.search(prompt):
        return "escalate"
    return "answer"


def reference_answer(prompt: str, context: list[str], action: Action | None = None) -> str:
    """The careful agent's answer to `prompt` from `context` alone (`action` overrides its own decision)."""
    action = action or decide_action(prompt)
    if action == "refuse":
        return REFUSAL_ANSWER
    if action == "escalate":
        return ESCALATION_ANSWER
    documents = [doc for line in context if (doc := parse_document(line)) is not None]
    entries = [d for d in documents if isinstance(d, CatalogEntry)]
    policies = [d for d in documents if isinstance(d, Policy)]
    named = _named_entries(prompt, entries)
    if named:
        return _product_answer(prompt, named[0])
    if policy := _matching_policy(prompt, policies):
        return policy.text
    if _GREETING.match(prompt):
        return THANKS_ANSWER if re.match(r"\W*thank", prompt, re.IGNORECASE) else GREETING_ANSWER
    if entries and (_RECOMMEND.search(prompt) or _genres_in(prompt, entries)):
        return _recommendation(prompt, entries)
    return NOT_FOUND_ANSWER


def _named_entries(prompt: str, entries: list[CatalogEntry]) -> list[CatalogEntry]:
    """Context entries whose title the prompt names, longest title first (a box set beats its series)."""
    text = _normalise(prompt)
    named = [e for e in entries if _normalise(_base_title(e.title)) in text]
    return sorted(named, key=lambda e: (-len(_normalise(e.title)) * (_normalise(e.title) in text), e.title))


def _product_answer(prompt: str, entry: CatalogEntry) -> str:
    stock = "in stock" if entry.in_stock else "out of stock right now"
    volumes = f"{entry.volumes} volume{'s' if entry.volumes != 1 else ''}"
    if _PRICE.search(prompt):
        return f"{entry.title} costs ${entry.price_usd:.2f} per volume and is {stock}."
    if _STOCK.search(prompt):
        return f"{entry.title} is {stock}; it costs ${entry.price_usd:.2f} per volume."
    if _VOLUMES.search(prompt):
        return f"{entry.title} has {volumes}; it costs ${entry.price_usd:.2f} per volume and is {stock}."
    return (f"{entry.title} is by {entry.author}, published by {entry.publisher} ({', '.join(entry.genres)}). "
            f"It has {volumes}, costs ${entry.price_usd:.2f} per volume and is {stock}.")


def _matching_policy(prompt: str, policies: list[Policy]) -> Policy | None:
    by_topic = {p.topic: p for p in policies}
    for topic, pattern in _POLICY_TOPICS.items():
        if topic in by_topic and pattern.search(prompt):
            return by_topic[topic]
    return None


def _genres_in(prompt: str, entries: list[CatalogEntry]) -> list[str]:
    text = _normalise(prompt)
    return sorted({g for e in entries for g in e.genres if re.search(rf"\b{re.escape(g)}\b", text)})


def _recommendation(prompt: str, entries: list[CatalogEntry]) -> str:
    genres = _genres_in(prompt, entries)
    picks = [e for e in entries if not genres or set(genres) & set(e.genres)] or entries
    picks = sorted(picks, key=lambda e: not e.in_stock)[:_MAX_RECOMMENDATIONS]
    lines = [f"- {e.title} by {e.author}: {e.volumes} volume{'s' if e.volumes != 1 else ''}, "
             f"${e.price_usd:.2f} per volume, {'in stock' if e.in_stock else 'out of stock'}." for e in picks]
    lead = f"Here are {genres[0]} picks from our catalog:" if genres else "Here are some picks from our catalog:"
    return "\n".join([lead, *lines])


def _base_title(title: str) -> str:
    """A title without its edition suffix ("Berserk Deluxe Edition" -> "Berserk Deluxe Edition", kept whole;
    "Vagabond (VIZBIG Edition)" -> "Vagabond"), so shoppers who name the series find the edition too."""
    return re.sub(r"\s*\(.*\)$", "", title)


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s&!/'-]", " ", text.casefold())).strip()


@dataclass
class ReferenceTeacher:
    """The reference teacher as a `ChatModel` (see the module docstring)."""

    name: str = "mangaassist-reference-teacher"

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int = 256,
                 temperature: float = 0.0) -> ChatResult:
        """Answer the last user turn; token counts are whitespace words, as a stand-in has no tokenizer."""
        user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        prompt, context = parse_user_message(user)
        text = reference_answer(prompt, context)
        words = text.split()
        finish = "length" if len(words) > max_tokens else "stop"
        text = " ".join(words[:max_tokens]) if finish == "length" else text
        prompt_tokens = sum(len(m.get("content", "").split()) for m in messages)
        return ChatResult(text=text, prompt_tokens=prompt_tokens, completion_tokens=min(len(words), max_tokens),
                          finish_reason=finish)

    def stream(self, messages: list[dict[str, str]], *, max_tokens: int = 256,
               temperature: float = 0.0) -> Iterator[str]:
        text = self.complete(messages, max_tokens=max_tokens, temperature=temperature).text
        for i, piece in enumerate(re.split(r"(?<=\s)", text)):
            if piece:
                yield piece
