"""The store's catalog as rerankable passages, and the first-stage retriever (BM25) that picks candidates.

A passage is one catalog entry's line (`mangadistill.response.catalog.render_entry`: title, author,
publisher, genres, volumes, price) followed by a short synopsis the generator writes from the entry's genres,
in words a shopper might use instead of the genre's name ("a love story" for romance, "creepy" for horror)::

    Uzumaki (3-in-1 Deluxe Edition) by Junji Ito (Viz Media; horror, seinen): 1 volume, $24.99 per volume,
    in stock. A creepy, unsettling story for mature readers.

The synopsis is what lets a cross-encoder beat a lexical retriever on queries that name no genre word.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.feature_extraction.text import CountVectorizer

from mangadistill.data.synthetic import CatalogEntry, load_catalog, series_name
from mangadistill.response.catalog import render_entry
from mangadistill.response.retriever import stemmed_words

__all__ = ["GENRE_WORDS", "Bm25", "Passage", "catalog_passages", "normalize", "series_key"]

#: Words a shopper (and the synopsis) may use for a genre. The relevance rules (`judge`) read them too.
GENRE_WORDS: dict[str, tuple[str, ...]] = {
    "action": ("action-packed", "fights"),
    "adventure": ("adventure", "quest", "journey"),
    "comedy": ("funny", "hilarious", "laugh out loud"),
    "shonen": ("shounen", "battle shonen"),
    "seinen": ("for mature readers", "grown-up"),
    "shojo": ("shoujo",),
    "josei": ("for adult women",),
    "fantasy": ("magical world", "sword and sorcery"),
    "dark fantasy": ("grimdark", "bleak fantasy"),
    "romance": ("love story", "romantic"),
    "drama": ("emotional", "tearjerker"),
    "supernatural": ("ghosts and spirits", "paranormal"),
    "horror": ("creepy", "scary", "unsettling"),
    "mystery": ("detective", "whodunit"),
    "sci-fi": ("science fiction", "futuristic"),
    "historical": ("period piece", "set in the past"),
    "school": ("high school", "classroom"),
    "slice of life": ("cozy", "everyday life"),
    "thriller": ("suspenseful", "tense"),
    "psychological": ("mind games", "cerebral"),
    "sports": ("sports", "team sport"),
    "samurai": ("swordsman", "ronin"),
    "isekai": ("transported to another world", "reincarnated"),
    "cooking": ("food", "cooking"),
    "music": ("band", "musician"),
}


def normalize(text: str) -> str:
    """Lower case, ASCII apostrophes dropped, every other non-alphanumeric run a single space."""
    text = text.lower().replace("'", "").replace("\u2019", "")
    return " ".join(re.findall(r"[a-z0-9]+", text))


def series_key(entry: CatalogEntry) -> str:
    """The normalized series an entry belongs to: every edition and box set of Berserk shares ``berserk``."""
    return normalize(series_name(entry.title).split(":")[0])


@dataclass(frozen=True)
class Passage:
    """One rerankable document: a stable id, its text and (for catalog passages) the entry it describes."""

    doc_id: str
    text: str
    entry: CatalogEntry | None = None


def _synopsis(entry: CatalogEntry, rng: random.Random) -> str:
    words = [rng.choice(GENRE_WORDS[g]) for g in entry.genres if g in GENRE_WORDS]
    rng.shuffle(words)
    words = words[:3] or ["a story"]
    described = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    opener = rng.choice(("A", "An unforgettable", "A much-loved", "A bestselling"))
    noun = rng.choice(("story", "series", "manga", "read"))
    return f"{opener} {noun}: {described}."


def catalog_passages(seed: int, catalog: list[CatalogEntry] | None = None) -> list[Passage]:
    """One passage per catalog entry (``cat-000`` ...), synopses drawn from `seed` (same seed, same text)."""
    rng = random.Random(seed)
    entries = catalog if catalog is not None else load_catalog()
    return [Passage(f"cat-{i:03d}", f"{render_entry(entry)} {_synopsis(entry, rng)}", entry)
            for i, entry in enumerate(entries)]


class Bm25:
    """Okapi BM25 (k1, b) over lightly stemmed words without stop words; the first-stage retriever.

    Term counts come from scikit-learn's `CountVectorizer`; the scoring is the textbook formula with the
    Lucene IDF ``log(1 + (N - df + 0.5) / (df + 0.5))`` (never negative).
    """

    def __init__(self, documents: list[str], *, k1: float = 1.5, b: float = 0.75) -> None:
        if not documents:
            raise ValueError("BM25 needs at least one document")
        self._vectorizer = CountVectorizer(tokenizer=stemmed_words, token_pattern=None, lowercase=True)
        counts = self._vectorizer.fit_transform(documents).tocsc().astype(np.float64)  # (n_docs, vocab)
        n_docs = counts.shape[0]
        df = np.diff(counts.indptr)  # documents containing each term
        self._idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
        lengths = np.asarray(counts.sum(axis=1)).ravel()
        norm = k1 * (1 - b + b * lengths / max(lengths.mean(), 1e-9))  # (n_docs,)
        weights = counts.tocoo()
        data = weights.data * (k1 + 1) / (weights.data + norm[weights.row])
        self._weights = csr_matrix((data, (weights.row, weights.col)), shape=counts.shape)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for `query`, shape (n_docs,)."""
        terms = self._vectorizer.transform([query])  # (1, vocab) counts of the query's terms
        present = terms.indices
        return np.asarray(self._weights[:, present] @ self._idf[present]).ravel()

    def top(self, query: str, k: int) -> list[int]:
        """Indices of the `k` best documents (ties by index)."""
        return [int(i) for i in np.argsort(-self.scores(query), kind="stable")[:k]]
