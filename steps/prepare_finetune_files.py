"""Step: the chat-format fine-tuning files (runbook 7.2-7.3), validated as OpenAI documents it, and the 7.4
token and cost estimate; nothing is uploaded here (``--dry-run`` stops after this step)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import mlflow
from zenml import step

from mangadistill.config import ManagedFineTuneConfig
from mangadistill.finetune.data import estimate_cost, student_token_counter, validate_chat_jsonl, write_chat_files
from mangadistill.response.dataset import ResponseDataset
from mangadistill.tracking import log_grouped
from steps._context import log_output_metadata

#: What counts the tokens (no tiktoken here): the student's own tokenizer, an approximation of OpenAI's counts.
TOKENIZER = "SmolLM2 tokenizer (approximates OpenAI's counts)"


@step(experiment_tracker=True)
def prepare_finetune_files(response_dataset: ResponseDataset,
                           config: ManagedFineTuneConfig) -> Annotated[dict[str, Any], "finetune_files"]:
    """Write train.jsonl (7.3 weights by resampling) and validation.jsonl, validate both, estimate the bill."""
    files = write_chat_files(response_dataset, Path(tempfile.mkdtemp(prefix="finetune-files-")), seed=config.seed)
    count = student_token_counter(config.cache_dir)
    reports = {split: validate_chat_jsonl(file.path, name=file.path.name, count=count,
                                          max_tokens_per_example=config.max_tokens_per_example,
                                          min_examples=10 if split == "train" else 1)
               for split, file in (("train", files.train), ("validation", files.validation))}
    for report in reports.values():
        report.raise_if_invalid()  # one line: which examples, which lines, what to fix
    epochs = config.n_epochs if isinstance(config.n_epochs, int) else 4  # 'auto': OpenAI's usual pick for this size
    estimate = estimate_cost(reports["train"], reports["validation"], epochs=epochs,
                             price_per_1m_training_tokens_usd=config.price_training_per_1m_usd, tokenizer=TOKENIZER)
    result = {"train": {"sha256": files.train.sha256, "examples": files.train.examples, "bytes": files.train.bytes,
                        "summary": reports["train"].summary()},
              "validation": {"sha256": files.validation.sha256, "examples": files.validation.examples,
                             "bytes": files.validation.bytes, "summary": reports["validation"].summary()},
              "resampled": files.resampled, "estimate": estimate.as_dict(), "estimate_lines": estimate.lines(),
              "epochs_estimated_as": "given" if isinstance(config.n_epochs, int) else "auto -> 4"}
    log_grouped("finetune", {"train_examples": files.train.examples, "validation_examples": files.validation.examples,
                             "tokens_per_epoch": estimate.tokens_per_epoch, "training_tokens": estimate.training_tokens,
                             "estimated_training_cost_usd": estimate.training_cost_usd})
    mlflow.log_text("\n".join(estimate.lines()) + "\n", "finetune/estimate.txt")
    log_output_metadata({"tokens_per_epoch": estimate.tokens_per_epoch,
                         "estimated_training_cost_usd": round(estimate.training_cost_usd, 4)})
    return result
