"""LoRA SFT with trl on a tiny random Llama over SmolLM2's tokenizer, then generation from what it trained.

One two-epoch run (module fixture) serves most tests; the stop-and-resume test trains the same rows with
the same settings and must land on the very same epoch-2 adapter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from mangadistill.errors import ConfigError, DataError
from mangadistill.response.chat import ChatModel, ChatResult
from mangadistill.response.generation import (
    HFChatModel,
    completion_result,
    encode_prompt,
    generate_batch,
    measure_generation,
)
from mangadistill.response.sft import (
    EpochContext,
    SFTSettings,
    build_trainer,
    lora_layer_indices,
    merge_adapter,
    sft_row,
    train_lora,
)
from tests.integration._response_models import QA, qa_conversations, qa_rows, tiny_chat_model_dir

SETTINGS = SFTSettings(epochs=2, learning_rate=1.0e-2, per_device_batch_size=4, max_length=256, warmup_ratio=0.0,
                       logging_steps=1, seed=0)
ADAPTER = "adapter_model.safetensors"


@dataclass
class HookLog:
    """What `on_epoch_end` saw at each call."""

    epochs: list[int] = field(default_factory=list)
    losses: list[tuple[float, float]] = field(default_factory=list)
    saved_files: list[set[str]] = field(default_factory=list)
    model_was_training: list[bool] = field(default_factory=list)
    answers: list[list[str]] = field(default_factory=list)

    def __call__(self, context: EpochContext) -> bool:
        self.epochs.append(context.epoch)
        self.losses.append((context.train_loss, context.eval_loss))
        self.saved_files.append({p.name for p in context.adapter_dir.iterdir()})
        self.model_was_training.append(context.model.training)
        results = generate_batch(context.model, context.tokenizer, qa_conversations()[:2], max_new_tokens=6,
                                 batch_size=2)
        self.answers.append([r.text for r in results])
        return False


@dataclass(frozen=True)
class TrainedRun:
    base: Path
    output: Path
    result: object
    hook: HookLog


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_chat_model_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def trained(base: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    output = tmp_path_factory.mktemp("sft-run")
    hook = HookLog()
    result = train_lora(base, qa_rows(), qa_rows()[:4], SETTINGS, output, on_epoch_end=hook)
    return TrainedRun(base=base, output=output, result=result, hook=hook)


def test_on_epoch_end_gets_each_epoch_with_its_adapter_saved(trained: TrainedRun) -> None:
    hook, result = trained.hook, trained.result
    assert hook.epochs == [1, 2]
    for files in hook.saved_files:
        assert {"adapter_config.json", ADAPTER, "tokenizer.json"} <= files
        assert "model.safetensors" not in files  # the adapter alone, not the full model
    assert hook.model_was_training == [False, False]  # eval mode while the caller generates
    assert all(len(answers) == 2 for answers in hook.answers)
    assert [r.epoch for r in result.history] == [1, 2] and not result.stopped_early and not result.resumed
    assert [r.global_step for r in result.history] == [2, 4]  # 8 rows / batch 4
    assert [(r.train_loss, r.eval_loss) for r in result.history] == hook.losses
    assert result.history[1].eval_loss < result.history[0].eval_loss  # it learns something
    assert all(r.train_tokens > 8 * 40 for r in result.history)
    assert result.last_adapter_dir == trained.output / "epoch-2" == result.adapter_dir(2)


def test_prompt_tokens_are_masked_from_the_loss(base: Path, tmp_path: Path) -> None:
    rows = qa_rows()[:4]
    trainer = build_trainer(base, rows, rows, SETTINGS, tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    tokenizer = AutoTokenizer.from_pretrained(base)
    by_first_token = {}
    for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True):
        length = int(mask.sum())
        by_first_token[tuple(ids[:length].tolist())] = labels[:length]
        assert (labels[length:] == -100).all()  # padding
    for row, (_, _, answer) in zip(rows, QA[:4], strict=True):
        prompt = encode_prompt(tokenizer, row["prompt"])
        full = tokenizer.apply_chat_template(row["prompt"] + row["completion"])
        labels = by_first_token[tuple(full)]
        assert (labels[: len(prompt)] == -100).all()  # system + user turns and the assistant header
        assert labels[len(prompt):].tolist() == full[len(prompt):]
        assert tokenizer.decode(full[len(prompt):]) == f"{answer}<|im_end|>\n"


def test_merged_model_answers_like_the_peft_model(trained: TrainedRun, tmp_path: Path) -> None:
    adapter = trained.result.last_adapter_dir
    merged_dir = merge_adapter(trained.base, adapter, tmp_path / "merged")
    base_model = AutoModelForCausalLM.from_pretrained(trained.base).eval()
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(trained.base), adapter).eval()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    assert not (merged_dir / "adapter_config.json").exists()

    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    ids = torch.tensor([encode_prompt(tokenizer, qa_conversations()[0])])
    with torch.no_grad():
        base_logits, peft_logits, merged_logits = (m(ids).logits for m in (base_model, peft, merged))
    adapter_effect = (peft_logits - base_logits).abs().max()
    assert adapter_effect > 0.1  # the adapter changed the model
    assert (merged_logits - peft_logits).abs().max() < 1e-3 * adapter_effect

    conversations = qa_conversations()
    from_peft = HFChatModel(adapter, "peft").complete_many(conversations, max_tokens=8)
    from_merged = HFChatModel(merged_dir, "merged").complete_many(conversations, max_tokens=8)
    assert len({r.text for r in from_peft}) > 1
    assert [r.text for r in from_merged] == [r.text for r in from_peft]


def test_batched_greedy_generation_equals_one_at_a_time(base: Path) -> None:
    model = HFChatModel(base, "tiny", max_new_tokens=10)
    assert isinstance(model, ChatModel)
    conversations = qa_conversations()
    one_by_one = [model.complete(c, max_tokens=10, temperature=0.0) for c in conversations]
    batched = model.complete_many(conversations, max_tokens=10, batch_size=3)

    assert len({r.prompt_tokens for r in one_by_one}) > 3  # prompts of different lengths: batches are padded
    assert len({r.text for r in one_by_one}) > 3  # answers depend on the prompt: a padding bug would show
    assert batched == one_by_one
    assert "".join(model.stream(conversations[0], max_tokens=10)) == one_by_one[0].text
    assert one_by_one[0].completion_tokens == 10 and one_by_one[0].finish_reason == "length"


def test_sampling_at_a_temperature_varies(base: Path) -> None:
    model = HFChatModel(base, "tiny")
    torch.manual_seed(0)
    samples = {model.complete(qa_conversations()[0], max_tokens=6, temperature=1.5).text for _ in range(4)}
    assert len(samples) > 1


def test_completion_result_cuts_at_the_first_stop_token(base: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(base)
    ok = tokenizer.encode("Yes, in stock.")
    result = completion_result(tokenizer, [*ok, 2, 0, 0], prompt_tokens=30, stop_ids=[2])
    assert result == ChatResult(text="Yes, in stock.", prompt_tokens=30, completion_tokens=len(ok) + 1)
    truncated = completion_result(tokenizer, ok, prompt_tokens=30, stop_ids=[2])
    assert truncated.finish_reason == "length" and truncated.completion_tokens == len(ok)


def test_measure_generation_times_single_requests(base: Path) -> None:
    stats = measure_generation(HFChatModel(base, "tiny"), qa_conversations()[:3], max_tokens=4, repeats=2)
    assert stats["n"] == 6
    assert 0 < stats["p50_ms"] <= stats["p95_ms"]
    assert stats["tokens_per_s"] > 0


def test_stop_after_epoch_one_then_resume_lands_on_the_same_adapter(
    trained: TrainedRun, tmp_path: Path
) -> None:
    stopped = train_lora(trained.base, qa_rows(), qa_rows()[:4], SETTINGS, tmp_path,
                         on_epoch_end=lambda context: context.epoch == 1)
    assert stopped.stopped_early and [r.epoch for r in stopped.history] == [1]
    assert not (tmp_path / "epoch-2").exists()
    with pytest.raises(ConfigError, match="resume=True"):
        train_lora(trained.base, qa_rows(), qa_rows()[:4], SETTINGS, tmp_path)

    hook = HookLog()
    resumed = train_lora(trained.base, qa_rows(), qa_rows()[:4], SETTINGS, tmp_path, on_epoch_end=hook, resume=True)
    assert resumed.resumed and not resumed.stopped_early
    assert hook.epochs == [2]  # continued at epoch 2, did not redo epoch 1
    assert [r.epoch for r in resumed.history] == [1, 2] and resumed.history[1].global_step == 4
    uninterrupted = load_file(trained.output / "epoch-2" / ADAPTER)
    continued = load_file(tmp_path / "epoch-2" / ADAPTER)
    for name, weight in uninterrupted.items():
        torch.testing.assert_close(continued[name], weight, rtol=0, atol=1e-6)
    assert resumed.history[1].eval_loss == pytest.approx(trained.result.history[1].eval_loss, rel=1e-5)


def test_lora_on_the_top_blocks_only(base: Path, tmp_path: Path) -> None:
    assert lora_layer_indices("top:10", 30) == list(range(20, 30))
    assert lora_layer_indices("all", 30) is None
    with pytest.raises(ConfigError, match="top:1 .. top:2"):
        lora_layer_indices("top:3", 2)
    with pytest.raises(ConfigError, match="lora_layers"):
        SFTSettings(lora_layers="bottom:2")

    trainer = build_trainer(base, qa_rows()[:2], qa_rows()[:2], SFTSettings(lora_layers="top:1"), tmp_path)
    adapted = {name.split(".layers.")[1].split(".")[0] for name, _ in trainer.model.named_parameters()
               if "lora_A" in name}
    assert adapted == {"1"}


def test_without_validation_rows_epochs_have_no_eval_loss(base: Path, tmp_path: Path) -> None:
    """A job without a validation file (OpenAI's is optional) trains; its epochs record no eval loss."""
    import math

    result = train_lora(base, qa_rows()[:4], [], SFTSettings(epochs=1, per_device_batch_size=2), tmp_path)
    assert len(result.history) == 1 and math.isnan(result.history[0].eval_loss)
    assert (tmp_path / "epoch-1" / "adapter_config.json").is_file()


def test_bad_rows_and_settings_fail_before_training(base: Path, tmp_path: Path) -> None:
    good = sft_row([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], "a")
    bad = {"prompt": good["prompt"], "completion": [{"role": "user", "content": "a"}]}
    with pytest.raises(DataError, match="train row 1: 'completion' must be one assistant message"):
        train_lora(base, [good, bad], [good], SETTINGS, tmp_path)
    with pytest.raises(DataError, match="validation row 0: 'completion' must be one assistant message"):
        train_lora(base, [good], [bad], SETTINGS, tmp_path)
    with pytest.raises(ConfigError, match="learning_rate"):
        SFTSettings(learning_rate=0.0)
