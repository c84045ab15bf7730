"""The OpenAI-compatible chat API (`mangadistill.serving.openai_chat`) on a real uvicorn on loopback, checked with
the official `openai` client: models, completions with usage, streaming, and OpenAI-shaped errors."""

import threading
import warnings
from collections.abc import Iterator

import httpx
import openai
import pytest
from fastapi import FastAPI
from openai import Omit
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from mangadistill.response.chat import ChatResult, messages_for
from mangadistill.serving.openai_chat import ChatLimits, ModelHolder, chat_router, create_chat_app
from mangadistill.serving.loopback import serve

KEY = "test-key"


class EchoModel:
    """Deterministic: "<name> says: <last user turn>", one token per word; records the threads it ran on."""

    def __init__(self, name: str = "echo") -> None:
        self.name = name
        self.threads: list[str] = []

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float) -> ChatResult:
        self.threads.append(threading.current_thread().name)
        words = f"{self.name} says: {messages[-1]['content']}".split()
        kept = words[:max_tokens]
        return ChatResult(text=" ".join(kept), prompt_tokens=sum(len(m["content"].split()) for m in messages),
                          completion_tokens=len(kept), finish_reason="length" if len(kept) < len(words) else "stop")

    def stream(self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float) -> Iterator[str]:
        words = self.complete(messages, max_tokens=max_tokens, temperature=temperature).text.split(" ")
        for i, word in enumerate(words):
            yield word if i == 0 else f" {word}"


class BrokenModel:
    """Fails to answer, or fails half way through a stream."""

    name = "broken"

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float) -> ChatResult:
        raise RuntimeError("weights went missing")

    def stream(self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float) -> Iterator[str]:
        yield "half an"
        raise RuntimeError("weights went missing")


@pytest.fixture(scope="module")
def holder():
    return ModelHolder({"echo": EchoModel(), "broken": BrokenModel()})


@pytest.fixture(scope="module")
def server(holder):
    with serve(create_chat_app(holder, api_key=KEY)) as running:
        yield running


@pytest.fixture
def client(server):
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=10) as sdk:
        yield sdk


def ask(text: str = "is volume 3 in stock?") -> list[dict[str, str]]:
    return messages_for(text, ["Volume 3 ships in 2 days."])


def test_lists_and_retrieves_the_served_models(client):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        page = client.models.list()
        listed = {model.id: model.model_dump() for model in page.data}
    assert set(listed) == {"broken", "echo"}
    assert listed["echo"]["object"] == "model" and listed["echo"]["owned_by"] == "mangadistill"
    assert client.models.retrieve("echo").id == "echo"


def test_completion_is_a_chat_completion_with_usage(client, holder):
    messages = ask()
    expected = holder()["echo"].complete(messages, max_tokens=64, temperature=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a field of the wrong type warns when the SDK's model is dumped
        raw = client.chat.completions.with_raw_response.create(model="echo", messages=messages, max_tokens=64,
                                                               temperature=0.0)
        completion = raw.parse()
        completion.model_dump()
        strict = ChatCompletion.model_validate(raw.http_response.json())  # validated, not just constructed
    assert isinstance(completion, ChatCompletion) and completion.object == "chat.completion"
    assert strict.model_extra == {} and strict.choices[0].model_extra == {}
    assert strict.choices[0].message.model_extra == {} and strict.usage.model_extra == {}
    assert completion.model == "echo" and completion.id.startswith("chatcmpl-")
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == expected.text
    assert expected.text.startswith("echo says: Context:") and expected.text.endswith("is volume 3 in stock?")
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == \
        (expected.prompt_tokens, expected.completion_tokens)
    assert completion.usage.total_tokens == expected.prompt_tokens + expected.completion_tokens


def test_max_completion_tokens_reaches_the_model(client):
    completion = client.chat.completions.create(model="echo", messages=ask(), max_completion_tokens=3)
    assert completion.choices[0].message.content == "echo says: Context:"
    assert completion.choices[0].finish_reason == "length" and completion.usage.completion_tokens == 3


def test_streaming_yields_the_same_text(client):
    messages = ask("what does volume 9 cost?")
    whole = client.chat.completions.create(model="echo", messages=messages).choices[0].message.content
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chunks = list(client.chat.completions.create(model="echo", messages=messages, stream=True))
        strict = [ChatCompletionChunk.model_validate(chunk.model_dump()) for chunk in chunks]
    assert all(isinstance(chunk, ChatCompletionChunk) and chunk.object == "chat.completion.chunk" for chunk in strict)
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == whole
    assert len(chunks) > 3  # in pieces, not one blob
    assert [chunk.choices[0].finish_reason for chunk in chunks][-1] == "stop"
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks[:-1])


def test_stream_usage_is_refused_rather_than_invented(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="echo", messages=ask(), stream=True,
                                       stream_options={"include_usage": True})
    assert caught.value.param == "stream_options.include_usage"


def test_wrong_or_missing_key_is_401(server):
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0) as sdk:
        for headers in ({}, {"Authorization": Omit()}):  # a wrong key, then no Authorization header at all
            with pytest.raises(openai.AuthenticationError) as caught:
                sdk.chat.completions.create(model="echo", messages=ask(), extra_headers=headers)
            assert caught.value.code == "invalid_api_key"
            with pytest.raises(openai.AuthenticationError):
                sdk.models.list(extra_headers=headers)


def test_unknown_model_is_404_model_not_found(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4.1-2025-04-14", messages=ask())
    assert caught.value.code == "model_not_found" and caught.value.param == "model"
    assert "echo" in caught.value.message  # says what is served
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4.1-2025-04-14")


@pytest.mark.parametrize(("kwargs", "param", "code"), [
    ({"temperature": 5.0}, "temperature", "invalid_value"),
    ({"messages": []}, "messages", "invalid_value"),
    ({"n": 2}, "n", "invalid_value"),
    ({"max_tokens": 10**6}, "max_tokens", None),
    ({"extra_body": {"top_k": 5}}, "top_k", "unknown_parameter"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages.0.content", "invalid_value"),
])
def test_bad_body_is_400_naming_the_parameter(client, kwargs, param, code):
    request = {"model": "echo", "messages": ask(), **kwargs}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**request)
    assert caught.value.type == "invalid_request_error"
    assert caught.value.param is not None and caught.value.param.startswith(param)
    assert caught.value.code == code


def test_malformed_json_is_400_in_openai_shape(server):
    # The SDK only sends valid JSON, so this one body goes out by hand.
    response = httpx.post(f"{server.url}/v1/chat/completions", content=b'{"model": "echo",',
                          headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and "not valid JSON" in error["message"]


def test_body_over_the_limit_is_413():
    with serve(create_chat_app({"echo": EchoModel()}, limits=ChatLimits(max_body_bytes=2_000))) as small:
        with openai.OpenAI(base_url=f"{small.url}/v1", api_key="unused", max_retries=0) as sdk:
            assert sdk.chat.completions.create(model="echo", messages=ask()).choices  # under the limit
            with pytest.raises(openai.APIStatusError) as caught:
                sdk.chat.completions.create(model="echo", messages=ask("manga " * 1_000))
    assert caught.value.status_code == 413 and caught.value.code == "request_too_large"


def test_a_failing_model_is_500_server_error_and_ends_a_stream_with_an_error(client):
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="broken", messages=ask())
    assert caught.value.type == "server_error" and "RuntimeError" in caught.value.message
    stream = client.chat.completions.create(model="broken", messages=ask(), stream=True)
    with pytest.raises(openai.APIError, match="RuntimeError"):
        list(stream)


def test_the_served_set_changes_without_restart(client, holder):
    holder.set("echo-v2", EchoModel("echo-v2"))
    try:
        assert "echo-v2" in {model.id for model in client.models.list()}
        answer = client.chat.completions.create(model="echo-v2", messages=ask()).choices[0].message.content
        assert answer.startswith("echo-v2 says:")
    finally:
        holder.remove("echo-v2")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="echo-v2", messages=ask())


def test_inference_runs_in_worker_threads_not_on_the_event_loop(client, holder):
    model = holder()["echo"]
    model.threads.clear()
    client.chat.completions.create(model="echo", messages=ask())
    list(client.chat.completions.create(model="echo", messages=ask(), stream=True))
    assert len(model.threads) == 2
    assert not any(name == "loopback-uvicorn" for name in model.threads), model.threads


def test_router_mounts_into_another_app_and_keeps_its_error_shape():
    host = FastAPI()

    @host.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    host.include_router(chat_router(ModelHolder({"echo": EchoModel()}), api_key=KEY))
    with serve(host) as running:
        assert httpx.get(f"{running.url}/health").json() == {"status": "ok"}
        with openai.OpenAI(base_url=f"{running.url}/v1", api_key=KEY, max_retries=0) as sdk:
            assert sdk.chat.completions.create(model="echo", messages=ask()).usage.total_tokens > 0
            with pytest.raises(openai.NotFoundError) as caught:
                sdk.chat.completions.create(model="nope", messages=ask())
    assert caught.value.code == "model_not_found"  # the router's own shape, not the host's {"detail": ...}
