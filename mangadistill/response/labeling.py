"""Teacher labelling of the response prompts: one path for the reference teacher and for a remote endpoint.

Every teacher is asked through the official `openai` client (`teacher_client.generate_answers`: bounded
concurrency, retries, the on-disk cache a killed run resumes from). With ``teacher.backend: reference`` the
reference teacher is served by the project's OpenAI-compatible chat API on loopback for the duration of the
labelling, so the default run exercises exactly the code a gpt-4.1 teacher goes through.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mangadistill.config.distill_response import ResponseTeacherConfig
from mangadistill.response.dataset import ResponseDataset, low_confidence
from mangadistill.response.teacher_client import TeacherEndpoint, TeacherRequest, generate_answers

__all__ = ["label_prompts", "teacher_endpoint"]


@contextmanager
def teacher_endpoint(config: ResponseTeacherConfig) -> Iterator[TeacherEndpoint]:
    """The configured endpoint; for the reference backend, the reference teacher served on loopback."""
    settings = {"model": config.model, "api_key_env": config.api_key_env, "max_concurrency": config.max_concurrency,
                "max_retries": config.max_retries, "timeout_s": config.timeout_s, "temperature": config.temperature,
                "max_tokens": config.max_tokens, "price_input_per_1m_usd": config.price_input_per_1m_usd,
                "price_output_per_1m_usd": config.price_output_per_1m_usd}
    if config.backend == "openai":
        yield TeacherEndpoint(base_url=str(config.base_url), **settings)
        return
    from mangadistill.response.reference_teacher import ReferenceTeacher
    from mangadistill.serving.loopback import serve
    from mangadistill.serving.openai_chat import create_chat_app

    with serve(create_chat_app({config.model: ReferenceTeacher(name=config.model)})) as server:
        yield TeacherEndpoint(base_url=f"{server.url}/v1", **settings)


def label_prompts(prompts: ResponseDataset, config: ResponseTeacherConfig, low_confidence_retrieval_score: float,
                  *, run_id: str, progress: bool = True) -> dict[str, Any]:
    """Teacher answers for every row that has none: ``{"answers": {id: text}, "low_confidence": {id: bool},
    "event": <runbook 11.1 event>, "usage": {id: [prompt_tokens, completion_tokens]}}``."""
    from mangadistill.response.rubric import detect_action

    rows = [row for row in prompts.rows if row.answer is None]
    flags = {row.id: low_confidence(row, low_confidence_retrieval_score) for row in rows}
    requests = [TeacherRequest(id=row.id, messages=row.messages()) for row in rows]
    if requests:
        with teacher_endpoint(config) as endpoint:
            generation = generate_answers(requests, endpoint, config.cache_dir,
                                          low_confidence=lambda request, _text: flags[request.id], progress=progress)
        answers = {a.id: a.text for a in generation.answers}
        refusal_rate = sum(detect_action(text) == "refuse" for text in answers.values()) / len(answers)
        event = generation.event(run_id, {"teacher_refusal_rate": round(refusal_rate, 4),
                                          "backend": config.backend})
        usage = {a.id: [a.prompt_tokens, a.completion_tokens] for a in generation.answers}
    else:  # your file answered every row
        answers, usage = {}, {}
        event = {"event": "teacher_label_generation", "run_id": run_id, "teacher_model": config.model,
                 "rows_processed": 0, "backend": config.backend}
    return {"answers": answers, "low_confidence": flags, "event": event, "usage": usage}
