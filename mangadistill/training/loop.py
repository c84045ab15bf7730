"""One training loop for teacher fine-tuning and student distillation, on CPU, one GPU or DDP.

The loop is plain PyTorch driven by `accelerate`, so the same code runs under ``accelerate launch``.
Batches are built from pre-tokenised queries grouped by length (real queries are 10-15 tokens, so
padding everything to 64 would waste most of the compute), and KD reads cached teacher logits instead
of running the teacher online. After every epoch the model is validated and `on_epoch_end` receives
the runbook 4.1 metrics; the weights of the first epoch that reached the best validation accuracy are
restored at the end (runbook 6.8).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from accelerate import Accelerator
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup, set_seed

from mangadistill.config import TrainingConfig
from mangadistill.evaluation.metrics import classification_metrics
from mangadistill.losses.kd import LossInputs, WeightedLoss, entropy, soft_label_kd_loss


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
        self.batch_size = batch_size
        self.window = batch_size * window
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        self.epoch += 1
        order = rng.permutation(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.window):
            chunk = order[start : start + self.window]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
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
    """What a training run produced: per-epoch metrics and the epoch whose weights were kept."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_accuracy: float = float("nan")
    train_seconds: float = 0.0


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
) -> TrainResult:
    """Train `model` in place with `loss`; keep the first epoch with the best validation accuracy."""
    if loss.needs_teacher and task.train_teacher_logits is None:
        raise ValueError("this loss distills from a teacher: pass train_teacher_logits in the task")
    set_seed(config.seed)
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    loader = make_loader(tokenizer, task.train_texts, task.train_labels, config.max_length, config.batch_size, config.seed, shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    total_steps = len(loader) * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    teacher_train = None if task.train_teacher_logits is None else torch.from_numpy(task.train_teacher_logits)
    teacher_entropy = None if teacher_train is None else float(entropy(teacher_train).mean())

    result = TrainResult()
    best_state: dict[str, torch.Tensor] | None = None
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        sums: dict[str, float] = {}
        grad_norms: list[float] = []
        seen = 0
        epoch_start = time.perf_counter()
        bar = tqdm(loader, desc=f"{desc} epoch {epoch}/{config.epochs}", leave=False, disable=not accelerator.is_local_main_process)
        for batch in bar:
            logits = model(**_model_inputs(batch)).logits  # (B, C)
            teacher_logits = None if teacher_train is None else teacher_train[batch["index"].cpu()].to(logits.device)
            total, parts = loss(LossInputs(logits.float(), batch["labels"], teacher_logits))
            accelerator.backward(total)
            grad_norms.append(float(accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            n = len(batch["labels"])
            seen += n
            for name, value in {"total": total, **parts}.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) * n
            bar.set_postfix(loss=f"{sums['total'] / seen:.3f}")
        elapsed = time.perf_counter() - epoch_start

        metrics = {f"loss_{name}": value / seen for name, value in sums.items()}
        metrics.update(
            grad_norm=float(np.mean(grad_norms)),
            lr=float(scheduler.get_last_lr()[0]),
            samples_per_sec=seen * accelerator.num_processes / elapsed,
            epoch_seconds=elapsed,
        )
        unwrapped = accelerator.unwrap_model(model)
        metrics.update(_validate(unwrapped, tokenizer, task, config.max_length, temperature))
        if teacher_entropy is not None:
            metrics["teacher_entropy_mean"] = teacher_entropy
        metrics["epoch"] = epoch
        result.history.append(metrics)
        if best_state is None or metrics["val_accuracy"] > result.best_val_accuracy:
            result.best_epoch, result.best_val_accuracy = epoch, metrics["val_accuracy"]
            best_state = {k: v.detach().cpu().clone() for k, v in unwrapped.state_dict().items()}
        if on_epoch_end is not None and accelerator.is_main_process:
            on_epoch_end(metrics)

    result.train_seconds = time.perf_counter() - started
    unwrapped = accelerator.unwrap_model(model)
    assert best_state is not None
    unwrapped.load_state_dict(best_state)
    unwrapped.to("cpu").eval()
    accelerator.free_memory()
    return result


def _validate(model, tokenizer, task: ClassificationTask, max_length: int, temperature: float) -> dict[str, float]:
    logits = predict_logits(model, tokenizer, task.val_texts, max_length)
    metrics = classification_metrics(task.val_labels, logits.argmax(-1), task.num_labels, task.rare_ids, task.refusal_id)
    out = {"val_accuracy": metrics.pop("accuracy"), "val_macro_f1": metrics.pop("macro_f1"), **metrics}
    student = torch.from_numpy(logits)
    out["student_entropy_mean"] = float(entropy(student).mean())
    if task.val_teacher_logits is not None:
        teacher = torch.from_numpy(task.val_teacher_logits)
        out["val_loss_kd"] = float(soft_label_kd_loss(student, teacher, temperature))
    return out
