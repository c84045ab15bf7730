"""Tiny, randomly initialised BERT classifiers saved as `ModelDir`s, with the packaged MiniLM tokenizer."""

from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification

from mangadistill.config import PACKAGED_MINILM
from mangadistill.models.encoders import load_tokenizer, resolve_model_path, save_model_dir
from mangadistill.models.model_dir import ModelDir


def tiny_classifier(path: Path, labels: list[str], *, role: str = "student", hidden_size: int = 32, layers: int = 1,
                    seed: int = 0) -> tuple[ModelDir, BertForSequenceClassification, object]:
    """Save a tiny BERT classifier for `labels` at `path`; returns the folder, the model and its tokenizer."""
    tokenizer = load_tokenizer(resolve_model_path(PACKAGED_MINILM))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden_size, num_hidden_layers=layers,
                        num_attention_heads=max(1, hidden_size // 16), intermediate_size=2 * hidden_size,
                        num_labels=len(labels))
    model = BertForSequenceClassification(config).eval()
    return save_model_dir(model, tokenizer, path, role=role, labels=labels, max_length=32), model, tokenizer
