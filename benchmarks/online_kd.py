"""The runbook's online-teacher recipe (section 12.2), reproduced as the baseline the pipeline must beat.

Hugging Face `Trainer` with the runbook's `KDTrainer`: every step runs the frozen teacher forward on the
same batch, inputs padded to a fixed 64 tokens. Used only by the benchmark.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainingArguments


class KDTrainer(Trainer):
    """Runbook 12.2, verbatim in substance: (1 - alpha) * CE + alpha * T^2 * KL, teacher run online."""

    def __init__(self, teacher_model=None, temperature=4.0, alpha=0.7, **kwargs):
        super().__init__(**kwargs)
        self.teacher = teacher_model.eval()
        self.temperature = temperature
        self.alpha = alpha
        for p in self.teacher.parameters():
            p.requires_grad = False

    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        labels = inputs["labels"]
        student_outputs = model(**inputs)
        with torch.no_grad():
            teacher_outputs = self.teacher(**inputs)
        s_logits = student_outputs.logits
        t_logits = teacher_outputs.logits
        ce = F.cross_entropy(s_logits, labels)
        kd = F.kl_div(
            F.log_softmax(s_logits / self.temperature, dim=-1),
            F.softmax(t_logits / self.temperature, dim=-1),
            reduction="batchmean",
        ) * (self.temperature ** 2)
        loss = (1 - self.alpha) * ce + self.alpha * kd
        return (loss, student_outputs) if return_outputs else loss


def online_kd_samples_per_second(
    teacher: PreTrainedModel,
    student: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    batch_size: int = 32,
    learning_rate: float = 5e-5,
    max_length: int = 64,
    temperature: float = 4.0,
    alpha: float = 0.7,
) -> float:
    """Train `student` for one epoch over `texts` with the online recipe; HF's train_samples_per_second."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding="max_length")
    dataset = Dataset.from_dict({**encoded, "labels": list(labels)})
    with tempfile.TemporaryDirectory(prefix="online-kd-") as output_dir:
        args = TrainingArguments(
            output_dir=output_dir, per_device_train_batch_size=batch_size, num_train_epochs=1,
            learning_rate=learning_rate, report_to=[], save_strategy="no", logging_strategy="no",
            eval_strategy="no", disable_tqdm=True, dataloader_num_workers=0, use_cpu=True, seed=42,
        )
        trainer = KDTrainer(teacher_model=teacher, temperature=temperature, alpha=alpha, model=student, args=args,
                            train_dataset=dataset)
        metrics = trainer.train().metrics
    return float(metrics["train_samples_per_second"])
