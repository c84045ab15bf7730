"""The first-stage retriever that picks each prompt's context: TF-IDF over the store's documents.

A real lexical retriever (scikit-learn's `TfidfVectorizer`, word uni- and bigrams of lightly stemmed words
without English stop words, sublinear term frequency, cosine similarity), the kind a production assistant puts in front of its LLM. Its top score also feeds the
teacher's low-confidence flag: a prompt nothing in the catalog matches is one the teacher answers on weak
retrieval (runbook 3.4, 7.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import re

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

__all__ = ["Retrieved", "TfidfRetriever", "stem", "stemmed_words"]


@dataclass(frozen=True)
class Retrieved:
    """The documents retrieved for one prompt, best first, with their cosine scores."""

    documents: tuple[str, ...]
    scores: tuple[float, ...]

    @property
    def top_score(self) -> float:
        return self.scores[0] if self.scores else 0.0


_WORD = re.compile(r"(?u)\b\w\w+\b")
_SUFFIXES = ("ing", "ed", "es", "s")


def stem(word: str) -> str:
    """A light suffix strip so "returns", "returned" and "return" (or "refunds" and "refund") meet."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def stemmed_words(text: str) -> list[str]:
    """Lower-cased words without English stop words, each stemmed (`stem`)."""
    return [stem(word) for word in _WORD.findall(text.lower()) if word not in ENGLISH_STOP_WORDS]


class TfidfRetriever:
    """Cosine similarity between TF-IDF vectors of the prompt and of every document."""

    def __init__(self, documents: list[str], *, min_score: float = 0.05) -> None:
        if not documents:
            raise ValueError("the retriever needs at least one document")
        self.documents = list(documents)
        self.min_score = min_score
        self._vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, strip_accents="unicode",
                                           lowercase=True, tokenizer=stemmed_words, token_pattern=None)
        self._matrix = self._vectorizer.fit_transform(self.documents)  # (n_docs, vocab), rows L2-normalised

    def retrieve(self, prompt: str, k: int) -> Retrieved:
        """The `k` best documents scoring at least `min_score` (fewer when fewer match)."""
        scores = (self._matrix @ self._vectorizer.transform([prompt]).T).toarray().ravel()  # (n_docs,)
        order = np.argsort(-scores, kind="stable")[:k]
        kept = [int(i) for i in order if scores[i] >= self.min_score]
        return Retrieved(tuple(self.documents[i] for i in kept), tuple(float(scores[i]) for i in kept))
