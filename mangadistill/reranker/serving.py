"""Serving a reranker: scorers (PyTorch or ONNX), the rerank call, and the family's predictor.

A *reranker folder* is a model folder (PyTorch checkpoint or ONNX bundle, `mangadistill.json` card) plus
``corpus.jsonl``, the passages it ranks when a request brings none (``{"doc_id", "text"}`` per line), and
the card's ``rerank_k`` (candidates the first stage hands over). `Reranker` answers both kinds of call:

- ``rerank(query, candidates)``: scores of the given candidate texts and their order, best first
  (``POST /v1/rerank``);
- ``predict(texts)``: for each query, BM25 over the bundled corpus picks ``rerank_k`` candidates and the
  model reorders them (``POST /predict``, shadow replay, monitoring): ``{"ranking": [doc ids, best first],
  "scores": [...], "top_doc": ..., "top_text": ...}``.

ONNX folders are served with onnxruntime and `tokenizers` only: torch is never imported.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mangadistill.models.model_dir import MODEL_CARD

__all__ = ["CORPUS_FILE", "OnnxScorer", "Reranker", "Scorer", "TorchScorer", "load_reranker_folder",
           "write_corpus"]

CORPUS_FILE = "corpus.jsonl"
#: Ranked documents returned per query by `Reranker.predict`.
TOP_N = 10


class Scorer(Protocol):
    def scores(self, query: str, passages: Sequence[str]) -> np.ndarray: ...


class OnnxScorer:
    """One ONNX graph of a bundle (its served variant unless `variant` names another)."""

    def __init__(self, folder: str | Path, variant: str | None = None, num_threads: int | None = None) -> None:
        from mangadistill.export.onnx import OnnxClassifier

        self.classifier = OnnxClassifier(folder, variant=variant, num_threads=num_threads)

    def scores(self, query: str, passages: Sequence[str]) -> np.ndarray:
        return self.classifier.logits([(query, p) for p in passages])[:, 0]


class TorchScorer:
    """A Hugging Face cross-encoder checkpoint (torch imported only here)."""

    def __init__(self, folder: str | Path, num_threads: int | None = None, model: Any = None, tokenizer: Any = None) -> None:
        import torch

        from mangadistill.models.encoders import load_model_dir
        from mangadistill.models.model_dir import ModelDir

        if num_threads:
            torch.set_num_threads(num_threads)
        if model is None:
            model, tokenizer = load_model_dir(ModelDir(str(folder)))
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_length = int(json.loads((Path(folder) / MODEL_CARD).read_text(encoding="utf-8"))["max_length"])

    def scores(self, query: str, passages: Sequence[str]) -> np.ndarray:
        from mangadistill.reranker.train import score_pairs

        return score_pairs(self.model, self.tokenizer, query, passages, self.max_length)


def write_corpus(folder: str | Path, corpus: dict[str, str]) -> None:
    """``corpus.jsonl`` of the passages a served reranker retrieves from."""
    lines = (json.dumps({"doc_id": doc_id, "text": text}) for doc_id, text in corpus.items())
    (Path(folder) / CORPUS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")


class Reranker:
    """A scorer plus the first stage over its bundled corpus (see the module docstring)."""

    def __init__(self, scorer: Scorer, corpus: dict[str, str], k: int) -> None:
        from mangadistill.reranker.corpus import Bm25

        self.scorer, self.k = scorer, k
        self.doc_ids, self.texts = list(corpus), list(corpus.values())
        self.retriever = Bm25(self.texts) if self.texts else None

    def rerank(self, query: str, candidates: Sequence[str]) -> tuple[list[float], list[int]]:
        """Scores of `candidates` (in their order) and their indices best first."""
        if not candidates:
            return [], []
        scores = np.asarray(self.scorer.scores(query, list(candidates)), dtype=float)
        return scores.round(6).tolist(), np.argsort(-scores, kind="stable").tolist()

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        if self.retriever is None:
            raise ValueError("this reranker has no bundled corpus; call rerank(query, candidates)")
        answers = []
        for text in texts:
            picked = self.retriever.top(text, self.k)
            scores, order = self.rerank(text, [self.texts[i] for i in picked])
            ranked = [picked[j] for j in order[:TOP_N]]
            answers.append({"ranking": [self.doc_ids[i] for i in ranked],
                            "scores": [scores[j] for j in order[:TOP_N]],
                            "top_doc": self.doc_ids[ranked[0]], "top_text": self.texts[ranked[0]]})
        return answers


def load_reranker_folder(folder: str | Path, num_threads: int | None = None) -> Reranker:
    """A reranker folder (ONNX bundle or PyTorch checkpoint + corpus) as a `Reranker`."""
    folder = Path(folder)
    card = json.loads((folder / MODEL_CARD).read_text(encoding="utf-8"))
    scorer = OnnxScorer(folder, num_threads=num_threads) if card.get("format") == "onnx" else TorchScorer(folder, num_threads)
    corpus: dict[str, str] = {}
    if (folder / CORPUS_FILE).is_file():
        for line in (folder / CORPUS_FILE).read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                corpus[row["doc_id"]] = row["text"]
    return Reranker(scorer, corpus, int(card.get("rerank_k", 20)))
