"""One training loop for teacher fine-tuning and student distillation, on CPU, one GPU or DDP.

The loop is plain PyTorch driven by `accelerate`, so the same code runs under ``accelerate launch``
(DDP on GPUs, or on CPU processes with gloo). Batches are built from pre-tokenised queries grouped by
length (real queries are 10-15 tokens, so padding everything to 64 would waste most of the compute).
Output KD reads cached teacher logits; only layer matching (TinyBERT Stage 1, or feature/attention
terms in Stage 2) runs the teacher online. After every epoch the model is validated, `on_epoch_end`
receives the runbook 4.1 metrics, a stop rule (runbook 6.5 / 10.2) may end the stage with a logged
reason, and an epoch checkpoint makes the run resumable; the weights of the first epoch that reached
the best validation accuracy are restored at the end (runbook 6.8).
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup, set_seed

from mangadistill.config import TrainingConfig
from mangadistill.errors import ConfigError, ModelLoadError
from mangadistill.evaluation.metrics import classification_metrics
from mangadistill.losses.intermediate import LayerMatcher
from mangadistill.losses.kd import LossInputs, WeightedLoss, entropy, soft_label_kd_loss
from mangadistill.training.checkpoints import StageCheckpoints
from mangadistill.training.stop_rules import UnjudgeableMetricError, StopDecision, select_deployment_epoch

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ batching
class _Encoded(torch.utils.data.Dataset):
    """Pre-tokenised queries; each item carries its row index so cached teacher logits can be looked up."""

    def __init__(self, encodings: dict[str, list[list[int]]], labels: np.ndarray) -> None:
        self.encodings = encodings
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, object]:
        item: dict[str, object] = {key: values[i] for key, values in self.encodings.items()}
        item["labels"] = int(self.labels[i])
        item["index"] = i
        return item


class LengthGroupedBatches(torch.utils.data.Sampler[list[int]]):
    """Shuffled batches of similar-length rows: shuffle, sort within windows of 50 batches, shuffle batches."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, window: int = 50) -> None:
        self.lengths = np.asarray(lengths)
        # Not called `batch_size`: accelerate's DDP sharding then treats batches as variable-sized lists and
        # deals them round-robin; with a `batch_size` it silently drops every pair holding a short batch.
        self.rows_per_batch = batch_size
        self.window = batch_size * window
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.rows_per_batch)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        self.epoch += 1
        order = rng.permutation(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.window):
            chunk = order[start : start + self.window]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.rows_per_batch].tolist() for i in range(0, len(chunk), self.rows_per_batch)]
        for i in rng.permutation(len(batches)):
            yield batches[i]


def _encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> dict[str, list[list[int]]]:
    return dict(tokenizer(list(texts), truncation=True, max_length=max_length))


def _collate(tokenizer: PreTrainedTokenizerBase) -> Callable[[list[dict]], dict[str, torch.Tensor]]:
    # Padding pre-tokenised ids is the point here, not a slow path: silence the fast-tokenizer hint.
    getattr(tokenizer, "deprecation_warnings", {})["Asking-to-pad-a-fast-tokenizer"] = True
    def collate(items: list[dict]) -> dict[str, torch.Tensor]:
        features = [{k: v for k, v in item.items() if k not in ("labels", "index")} for item in items]
        batch = dict(tokenizer.pad(features, return_tensors="pt"))
        batch["labels"] = torch.tensor([item["labels"] for item in items], dtype=torch.long)
        batch["index"] = torch.tensor([item["index"] for item in items], dtype=torch.long)
        return batch

    return collate


def make_loader(tokenizer, texts, labels, max_length, batch_size, seed, shuffle):
    """Tokenised batches as `train_classifier` (shuffle, length-grouped) and `predict_logits` (sorted) see them."""
    encodings = _encode(tokenizer, texts, max_length)
    dataset = _Encoded(encodings, np.asarray(labels))
    lengths = [len(ids) for ids in encodings["input_ids"]]
    if shuffle:
        sampler = LengthGroupedBatches(lengths, batch_size, seed)
    else:  # sorted by length for fast inference; predictions are put back in order by index
        order = np.argsort(lengths, kind="stable")
        sampler = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=_collate(tokenizer))


def _model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in batch.items() if k not in ("labels", "index")}


# ----------------------------------------------------------------------------------------- inference
@torch.no_grad()
def predict_logits(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    batch_size: int = 128,
    desc: str | None = None,
) -> np.ndarray:
    """Logits of shape (len(texts), num_labels), float32, in the order of `texts`."""
    model.eval()
    device = next(model.parameters()).device
    loader = make_loader(tokenizer, texts, np.zeros(len(texts)), max_length, batch_size, seed=0, shuffle=False)
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    for batch in tqdm(loader, desc=desc, disable=desc is None, leave=False):
        logits = model(**{k: v.to(device) for k, v in _model_inputs(batch).items()}).logits
        out[batch["index"].numpy()] = logits.float().cpu().numpy()
    return out


# ------------------------------------------------------------------------------------------ training
@dataclass
class TrainResult:
    """What a training run produced: per-epoch metrics, the epoch whose weights were kept, and why it ended."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_accuracy: float = float("nan")
    train_seconds: float = 0.0
    stop_reason: str = ""
    stopped_by_rule: bool = False  # False: the epoch budget ended the run
    deployment_reason: str = ""
    decisions: list[str] = field(default_factory=list)  # the stop rule's verdict after each epoch
    resumed_from_epoch: int = 0


@dataclass
class ClassificationTask:
    """Texts and integer labels of a training run, with the label roles that metrics need."""

    train_texts: list[str]
    train_labels: np.ndarray
    val_texts: list[str]
    val_labels: np.ndarray
    num_labels: int
    rare_ids: list[int] = field(default_factory=list)
    refusal_id: int | None = None
    train_teacher_logits: np.ndarray | None = None  # (n_train, C), cached soft labels
    val_teacher_logits: np.ndarray | None = None  # (n_val, C)


@dataclass
class OnlineTeacher:
    """The teacher network run next to the student for layer matching (frozen, eval mode).

    ``input_id_map`` translates student token ids to teacher ids when the student's vocabulary was
    trimmed (same pieces, new ids); None when both use the same ids.
    """

    model: PreTrainedModel
    input_id_map: torch.Tensor | None = None


class DistillationModule(torch.nn.Module):
    """The student plus what trains with it in one stage, behind one ``forward`` (so DDP syncs all of it).

    - ``matcher``: layer projections; the forward returns L_feature / L_attn against teacher internals.
    - ``probe``: the classification head reads the encoder's output *detached*, so a CE on the returned
      logits trains the head alone (Stage 1's probe); without it the logits are the student's own.
    """

    def __init__(self, student: PreTrainedModel, matcher: LayerMatcher | None = None, probe: bool = False) -> None:
        super().__init__()
        self.student = student
        self.matcher = matcher
        self.probe = probe
        if probe:
            _check_probe_head(student)

    def forward(self, inputs: dict[str, torch.Tensor], teacher_hidden=None, teacher_attentions=None,
                matched: tuple[str, ...] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        want_hidden = self.probe or "feature" in matched
        want_attn = "attention" in matched
        if self.probe:
            base = getattr(self.student, self.student.base_model_prefix)
            out = base(**inputs, output_hidden_states=True, output_attentions=want_attn)
            logits = _head(self.student, out.hidden_states[-1].detach())
        else:
            out = self.student(**inputs, output_hidden_states=want_hidden, output_attentions=want_attn)
            logits = out.logits
        losses: dict[str, torch.Tensor] = {}
        if matched:
            assert self.matcher is not None
            mask = inputs["attention_mask"]
            if "feature" in matched:
                losses["feature"] = self.matcher.feature_loss(out.hidden_states, teacher_hidden, mask)
            if "attention" in matched:
                losses["attention"] = self.matcher.attention_loss(out.attentions, teacher_attentions, mask)
        return logits, losses


def _check_probe_head(student: PreTrainedModel) -> None:
    base = getattr(student, student.base_model_prefix, None)
    if getattr(base, "pooler", None) is None or not hasattr(student, "classifier"):
        raise ModelLoadError(
            f"the Stage 1 probe needs a BERT-style classifier (pooler + classifier); {type(student).__name__} "
            "has none: set student.stage1.enabled: false"
        )


def _head(student: PreTrainedModel, last_hidden: torch.Tensor) -> torch.Tensor:
    """BERT's classification head (pooler -> dropout -> classifier) on a (B, S, H) hidden state."""
    base = getattr(student, student.base_model_prefix)
    return student.classifier(student.dropout(base.pooler(last_hidden)))


@torch.no_grad()
def _teacher_internals(teacher: OnlineTeacher, inputs: dict[str, torch.Tensor], matched: tuple[str, ...]):
    ids = inputs["input_ids"]
    if teacher.input_id_map is not None:
        ids = teacher.input_id_map.to(ids.device)[ids]
    accepted = inspect.signature(teacher.model.forward).parameters  # e.g. MPNet takes no token_type_ids
    out = teacher.model(**{k: v for k, v in {**inputs, "input_ids": ids}.items() if k in accepted},
                        output_hidden_states="feature" in matched, output_attentions="attention" in matched)
    return out.hidden_states, out.attentions


def adamw(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with the fused kernel (one pass over each tensor instead of a dozen element-wise ops).

    Same update as the default implementation; on CPU it is what makes a full-vocabulary encoder's
    optimiser step cheap: for MiniLM (22.8M weights, 11.7M of them embeddings; batch 32) clipping, the step
    and zero_grad took 110 ms with the default (foreach) kernel and 33 ms fused, against 210 ms for the
    batch's forward and backward pass (2-core Xeon, measured alone).
    """
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)


class StopRule(Protocol):
    @property
    def metric_keys(self) -> tuple[str, ...]: ...

    def decide(self, history: Sequence[Mapping[str, float]]) -> StopDecision: ...


def epoch_metric_names(loss: WeightedLoss, task: ClassificationTask, probe: bool = False) -> frozenset[str]:
    """The keys of every epoch record `train_classifier` makes with this loss and task (what a stop rule can read).

    ``loss_total`` and ``loss_<term>`` per loss term, the training statistics, and the validation metrics
    (``probe_val_accuracy`` instead of ``val_accuracy`` with `probe`; ``val_loss_kd`` only with cached
    validation teacher logits; the refusal metrics only with a refusal class). Validation names come from
    running the validation metrics on placeholder logits, so they cannot drift from what is logged.
    """
    placeholder = np.zeros((len(task.val_labels), task.num_labels), dtype=np.float32)
    names = {"epoch", "loss_total", *(f"loss_{term.name}" for term in loss.terms), *_TRAIN_STATISTICS,
             *_validation_metrics(task, placeholder, temperature=1.0)}
    if probe:
        names = (names - {"val_accuracy"}) | {"probe_val_accuracy"}
    if task.train_teacher_logits is not None:
        names.add("teacher_entropy_mean")
    return frozenset(names)


def check_stop_rule(rule: StopRule, logged: frozenset[str], stage: str) -> None:
    """`ConfigError` before training when `rule` reads a metric that the loop does not log for this stage."""
    missing = [key for key in rule.metric_keys if key not in logged]
    if missing:
        raise ConfigError(
            f"the {stage} stop rule reads {', '.join(map(repr, missing))}, which {stage} does not log (it logs "
            f"{', '.join(sorted(logged - {'epoch'}))}); point the rule at a logged metric or disable it"
        )


def train_classifier(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: ClassificationTask,
    loss: WeightedLoss,
    config: TrainingConfig,
    *,
    temperature: float = 1.0,
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
    desc: str = "train",
    teacher: OnlineTeacher | None = None,
    matcher: LayerMatcher | None = None,
    probe: bool = False,
    stop_rule: StopRule | None = None,
    restore_best: bool = True,
    checkpoints: StageCheckpoints | None = None,
) -> TrainResult:
    """Train `model` in place with `loss`, under accelerate (CPU, one GPU, or DDP via ``accelerate launch``).

    After every epoch: validate, record metrics, ask `stop_rule` whether to stop (its reason is kept),
    and checkpoint when `checkpoints` is given (an existing checkpoint is resumed first). With
    `restore_best` the weights of the first epoch that reached the best validation accuracy are kept
    (runbook 6.8); otherwise the last epoch's. With `probe` the metric names are Stage 1's: the validation
    accuracy of the probe head is ``probe_val_accuracy``.
    """
    if loss.needs_teacher and task.train_teacher_logits is None:
        raise ValueError("this loss distills from a teacher: pass train_teacher_logits in the task")
    if loss.matched and (teacher is None or matcher is None):
        raise ValueError(f"the {', '.join(loss.matched)} loss terms need an online teacher and a layer matcher")
    accuracy_key = "probe_val_accuracy" if probe else "val_accuracy"
    if stop_rule is not None:  # a rule reading a metric this stage does not log would never stop it
        check_stop_rule(stop_rule, epoch_metric_names(loss, task, probe), desc)
    set_seed(config.seed)
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if (probe or loss.matched) else []
    accelerator = Accelerator(mixed_precision=config.mixed_precision, kwargs_handlers=handlers)
    loader = make_loader(tokenizer, task.train_texts, task.train_labels, config.max_length, config.batch_size, config.seed, shuffle=True)
    sampler = loader.batch_sampler
    module = DistillationModule(model, matcher if loss.matched else None, probe=probe)
    optimizer = adamw(module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    total_steps = len(loader) * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    module, optimizer, loader, scheduler = accelerator.prepare(module, optimizer, loader, scheduler)
    if teacher is not None and loss.matched:
        teacher.model.to(accelerator.device).eval().requires_grad_(False)
    teacher_train = None if task.train_teacher_logits is None else torch.from_numpy(task.train_teacher_logits)
    teacher_entropy = None if teacher_train is None else float(entropy(teacher_train).mean())

    result = TrainResult()
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch = 1
    resumed = checkpoints.resume(accelerator) if checkpoints is not None else None
    if resumed is not None:
        result.history = resumed.trainer["history"]
        result.decisions = resumed.trainer["decisions"]
        result.stop_reason = resumed.trainer.get("stop_reason", "")
        result.stopped_by_rule = resumed.trainer.get("stopped_by_rule", False)
        best_state = resumed.best_state
        start_epoch = result.resumed_from_epoch = resumed.epoch
        start_epoch += 1
        sampler.epoch = resumed.epoch  # the shuffle of epoch e is seeded by seed + e - 1
        if on_epoch_end is not None and accelerator.is_main_process:
            for metrics in result.history:  # this run's tracker gets the whole curve, not only the new epochs
                on_epoch_end(metrics)
    started = time.perf_counter()
    for epoch in range(start_epoch, config.epochs + 1):
        if result.stop_reason:
            break
        module.train()
        sums = torch.zeros(len(loss.terms) + 2, dtype=torch.float64)  # total, seen, then one per term
        grad_norms: list[float] = []
        epoch_start = time.perf_counter()
        bar = tqdm(loader, desc=f"{desc} epoch {epoch}/{config.epochs}", leave=False, disable=not accelerator.is_local_main_process)
        for batch in bar:
            inputs = _model_inputs(batch)
            teacher_hidden = teacher_attn = None
            if loss.matched:
                with accelerator.autocast():
                    teacher_hidden, teacher_attn = _teacher_internals(teacher, inputs, loss.matched)
            logits, matched = module(inputs, teacher_hidden, teacher_attn, matched=loss.matched)
            teacher_logits = None if teacher_train is None else teacher_train[batch["index"].cpu()].to(logits.device)
            total, parts = loss(LossInputs(logits.float(), batch["labels"], teacher_logits,
                                           {k: v.float() for k, v in matched.items()}))
            accelerator.backward(total)
            grad_norms.append(float(accelerator.clip_grad_norm_(module.parameters(), config.max_grad_norm)))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            n = len(batch["labels"])
            sums[0] += float(total.detach()) * n
            sums[1] += n
            for i, term in enumerate(loss.terms):
                sums[2 + i] += float(parts[term.name].detach()) * n
            bar.set_postfix(loss=f"{sums[0] / sums[1]:.3f}")
        elapsed = time.perf_counter() - epoch_start
        sums = accelerator.reduce(sums.to(accelerator.device), reduction="sum").cpu()  # every rank sees the same averages
        seen = float(sums[1])

        metrics = {"loss_total": float(sums[0]) / seen}
        metrics.update({f"loss_{term.name}": float(sums[2 + i]) / seen for i, term in enumerate(loss.terms)})
        metrics.update(  # the keys of _TRAIN_STATISTICS
            grad_norm=float(np.mean(grad_norms)),
            lr=float(scheduler.get_last_lr()[0]),
            samples_per_sec=seen / elapsed,
            train_samples=seen,
            epoch_seconds=elapsed,
        )
        student = accelerator.unwrap_model(module).student
        val = _validate(student, tokenizer, task, config.max_length, temperature)
        if probe:
            val[accuracy_key] = val.pop("val_accuracy")
        metrics.update(val)
        if teacher_entropy is not None:
            metrics["teacher_entropy_mean"] = teacher_entropy
        metrics["epoch"] = epoch
        result.history.append(metrics)

        choice = select_deployment_epoch(result.history, accuracy_key)
        best_changed = choice.epoch == epoch
        if best_changed and restore_best:
            best_state = {k: v.detach().cpu().clone() for k, v in student.state_dict().items()}
        decision = _decide(stop_rule, result.history, epoch)
        result.decisions.append(decision.reason if decision else "")
        if decision is not None and decision.stop:
            result.stop_reason, result.stopped_by_rule = decision.reason, True
        elif epoch == config.epochs:
            result.stop_reason = f"epoch budget reached ({config.epochs} epochs)" + (
                "" if decision is None else f"; {decision.reason}")
        if checkpoints is not None:
            checkpoints.save(accelerator, epoch, {"history": result.history, "decisions": result.decisions,
                                                  "stop_reason": result.stop_reason,
                                                  "stopped_by_rule": result.stopped_by_rule}, best_state, best_changed)
        if on_epoch_end is not None and accelerator.is_main_process:
            on_epoch_end(metrics)

    result.train_seconds = time.perf_counter() - started
    student = accelerator.unwrap_model(module).student
    if not result.history:
        raise ValueError("no epoch was trained: epochs must be >= 1")
    choice = select_deployment_epoch(result.history, accuracy_key)
    if restore_best:
        assert best_state is not None
        student.load_state_dict(best_state)
        result.best_epoch, result.deployment_reason = choice.epoch, choice.reason
    else:
        result.best_epoch = int(result.history[-1]["epoch"])
        result.deployment_reason = f"last epoch {result.best_epoch} kept (the stage hands its final weights on)"
    result.best_val_accuracy = float(result.history[result.best_epoch - 1][accuracy_key])
    student.to("cpu").eval()
    accelerator.free_memory()
    if teacher is not None:
        teacher.model.to("cpu")
    return result


def _decide(rule: StopRule | None, history: list[dict[str, float]], epoch: int) -> StopDecision | None:
    """The stop rule's verdict after `epoch`.

    A value the rule documents it cannot judge (not finite: rare-class recall is NaN when validation holds
    no rare-class row; or a negative loss) leaves the stage to its epoch budget from that epoch on, with a
    warning and that reason as every later decision. A metric missing from the record is a mistake
    (`check_stop_rule` rules it out before training) and raises.
    """
    if rule is None:
        return None
    try:
        return rule.decide(history)
    except UnjudgeableMetricError as exc:
        reason = f"stop rule not applied after epoch {epoch}: {exc}"
        logger.warning(reason)
        return StopDecision(stop=False, reason=reason, epoch=epoch)


#: Training statistics of every epoch record (`train_classifier` computes them after each epoch).
_TRAIN_STATISTICS = ("grad_norm", "lr", "samples_per_sec", "train_samples", "epoch_seconds")


def _validate(model, tokenizer, task: ClassificationTask, max_length: int, temperature: float) -> dict[str, float]:
    return _validation_metrics(task, predict_logits(model, tokenizer, task.val_texts, max_length), temperature)


def _validation_metrics(task: ClassificationTask, logits: np.ndarray, temperature: float) -> dict[str, float]:
    """Runbook 4.1 metrics of validation logits (n_val, C) against the task's labels (and cached teacher logits)."""
    metrics = classification_metrics(task.val_labels, logits.argmax(-1), task.num_labels, task.rare_ids, task.refusal_id)
    out = {"val_accuracy": metrics.pop("accuracy"), "val_macro_f1": metrics.pop("macro_f1"), **metrics}
    student = torch.from_numpy(logits)
    out["val_loss"] = float(torch.nn.functional.cross_entropy(student.float(), torch.tensor(task.val_labels).long()))
    out["student_entropy_mean"] = float(entropy(student).mean())
    if task.val_teacher_logits is not None:
        teacher = torch.from_numpy(task.val_teacher_logits)
        out["val_loss_kd"] = float(soft_label_kd_loss(student, teacher, temperature))
    return out
