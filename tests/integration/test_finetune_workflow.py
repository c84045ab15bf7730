"""The managed workflow's client side (`mangadistill.finetune.workflow`) against the project's fine-tuning server
on loopback, through the official client: no second upload, no second job, events in order, a failed or
cancelled job as one line with the provider's message, checkpoints with their epochs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mangadistill.config import OpenAIServerConfig, load_config
from mangadistill.finetune.data import ChatFile
from mangadistill.finetune.service import FineTuneService
from mangadistill.finetune.workflow import (
    EndpointChatModel,
    FineTuneJobError,
    ManagedEndpoint,
    epoch_checkpoints,
    follow_job,
    job_key,
    start_or_resume_job,
    upload_once,
)
from mangadistill.serving.loopback import serve
from mangadistill.serving.openai_server import create_openai_app

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KEY = "workflow-test-key"


def _example(i: int, weight: int = 1) -> dict:
    return {"messages": [{"role": "system", "content": "You are MangaAssist."},
                         {"role": "user", "content": f"Is volume {i} of Berserk in stock?"},
                         {"role": "assistant", "content": f"Yes, volume {i} is in stock.", "weight": weight}]}


def _chat_file(path: Path, examples: list[dict]) -> ChatFile:
    import hashlib

    data = "".join(json.dumps(e) + "\n" for e in examples).encode()
    path.write_bytes(data)
    return ChatFile(path=path, sha256=hashlib.sha256(data).hexdigest(), examples=len(examples), bytes=len(data))


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory, monkeypatch_module):
    root = tmp_path_factory.mktemp("workflow")
    config = load_config(PROJECT_ROOT / "configs" / "serve_openai_smoke.yaml", OpenAIServerConfig)
    config = config.model_copy(update={"root": root / "server", "poll_seconds": 0.1})
    service = FineTuneService(config, tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch_module.setenv("WORKFLOW_TEST_KEY", KEY)
    with serve(create_openai_app(service, KEY), lifespan="on") as server:
        yield ManagedEndpoint(f"{server.url}/v1", "WORKFLOW_TEST_KEY", timeout_s=60, max_retries=0), root


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_upload_and_job_happen_once_and_events_arrive_in_order(endpoint):
    managed, root = endpoint
    client = managed.client()
    train = _chat_file(root / "train.jsonl", [_example(i) for i in range(12)])
    validation = _chat_file(root / "validation.jsonl", [_example(i) for i in range(100, 103)])
    first, reused_first = upload_once(client, train)
    again, reused_again = upload_once(client, train)
    assert (reused_first, reused_again) == (False, True) and again.id == first.id
    val_file, _ = upload_once(client, validation)
    hyper = {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": "auto"}
    key = job_key(model="tiny-llama", train=train, validation=validation, hyperparameters=hyper, suffix="wf",
                  seed=1, attempt=1)
    job, reused = start_or_resume_job(client, key=key, model="tiny-llama", training_file=first.id,
                                      validation_file=val_file.id, hyperparameters=hyper, suffix="wf", seed=1)
    assert not reused
    events = []
    finished = follow_job(client, job.id, on_event=events.append, poll_s=0.2, timeout_s=300)
    assert finished.status == "succeeded" and finished.fine_tuned_model.startswith("ft:tiny-llama:wf:")
    assert [e.created_at for e in events] == sorted(e.created_at for e in events)
    messages = [e.message for e in events]
    assert messages[-1] == "The job has successfully completed"
    assert any(e.type == "metrics" for e in events)
    same, reused = start_or_resume_job(client, key=key, model="tiny-llama", training_file=first.id,
                                       validation_file=val_file.id, hyperparameters=hyper, suffix="wf", seed=1)
    assert reused and same.id == job.id
    assert len([f for f in client.files.list(purpose="fine-tune")]) == 2
    assert len(list(client.fine_tuning.jobs.list(metadata={"mangadistill_job_key": key}))) == 1
    seen_again: set[str] = set()
    follow_job(client, job.id, on_event=None, poll_s=0.2, seen=seen_again)
    assert len(seen_again) == len(events)  # a second follower sees the same events, no more

    checkpoints = epoch_checkpoints(client, finished)
    assert [c.epoch for c in checkpoints] == [1, 2]
    assert all(c.model.startswith(finished.fine_tuned_model + ":ckpt-step-") for c in checkpoints)
    answer = EndpointChatModel(managed, checkpoints[0].model).complete(
        [{"role": "user", "content": "Is volume 3 of Berserk in stock?"}], max_tokens=4)
    assert answer.completion_tokens > 0 and answer.prompt_tokens > 0
    streamed = "".join(EndpointChatModel(managed, finished.fine_tuned_model).stream(
        [{"role": "user", "content": "hello"}], max_tokens=4))
    assert isinstance(streamed, str)


def test_a_failed_job_is_one_line_with_the_providers_message(endpoint):
    managed, root = endpoint
    client = managed.client()
    # every assistant turn has weight 0: valid JSONL, but nothing to learn, so the training run fails
    untrainable = _chat_file(root / "weightless.jsonl", [_example(i, weight=0) for i in range(12)])
    uploaded, _ = upload_once(client, untrainable)
    job = client.fine_tuning.jobs.create(model="tiny-llama", training_file=uploaded.id)
    with pytest.raises(FineTuneJobError) as failure:
        follow_job(client, job.id, poll_s=0.2, timeout_s=120)
    message = str(failure.value)
    assert "\n" not in message and job.id in message and "failed" in message
    assert "at least one train row" in message  # the server's own reason, passed through
    assert "managed.attempt" in message


def test_a_cancelled_job_is_one_line(endpoint):
    managed, root = endpoint
    client = managed.client()
    train = _chat_file(root / "long.jsonl", [_example(i) for i in range(40)])
    uploaded, _ = upload_once(client, train)
    job = client.fine_tuning.jobs.create(model="tiny-llama", training_file=uploaded.id,
                                         method={"type": "supervised",
                                                 "supervised": {"hyperparameters": {"n_epochs": 30}}})
    deadline = time.monotonic() + 60
    while client.fine_tuning.jobs.retrieve(job.id).status != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    client.fine_tuning.jobs.cancel(job.id)
    with pytest.raises(FineTuneJobError, match=r"was cancelled; raise managed.attempt"):
        follow_job(client, job.id, poll_s=0.2, timeout_s=60)
    time.sleep(1.0)  # the worker stops after its current step; the job stays cancelled
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"


def test_missing_key_variable_is_a_config_error(monkeypatch):
    from mangadistill.errors import ConfigError

    monkeypatch.delenv("NO_SUCH_KEY_VARIABLE", raising=False)
    with pytest.raises(ConfigError, match=r"\$NO_SUCH_KEY_VARIABLE is not set"):
        ManagedEndpoint("http://127.0.0.1:9/v1", "NO_SUCH_KEY_VARIABLE").client()


def test_endpoint_failures_are_one_line_endpoint_errors(endpoint):
    from mangadistill.finetune.workflow import EndpointError

    managed, _ = endpoint
    with pytest.raises(EndpointError, match=r"answered 404 for model 'ft:no-such-model': the model 'ft:no-such-model' "
                                            r"does not exist"):
        EndpointChatModel(managed, "ft:no-such-model").complete([{"role": "user", "content": "hi"}])
    gone = ManagedEndpoint("http://127.0.0.1:9/v1", managed.api_key_env, timeout_s=2, max_retries=0)
    with pytest.raises(EndpointError, match=r"did not answer for model 'tiny-llama'.*is the server running") as failure:
        list(EndpointChatModel(gone, "tiny-llama").stream([{"role": "user", "content": "hi"}]))
    assert "\n" not in str(failure.value) and failure.value.exit_code == 4
