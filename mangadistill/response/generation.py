"""Answering chats with a Hugging Face causal LM: the student behind the `ChatModel` protocol, batched evaluation
generation, and its single-request speed.

Every prompt is rendered with the tokenizer's chat template plus the assistant header, exactly as trl renders
the prompt half of a training row, so the model sees at inference what it saw in training. Generation stops
at the tokenizer's eos token and at ``<|im_end|>`` (the end of a ChatML turn); special tokens are removed
from the text. `ChatResult.completion_tokens` counts the generated tokens up to and including the stop token.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from threading import Event, Thread

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from mangadistill.errors import ModelLoadError
from mangadistill.models.model_dir import read_card
from mangadistill.response.chat import ChatModel, ChatResult

#: End of a ChatML turn: a stop token whatever the tokenizer calls eos.
IM_END = "<|im_end|>"
Messages = Sequence[dict[str, str]]


class HFChatModel:
    """A local causal LM (full model folder, LoRA adapter folder, or a live model + tokenizer) as a `ChatModel`.

    `temperature == 0` decodes greedily (deterministic); above 0 it samples from the temperature-scaled
    distribution (no top-k / top-p cut, as the OpenAI API does by default). A live model handed in (say, the
    one being trained) is switched to eval mode while it generates, then back to the mode it was in.
    """

    def __init__(
        self, model: str | Path | tuple[PreTrainedModel, PreTrainedTokenizerBase], name: str, *,
        threads: int | None = None, max_new_tokens: int = 256,
    ) -> None:
        if threads is not None:
            torch.set_num_threads(threads)  # process-wide, like every torch CPU setting
        self.model, self.tokenizer = load_chat_model(model) if isinstance(model, (str, Path)) else model
        self.name = name
        self.max_new_tokens = max_new_tokens
        self.stop_ids = stop_token_ids(self.tokenizer)

    def complete(self, messages: Messages, *, max_tokens: int | None = None, temperature: float = 0.0) -> ChatResult:
        """Answer the conversation's last user turn."""
        prompt = encode_prompt(self.tokenizer, messages)
        config = generation_config(self.tokenizer, self.max_new_tokens if max_tokens is None else max_tokens, temperature)
        with _eval_mode(self.model), torch.inference_mode():
            output = self.model.generate(**_as_batch([prompt], self._pad_id, self.model.device),
                                         generation_config=config)
        return completion_result(self.tokenizer, output[0, len(prompt):].tolist(), len(prompt), self.stop_ids)

    def stream(self, messages: Messages, *, max_tokens: int | None = None, temperature: float = 0.0) -> Iterator[str]:
        """The same answer as `complete`, in pieces as they are produced (greedy: same text, joined)."""
        prompt = encode_prompt(self.tokenizer, messages)
        config = generation_config(self.tokenizer, self.max_new_tokens if max_tokens is None else max_tokens, temperature)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancelled = Event()  # set when the consumer stops reading: generation ends at the next token
        failure: list[BaseException] = []

        def produce() -> None:
            try:
                with _eval_mode(self.model), torch.inference_mode():
                    self.model.generate(**_as_batch([prompt], self._pad_id, self.model.device),
                                        generation_config=config, streamer=streamer,
                                        stopping_criteria=StoppingCriteriaList([_WhenSet(cancelled)]))
            except BaseException as err:  # handed to the consumer below, which re-raises it
                failure.append(err)
                streamer.end()

        worker = Thread(target=produce, name=f"{self.name}-generate", daemon=True)
        worker.start()
        try:
            yield from (piece for piece in streamer if piece)
        finally:
            cancelled.set()
            worker.join()
        if failure:
            raise failure[0]

    def complete_many(self, conversations: Sequence[Messages], *, max_tokens: int | None = None,
                      batch_size: int = 8) -> list[ChatResult]:
        """Greedy answers to many conversations, batched (`generate_batch`)."""
        return generate_batch(self.model, self.tokenizer, conversations,
                              max_new_tokens=self.max_new_tokens if max_tokens is None else max_tokens, batch_size=batch_size)

    @property
    def _pad_id(self) -> int:
        return pad_token_id(self.tokenizer)



def load_chat_model(folder: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model + tokenizer from a full model folder, a LoRA adapter folder (base named in its config), or an ONNX
    variant folder (its card says ``format: onnx``)."""
    folder = Path(folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        card = read_card(folder)
        if card.get("format") == "onnx":  # an ONNX variant (`response.export`), served with onnxruntime
            from optimum.onnxruntime import ORTModelForCausalLM

            return ORTModelForCausalLM.from_pretrained(folder, file_name=card["onnx_file"], use_cache=True), tokenizer
        if (folder / "adapter_config.json").is_file():
            from peft import AutoPeftModelForCausalLM  # only adapter folders need peft

            model = AutoPeftModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        else:
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        model.eval()
    except (OSError, ValueError) as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ModelLoadError(f"chat model '{folder}' does not load: {first_line}") from None
    return model, tokenizer


def generate_batch(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, conversations: Sequence[Messages], *,
    max_new_tokens: int, batch_size: int = 8,
) -> list[ChatResult]:
    """Greedy answers to `conversations`, in their order, generated `batch_size` at a time with left padding.

    Conversations are batched by prompt length (least padding); the attention mask and the position ids
    derived from it make each answer the one a single-sequence greedy call gives.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    prompts = [encode_prompt(tokenizer, messages) for messages in conversations]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    config = generation_config(tokenizer, max_new_tokens, temperature=0.0)
    stops, pad = stop_token_ids(tokenizer), pad_token_id(tokenizer)
    results: list[ChatResult | None] = [None] * len(prompts)
    with _eval_mode(model), torch.inference_mode(), tqdm(total=len(prompts), desc="generate", unit="chat") as bar:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            batch = _as_batch([prompts[i] for i in chunk], pad, model.device)
            output = model.generate(**batch, generation_config=config)  # (b, width + new)
            width = batch["input_ids"].shape[1]
            for row, index in enumerate(chunk):
                new_ids = output[row, width:].tolist()
                results[index] = completion_result(tokenizer, new_ids, len(prompts[index]), stops)
            bar.update(len(chunk))
    return [r for r in results if r is not None]


def measure_generation(
    chat_model: ChatModel, conversations: Sequence[Messages], max_tokens: int, repeats: int = 1,
) -> dict[str, float]:
    """Greedy single-request speed: each conversation answered alone, one after another, `repeats` times.

    One untimed warm-up request first. Returns p50_ms and p95_ms (per request), tokens_per_s (completion
    tokens over generation seconds, all requests) and n (timed requests).
    """
    if not conversations or repeats < 1:
        raise ValueError("measure_generation needs at least one conversation and repeats >= 1")
    chat_model.complete(conversations[0], max_tokens=max_tokens, temperature=0.0)
    milliseconds, tokens = [], 0
    for _ in range(repeats):
        for messages in conversations:
            began = time.perf_counter()
            result = chat_model.complete(messages, max_tokens=max_tokens, temperature=0.0)
            milliseconds.append((time.perf_counter() - began) * 1e3)
            tokens += result.completion_tokens
    timings = np.asarray(milliseconds)
    return {"p50_ms": float(np.percentile(timings, 50)), "p95_ms": float(np.percentile(timings, 95)),
            "tokens_per_s": tokens / (timings.sum() / 1e3), "n": len(timings)}


def encode_prompt(tokenizer: PreTrainedTokenizerBase, messages: Messages) -> list[int]:
    """Token ids of `messages` rendered by the chat template, ending with the assistant header."""
    return list(tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True))


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids that end an answer: the tokenizer's eos and ``<|im_end|>`` when the vocabulary has it."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    im_end = tokenizer.get_vocab().get(IM_END)
    if im_end is not None and im_end not in ids:
        ids.append(im_end)
    if not ids:
        raise ModelLoadError("the tokenizer has neither an eos token nor <|im_end|>: generation could not stop")
    return ids


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The pad id (left padding in batches); eos when the tokenizer has no pad token."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ModelLoadError("the tokenizer has neither a pad nor an eos token: cannot batch prompts")
    return pad


def generation_config(tokenizer: PreTrainedTokenizerBase, max_new_tokens: int, temperature: float) -> GenerationConfig:
    """Greedy when `temperature` is 0, plain temperature sampling above; stops at `stop_token_ids`."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    sampling = temperature > 0
    return GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=sampling, temperature=temperature if sampling else None,
        top_k=None, top_p=None, eos_token_id=stop_token_ids(tokenizer), pad_token_id=pad_token_id(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
    )


def completion_result(
    tokenizer: PreTrainedTokenizerBase, new_ids: list[int], prompt_tokens: int, stop_ids: Sequence[int],
) -> ChatResult:
    """Cut generated ids after the first stop token (batch rows are padded after it) and decode them."""
    cut = next((i + 1 for i, token in enumerate(new_ids) if token in stop_ids), None)
    kept = new_ids if cut is None else new_ids[:cut]
    return ChatResult(text=tokenizer.decode(kept, skip_special_tokens=True), prompt_tokens=prompt_tokens,
                      completion_tokens=len(kept), finish_reason="length" if cut is None else "stop")


def _as_batch(prompts: Sequence[list[int]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Left-padded `input_ids` and `attention_mask`, shape (len(prompts), longest prompt)."""
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
        attention_mask[row, width - len(prompt):] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}


class _WhenSet(StoppingCriteria):
    """Stops every sequence of a `generate` call once `event` is set."""

    def __init__(self, event: Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **_: object) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


@contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Dropout off while generating; the model's train/eval mode restored afterwards."""
    if not isinstance(model, torch.nn.Module):  # an onnxruntime model has no train/eval mode
        yield
        return
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
