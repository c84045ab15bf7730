"""The OpenAI-compatible fine-tuning server (`run.py --serve openai`) checked with the official `openai` client,
over real HTTP on loopback, on its real SQLite store, with jobs tracked in a real MLflow SQLite store:

- every endpoint a supervised fine-tuning workflow uses answers JSON that the SDK's own pydantic models validate
  (no field they do not declare, no warning when the SDK parses it), and lists page with `after` / `limit`;
- every refusal is OpenAI's ``{"error": {message, type, param, code}}`` with the status the SDK maps to its
  exception classes;
- a cancelled job stays cancelled;
- a server killed (SIGKILL) mid-job and started again finishes the same job from its last checkpoint.

One in-process server and one prepared tiny base model (~10 s) serve the module; the restart test runs
`run.py` itself. The worker runs one job at a time, so fixtures that train wait for their job to end.
"""

import csv
import io
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from mlflow import MlflowClient
from openai import Omit
from openai.types import FileObject, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from mangadistill.config import OpenAIServerConfig, load_config
from mangadistill.finetune.service import FineTuneService
from mangadistill.serving.loopback import serve
from mangadistill.serving.openai_server import create_openai_app
from tests.e2e._cli import free_port, run_cli
from tests.integration._finetune_server import (
    BASE_MODEL,
    PROJECT_ROOT,
    SMOKE_CONFIG,
    ServerProcess,
    chat_examples,
    events,
    finished,
    jsonl,
    last_step,
    messages,
    openai_error,
    unknown_fields,
    validated,
    validated_page,
    wait_for,
    write_config,
)

KEY = "ft-test-key"
EXPERIMENT = "openai-fine-tuning"  # the smoke config's mlflow_experiment
STEPS_PER_EPOCH = 6  # 24 training examples at the smoke config's default batch size, 4
#: The cancelled job: 24 examples at batch size 1 for 20 epochs, cancelled a few steps into epoch 1.
CANCEL_STEPS_PER_EPOCH, CANCEL_EPOCHS = 24, 20
ASK = [{"role": "system", "content": "You are MangaAssist."},
       {"role": "user", "content": "Is volume 3 of Berserk in stock?"}]
#: Sent by OpenAI's own API too (in its job objects), though SDK 3.57's `FineTuningJob` does not declare it.
JOB_EXTRAS = ("user_provided_suffix",)
TWO_EPOCHS = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}}


def sdk(url: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


def mlflow_runs(tracking_uri: str, job_id: str) -> list:
    """The MLflow runs of a job's attempts, attempt 1 first."""
    tracking = MlflowClient(tracking_uri)
    experiment = tracking.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None, f"no MLflow experiment '{EXPERIMENT}' in {tracking_uri}"
    runs = tracking.search_runs([experiment.experiment_id], filter_string=f"tags.fine_tuning_job_id = '{job_id}'")
    return sorted(runs, key=lambda run: int(run.data.tags["attempt"]))


@dataclass(frozen=True)
class Trained:
    """The module's job that ran to success, with the raw answers that created it."""

    file_raw: Any  # files.with_raw_response.create of its training file
    data: bytes  # that file's bytes
    validation: FileObject
    job_raw: Any  # fine_tuning.jobs.with_raw_response.create
    job: FineTuningJob  # as it finished


@dataclass(frozen=True)
class Cancelled:
    cancel_raw: Any  # fine_tuning.jobs.with_raw_response.cancel, sent while the job trained
    job_id: str


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    folder = tmp_path_factory.mktemp("openai-finetune")
    config = load_config(SMOKE_CONFIG, OpenAIServerConfig).model_copy(update={"root": folder / "root"})
    service = FineTuneService(config, tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    yield service
    service.stop()


@pytest.fixture(scope="module")
def server(service):
    with serve(create_openai_app(service, KEY, service.config.limits), lifespan="on") as running:
        yield running


@pytest.fixture
def client(server):
    with sdk(server.url) as client:
        yield client


@pytest.fixture(scope="module")
def trained(server) -> Trained:
    data = jsonl(chat_examples(24))
    with sdk(server.url) as client:
        file_raw = client.files.with_raw_response.create(file=("train.jsonl", data), purpose="fine-tune")
        validation = client.files.create(file=("validation.jsonl", jsonl(chat_examples(6, start=100))),
                                         purpose="fine-tune")
        job_raw = client.fine_tuning.jobs.with_raw_response.create(
            model=BASE_MODEL, training_file=file_raw.http_response.json()["id"], validation_file=validation.id,
            suffix="manga", seed=7, method=TWO_EPOCHS, metadata={"suite": "sdk-walk"})
        job = finished(client, job_raw.http_response.json()["id"], timeout=180)
    assert job.status == "succeeded", job.error
    return Trained(file_raw=file_raw, data=data, validation=validation, job_raw=job_raw, job=job)


@pytest.fixture(scope="module")
def cancelled(server, trained) -> Cancelled:
    """A long job cancelled a few steps into its first epoch, once the worker has stopped it (`trained` first:
    the worker runs one job at a time)."""
    with sdk(server.url) as client:
        upload = client.files.create(file=("long.jsonl", jsonl(chat_examples(24, start=200))), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(
            model=BASE_MODEL, training_file=upload.id, metadata={"suite": "cancel"},
            method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": CANCEL_EPOCHS,
                                                                             "batch_size": 1}}})
        wait_for(lambda: last_step(client, job.id) >= 2, timeout=120, what="the long job to train")
        cancel_raw = client.fine_tuning.jobs.with_raw_response.cancel(job.id)
        wait_for(lambda: "Training stopped: the job was cancelled" in messages(client, job.id), timeout=60,
                 what="the worker to stop the cancelled job")
        wait_for(lambda: httpx.get(f"{server.url}/health").json()["running_job"] is None, timeout=30,
                 what="the worker to be idle")
    return Cancelled(cancel_raw=cancel_raw, job_id=job.id)


# --------------------------------------------------------------------------------------------------------------
# Every endpoint, validated with the SDK's own types
# --------------------------------------------------------------------------------------------------------------


def test_file_endpoints_answer_the_sdks_file_object(client, trained):
    created = validated(trained.file_raw, FileObject)
    assert created.id.startswith("file-") and created.object == "file"
    assert (created.filename, created.purpose, created.status, created.bytes) == \
        ("train.jsonl", "fine-tune", "processed", len(trained.data))
    assert validated(client.files.with_raw_response.retrieve(created.id), FileObject) == created

    body, listed = validated_page(client.files.with_raw_response.list(purpose="fine-tune"), FileObject)
    assert {created.id, trained.validation.id} <= {f.id for f in listed}
    assert all(f.purpose == "fine-tune" for f in listed) and not body["has_more"]

    content = client.files.with_raw_response.content(created.id)
    assert content.http_response.content == trained.data and content.parse().content == trained.data

    results = validated(client.files.with_raw_response.retrieve(trained.job.result_files[0]), FileObject)
    assert results.purpose == "fine-tune-results"
    rows = list(csv.DictReader(io.StringIO(client.files.content(results.id).text)))
    assert [(row["epoch"], row["step"]) for row in rows] == [("1", "6"), ("2", "12")]


def test_job_endpoints_answer_the_sdks_job_event_and_checkpoint_types(client, trained):
    created = validated(trained.job_raw, FineTuningJob, extras=JOB_EXTRAS)
    assert created.id.startswith("ftjob-") and created.status == "queued" and created.fine_tuned_model is None
    assert (created.model, created.user_provided_suffix, created.seed, created.metadata) == \
        (BASE_MODEL, "manga", 7, {"suite": "sdk-walk"})
    assert created.method.type == "supervised" and created.method.supervised.hyperparameters.n_epochs == 2
    assert created.hyperparameters.n_epochs == 2 and created.validation_file == trained.validation.id

    job = validated(client.fine_tuning.jobs.with_raw_response.retrieve(created.id), FineTuningJob,
                    extras=JOB_EXTRAS)
    assert job.id == created.id and job.status == "succeeded" and job.error is None
    assert job.fine_tuned_model == f"ft:{BASE_MODEL}:manga:{created.id.removeprefix('ftjob-')[:8]}"
    assert job.finished_at >= job.created_at and job.trained_tokens > 0 and len(job.result_files) == 1

    _, listed = validated_page(client.fine_tuning.jobs.with_raw_response.list(metadata={"suite": "sdk-walk"}),
                               FineTuningJob, extras=JOB_EXTRAS)
    assert [j.id for j in listed] == [created.id]
    assert client.fine_tuning.jobs.list(metadata={"suite": "no-such-suite"}).data == []

    _, newest_first = validated_page(
        client.fine_tuning.jobs.with_raw_response.list_events(created.id, limit=100), FineTuningJobEvent)
    said = [event.message for event in reversed(newest_first)]
    assert said[0].startswith(f"Validated the training file {created.training_file}")
    assert said[-2:] == [f"New fine-tuned model created: {job.fine_tuned_model}", "The job has successfully completed"]
    assert said.count("Fine-tuning job started") == 1
    steps = [event.data["step"] for event in newest_first if event.type == "metrics"]
    assert steps == sorted(steps, reverse=True) and steps[0] == 2 * STEPS_PER_EPOCH

    _, checkpoints = validated_page(client.fine_tuning.jobs.checkpoints.with_raw_response.list(created.id),
                                    FineTuningJobCheckpoint)
    assert [(c.step_number, c.fine_tuned_model_checkpoint) for c in checkpoints] == \
        [(n, f"{job.fine_tuned_model}:ckpt-step-{n}") for n in (2 * STEPS_PER_EPOCH, STEPS_PER_EPOCH)]
    assert all(c.fine_tuning_job_id == job.id and c.metrics.valid_loss is not None for c in checkpoints)


def test_model_and_chat_endpoints_answer_the_sdks_types(client, trained):
    name = trained.job.fine_tuned_model
    checkpoint = f"{name}:ckpt-step-{STEPS_PER_EPOCH}"
    _, models = validated_page(client.models.with_raw_response.list(), Model, cursor=False)
    assert {BASE_MODEL, name} <= {m.id for m in models}
    assert not any(":ckpt-step-" in m.id for m in models)  # checkpoints are served, not listed
    for served in (name, checkpoint):
        assert validated(client.models.with_raw_response.retrieve(served), Model).id == served
        completion = validated(client.chat.completions.with_raw_response.create(
            model=served, messages=ASK, max_tokens=6, temperature=0.0), ChatCompletion)
        assert completion.object == "chat.completion" and completion.model == served
        choice = completion.choices[0]
        assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
        assert choice.finish_reason in ("stop", "length") and 1 <= completion.usage.completion_tokens <= 6
        assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_streamed_chat_chunks_are_the_sdks_chunk_type(client, trained):
    request = {"model": trained.job.fine_tuned_model, "messages": ASK, "max_tokens": 6, "temperature": 0.0}
    with client.chat.completions.with_streaming_response.create(**request, stream=True) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)
    chunks = [validated_chunk(line.removeprefix("data: ")) for line in lines[:-1]]
    assert len({chunk.id for chunk in chunks}) == 1 and chunks[0].choices[0].delta.role == "assistant"
    assert [chunk.choices[0].finish_reason for chunk in chunks] == [None] * (len(chunks) - 1) + ["stop"]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parsed = list(client.chat.completions.with_raw_response.create(**request, stream=True).parse())
        for chunk in parsed:
            chunk.model_dump()
    whole = client.chat.completions.create(**request).choices[0].message.content  # greedy: the same text
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == whole
    assert "".join(chunk.choices[0].delta.content or "" for chunk in parsed) == whole


def validated_chunk(data: str) -> ChatCompletionChunk:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chunk = ChatCompletionChunk.model_validate_json(data)
    assert unknown_fields(chunk) == []
    return chunk


def test_files_events_and_checkpoints_page_with_after_and_limit(client, trained):
    every = [f.id for f in client.files.list().data]  # newest first
    assert len(every) >= 3  # training, validation and results files
    first = client.files.list(limit=1)
    assert first.has_more and [f.id for f in first.data] == every[:1]
    assert [f.id for f in client.files.list(limit=1, after=first.data[-1].id).data] == every[1:2]
    assert [f.id for f in client.files.list(limit=1)] == every  # the SDK follows `after` to the last page
    assert not client.files.list(limit=len(every)).has_more
    assert [f.id for f in client.files.list(order="asc").data] == every[::-1]

    job_id = trained.job.id
    history = [e.id for e in client.fine_tuning.jobs.list_events(job_id, limit=100).data]
    assert len(history) > 6
    page = client.fine_tuning.jobs.list_events(job_id, limit=3)
    assert page.has_more and [e.id for e in page.data] == history[:3]
    assert [e.id for e in client.fine_tuning.jobs.list_events(job_id, limit=3, after=page.data[-1].id).data] == \
        history[3:6]
    assert [e.id for e in client.fine_tuning.jobs.list_events(job_id, limit=3)] == history

    newest = client.fine_tuning.jobs.checkpoints.list(job_id, limit=1)
    assert newest.has_more and [c.step_number for c in newest.data] == [2 * STEPS_PER_EPOCH]
    assert [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job_id, limit=1)] == \
        [2 * STEPS_PER_EPOCH, STEPS_PER_EPOCH]


# --------------------------------------------------------------------------------------------------------------
# Refusals, in OpenAI's error shape
# --------------------------------------------------------------------------------------------------------------

NEEDS_KEY = {
    "files.list": lambda client, headers: client.files.list(extra_headers=headers),
    "files.create": lambda client, headers: client.files.create(
        file=("train.jsonl", jsonl(chat_examples(10))), purpose="fine-tune", extra_headers=headers),
    "fine_tuning.jobs.list": lambda client, headers: client.fine_tuning.jobs.list(extra_headers=headers),
    "fine_tuning.jobs.create": lambda client, headers: client.fine_tuning.jobs.create(
        model=BASE_MODEL, training_file="file-x", extra_headers=headers),
    "chat.completions.create": lambda client, headers: client.chat.completions.create(
        model=BASE_MODEL, messages=ASK, max_tokens=4, extra_headers=headers),
}


@pytest.mark.parametrize("endpoint", list(NEEDS_KEY))
def test_a_wrong_or_missing_key_is_401(server, endpoint):
    with sdk(server.url, key="not-the-key") as wrong:
        for headers in ({}, {"Authorization": Omit()}):  # a wrong key, then no Authorization header at all
            with pytest.raises(openai.AuthenticationError) as caught:
                NEEDS_KEY[endpoint](wrong, headers)
            openai_error(caught.value, 401, param=None, code="invalid_api_key")
            assert caught.value.response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"  # the health check needs no key


@pytest.mark.parametrize(("content", "purpose", "param", "code", "says"), [
    (jsonl([{"messages": [{"role": "user", "content": "Is volume 3 in stock?"}]}, *chat_examples(11)]),
     "fine-tune", "file", "invalid_file_format", "line 1: no assistant message"),
    (jsonl(chat_examples(11)) + b'{"messages": [\n', "fine-tune", "file", "invalid_file_format", "line 12: not JSON"),
    (b"\n\n", "fine-tune", "file", "invalid_file_format", "the file is empty"),
    (jsonl(chat_examples(11)), "assistants", "purpose", "invalid_value", "'fine-tune' files only"),
], ids=["no-assistant-message", "not-json", "empty", "purpose"])
def test_an_invalid_upload_is_400_and_nothing_is_kept(client, content, purpose, param, code, says):
    before = [f.id for f in client.files.list().data]
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("bad.jsonl", content), purpose=purpose)
    assert says in openai_error(caught.value, 400, param=param, code=code)["message"]
    assert [f.id for f in client.files.list().data] == before


def _upload(client: openai.OpenAI, examples: list) -> str:
    return client.files.create(file=("examples.jsonl", jsonl(examples)), purpose="fine-tune").id


def _with_tool_turn() -> list:
    examples = chat_examples(12, start=400)
    examples[3]["messages"].insert(2, {"role": "tool", "content": "in stock: 4"})
    return examples


@pytest.mark.parametrize(("request_of", "param", "code", "says"), [
    (lambda client, trained: {"training_file": _upload(client, chat_examples(5))},
     "training_file", "invalid_training_file", "fine-tuning needs at least 10"),
    (lambda client, trained: {"training_file": _upload(client, _with_tool_turn())},
     "training_file", "invalid_training_file", "line 4: this server trains on text turns only"),
    (lambda client, trained: {"training_file": "file-doesnotexist"}, "training_file", "invalid_file", "does not exist"),
    (lambda client, trained: {"training_file": trained.job.result_files[0]},
     "training_file", "invalid_file", "purpose 'fine-tune-results'"),
    (lambda client, trained: {"training_file": trained.job.training_file, "validation_file": "file-doesnotexist"},
     "validation_file", "invalid_file", "does not exist"),
], ids=["too-few-examples", "tool-turn", "unknown-file", "results-file", "unknown-validation-file"])
def test_a_job_on_an_unusable_file_is_400_and_not_created(client, trained, request_of, param, code, says):
    request = request_of(client, trained)
    before = [j.id for j in client.fine_tuning.jobs.list(limit=100).data]
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(model=BASE_MODEL, **request)
    assert says in openai_error(caught.value, 400, param=param, code=code)["message"]
    assert [j.id for j in client.fine_tuning.jobs.list(limit=100).data] == before


@pytest.mark.parametrize(("request_", "param", "code"), [
    ({"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}}, "method.type", "invalid_value"),
    ({"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 51}}}},
     "hyperparameters.n_epochs", "invalid_value"),
    ({"integrations": [{"type": "wandb", "wandb": {"project": "manga"}}]}, "integrations", "invalid_value"),
    ({"extra_body": {"classifications": 3}}, "classifications", "unknown_parameter"),
], ids=["dpo", "n_epochs-out-of-range", "wandb", "unknown-parameter"])
def test_an_unsupported_job_request_is_400_and_not_created(client, trained, request_, param, code):
    before = [j.id for j in client.fine_tuning.jobs.list(limit=100).data]
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=trained.job.training_file, **request_)
    openai_error(caught.value, 400, param=param, code=code)
    assert [j.id for j in client.fine_tuning.jobs.list(limit=100).data] == before


def test_a_model_that_cannot_be_fine_tuned_is_model_not_available(client, trained):
    with pytest.raises(openai.NotFoundError) as caught:  # unknown here
        client.fine_tuning.jobs.create(model="gpt-4.1-mini-2025-04-14", training_file=trained.job.training_file)
    assert BASE_MODEL in openai_error(caught.value, 404, param="model", code="model_not_available")["message"]
    with pytest.raises(openai.BadRequestError) as caught:  # a fine-tuned model: known, but not a base model
        client.fine_tuning.jobs.create(model=trained.job.fine_tuned_model, training_file=trained.job.training_file)
    assert "not supported" in openai_error(caught.value, 400, param="model", code="model_not_available")["message"]


@pytest.mark.parametrize("name", ["gpt-4.1-mini", f"ft:{BASE_MODEL}:manga:00000000",
                                  f"ft:{BASE_MODEL}:manga:00000000:ckpt-step-6"])
def test_an_unknown_chat_model_is_404_model_not_found(client, name):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model=name, messages=ASK, max_tokens=4)
    assert BASE_MODEL in openai_error(caught.value, 404, param="model", code="model_not_found")["message"]
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve(name)
    openai_error(caught.value, 404, param="model", code="model_not_found")


@pytest.mark.parametrize("call", [
    lambda client, job_id: client.fine_tuning.jobs.retrieve(job_id),
    lambda client, job_id: client.fine_tuning.jobs.list_events(job_id),
    lambda client, job_id: client.fine_tuning.jobs.checkpoints.list(job_id),
    lambda client, job_id: client.fine_tuning.jobs.cancel(job_id),
], ids=["retrieve", "list_events", "checkpoints.list", "cancel"])
def test_an_unknown_job_is_404(client, call):
    with pytest.raises(openai.NotFoundError) as caught:
        call(client, "ftjob-doesnotexist0000000000")
    openai_error(caught.value, 404, param="fine_tuning_job_id", code="fine_tune_not_found")


def test_an_upload_over_the_file_limit_is_413(tmp_path, service):
    limits = service.config.limits.model_copy(update={"max_file_bytes": 2_000})
    small = FineTuneService(service.config.model_copy(update={"root": tmp_path / "root", "limits": limits}))
    try:
        with serve(create_openai_app(small, KEY, limits, run_worker=False)) as running, sdk(running.url) as client:
            fits = jsonl(chat_examples(6))
            assert len(fits) <= 2_000
            kept = client.files.create(file=("fits.jsonl", fits), purpose="fine-tune")
            # read until it passes the limit / refused by its content-length alone (over the limit + 64 KiB)
            for examples, param in ((30, "file"), (400, None)):
                data = jsonl(chat_examples(examples))
                assert 2_000 < len(data) and (len(data) > 2_000 + 65_536) == (param is None)
                with pytest.raises(openai.APIStatusError) as caught:
                    client.files.create(file=("big.jsonl", data), purpose="fine-tune")
                openai_error(caught.value, 413, param=param, code="file_too_large")
            assert [f.id for f in client.files.list().data] == [kept.id]
        assert sorted(p.name for p in small.store.files_dir.iterdir()) == [kept.id]  # no partial upload left
    finally:
        small.stop()


# --------------------------------------------------------------------------------------------------------------
# Cancelling
# --------------------------------------------------------------------------------------------------------------


def test_a_cancelled_job_stays_cancelled(client, server, service, trained, cancelled):
    answered = validated(cancelled.cancel_raw, FineTuningJob, extras=JOB_EXTRAS)
    assert (answered.id, answered.status, answered.fine_tuned_model) == (cancelled.job_id, "cancelled", None)
    assert answered.finished_at is not None
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:  # the worker has let go of it: nothing changes it any more
        now = client.fine_tuning.jobs.retrieve(cancelled.job_id)
        assert (now.status, now.fine_tuned_model, now.finished_at) == ("cancelled", None, answered.finished_at)
        time.sleep(0.25)
    said = messages(client, cancelled.job_id)
    assert said.index("Fine-tuning job cancelled") < said.index("Training stopped: the job was cancelled")
    assert not any(m.startswith("New fine-tuned model") or m.endswith("successfully completed") for m in said)
    steps = [e.data["step"] for e in events(client, cancelled.job_id) if e.type == "metrics"]
    assert max(steps) < CANCEL_EPOCHS * CANCEL_STEPS_PER_EPOCH  # stopped early
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok", "running_job": None, "queued_jobs": 0}

    for job_id, status in ((cancelled.job_id, "cancelled"), (trained.job.id, "succeeded")):
        with pytest.raises(openai.BadRequestError) as caught:
            client.fine_tuning.jobs.cancel(job_id)
        error = openai_error(caught.value, 400, param="fine_tuning_job_id", code="job_already_finished")
        assert status in error["message"]
    assert [run.info.status for run in mlflow_runs(service.worker.tracking_uri, cancelled.job_id)] == ["KILLED"]


# A cancel mid-epoch once saved the unfinished epoch (the Trainer asks for the epoch save after the cancel).
def test_a_cancel_saves_no_checkpoint_after_it(client, cancelled):
    said = messages(client, cancelled.job_id)
    after_cancel = said[said.index("Fine-tuning job cancelled"):]
    assert [m for m in after_cancel if m.startswith("Checkpoint created")] == []
    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(cancelled.job_id))
    assert all(c.step_number % CANCEL_STEPS_PER_EPOCH == 0 for c in checkpoints), [c.step_number for c in checkpoints]


# --------------------------------------------------------------------------------------------------------------
# Text the upload check accepts must train
# --------------------------------------------------------------------------------------------------------------


# JSON allows U+2028 raw inside a string; lines are split on "\n" only, everywhere a file is read.
def test_a_line_separator_inside_a_message_trains(server, trained):
    examples = chat_examples(10, start=300)
    examples[0]["messages"][1]["content"] = "Is volume 1\u2028of Berserk in stock?"
    data = jsonl(examples, ensure_ascii=False)
    assert "\u2028".encode() in data
    with sdk(server.url) as client:
        upload = client.files.create(file=("separator.jsonl", data), purpose="fine-tune")  # accepted
        job = client.fine_tuning.jobs.create(
            model=BASE_MODEL, training_file=upload.id,
            method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}})
        done = finished(client, job.id, timeout=120)
    assert done.status == "succeeded", done.error


# --------------------------------------------------------------------------------------------------------------
# The real process: killed mid-job, started again
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_model_dir(service):
    """The tiny base model the module's server prepared (its tokenizer spares the subprocess a GGUF read)."""
    return service.base_dir(BASE_MODEL)


def test_a_killed_server_finishes_its_job_after_a_restart(tmp_path, base_model_dir):
    epochs, per_epoch = 3, 10  # 20 examples, batch size 2
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MANGADISTILL_API_KEY": KEY, "MLFLOW_TRACKING_URI": tracking_uri}
    config = write_config(tmp_path / "serve.yaml", root=tmp_path / "root", base_source=base_model_dir)
    server = ServerProcess(config, env, tmp_path / "server.log")
    try:
        server.start()
        with sdk(server.url) as client:
            upload = client.files.create(file=("train.jsonl", jsonl(chat_examples(2 * per_epoch))), purpose="fine-tune")
            job = client.fine_tuning.jobs.create(
                model=BASE_MODEL, training_file=upload.id, suffix="restart", metadata={"suite": "restart"},
                method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": epochs,
                                                                                 "batch_size": 2}}})
            # epoch 1's checkpoint exists and training has gone past it
            wait_for(lambda: last_step(client, job.id) > per_epoch, timeout=120,
                     what=f"step {per_epoch + 2} ({server.tail(500)})")
            before = list(client.fine_tuning.jobs.checkpoints.list(job.id))
            assert client.fine_tuning.jobs.retrieve(job.id).status == "running"
        assert before and before[-1].step_number == per_epoch and before[0].step_number < epochs * per_epoch
        server.kill()
        server.start()
        with sdk(server.url) as client:
            done = finished(client, job.id, timeout=120)
            assert done.status == "succeeded", (done.error, server.tail())
            assert done.id == job.id and done.fine_tuned_model.startswith(f"ft:{BASE_MODEL}:restart:")
            answer = client.chat.completions.create(model=done.fine_tuned_model, messages=ASK, max_tokens=4)
            assert answer.model == done.fine_tuned_model and answer.usage.completion_tokens >= 1
            history = events(client, job.id)
            checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
            results = client.files.content(done.result_files[0]).text
    finally:
        server.kill()

    said = [event.message for event in history]
    warned = [i for i, event in enumerate(history) if event.level == "warn" and "restarted" in event.message]
    resumed = said.index("Fine-tuning job resumed (attempt 2)")
    assert said.count("Fine-tuning job started") == 1 and len(warned) == 1 and warned[0] < resumed
    assert said[-1] == "The job has successfully completed"
    # attempt 2 went on from the last checkpoint before the kill, not from step 0
    assert min(e.data["step"] for e in history[resumed:] if e.type == "metrics") > before[0].step_number

    assert sorted(c.step_number for c in checkpoints) == [per_epoch * n for n in range(1, epochs + 1)]
    assert len({c.id for c in checkpoints}) == epochs and {c.id for c in before} <= {c.id for c in checkpoints}
    assert {c.fine_tuned_model_checkpoint for c in checkpoints} == \
        {f"{done.fine_tuned_model}:ckpt-step-{per_epoch * n}" for n in range(1, epochs + 1)}
    assert [row["epoch"] for row in csv.DictReader(io.StringIO(results))] == [str(n) for n in range(1, epochs + 1)]

    runs = mlflow_runs(tracking_uri, job.id)  # one per attempt
    assert [run.data.tags["attempt"] for run in runs] == ["1", "2"]
    assert runs[0].info.status != "FINISHED"  # killed: it must not claim to have finished
    assert runs[-1].info.status == "FINISHED"


# --------------------------------------------------------------------------------------------------------------
# The CLI
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "   "], ids=["unset", "blank"])
def test_serve_openai_without_an_api_key_exits_2_with_one_error_line(tmp_path, key):
    env = {name: value for name, value in os.environ.items() if name != "MANGADISTILL_API_KEY"}
    if key is not None:
        env["MANGADISTILL_API_KEY"] = key
    config = write_config(tmp_path / "serve.yaml", root=tmp_path / "root")
    done = run_cli(env, PROJECT_ROOT, "--serve", "openai", "--config", str(config), "--port", str(free_port()),
                   timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "MANGADISTILL_API_KEY" in lines[0], lines
    assert done.stdout == "" and not (tmp_path / "root").exists()  # refused before it made any state
