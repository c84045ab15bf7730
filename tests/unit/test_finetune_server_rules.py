"""Pure rules of the fine-tuning server and the managed workflow: model names, hyperparameter defaults, the
trainer rows a chat JSONL file becomes, the job key, and the CLI's --dry-run / --serve openai guards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mangadistill.config import FineTuneBaseModelConfig
from mangadistill.finetune.data import ChatFile
from mangadistill.finetune.worker import (
    checkpoint_model_name,
    fine_tuned_model_name,
    resolve_hyperparameters,
    sft_rows_from_file,
)
from mangadistill.finetune.workflow import job_key


def test_model_names_follow_openais_scheme():
    job = {"id": "ftjob-AbCdEfGh12345678", "model": "smollm2-135m-instruct", "user_provided_suffix": "manga"}
    assert fine_tuned_model_name(job) == "ft:smollm2-135m-instruct:manga:AbCdEfGh"
    assert checkpoint_model_name(job, 42) == "ft:smollm2-135m-instruct:manga:AbCdEfGh:ckpt-step-42"
    assert fine_tuned_model_name({**job, "user_provided_suffix": None}) == "ft:smollm2-135m-instruct::AbCdEfGh"


def test_auto_hyperparameters_take_the_base_models_defaults():
    base = FineTuneBaseModelConfig(default_epochs=3, default_batch_size=8)
    assert resolve_hyperparameters({}, base) == {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 1.0}
    assert resolve_hyperparameters({"n_epochs": "auto", "batch_size": 2, "learning_rate_multiplier": 0.5}, base) == {
        "n_epochs": 3, "batch_size": 2, "learning_rate_multiplier": 0.5}


def test_trainer_rows_take_the_last_trained_assistant_turn(tmp_path):
    lines = [
        {"messages": [{"role": "developer", "content": "rules"}, {"role": "user", "content": "q1"},
                      {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"},
                      {"role": "assistant", "content": "a2"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "keep"},
                      {"role": "user", "content": "q'"}, {"role": "assistant", "content": "skip", "weight": 0}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "x", "weight": 0}]},
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + "\n")
    rows = sft_rows_from_file(path)
    assert len(rows) == 2  # the third example has nothing to learn from
    assert rows[0]["prompt"][0] == {"role": "system", "content": "rules"}  # developer is read as system
    assert [m["content"] for m in rows[0]["prompt"]] == ["rules", "q1", "a1", "q2"]
    assert rows[0]["completion"] == [{"role": "assistant", "content": "a2"}]
    assert rows[1]["completion"][0]["content"] == "keep" and len(rows[1]["prompt"]) == 1


def _file(sha: str) -> ChatFile:
    return ChatFile(path=Path("train.jsonl"), sha256=sha, examples=10, bytes=100)


def test_job_key_changes_with_anything_that_makes_another_job():
    base = dict(model="m", train=_file("a" * 64), validation=_file("b" * 64),
                hyperparameters={"n_epochs": 4}, suffix="s", seed=1, attempt=1)
    key = job_key(**base)
    assert key == job_key(**base)
    for change in ({"model": "m2"}, {"train": _file("c" * 64)}, {"validation": None},
                   {"hyperparameters": {"n_epochs": 3}}, {"suffix": "t"}, {"seed": 2}, {"attempt": 2}):
        assert job_key(**{**base, **change}) != key, change


def test_dry_run_applies_to_the_managed_pipeline_only(capsys):
    import run

    assert run.main(["--pipeline", "distill_response", "--dry-run"]) == 2
    assert "--dry-run applies to distill_response_managed" in capsys.readouterr().err


def test_openai_server_needs_a_key(monkeypatch, capsys):
    import run

    monkeypatch.delenv("MANGADISTILL_API_KEY", raising=False)
    assert run.main(["--serve", "openai"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --serve openai needs an API key")


@pytest.mark.parametrize("name", ["ft:x", "a:b", "a/b", ""])
def test_base_model_ids_must_be_usable(name):
    from pydantic import ValidationError

    from mangadistill.config import OpenAIServerConfig

    with pytest.raises(ValidationError, match="base_models"):
        OpenAIServerConfig(base_models={name: FineTuneBaseModelConfig()})
