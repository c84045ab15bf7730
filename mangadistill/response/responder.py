"""The served responder: retrieval + a chat model, answering shoppers the way it was trained to.

`GroundedResponder` wraps any `ChatModel` (the fine-tuned student, the reference teacher, a remote endpoint)
with the store retriever. A request whose user turn carries no retrieval context (a plain shopper message
from an OpenAI client) gets the context the training rows had; a request in the project's chat layout is
answered as is. It is both a `ChatModel` (served at ``/v1/chat/completions``) and a life-cycle `Predictor`
(``predict(texts)`` -> answer, detected action, unsupported claims), so shadow evaluation, monitoring and
serving all go through the same code.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from mangadistill.response.catalog import StoreKnowledge, store_knowledge
from mangadistill.response.chat import (
    SYSTEM_PROMPT,
    ChatModel,
    ChatResult,
    messages_for,
    parse_user_message,
    user_message,
)
from mangadistill.response.retriever import TfidfRetriever

__all__ = ["GroundedResponder", "store_retriever"]


@lru_cache(maxsize=1)
def store_retriever() -> TfidfRetriever:
    """The retriever over the bundled catalog and policies (built once per process)."""
    return TfidfRetriever(store_knowledge().documents())


class GroundedResponder:
    """A chat model behind the store retriever (see the module docstring)."""

    def __init__(self, chat_model: ChatModel, *, context_k: int = 3, max_new_tokens: int = 96,
                 knowledge: StoreKnowledge | None = None) -> None:
        self.chat_model = chat_model
        self.name = chat_model.name
        self.context_k = context_k
        self.max_new_tokens = max_new_tokens
        self.knowledge = knowledge or store_knowledge()

    def grounded(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        """The conversation with the system prompt and retrieval context the model was trained with."""
        turns = [dict(m) for m in messages]
        if not any(m.get("role") == "system" for m in turns):
            turns.insert(0, {"role": "system", "content": SYSTEM_PROMPT})
        last_user = max((i for i, m in enumerate(turns) if m.get("role") == "user"), default=None)
        if last_user is not None:
            prompt, context = parse_user_message(turns[last_user]["content"])
            if not context and self.context_k:
                context = list(store_retriever().retrieve(prompt, self.context_k).documents)
            turns[last_user]["content"] = user_message(prompt, context)
        return turns

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                 temperature: float = 0.0) -> ChatResult:
        return self.chat_model.complete(self.grounded(messages), max_tokens=max_tokens or self.max_new_tokens,
                                        temperature=temperature)

    def stream(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
               temperature: float = 0.0) -> Iterator[str]:
        return self.chat_model.stream(self.grounded(messages), max_tokens=max_tokens or self.max_new_tokens,
                                      temperature=temperature)

    def answer(self, prompt: str, context: list[str] | None = None) -> dict:
        """One shopper prompt (with its context, or retrieved) -> answer, action and unsupported claims."""
        from mangadistill.response.rubric import check_claims, detect_action, extract_claims

        if context is None:
            context = list(store_retriever().retrieve(prompt, self.context_k).documents) if self.context_k else []
        result = self.chat_model.complete(messages_for(prompt, context), max_tokens=self.max_new_tokens,
                                          temperature=0.0)
        unsupported = [c for c in check_claims(extract_claims(result.text), self.knowledge, context) if not c.supported]
        return {"answer": result.text, "action": detect_action(result.text), "hallucinated": bool(unsupported),
                "unsupported_claims": [c.describe() for c in unsupported],
                "completion_tokens": result.completion_tokens}

    def predict(self, texts: list[str]) -> list[dict]:
        """The life-cycle `Predictor`: one answer per shopper prompt, in order."""
        return [self.answer(text) for text in texts]
