"""Per-query features whose distributions a drift report compares.

- Text descriptors (pure functions of the text): ``text_length`` (characters), ``word_count`` and
  ``oov_rate``, the share of a query's words that are not whole entries of a fixed vocabulary (the
  sentence encoder's uncased WordPiece vocabulary, 30,522 entries for MiniLM). A fixed vocabulary,
  not the training split's own words, keeps the measure unbiased: reference queries would otherwise
  score 0 by construction. New series names and slang ("kagurabachi", "ngl") are out of vocabulary.
- Sentence embeddings: mean-pooled, L2-normalised all-MiniLM-L6-v2 vectors (384 dims, the
  sentence-transformers recipe), reduced to a few principal components fitted on the reference, so
  each component is an ordinary numerical column with its own drift test.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mangadistill.config import EmbeddingConfig
from mangadistill.errors import ModelLoadError
from mangadistill.models.encoders import first_line, resolve_model_path

DESCRIPTOR_COLUMNS = ("text_length", "word_count", "oov_rate")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    """Lower-cased alphabetic words (digits, ids, tags and punctuation are not words)."""
    return _WORD.findall(text.lower())


def oov_rate(text: str, vocabulary: frozenset[str]) -> float:
    """Share of `words(text)` missing from `vocabulary`; 0.0 for a query without words."""
    found = words(text)
    if not found:
        return 0.0
    return sum(word not in vocabulary for word in found) / len(found)


def text_descriptors(texts: Sequence[str], vocabulary: frozenset[str]) -> pd.DataFrame:
    """``text_length``, ``word_count`` and ``oov_rate`` per text; shape (len(texts), 3)."""
    return pd.DataFrame({
        "text_length": [len(text) for text in texts],
        "word_count": [len(text.split()) for text in texts],
        "oov_rate": [oov_rate(text, vocabulary) for text in texts],
    }, columns=list(DESCRIPTOR_COLUMNS))


def load_vocabulary(model: str) -> frozenset[str]:
    """Whole-word entries of an encoder's WordPiece ``vocab.txt`` (no ``##`` pieces, no ``[SPECIAL]``)."""
    path = Path(resolve_model_path(model)) / "vocab.txt"
    if not path.is_file():
        raise ModelLoadError(f"embedding.model '{model}': no vocab.txt in {path.parent} (a WordPiece encoder "
                             "folder is needed for the out-of-vocabulary rate)")
    entries = path.read_text(encoding="utf-8").split("\n")
    return frozenset(e.strip() for e in entries if e.strip() and not e.startswith("##") and not e.startswith("["))


class SentenceEmbedder:
    """Mean-pooled sentence embeddings from a sentence-transformers folder (CPU, no download)."""

    def __init__(self, model: str, batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(model)
        try:
            self._model = SentenceTransformer(path, device="cpu")
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"embedding.model '{model}' does not load offline ({first_line(exc)})") from None
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings; shape (len(texts), hidden)."""
        return self._model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                  convert_to_numpy=True, show_progress_bar=False)


def embedding_components(reference: np.ndarray, current: np.ndarray, n_components: int
                         ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Project both sides on the reference's top principal axes: columns ``emb_pc1`` .. ``emb_pcK``.

    reference: (n_ref, d), current: (n_cur, d). The axes and the centring come from the reference only,
    so a shifted current sample shows up as shifted component distributions. Returns the two frames and
    the explained-variance ratio of each kept component (in the reference), shape (K,).
    """
    if n_components > min(reference.shape):
        raise ValueError(f"n_components={n_components} exceeds what {reference.shape[0]} reference rows of "
                         f"dimension {reference.shape[1]} allow")
    mean = reference.mean(axis=0)
    _, singular, axes = np.linalg.svd(reference - mean, full_matrices=False)  # axes: (min(n, d), d)
    axes = axes[:n_components]
    axes *= np.sign(axes[np.arange(n_components), np.abs(axes).argmax(axis=1)])[:, None]  # deterministic sign
    explained = singular[:n_components] ** 2 / np.sum(singular**2)
    names = [f"emb_pc{i + 1}" for i in range(n_components)]
    return (pd.DataFrame((reference - mean) @ axes.T, columns=names),
            pd.DataFrame((current - mean) @ axes.T, columns=names), explained)


def add_query_features(reference: pd.DataFrame, current: pd.DataFrame, config: EmbeddingConfig
                       ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """Both frames with the descriptor and ``emb_pc*`` columns appended; plus what the embedding kept.

    Each frame needs a ``text`` column. The returned dict has the explained-variance ratio of the kept
    components in the reference (``explained_variance``) and the embedding size (``embedding_dim``).
    """
    vocabulary = load_vocabulary(config.model)
    embedder = SentenceEmbedder(config.model, batch_size=config.batch_size)
    reference_vectors = embedder.encode(reference["text"].tolist())  # (n_ref, d)
    current_vectors = embedder.encode(current["text"].tolist())  # (n_cur, d)
    reference_pcs, current_pcs, explained = embedding_components(reference_vectors, current_vectors, config.components)

    def with_features(frame: pd.DataFrame, components: pd.DataFrame) -> pd.DataFrame:
        descriptors = text_descriptors(frame["text"].tolist(), vocabulary)
        return pd.concat([frame.reset_index(drop=True), descriptors, components], axis=1)

    info = {"explained_variance": float(explained.sum()), "embedding_dim": int(reference_vectors.shape[1])}
    return with_features(reference, reference_pcs), with_features(current, current_pcs), info
