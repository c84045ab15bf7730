"""The chat layout every response model sees, and the protocol every answerer implements.

One layout for teacher generation, student training, evaluation and serving, so a prompt means the same
thing everywhere (runbook 7.2 and 7.10)::

    system:    SYSTEM_PROMPT
    user:      "Context:\n[1] <document>\n[2] <document>\n\nCustomer: <shopper prompt>"
    assistant: <answer>

`user_message` builds the user turn; `parse_user_message` reads it back (the reference teacher, served over
the OpenAI protocol, gets nothing else).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Protocol, runtime_checkable

#: The teacher's system prompt (runbook 7.10); the student is trained and served with the same one.
SYSTEM_PROMPT = "You are MangaAssist. Be retrieval-grounded, catalog-safe, and follow escalation policy."

_CONTEXT_HEADER = "Context:"
_CUSTOMER_PREFIX = "Customer: "
_DOC_LINE = re.compile(r"^\[(\d+)\] (.*)$")


def user_message(prompt: str, context: list[str]) -> str:
    """The user turn: numbered retrieval context, then the shopper's prompt."""
    lines = [_CONTEXT_HEADER]
    lines += [f"[{i}] {doc}" for i, doc in enumerate(context, start=1)] or ["(nothing retrieved)"]
    return "\n".join(lines) + f"\n\n{_CUSTOMER_PREFIX}{prompt.strip()}"


def parse_user_message(text: str) -> tuple[str, list[str]]:
    """Read `user_message`'s layout back into (prompt, context). A message without the layout is all prompt."""
    head, sep, prompt = text.rpartition(f"\n\n{_CUSTOMER_PREFIX}")
    if not sep or not head.startswith(_CONTEXT_HEADER):
        return text.strip(), []
    context = [m.group(2) for line in head.splitlines()[1:] if (m := _DOC_LINE.match(line))]
    return prompt.strip(), context


def messages_for(prompt: str, context: list[str]) -> list[dict[str, str]]:
    """The system + user turns of one request, in the OpenAI chat format."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user_message(prompt, context)}]


@dataclass(frozen=True)
class ChatResult:
    """One completion: its text and the token counts a bill is computed from."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"


@runtime_checkable
class ChatModel(Protocol):
    """Anything that answers a chat: the reference teacher, a fine-tuned student, a remote endpoint."""

    name: str

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float) -> ChatResult:
        """Answer the conversation's last user turn."""
        ...

    def stream(self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float) -> Iterator[str]:
        """The same answer as `complete`, in pieces as they are produced."""
        ...
