"""LoRA supervised fine-tuning of the student on teacher answers, with peft and trl's `SFTTrainer` (runbook 8.2-8.6).

Rows are conversational prompt/completion pairs (`sft_row`)::

    {"prompt": [system, user], "completion": [{"role": "assistant", "content": answer}]}

so trl renders them with the tokenizer's chat template and computes the loss on the completion only (the
answer and its closing ``<|im_end|>``): `completion_only_loss` is set explicitly, and a test reads the
labels the trainer's collator produces.

`train_lora` trains epoch by epoch. After each epoch it evaluates on the validation rows, saves a trainer
checkpoint (for `resume=True`) and the adapter alone (``output_dir/epoch-N``), then hands an `EpochContext`
to the caller's `on_epoch_end`, which may generate with the live model, score it, and stop training by
returning True. The stop rule lives with the caller (`mangadistill.training.stop_rules`), not here.

Layout of `output_dir`::

    trainer/checkpoint-<step>/   the latest trainer checkpoint: adapter, optimizer, scheduler, RNG states
    epoch-<N>/                   adapter + tokenizer of epoch N (`merge_adapter` turns one into a full model)
    history.json                 one record per finished epoch (losses, step, tokens, seconds)

CPU defaults: fp32, no gradient checkpointing, `use_cpu` when CUDA is absent. On GPUs set `bf16` and
`gradient_checkpointing`; under `accelerate launch` the Trainer runs data-parallel, the adapter is saved and
`on_epoch_end` runs on the main process only, and its decision reaches every process.

trl is imported in this module only.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from peft import LoraConfig, PeftModel
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerBase,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from transformers.trainer_utils import get_last_checkpoint
from trl import SFTConfig, SFTTrainer

from mangadistill.errors import ConfigError, DataError
from mangadistill.response.student import write_card

log = logging.getLogger(__name__)

#: Every projection of a Llama block: attention and MLP.
LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TRAINER_DIR = "trainer"
HISTORY_FILE = "history.json"
_TOP_LAYERS = re.compile(r"^top:(\d+)$")


@dataclass(frozen=True)
class SFTSettings:
    """Hyper-parameters of one LoRA SFT run (trl `SFTConfig` + peft `LoraConfig`, the subset this project sets)."""

    epochs: int = 3
    learning_rate: float = 2.0e-4
    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    #: Tokens per row after the chat template; longer rows are cut at the end (trl's "keep_start").
    max_length: int = 512
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = LLAMA_PROJECTIONS
    #: "all", or "top:N" to put adapters on the last N blocks only: the backward pass then stops early
    #: (SmolLM2, 2 CPU threads: ~290 train tok/s with top:10 against ~128 with all 30 blocks).
    lora_layers: str = "all"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    seed: int = 0
    #: bf16 mixed precision (GPUs with bf16 support); the base weights are then loaded in bf16 too.
    bf16: bool = False
    gradient_checkpointing: bool = False
    logging_steps: int = 10
    #: torch CPU threads (process-wide); None leaves torch's default.
    threads: int | None = None

    def __post_init__(self) -> None:
        positive = ("epochs", "per_device_batch_size", "gradient_accumulation_steps", "max_length", "lora_r",
                    "lora_alpha", "logging_steps")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"sft.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.learning_rate <= 1.0:
            raise ConfigError(f"sft.learning_rate must be in (0, 1], got {self.learning_rate}")
        for name in ("lora_dropout", "warmup_ratio"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"sft.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.weight_decay < 0.0:
            raise ConfigError(f"sft.weight_decay must be >= 0, got {self.weight_decay}")
        if not self.target_modules:
            raise ConfigError(f"sft.target_modules must name at least one module, e.g. {list(LLAMA_PROJECTIONS)}")
        if self.lora_layers != "all" and not _TOP_LAYERS.match(self.lora_layers):
            raise ConfigError(f"sft.lora_layers must be 'all' or 'top:N' (N >= 1), got {self.lora_layers!r}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"sft.threads must be >= 1 or null, got {self.threads}")


@dataclass(frozen=True)
class EpochRecord:
    """What one finished epoch measured."""

    epoch: int
    #: Mean over the epoch's optimizer steps of the completion-token loss (the Trainer's logged `loss`).
    train_loss: float
    #: Completion-token loss on the validation rows after the epoch.
    eval_loss: float
    global_step: int
    #: Non-padding tokens (prompt + completion) the epoch trained on, over all processes.
    train_tokens: int
    #: Wall time of the epoch's training steps (evaluation and checkpointing excluded).
    train_seconds: float
    adapter_dir: str


@dataclass(frozen=True)
class EpochContext:
    """What `on_epoch_end` receives: the epoch's numbers, the live model to generate with, and its adapter."""

    epoch: int
    train_loss: float
    eval_loss: float
    #: The peft model being trained, in eval mode for the duration of the call (training resumes after).
    model: PeftModel
    tokenizer: PreTrainedTokenizerBase
    #: This epoch's adapter + tokenizer folder (``output_dir/epoch-N``), already saved.
    adapter_dir: Path
    record: EpochRecord


EpochHook = Callable[[EpochContext], bool]


@dataclass(frozen=True)
class SFTResult:
    """The outcome of `train_lora`: one record per finished epoch, earlier runs' epochs included on resume."""

    output_dir: Path
    history: tuple[EpochRecord, ...]
    #: True when `on_epoch_end` stopped training before the configured number of epochs.
    stopped_early: bool
    #: True when this call continued a checkpoint left by an earlier call.
    resumed: bool
    #: The blocks that carry adapters (peft `layers_to_transform`); None: all of them.
    lora_layers: tuple[int, ...] | None = None
    #: True when `should_cancel` ended training mid-run.
    cancelled: bool = False

    @property
    def last_adapter_dir(self) -> Path:
        if not self.history:
            raise ValueError(f"no epoch finished in {self.output_dir}")
        return Path(self.history[-1].adapter_dir)

    def adapter_dir(self, epoch: int) -> Path:
        """The adapter folder of `epoch` (1-based), e.g. the one a stop rule selected."""
        for record in self.history:
            if record.epoch == epoch:
                return Path(record.adapter_dir)
        raise ValueError(f"epoch {epoch} did not finish; finished: {[r.epoch for r in self.history]}")


def sft_row(messages: Sequence[Mapping[str, str]], answer: str) -> dict[str, list[dict[str, str]]]:
    """A training row: the request's messages (system + user, `chat.messages_for`) as prompt, `answer` as completion."""
    return {"prompt": [{"role": m["role"], "content": m["content"]} for m in messages],
            "completion": [{"role": "assistant", "content": answer}]}


def lora_layer_indices(spec: str, num_layers: int) -> list[int] | None:
    """peft's `layers_to_transform` for `spec`: None for "all", the last N block indices for "top:N"."""
    if spec == "all":
        return None
    match = _TOP_LAYERS.match(spec)
    count = int(match.group(1)) if match else 0
    if not 1 <= count <= num_layers:
        raise ConfigError(f"sft.lora_layers {spec!r}: the model has {num_layers} blocks, use top:1 .. top:{num_layers}")
    return list(range(num_layers - count, num_layers))


def build_trainer(
    base_dir: Path, train_rows: Sequence[Mapping[str, Any]], val_rows: Sequence[Mapping[str, Any]],
    settings: SFTSettings, output_dir: Path,
) -> SFTTrainer:
    """An `SFTTrainer` wrapping the base model in a fresh LoRA adapter, with its datasets tokenized and masked.

    `train_lora` runs it; tests read the batches its collator produces.
    """
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    train_set = _dataset(train_rows, "train")
    val_set = _dataset(val_rows, "validation") if val_rows else None  # none: no eval loss (NaN in the history)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.bfloat16 if settings.bf16 else torch.float32)
    if settings.gradient_checkpointing:
        model.config.use_cache = False  # the KV cache is useless in training and conflicts with checkpointing
    lora = _lora_config(settings, model.config.num_hidden_layers)
    return _LossTrackingSFTTrainer(
        model=model, args=_sft_config(settings, Path(output_dir) / TRAINER_DIR, evaluate=val_set is not None), train_dataset=train_set,
        eval_dataset=val_set, processing_class=tokenizer, peft_config=lora,
    )


def train_lora(
    base_dir: Path, train_rows: Sequence[Mapping[str, Any]], val_rows: Sequence[Mapping[str, Any]],
    settings: SFTSettings, output_dir: Path, *, on_epoch_end: EpochHook | None = None, resume: bool = False,
    should_cancel: Callable[[], bool] | None = None, on_log: Callable[[dict[str, float]], None] | None = None,
) -> SFTResult:
    """Fine-tune a LoRA adapter on `base_dir` for `settings.epochs` epochs, or until `on_epoch_end` returns True.

    `should_cancel` is asked after every optimizer step: True ends training there (no epoch is recorded for
    the unfinished epoch; `SFTResult.cancelled` is set). `on_log` receives the Trainer's logged numbers
    (``loss``, ``learning_rate``, ``step``, ...) every `logging_steps` steps.

    With `resume=True`, continues from the latest trainer checkpoint in `output_dir` (a killed or stopped
    run with the same rows and settings; `epochs` may be raised), or starts fresh when there is none.
    Without it, `output_dir` must hold no trainer checkpoint (`ConfigError`), so no run is overwritten by
    accident.
    """
    output_dir = Path(output_dir)
    checkpoint = _last_checkpoint(output_dir / TRAINER_DIR)
    if checkpoint is not None and not resume:
        raise ConfigError(f"{output_dir} holds a checkpoint of an earlier run ({checkpoint.name}): "
                          "pass resume=True to continue it, or train into an empty folder")
    history = _read_history(output_dir, up_to_step=_checkpoint_step(checkpoint)) if checkpoint else []
    trainer = build_trainer(base_dir, train_rows, val_rows, settings, output_dir)
    recorder = _EpochRecorder(trainer, output_dir, history, on_epoch_end)
    trainer.add_callback(recorder)
    steps = _StepWatcher(should_cancel, on_log)
    trainer.add_callback(steps)
    log.info("LoRA SFT: %d train / %d val rows, %s, output %s%s", len(train_rows), len(val_rows),
             _describe(trainer.model), output_dir, f", resuming {checkpoint}" if checkpoint else "")
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    lora_layers = trainer.model.peft_config["default"].layers_to_transform
    return SFTResult(output_dir=output_dir, history=tuple(recorder.history), stopped_early=recorder.stopped,
                     resumed=checkpoint is not None, lora_layers=tuple(lora_layers) if lora_layers else None,
                     cancelled=steps.cancelled)


def merge_adapter(base_dir: Path, adapter_dir: Path, out_dir: Path) -> Path:
    """Fold the LoRA adapter in `adapter_dir` into the base weights and save a plain model + tokenizer at `out_dir`.

    The merged folder loads with `AutoModelForCausalLM` alone (no peft at serving time) and carries a card
    naming its base and adapter; the adapter folder is left as it was.
    """
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir if _has_tokenizer(adapter_dir) else base_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    write_card(out_dir, merged.config, source=f"merged:{Path(base_dir).resolve()}+{Path(adapter_dir).resolve()}",
               parameters=sum(p.numel() for p in merged.parameters()), role="student",
               base_dir=str(Path(base_dir).resolve()), adapter_dir=str(Path(adapter_dir).resolve()))
    return out_dir


class _LossTrackingSFTTrainer(SFTTrainer):
    """`SFTTrainer` that also sums the loss and the non-padding tokens of its training steps (the epoch means)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loss_sum = torch.zeros((), dtype=torch.float64)
        self.token_sum = torch.zeros((), dtype=torch.int64)

    def training_step(self, model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
                      ) -> torch.Tensor:
        tokens = inputs["attention_mask"].sum().detach().cpu() if "attention_mask" in inputs else None
        # The returned loss is this micro-batch's share of the optimizer step's loss: the shares of one
        # step add up to the loss the Trainer logs for it.
        loss = super().training_step(model, inputs, num_items_in_batch)
        self.loss_sum += loss.detach().double().cpu()
        if tokens is not None:
            self.token_sum += tokens
        return loss

    def pop_epoch_sums(self) -> tuple[float, int]:
        """(loss sum, token sum) since the last call, summed (loss averaged) over processes, then reset."""
        loss = self.accelerator.reduce(self.loss_sum.to(self.accelerator.device), reduction="mean")
        tokens = self.accelerator.reduce(self.token_sum.to(self.accelerator.device), reduction="sum")
        self.loss_sum.zero_()
        self.token_sum.zero_()
        return float(loss), int(tokens)


class _EpochRecorder(TrainerCallback):
    """Saves each epoch's adapter, records its numbers, and asks the caller's hook whether to stop."""

    def __init__(self, trainer: _LossTrackingSFTTrainer, output_dir: Path, history: list[EpochRecord],
                 hook: EpochHook | None) -> None:
        self.trainer = trainer
        self.output_dir = output_dir
        self.history = list(history)
        self.hook = hook
        self.stopped = False
        self._step_at_epoch_start = 0
        self._epoch_began = 0.0
        self._train_seconds = 0.0
        self._eval_loss = float("nan")

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        self._step_at_epoch_start = state.global_step  # after a resume: the checkpoint's step
        self.trainer.pop_epoch_sums()

    def on_epoch_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        self._epoch_began = time.perf_counter()

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        self._train_seconds = time.perf_counter() - self._epoch_began

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    metrics: dict[str, float] | None = None, **_: Any) -> None:
        self._eval_loss = float((metrics or {}).get("eval_loss", float("nan")))

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        record = self._record(state)
        stop = False
        if state.is_world_process_zero:
            self._save_adapter(Path(record.adapter_dir))
            self.history.append(record)
            _write_history(self.output_dir, self.history)
            stop = self._ask_hook(record)
        stop = self._broadcast(stop)
        if stop:
            self.stopped = state.epoch is not None and round(state.epoch) < args.num_train_epochs
            control.should_training_stop = True

    def _record(self, state: TrainerState) -> EpochRecord:
        loss_sum, tokens = self.trainer.pop_epoch_sums()
        steps = max(state.global_step - self._step_at_epoch_start, 1)
        self._step_at_epoch_start = state.global_step
        epoch = round(state.epoch or 0)
        return EpochRecord(epoch=epoch, train_loss=loss_sum / steps, eval_loss=self._eval_loss,
                           global_step=state.global_step, train_tokens=tokens,
                           train_seconds=round(self._train_seconds, 3),
                           adapter_dir=str(self.output_dir / f"epoch-{epoch}"))

    def _save_adapter(self, folder: Path) -> None:
        self.trainer.model.save_pretrained(folder)  # a PeftModel saves the adapter only
        self.trainer.processing_class.save_pretrained(folder)

    def _ask_hook(self, record: EpochRecord) -> bool:
        if self.hook is None:
            return False
        model = self.trainer.model
        was_training = model.training
        model.eval()
        try:
            context = EpochContext(epoch=record.epoch, train_loss=record.train_loss, eval_loss=record.eval_loss,
                                   model=model, tokenizer=self.trainer.processing_class,
                                   adapter_dir=Path(record.adapter_dir), record=record)
            return bool(self.hook(context))
        finally:
            model.train(was_training)

    def _broadcast(self, stop: bool) -> bool:
        """The main process's decision, on every process."""
        if self.trainer.accelerator.num_processes == 1:
            return stop
        from accelerate.utils import broadcast_object_list

        return bool(broadcast_object_list([stop], from_process=0)[0])


class _StepWatcher(TrainerCallback):
    """Cancellation after any optimizer step, and the Trainer's step logs handed to a caller."""

    def __init__(self, should_cancel: Callable[[], bool] | None,
                 on_log: Callable[[dict[str, float]], None] | None) -> None:
        self._should_cancel, self._log = should_cancel, on_log  # not `self.on_log`: that is the callback itself
        self.cancelled = False

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        if self._should_cancel is not None and self._should_cancel():
            self.cancelled = True
            control.should_training_stop = True
            control.should_save = control.should_evaluate = False

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        if self.cancelled:  # runs after DefaultFlowCallback, which asks for the epoch's save: an unfinished
            control.should_save = control.should_evaluate = False  # epoch is neither saved nor recorded

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **_: Any) -> None:
        if self._log is not None and logs and state.is_world_process_zero:
            self._log({**logs, "step": state.global_step, "epoch": state.epoch or 0.0})


def _sft_config(settings: SFTSettings, trainer_dir: Path, evaluate: bool = True) -> SFTConfig:
    """trl's config: completion-only loss, evaluate (when there are validation rows) + checkpoint every epoch,
    no external reporting."""
    return SFTConfig(
        output_dir=str(trainer_dir),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.per_device_batch_size,
        per_device_eval_batch_size=settings.per_device_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        warmup_ratio=settings.warmup_ratio,
        weight_decay=settings.weight_decay,
        max_length=settings.max_length,
        completion_only_loss=True,
        packing=False,
        bf16=settings.bf16,
        fp16=False,
        gradient_checkpointing=settings.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if settings.gradient_checkpointing else None,
        use_cpu=not torch.cuda.is_available(),
        eval_strategy="epoch" if evaluate else "no",
        save_strategy="epoch",
        save_total_limit=1,  # resume needs the latest only; each epoch's adapter is kept under epoch-N
        logging_strategy="steps",
        logging_steps=settings.logging_steps,
        report_to="none",  # the caller logs to MLflow
        disable_tqdm=False,
        seed=settings.seed,
        data_seed=settings.seed,
        dataloader_num_workers=0,
        group_by_length=True,  # batches of similar length: less padding (rows here run from ~100 to ~300 tokens)
    )


def _lora_config(settings: SFTSettings, num_layers: int) -> LoraConfig:
    return LoraConfig(
        task_type="CAUSAL_LM", r=settings.lora_r, lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout, target_modules=list(settings.target_modules), bias="none",
        layers_to_transform=lora_layer_indices(settings.lora_layers, num_layers),
    )


def _dataset(rows: Sequence[Mapping[str, Any]], split: str) -> Dataset:
    """Rows validated and reduced to their prompt/completion columns."""
    if not rows:
        raise DataError(f"LoRA SFT needs at least one {split} row")
    for index, row in enumerate(rows):
        problem = _row_problem(row)
        if problem:
            raise DataError(f"{split} row {index}: {problem}; build rows with sft_row(messages, answer)")
    return Dataset.from_list([{"prompt": list(row["prompt"]), "completion": list(row["completion"])} for row in rows])


def _row_problem(row: Mapping[str, Any]) -> str | None:
    prompt, completion = row.get("prompt"), row.get("completion")
    if not isinstance(prompt, list) or not prompt or not all(_is_message(m) for m in prompt):
        return "'prompt' must be a non-empty list of {'role', 'content'} messages"
    if prompt[-1]["role"] != "user":
        return f"the prompt must end with a user message, not {prompt[-1]['role']!r}"
    if (not isinstance(completion, list) or len(completion) != 1 or not _is_message(completion[0])
            or completion[0]["role"] != "assistant"):
        return "'completion' must be one assistant message"
    return None


def _is_message(message: object) -> bool:
    return (isinstance(message, Mapping) and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str))


def _describe(model: PeftModel) -> str:
    trainable, total = model.get_nb_trainable_parameters()
    return f"LoRA {trainable:,} trainable of {total:,} parameters"


def _last_checkpoint(trainer_dir: Path) -> Path | None:
    if not trainer_dir.is_dir():
        return None
    last = get_last_checkpoint(str(trainer_dir))
    return Path(last) if last else None


def _checkpoint_step(checkpoint: Path) -> int:
    return int(checkpoint.name.rsplit("-", 1)[-1])


def _read_history(output_dir: Path, up_to_step: int) -> list[EpochRecord]:
    """Epochs an earlier run recorded, up to the checkpoint being resumed (later ones will be retrained)."""
    path = output_dir / HISTORY_FILE
    if not path.is_file():
        return []
    records = [EpochRecord(**entry) for entry in json.loads(path.read_text(encoding="utf-8"))]
    return [r for r in records if r.global_step <= up_to_step]


def _write_history(output_dir: Path, history: list[EpochRecord]) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    payload = json.dumps([asdict(r) for r in history], indent=2)
    (output_dir / HISTORY_FILE).write_text(payload, encoding="utf-8")


def _has_tokenizer(folder: Path) -> bool:
    return (Path(folder) / "tokenizer_config.json").is_file()
