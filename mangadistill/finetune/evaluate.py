"""Evaluating a managed fine-tuning job through its endpoint (runbook 7.5-7.8, 11.3).

`evaluate_checkpoints`: every epoch's checkpoint answers the validation prompts through chat completions and
is scored exactly as a self-hosted epoch is (`mangadistill.response.evaluate.validation_metrics`: rubric,
hallucination, refusal/escalation, teacher preference match, win rate vs the base model's answers); the 7.8
rule (`selection.choose_epoch`) keeps one. `evaluate_endpoint_models`: teacher vs base model vs the kept
checkpoint on the gate and golden sets, in the report shape `evaluate_all` gives the self-hosted track, with
cost per 1K responses from token prices and the usage the endpoint reported.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mangadistill.config.distill_response import (
    ManagedFineTuneConfig,
    ResponseEvaluationConfig,
    ResponseStopConfig,
    ResponseTeacherConfig,
)
from mangadistill.finetune.data import count_example_tokens, student_token_counter
from mangadistill.finetune.workflow import Checkpoint, EndpointChatModel, answer_all
from mangadistill.response.catalog import store_knowledge
from mangadistill.response.dataset import ResponseDataset
from mangadistill.response.evaluate import (
    compare_answers,
    cost_reduction,
    make_judge,
    split_examples,
    validation_metrics,
)
from mangadistill.response.rubric import cost_per_1k
from mangadistill.response.selection import StopDecision, choose_epoch, scores_of

logger = logging.getLogger(__name__)

__all__ = ["evaluate_checkpoints", "evaluate_endpoint_models"]

EpochCallback = Callable[[dict[str, Any], list[dict[str, Any]]], None]


def evaluate_checkpoints(dataset: ResponseDataset, checkpoints: Sequence[Checkpoint], chat: Callable[[str], EndpointChatModel],
                         *, base_model: str, evaluation: ResponseEvaluationConfig, stop: ResponseStopConfig,
                         concurrency: int, on_epoch: EpochCallback | None = None
                         ) -> tuple[list[dict[str, Any]], StopDecision]:
    """The epoch table (one row per checkpoint, 7.6's columns) and the 7.8 choice. `chat(model_id)` gives the
    endpoint's chat model for an id."""
    from mangadistill.response.generation import measure_generation

    if not checkpoints:
        raise ValueError("the job left no checkpoints to evaluate")
    val = dataset.split("validation")
    knowledge = store_knowledge()
    judge = make_judge(evaluation.judge, knowledge, evaluation.word_limit)
    conversations = [row.messages() for row in val]
    base_answers = [r.text for r in answer_all(chat(base_model), conversations, max_tokens=evaluation.max_new_tokens,
                                               concurrency=concurrency)]
    timed = conversations[:evaluation.latency_prompts]
    table: list[dict[str, Any]] = []
    for checkpoint in checkpoints:
        model = chat(checkpoint.model)
        answers = [r.text for r in answer_all(model, conversations, max_tokens=evaluation.max_new_tokens,
                                              concurrency=concurrency)]
        metrics, scores = validation_metrics(val, answers, base_answers, judge, knowledge, evaluation.word_limit)
        speed = measure_generation(model, timed, evaluation.max_new_tokens)
        row = {"epoch": checkpoint.epoch, "step": checkpoint.step, "model": checkpoint.model,
               "train_loss": float(checkpoint.metrics.get("train_loss", math.nan)),
               "eval_loss": float(checkpoint.metrics.get("valid_loss", math.nan)), **metrics,
               "p95_ms": speed["p95_ms"], "p50_ms": speed["p50_ms"], "tokens_per_s": speed["tokens_per_s"]}
        table.append(row)
        examples = [{"epoch": checkpoint.epoch, "prompt": r.prompt, "expected_action": r.expected_action,
                     "target": r.answer, "answer": a, "rubric": round(s.rubric, 3), "unsupported": list(s.failures)}
                    for r, a, s in list(zip(val, answers, scores, strict=True))[:evaluation.examples_per_epoch]]
        logger.info("epoch %d (%s): val rubric %.3f, hallucination %.1f%%", checkpoint.epoch, checkpoint.model,
                    metrics["val_rubric"], 100 * metrics["hallucination_rate"])
        if on_epoch is not None:
            on_epoch(row, examples)
    return table, choose_epoch([scores_of(row) for row in table], stop)


def evaluate_endpoint_models(dataset: ResponseDataset, teacher_answers: dict[str, Any],
                             chat: Callable[[str], EndpointChatModel], *, base_model: str, student_model: str,
                             managed: ManagedFineTuneConfig, evaluation: ResponseEvaluationConfig,
                             teacher: ResponseTeacherConfig) -> dict[str, Any]:
    """Teacher vs base vs distilled student on the gate and golden sets (`evaluate_all`'s report shape).

    Cost per 1K: every model's prompts and answers counted with one tokenizer (the 7.4 estimate's, OpenAI's
    per-message accounting), priced at the teacher's, the base model's and the fine-tuned student's prices: one
    basis for all three, whatever each endpoint reports as usage (the reference teacher reports words).
    Latency: `latency_prompts` gate prompts answered one at a time through the endpoint (network included).
    """
    from mangadistill.response.generation import measure_generation

    knowledge = store_knowledge()
    judge = make_judge(evaluation.judge, knowledge, evaluation.word_limit)
    models = {"base": chat(base_model), "student": chat(student_model)}
    timed = [row.messages() for row in dataset.split("gate")[:evaluation.latency_prompts]]
    speed = {name: measure_generation(model, timed, evaluation.max_new_tokens) for name, model in models.items()}
    report: dict[str, Any] = {"serving_threads": 0, "endpoint": managed.base_url, "base_model": base_model,
                              "student_model": student_model}
    count = student_token_counter(managed.cache_dir)
    for split in ("gate", "golden"):
        rows = dataset.split(split)
        if not rows:
            continue
        conversations = [row.messages() for row in rows]
        texts: dict[str, list[str]] = {"teacher": [teacher_answers["answers"].get(row.id, row.answer or "")
                                                   for row in rows]}
        for name, model in models.items():
            results = answer_all(model, conversations, max_tokens=evaluation.max_new_tokens,
                                 concurrency=managed.max_concurrency)
            texts[name] = [r.text for r in results]
        prompt_tokens = float(np.mean([count_example_tokens(messages, count) for messages in conversations]))
        answer_tokens = {name: float(np.mean([count(text) for text in answers])) for name, answers in texts.items()}
        teacher_cost = cost_per_1k(prompt_tokens, answer_tokens["teacher"], teacher.price_input_per_1m_usd,
                                   teacher.price_output_per_1m_usd)
        per_model = compare_answers(rows, texts, judge, knowledge, evaluation.word_limit)
        per_model["teacher"].update({"cost_per_1k_usd": teacher_cost, "latency_p95_ms": math.nan,
                                     "tokens_per_s": math.nan})
        prices = {"base": (managed.base_price_input_per_1m_usd, managed.base_price_output_per_1m_usd),
                  "student": (managed.price_input_per_1m_usd, managed.price_output_per_1m_usd)}
        for name in ("base", "student"):
            cost = cost_per_1k(prompt_tokens, answer_tokens[name], *prices[name])
            per_model[name].update({"latency_p50_ms": speed[name]["p50_ms"], "latency_p95_ms": speed[name]["p95_ms"],
                                    "tokens_per_s": speed[name]["tokens_per_s"], "cost_per_1k_usd": cost,
                                    "cost_reduction": cost_reduction(teacher_cost, cost)})
        report[split] = per_model
        report[f"{split}_examples"] = split_examples(rows, texts)
        report[f"{split}_rows"] = len(rows)
    return report
