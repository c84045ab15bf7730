"""The response distillation dataset: prompts with retrieval context, answers, row types and weights.

Runbook 3.1-3.2 and 7.2-7.3. Rows flow through three states, each a versioned artifact in the pipeline:

1. `ResponsePrompts` (`generate_prompts` or `read_chat_jsonl`): prompt, retrieval context, expected action,
   split; answers only where a bring-your-own file already holds them;
2. teacher answers are added (`teacher_client`), then `assemble_dataset` applies the human review and types
   every row (human-corrected 2.0, clean teacher 1.0, refusal/escalation 2.5, low-confidence teacher 0.5);
3. `training_rows` turns the train split into trl prompt/completion rows, the 7.3 weights applied by
   **resampling** (trl's SFT loss has no per-row weights, and OpenAI's SFT has none either, so both back ends
   see the same data): a row of weight w appears floor(w) times plus once more with probability frac(w).

Splits (3.2): 80/10/10 train/validation/gate, stratified by scenario, plus a golden set generated from another
seed with every scenario in equal numbers (so its refusal and escalation metrics rest on more than a couple of
prompts), deduplicated against the rest and never trained on.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mangadistill.config.distill_response import ResponseDataConfig
from mangadistill.data.cleaning import scrub_pii
from mangadistill.data.loaders import iter_json_objects
from mangadistill.errors import DataError
from mangadistill.response.catalog import StoreKnowledge
from mangadistill.response.chat import SYSTEM_PROMPT, messages_for, parse_user_message
from mangadistill.response.prompts import SCENARIOS, fill_prompt
from mangadistill.response.reference_teacher import decide_action, reference_answer
from mangadistill.response.retriever import TfidfRetriever

__all__ = [
    "ROW_TYPE_WEIGHTS",
    "QuarantinedRow",
    "ResponseDataset",
    "ResponseRow",
    "assemble_dataset",
    "build_prompts",
    "low_confidence",
    "generate_prompts",
    "read_chat_jsonl",
    "training_rows",
]

RowType = Literal["human_corrected", "teacher_clean", "refusal_escalation", "teacher_low_confidence"]
Split = Literal["train", "validation", "gate", "golden"]

#: Runbook 7.3: how much each row type counts in training.
ROW_TYPE_WEIGHTS: dict[str, float] = {
    "human_corrected": 2.0,
    "teacher_clean": 1.0,
    "refusal_escalation": 2.5,
    "teacher_low_confidence": 0.5,
}


class ResponseRow(BaseModel):
    """One prompt with its context and, once labelled, its target answer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    split: Split
    scenario: str = Field(description="The prompt's scenario (`prompts.SCENARIOS`), or 'custom' for your own rows.")
    prompt: str
    context: tuple[str, ...] = ()
    retrieval_score: float = Field(1.0, description="The retriever's top cosine score for the prompt.")
    expected_action: Literal["answer", "refuse", "escalate"]
    answer: str | None = None
    row_type: RowType | None = None
    weight: float | None = Field(None, gt=0, description="Training weight; None means the row type's weight.")
    system: str = SYSTEM_PROMPT

    def messages(self) -> list[dict[str, str]]:
        """The request: system prompt, then context and prompt in the one chat layout."""
        turns = messages_for(self.prompt, list(self.context))
        turns[0]["content"] = self.system
        return turns

    def training_weight(self) -> float:
        return self.weight if self.weight is not None else ROW_TYPE_WEIGHTS[self.row_type or "teacher_clean"]


class QuarantinedRow(BaseModel):
    """A line of your file that was not used, and why (nothing is dropped silently)."""

    model_config = ConfigDict(frozen=True)

    file: str
    line: int
    reason: str
    raw: str


class ResponseDataset(BaseModel):
    """Every row of a run, by split, plus the quarantine and the counts a reviewer wants."""

    model_config = ConfigDict(frozen=True)

    rows: tuple[ResponseRow, ...]
    quarantined: tuple[QuarantinedRow, ...] = ()
    source: str = "generated"

    def split(self, name: str) -> list[ResponseRow]:
        return [r for r in self.rows if r.split == name]

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows per split, per row type and per expected action, and the quarantine size."""
        return {
            "split": dict(Counter(r.split for r in self.rows)),
            "row_type": dict(Counter(r.row_type or "unlabelled" for r in self.rows)),
            "expected_action": dict(Counter(r.expected_action for r in self.rows)),
            "quarantined": {"rows": len(self.quarantined)},
        }


# ---------------------------------------------------------------------------------------------------------
# Generated prompts
# ---------------------------------------------------------------------------------------------------------


def generate_prompts(knowledge: StoreKnowledge, retriever: TfidfRetriever, *, n_rows: int, n_golden: int,
                     seed: int, context_k: int, split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                     ) -> ResponseDataset:
    """`n_rows` prompts split 80/10/10 by scenario, plus `n_golden` golden prompts from another seed.

    Prompts are unique across all splits (a golden prompt never appears in training).
    """
    main = _draw_prompts(knowledge, n_rows, random.Random(seed), seen=set())
    golden = _draw_prompts(knowledge, n_golden, random.Random(seed + 7919), seen={p.casefold() for _, p in main},
                           uniform=True)
    assigned = _stratified_splits(main, split_fractions, random.Random(seed + 1))
    assigned += [("golden", scenario, prompt) for scenario, prompt in golden]
    rows = [_prompt_row(i, split, scenario, prompt, retriever, context_k)
            for i, (split, scenario, prompt) in enumerate(assigned)]
    return ResponseDataset(rows=tuple(rows), source="generated")


def _draw_prompts(knowledge: StoreKnowledge, n: int, rng: random.Random, seen: set[str],
                  uniform: bool = False) -> list[tuple[str, str]]:
    """`n` unique (scenario, prompt) pairs, scenarios in proportion to their shares (largest remainder), or in
    equal numbers with `uniform` (the golden set covers every scenario, refusals and escalations included)."""
    shares = {s.name: 1.0 if uniform else s.share for s in SCENARIOS}
    total = sum(shares.values())
    quotas = {name: n * share / total for name, share in shares.items()}
    counts = {name: int(q) for name, q in quotas.items()}
    for name in sorted(quotas, key=lambda k: quotas[k] - counts[k], reverse=True)[: n - sum(counts.values())]:
        counts[name] += 1
    drawn: list[tuple[str, str]] = []
    for scenario in SCENARIOS:
        for _ in range(counts[scenario.name]):
            for _attempt in range(500):
                prompt = fill_prompt(rng.choice(scenario.templates), rng, knowledge)
                if prompt.casefold() not in seen:
                    break
            else:
                raise ValueError(f"scenario '{scenario.name}' ran out of distinct prompts after {len(drawn)} rows; "
                                 "lower data.generated.n_rows / n_golden or add templates")
            seen.add(prompt.casefold())
            drawn.append((scenario.name, prompt))
    return drawn


def _stratified_splits(pairs: list[tuple[str, str]], fractions: tuple[float, float, float],
                       rng: random.Random) -> list[tuple[str, str, str]]:
    """(split, scenario, prompt) with each scenario cut train/validation/gate by `fractions`."""
    by_scenario: dict[str, list[str]] = {}
    for scenario, prompt in pairs:
        by_scenario.setdefault(scenario, []).append(prompt)
    out: list[tuple[str, str, str]] = []
    for scenario, prompts in by_scenario.items():
        rng.shuffle(prompts)
        n_val = round(len(prompts) * fractions[1])
        n_gate = round(len(prompts) * fractions[2])
        n_train = len(prompts) - n_val - n_gate
        for i, prompt in enumerate(prompts):
            split = "train" if i < n_train else "validation" if i < n_train + n_val else "gate"
            out.append((split, scenario, prompt))
    return out


def _prompt_row(index: int, split: str, scenario: str, prompt: str, retriever: TfidfRetriever,
                context_k: int) -> ResponseRow:
    expected = next(s.action for s in SCENARIOS if s.name == scenario)
    retrieved = retriever.retrieve(prompt, context_k)
    return ResponseRow(id=f"r{index:05d}-{_digest(prompt)}", split=split, scenario=scenario, prompt=prompt,
                       context=retrieved.documents, retrieval_score=retrieved.top_score, expected_action=expected)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


# ---------------------------------------------------------------------------------------------------------
# Bring your own: chat-format JSON lines
# ---------------------------------------------------------------------------------------------------------


def read_chat_jsonl(path: Path, *, seed: int, split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                    golden_path: Path | None = None) -> ResponseDataset:
    """Your rows: one JSON object per line, OpenAI's chat format plus optional fields.

    ``{"messages": [{"role": "system", ...}?, {"role": "user", ...}, {"role": "assistant", ...}?],
    "weight": 2.0?, "row_type": "human_corrected"?, "expected_action": "refuse"?, "split": "gate"?}``

    A user turn in the project's layout (``Context:`` lines, then ``Customer:``) keeps its context; any other
    user turn is the prompt. Rows without an assistant turn are answered by the teacher. Shopper text is
    scrubbed of personal data before anything is stored. Bad lines are quarantined with a reason.
    Rows without a split are cut 80/10/10; the golden set comes from `golden_path` (never trained on).
    """
    rows, quarantined = _read_rows(path, "custom")
    if not rows:
        reasons = Counter(q.reason for q in quarantined).most_common(1)
        hint = f" (most common problem: {reasons[0][0]})" if reasons else ""
        raise DataError(f"{path}: no usable chat rows{hint}; each line needs a 'messages' list with a user turn")
    rng = random.Random(seed)
    unsplit = [r for r in rows if r.split == "train" and r.id.startswith("unsplit-")]
    rng.shuffle(unsplit)
    n_val = round(len(unsplit) * split_fractions[1])
    n_gate = round(len(unsplit) * split_fractions[2])
    resplit = {r.id: ("validation" if i < n_val else "gate" if i < n_val + n_gate else "train")
               for i, r in enumerate(unsplit)}
    rows = [r.model_copy(update={"split": resplit.get(r.id, r.split), "id": r.id.removeprefix("unsplit-")})
            for r in rows]
    if golden_path is not None:
        golden, golden_bad = _read_rows(golden_path, "golden")
        if not golden:
            raise DataError(f"{golden_path}: no usable chat rows for the golden set "
                            f"({len(golden_bad)} quarantined); each line needs a 'messages' list with a user turn")
        rows += [r.model_copy(update={"split": "golden", "id": r.id.removeprefix("unsplit-")}) for r in golden]
        quarantined += golden_bad
    return ResponseDataset(rows=tuple(rows), quarantined=tuple(quarantined), source=str(path))


def _read_rows(path: Path, default_scenario: str) -> tuple[list[ResponseRow], list[QuarantinedRow]]:
    rows: list[ResponseRow] = []
    quarantined: list[QuarantinedRow] = []
    for number, record, problem, raw in iter_json_objects(path):
        scrubbed_raw, _ = scrub_pii(raw)
        if problem is None:
            row, problem = _parse_chat_record(record, number, default_scenario)
            if row is not None:
                rows.append(row)
                continue
        quarantined.append(QuarantinedRow(file=str(path), line=number, reason=problem or "unreadable",
                                          raw=scrubbed_raw[:500]))
    return rows, quarantined


def _parse_chat_record(record: dict, number: int, scenario: str) -> tuple[ResponseRow | None, str | None]:
    """One JSON object into a row, or the one-line reason it cannot be used."""
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        return None, "no 'messages' list"
    if not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
        return None, "every message needs a string 'content'"
    roles = [m.get("role") for m in messages]
    if any(role not in ("system", "user", "assistant") for role in roles):
        return None, f"unknown role in {roles}; use system, user, assistant"
    body = roles[1:] if roles[0] == "system" else roles
    if body not in (["user"], ["user", "assistant"]):
        return None, f"roles {roles}: expected [system?, user, assistant?] (one exchange per row)"
    user = next(m["content"] for m in messages if m["role"] == "user")
    prompt, context = parse_user_message(scrub_pii(user)[0])
    if not prompt:
        return None, "the user turn is empty"
    answer = next((scrub_pii(m["content"])[0].strip() for m in messages if m["role"] == "assistant"), None)
    if answer == "":
        return None, "the assistant turn is empty"
    weight = record.get("weight")
    if weight is not None and (not isinstance(weight, (int, float)) or isinstance(weight, bool)
                               or not math.isfinite(weight) or weight <= 0):
        return None, f"weight {weight!r} is not a positive number"
    row_type = record.get("row_type")
    if row_type is not None and row_type not in ROW_TYPE_WEIGHTS:
        return None, f"row_type {row_type!r} is not one of {sorted(ROW_TYPE_WEIGHTS)}"
    expected = record.get("expected_action") or decide_action(prompt)
    if expected not in ("answer", "refuse", "escalate"):
        return None, f"expected_action {expected!r} is not one of answer, refuse, escalate"
    split = record.get("split")
    if split is not None and split not in ("train", "validation", "gate"):
        return None, f"split {split!r} is not one of train, validation, gate"
    system = next((scrub_pii(m["content"])[0] for m in messages if m["role"] == "system"), SYSTEM_PROMPT)
    row_id = ("" if split else "unsplit-") + f"l{number:06d}-{_digest(json.dumps(messages, sort_keys=True))}"
    return ResponseRow(id=row_id, split=split or "train", scenario=record.get("scenario") or scenario,
                       prompt=prompt, context=tuple(context), expected_action=expected, answer=answer,
                       row_type=row_type, weight=float(weight) if weight is not None else None,
                       system=system), None


# ---------------------------------------------------------------------------------------------------------
# Row types, human review, training rows
# ---------------------------------------------------------------------------------------------------------


def assemble_dataset(prompts: ResponseDataset, answers: dict[str, str], low_confidence: dict[str, bool], *,
                     review_fraction: float, seed: int) -> ResponseDataset:
    """Attach teacher answers, apply the human review, and type every row (runbook 7.3).

    The review stands in for the human-corrected set (3.1): a seeded `review_fraction` of rows, plus every row
    whose teacher answer takes the wrong action (read from the answer's wording, `rubric.detect_action`), get
    the careful agent's answer for the expected action.
    Rows that already carry an answer and a type (your file) keep them.
    """
    from mangadistill.response.rubric import detect_action

    rng = random.Random(seed)
    typed = []
    for row in prompts.rows:
        answer = row.answer if row.answer is not None else answers[row.id]
        reviewed = row.answer is None and rng.random() < review_fraction
        wrong_action = row.answer is None and detect_action(answer) != row.expected_action
        if reviewed or wrong_action:
            corrected = reference_answer(row.prompt, list(row.context), action=row.expected_action)
            typed.append(row.model_copy(update={"answer": corrected, "row_type": row.row_type or (
                "refusal_escalation" if row.expected_action != "answer" else "human_corrected")}))
            continue
        row_type = row.row_type or _teacher_row_type(row, low_confidence.get(row.id, False))
        typed.append(row.model_copy(update={"answer": answer, "row_type": row_type}))
    return ResponseDataset(rows=tuple(typed), quarantined=prompts.quarantined, source=prompts.source)


def _teacher_row_type(row: ResponseRow, low_confidence: bool) -> str:
    if row.expected_action != "answer":
        return "refusal_escalation"
    return "teacher_low_confidence" if low_confidence else "teacher_clean"


def training_rows(rows: list[ResponseRow], seed: int) -> tuple[list[dict], Counter]:
    """trl prompt/completion rows with the 7.3 weights applied by resampling (see the module docstring).

    Returns the rows (shuffled) and how many copies each row type got, for the run summary.
    """
    rng = random.Random(seed)
    out: list[dict] = []
    copies: Counter = Counter()
    for row in rows:
        weight = row.training_weight()
        n = int(weight) + (1 if rng.random() < weight - int(weight) else 0)
        copies[row.row_type or "teacher_clean"] += n
        out += [as_prompt_completion(row) for _ in range(n)]
    rng.shuffle(out)
    return out, copies


def as_prompt_completion(row: ResponseRow) -> dict:
    """One row in trl's conversational prompt/completion format (the loss covers the completion only)."""
    if row.answer is None:
        raise ValueError(f"row {row.id} has no answer yet")
    return {"prompt": row.messages(), "completion": [{"role": "assistant", "content": row.answer}]}


def build_prompts(config: ResponseDataConfig) -> ResponseDataset:
    """The configured prompts: generated from the bundled catalog, or read from your chat JSONL."""
    from mangadistill.response.catalog import store_knowledge
    from mangadistill.response.responder import store_retriever

    fractions = (1.0 - config.val_fraction - config.gate_fraction, config.val_fraction, config.gate_fraction)
    if config.source == "jsonl":
        return read_chat_jsonl(config.path, seed=config.generated.seed, split_fractions=fractions,
                               golden_path=config.golden_path)
    generated = config.generated
    return generate_prompts(store_knowledge(), store_retriever(), n_rows=generated.n_rows,
                            n_golden=generated.n_golden, seed=generated.seed, context_k=config.context_k,
                            split_fractions=fractions)


def low_confidence(row: ResponseRow, min_retrieval_score: float) -> bool:
    """A teacher answer is low-confidence when the retrieval under it was weak (runbook 3.4, 7.3): the prompt
    expects an answer (not a refusal or hand-off) and the retriever's top score is below the threshold."""
    return row.expected_action == "answer" and row.retrieval_score < min_retrieval_score
