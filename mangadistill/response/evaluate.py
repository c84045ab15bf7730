"""Evaluating answer models on a split: the 7.5 rubric and its axes, hallucination (18.4), refusal/escalation,
preference against the teacher and the base student, speed and cost (11.3, 18.3).

Used per epoch on validation (`distill.train_responder`) and at the end on the gate and golden sets
(`evaluate_all`). Everything a metric needs is passed in; nothing here trains or registers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mangadistill.config.distill_response import (
    JudgeConfig,
    ResponseEvaluationConfig,
    ResponseTeacherConfig,
    ServingCostConfig,
)
from mangadistill.response.catalog import StoreKnowledge, store_knowledge
from mangadistill.response.dataset import ResponseDataset, ResponseRow

__all__ = ["AXES", "compare_answers", "cost_reduction", "evaluate_all", "make_judge", "preference", "quality",
           "split_examples", "student_cost_per_1k", "teacher_cost_per_1k", "validation_metrics"]

#: The rubric's axes (runbook 7.5), in its order.
AXES = ("factuality", "relevance", "policy", "format", "conciseness")


def quality(rows: Sequence[ResponseRow], answers: Sequence[str], knowledge: StoreKnowledge,
            word_limit: int) -> tuple[dict[str, float], list[Any]]:
    """Rubric (out of 5) and its axes, hallucination rate, refusal/escalation precision and recall."""
    from mangadistill.response.rubric import score_answer, summarise

    scores = [score_answer(row.prompt, list(row.context), answer, row.expected_action, knowledge, word_limit)
              for row, answer in zip(rows, answers, strict=True)]
    metrics = summarise(scores, [row.expected_action for row in rows]).as_dict()
    return metrics, scores


def make_judge(config: JudgeConfig, knowledge: StoreKnowledge, word_limit: int):
    """The configured preference judge: the documented deterministic judge, or an LLM at an endpoint."""
    from mangadistill.response.judge import DeterministicJudge, LLMJudge

    if config.kind == "llm":
        return LLMJudge(base_url=str(config.base_url), model=str(config.model), api_key_env=config.api_key_env)
    return DeterministicJudge(knowledge=knowledge, word_limit=word_limit, tie_margin=config.tie_margin)


def preference(judge, rows: Sequence[ResponseRow], student: Sequence[str], teacher: Sequence[str],
               base: Sequence[str] | None) -> dict[str, float]:
    """Teacher preference match (the judge does not prefer the teacher's answer) and win rate vs the base
    student (ties count half); either is NaN when its reference answers are missing."""
    from mangadistill.response.judge import preference_metrics

    return preference_metrics(judge, list(rows), list(student), list(teacher), None if base is None else list(base))


def validation_metrics(rows: Sequence[ResponseRow], answers: Sequence[str], base_answers: Sequence[str] | None, judge,
                       knowledge: StoreKnowledge, word_limit: int) -> tuple[dict[str, float], list[Any]]:
    """One epoch's validation numbers (8.3 / 7.6 columns): ``val_rubric``, the axes, hallucination,
    refusal/escalation, teacher preference match and win rate vs the base student; and the per-answer scores."""
    metrics, scores = quality(rows, answers, knowledge, word_limit)
    prefs = preference(judge, rows, answers, [row.answer or "" for row in rows], base_answers)
    return {"val_rubric": metrics["rubric"], **{k: v for k, v in metrics.items() if k != "rubric"}, **prefs}, scores


def compare_answers(rows: Sequence[ResponseRow], texts: dict[str, Sequence[str]], judge, knowledge: StoreKnowledge,
                    word_limit: int) -> dict[str, dict[str, Any]]:
    """Quality and preference of each model's answers (``texts``: model -> answers, with a ``base`` entry): the
    judge compares each with the reviewed targets, and every model but the base one with the base answers."""
    targets = [row.answer or "" for row in rows]
    per_model: dict[str, dict[str, Any]] = {}
    for name, answers in texts.items():
        metrics, _ = quality(rows, answers, knowledge, word_limit)
        metrics.update(preference(judge, rows, answers, targets, None if name == "base" else texts["base"]))
        per_model[name] = metrics
    return per_model


def split_examples(rows: Sequence[ResponseRow], texts: dict[str, Sequence[str]], n: int = 20) -> list[dict[str, Any]]:
    """The first `n` prompts with every model's answer, for review (logged to MLflow)."""
    return [{"prompt": row.prompt, "expected_action": row.expected_action,
             **{name: answers[i] for name, answers in texts.items()}} for i, row in enumerate(rows[:n])]


def teacher_cost_per_1k(prompt_tokens: Sequence[int], completion_tokens: Sequence[int],
                        teacher: ResponseTeacherConfig) -> float:
    """What 1,000 answers cost at the teacher's API prices, from the measured token counts (runbook 11.3)."""
    from mangadistill.response.rubric import cost_per_1k

    return cost_per_1k(float(np.mean(prompt_tokens)), float(np.mean(completion_tokens)),
                       teacher.price_input_per_1m_usd, teacher.price_output_per_1m_usd)


def student_cost_per_1k(latency_ms: Sequence[float], serving: ServingCostConfig) -> float:
    """What 1,000 answers cost on one serving instance answering one request at a time (mean latency x price)."""
    mean_s = float(np.mean(latency_ms)) / 1e3
    return 1000 * mean_s * serving.instance_usd_per_hour / 3600


def cost_reduction(teacher_cost: float, student_cost: float) -> float:
    """Runbook 18.3 (`mangadistill.evaluation.cost.cost_reduction`); NaN when the teacher's cost is unknown or 0."""
    from mangadistill.evaluation.cost import cost_reduction as reduction

    if not teacher_cost or math.isnan(teacher_cost):
        return float("nan")
    return reduction(teacher_cost, student_cost)


def evaluate_all(dataset: ResponseDataset, teacher_texts: dict[str, str], base_dir: Path, student_dir: Path,
                 evaluation: ResponseEvaluationConfig, teacher: ResponseTeacherConfig) -> dict[str, Any]:
    """Teacher vs base student vs distilled student on the gate and golden sets (runbook 7.5-7.7, 11.3).

    The teacher's answers are its raw answers (before human review); the preference judge compares each
    student with the reviewed targets (teacher preference match) and the distilled student with the base one
    (win rate). Speed: `latency_prompts` gate prompts answered one at a time, after a warm-up, on
    `evaluation.threads` threads. Cost per 1K: the teacher at its API prices on the prompt and answer token counts
    (the student's tokenizer), the students on one serving instance at their mean latency.
    """
    import torch

    from mangadistill.response.generation import HFChatModel, encode_prompt, generate_batch, measure_generation

    if evaluation.threads is not None:
        torch.set_num_threads(evaluation.threads)
    knowledge = store_knowledge()
    judge = make_judge(evaluation.judge, knowledge, evaluation.word_limit)
    models = {"base": HFChatModel(base_dir, name="base"), "student": HFChatModel(student_dir, name="student")}
    report: dict[str, Any] = {"serving_threads": torch.get_num_threads()}
    timed = [row.messages() for row in dataset.split("gate")[:evaluation.latency_prompts]]
    speed = {name: measure_generation(model, timed, evaluation.max_new_tokens) for name, model in models.items()}
    tokenizer = models["student"].tokenizer
    for split in ("gate", "golden"):
        rows = dataset.split(split)
        if not rows:
            continue
        texts = {"teacher": [teacher_texts.get(row.id, row.answer or "") for row in rows]}
        for name, model in models.items():
            results = generate_batch(model.model, model.tokenizer, [row.messages() for row in rows],
                                     max_new_tokens=evaluation.max_new_tokens, batch_size=evaluation.batch_size)
            texts[name] = [result.text for result in results]
        prompt_tokens = [len(encode_prompt(tokenizer, row.messages())) for row in rows]
        answer_tokens = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts["teacher"]]
        teacher_cost = teacher_cost_per_1k(prompt_tokens, answer_tokens, teacher)
        per_model = compare_answers(rows, texts, judge, knowledge, evaluation.word_limit)
        per_model["teacher"].update({"cost_per_1k_usd": teacher_cost, "latency_p95_ms": math.nan,
                                     "tokens_per_s": math.nan})
        for name in ("base", "student"):
            metrics = per_model[name]
            metrics.update({"latency_p50_ms": speed[name]["p50_ms"], "latency_p95_ms": speed[name]["p95_ms"],
                            "tokens_per_s": speed[name]["tokens_per_s"]})
            metrics["cost_per_1k_usd"] = student_cost_per_1k([speed[name]["p50_ms"]], evaluation.serving_cost)
            metrics["cost_reduction"] = cost_reduction(teacher_cost, metrics["cost_per_1k_usd"])
        report[split] = per_model
        report[f"{split}_examples"] = split_examples(rows, texts)
        report[f"{split}_rows"] = len(rows)
    return report
