"""Response distillation, self-hosted (runbook 8): LoRA SFT on the teacher's answers, evaluated every epoch,
stopped by the 8.4 rule, the epoch chosen per 7.8, merged into a plain model.

Each epoch the live student answers the validation prompts (batched greedy generation) and is scored with the
rubric, the hallucination check, refusal/escalation precision and the preference judge (against the targets
and against the base student's answers, generated once before training); a few single requests are timed for
p95. The epoch table (8.3's shape) is appended to ``epochs.jsonl`` in the work folder as it grows, so a killed
run resumes from its last checkpoint with its table intact.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mangadistill.config.distill_response import ResponseEvaluationConfig, ResponseStudentConfig
from mangadistill.response.catalog import store_knowledge
from mangadistill.response.dataset import ResponseDataset, ResponseRow, as_prompt_completion, training_rows
from mangadistill.response.evaluate import make_judge, validation_metrics
from mangadistill.response.selection import StopDecision, choose_epoch, scores_of, should_stop

logger = logging.getLogger(__name__)

__all__ = ["TrainedResponder", "answer_rows", "sft_settings", "train_responder", "work_dir_key"]

EPOCHS_FILE = "epochs.jsonl"
BASE_ANSWERS_FILE = "base_validation_answers.json"

#: (epoch metrics, example answers) -> None: how the step logs each epoch (MLflow) as it ends.
EpochCallback = Callable[[dict[str, Any], list[dict[str, Any]]], None]


@dataclass(frozen=True)
class TrainedResponder:
    merged_dir: Path
    adapter_dir: Path
    table: list[dict[str, Any]]
    decision: StopDecision
    stopped_early: bool
    stop_reason: str
    resampled: dict[str, int]
    lora_layers: tuple[int, ...] | None


def sft_settings(config: ResponseStudentConfig):
    """The trainer's settings from the validated config."""
    from mangadistill.response.sft import SFTSettings

    return SFTSettings(**config.sft.model_dump())


def work_dir_key(dataset: ResponseDataset, base_card: dict[str, Any], config: ResponseStudentConfig) -> str:
    """A key for the work folder: same rows, same base model, same settings -> same folder (resume)."""
    payload = json.dumps({"rows": [r.model_dump(mode="json") for r in dataset.split("train")],
                          "val": [r.id for r in dataset.split("validation")], "base": base_card,
                          "sft": config.sft.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def answer_rows(model, tokenizer, rows: list[ResponseRow], evaluation: ResponseEvaluationConfig) -> list:
    """Greedy answers (`ChatResult`) of a loaded model to the rows' prompts, batched."""
    from mangadistill.response.generation import generate_batch

    return generate_batch(model, tokenizer, [row.messages() for row in rows],
                          max_new_tokens=evaluation.max_new_tokens, batch_size=evaluation.batch_size)


def _base_answers(base_dir: Path, rows: list[ResponseRow], evaluation: ResponseEvaluationConfig,
                  work: Path) -> list[str]:
    """The base student's validation answers (win rate vs base, every epoch), generated once per work folder."""
    path = work / BASE_ANSWERS_FILE
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    from mangadistill.response.generation import load_chat_model

    model, tokenizer = load_chat_model(base_dir)
    answers = [result.text for result in answer_rows(model, tokenizer, rows, evaluation)]
    path.write_text(json.dumps(answers), encoding="utf-8")
    return answers


def _read_table(work: Path) -> list[dict[str, Any]]:
    path = work / EPOCHS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def train_responder(dataset: ResponseDataset, base_dir: Path, student: ResponseStudentConfig,
                    evaluation: ResponseEvaluationConfig, work: Path, *,
                    on_epoch: EpochCallback | None = None) -> TrainedResponder:
    """Train, evaluate per epoch, stop, choose, merge (see the module docstring). `work` may hold an earlier,
    killed run of the same job: it is resumed."""
    from mangadistill.response.generation import HFChatModel, measure_generation
    from mangadistill.response.sft import merge_adapter, train_lora

    work.mkdir(parents=True, exist_ok=True)
    knowledge = store_knowledge()
    train, val = dataset.split("train"), dataset.split("validation")
    if not train or not val:
        raise ValueError(f"response SFT needs train and validation rows; got {len(train)} and {len(val)}")
    rows, copies = training_rows(train, student.sft.seed)
    judge = make_judge(evaluation.judge, knowledge, evaluation.word_limit)
    base_answers = _base_answers(base_dir, val, evaluation, work)
    targets = [row.answer or "" for row in val]
    timed = [row.messages() for row in val[:evaluation.latency_prompts]]
    table = _read_table(work)

    def hook(context) -> bool:
        answers = [r.text for r in answer_rows(context.model, context.tokenizer, val, evaluation)]
        metrics, scores = validation_metrics(val, answers, base_answers, judge, knowledge, evaluation.word_limit)
        speed = measure_generation(HFChatModel((context.model, context.tokenizer), name="student"), timed,
                                   evaluation.max_new_tokens)
        row = {"epoch": context.epoch, "train_loss": context.train_loss, "eval_loss": context.eval_loss, **metrics,
               "p95_ms": speed["p95_ms"], "p50_ms": speed["p50_ms"], "tokens_per_s": speed["tokens_per_s"],
               "train_tokens": context.record.train_tokens, "train_seconds": context.record.train_seconds}
        table.append(row)
        decision = should_stop([scores_of(r) for r in table], student.stop)
        row["stop_rule"] = decision.reason
        with (work / EPOCHS_FILE).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        examples = [{"epoch": context.epoch, "prompt": r.prompt, "expected_action": r.expected_action,
                     "target": t, "answer": a, "rubric": round(s.rubric, 3), "unsupported": list(s.failures)}
                    for r, t, a, s in list(zip(val, targets, answers, scores))[:evaluation.examples_per_epoch]]
        if on_epoch is not None:
            on_epoch(row, examples)
        logger.info("epoch %d: val rubric %.3f, hallucination %.1f%%, %s", context.epoch, metrics["val_rubric"],
                    100 * metrics["hallucination_rate"], decision.reason)
        return decision.stop

    result = train_lora(base_dir, rows, [as_prompt_completion(r) for r in val], sft_settings(student), work / "sft",
                        on_epoch_end=hook, resume=True)
    table = _read_table(work)  # what every epoch measured, earlier (killed) runs included
    decision = choose_epoch([scores_of(r) for r in table], student.stop)
    adapter = result.adapter_dir(decision.chosen_epoch)
    merged = merge_adapter(base_dir, adapter, work / f"merged-epoch-{decision.chosen_epoch}")
    stop_reason = table[-1].get("stop_rule", "") if result.stopped_early else (
        f"ran the {student.sft.epochs}-epoch budget")
    return TrainedResponder(merged_dir=merged, adapter_dir=adapter, table=table, decision=decision,
                            stopped_early=result.stopped_early, stop_reason=stop_reason, resampled=dict(copies),
                            lora_layers=result.lora_layers)
