"""The documented relevance rules: how relevant (0-3) a catalog entry is to a shopper's query.

The generated reranking data is labelled by these rules, and monitoring uses them to grade production's
rankings of logged queries. They read only the query's text, so any query can be graded; a query that
names no title, author, genre or price is *unjudgeable* (`grade` returns None) and is left out of the
metrics rather than counted as a miss.

What the query says (normalized: `corpus.normalize`) and what each entry gets:

1. **A title** (the longest catalog title, or failing that a series name, found as whole words), not
   preceded by "like"/"similar to"/"fans of"/...: the named entry **3**; other editions of the same series
   **2**; other works of the same author **1**; anything else **0**.
2. **"Something like <title>"**: entries by genre overlap with the named one (Jaccard of genre sets)
   ``>= 0.6`` **3**, ``>= 0.4`` **2**, ``> 0`` **1**; the same author at least **2**; the named entry
   itself and its other editions **1** (the shopper has read it).
3. **Attributes**: an author (full name, either name of a duo), genres (name or a synonym from
   `corpus.GENRE_WORDS`), a price bound ("under $15", "less than 12 dollars"). Each requested attribute
   scores the entry 0-1 (author: 0/1; genres: the share of requested genres it has, where "fantasy"
   matches "dark fantasy"; price: 1 when the per-volume price is within the bound); their mean *m* gives
   **3** when m = 1, **2** when m >= 2/3, **1** when m > 0, else **0**.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from mangadistill.data.synthetic import CatalogEntry
from mangadistill.reranker.corpus import GENRE_WORDS, normalize, series_key

__all__ = ["QueryFacets", "RelevanceJudge"]

_SIMILAR = re.compile(r"\b(like|similar to|fans? of|liked|loved|reminds? me of|in the vein of)\s+$")
_PRICE = re.compile(r"\b(?:under|below|less than|cheaper than|at most|max|up to)\s+\$?\s*(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class QueryFacets:
    """What a query asks for, as the rules read it."""

    titles: tuple[int, ...] = ()  # indices of the named entries
    similar: bool = False
    authors: frozenset[str] = frozenset()
    genres: frozenset[str] = frozenset()
    max_price: float | None = None

    @property
    def judgeable(self) -> bool:
        return bool(self.titles or self.authors or self.genres or self.max_price is not None)


def _contains(haystack: str, needle: str) -> int:
    """Start of `needle` as whole words in `haystack` (both normalized), or -1."""
    match = re.search(rf"(?<![a-z0-9]){re.escape(needle)}(?![a-z0-9])", haystack)
    return match.start() if match else -1


def _author_names(author: str) -> tuple[str, ...]:
    return tuple(normalize(name) for name in author.split("&"))


class RelevanceJudge:
    """Grades entries of one catalog against queries by the module's rules."""

    def __init__(self, entries: Sequence[CatalogEntry]) -> None:
        self.entries = tuple(entries)

    @cached_property
    def _titles(self) -> list[tuple[str, int]]:
        """(normalized full title, entry index), longest first."""
        names = [(normalize(e.title), i) for i, e in enumerate(self.entries)]
        return sorted(((n, i) for n, i in names if len(n) >= 3), key=lambda item: -len(item[0]))

    @cached_property
    def _series(self) -> dict[str, tuple[int, ...]]:
        series: dict[str, list[int]] = {}
        for i, entry in enumerate(self.entries):
            series.setdefault(series_key(entry), []).append(i)
        return {key: tuple(ids) for key, ids in series.items() if len(key) >= 3}

    @cached_property
    def _genre_phrases(self) -> list[tuple[str, str]]:
        """(normalized phrase, genre) for every genre name and synonym, longest first."""
        genres = {g for e in self.entries for g in e.genres}
        phrases = [(normalize(g), g) for g in genres]
        phrases += [(normalize(word), g) for g, words in GENRE_WORDS.items() if g in genres for word in words]
        return sorted(set(phrases), key=lambda item: -len(item[0]))

    def parse(self, query: str) -> QueryFacets:
        """The facets of `query` (see the module docstring)."""
        text = normalize(query)
        titles, where = self._find_titles(text)
        similar = bool(titles) and bool(_SIMILAR.search(text[:where]))
        authors = frozenset(e.author for e in self.entries
                            if any(_contains(text, name) >= 0 for name in _author_names(e.author) if name))
        genres: set[str] = set()
        remaining = text
        for phrase, genre in self._genre_phrases:  # longest first: "dark fantasy" before "fantasy"
            if _contains(remaining, phrase) >= 0:
                genres.add(genre)
                remaining = re.sub(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])", " ", remaining)
        price = _PRICE.search(query.lower())
        if titles:  # a named title decides; genre words inside it ("Fullmetal Alchemist") are not requests
            return QueryFacets(titles=titles, similar=similar)
        return QueryFacets(authors=authors, genres=frozenset(genres),
                           max_price=float(price.group(1)) if price else None)

    def _find_titles(self, text: str) -> tuple[tuple[int, ...], int]:
        for name, index in self._titles:
            if (at := _contains(text, name)) >= 0:
                return (index,), at
        for key in sorted(self._series, key=len, reverse=True):
            if (at := _contains(text, key)) >= 0:
                return self._series[key], at
        return (), -1

    def grade(self, query: str, entries: Sequence[CatalogEntry] | None = None) -> list[int] | None:
        """Relevance 0-3 of each entry (default: the whole catalog) to `query`; None when it is unjudgeable."""
        facets = self.parse(query)
        if not facets.judgeable:
            return None
        return [self.relevance(facets, entry) for entry in (self.entries if entries is None else entries)]

    def relevance(self, facets: QueryFacets, entry: CatalogEntry) -> int:
        named = [self.entries[i] for i in facets.titles]
        if named and not facets.similar:
            if any(entry == n for n in named):
                return 3
            if any(series_key(entry) == series_key(n) for n in named):
                return 2
            return 1 if any(entry.author == n.author for n in named) else 0
        if named:
            if any(series_key(entry) == series_key(n) for n in named):
                return 1
            overlap = max(_jaccard(entry.genres, n.genres) for n in named)
            grade = 3 if overlap >= 0.6 else 2 if overlap >= 0.4 else 1 if overlap > 0 else 0
            return max(grade, 2) if any(entry.author == n.author for n in named) else grade
        scores = []
        if facets.authors:
            scores.append(float(entry.author in facets.authors))
        if facets.genres:
            scores.append(sum(_has_genre(entry, g) for g in facets.genres) / len(facets.genres))
        if facets.max_price is not None:
            scores.append(float(entry.price_usd <= facets.max_price))
        mean = sum(scores) / len(scores)
        return 3 if mean >= 1.0 else 2 if mean >= 2 / 3 else 1 if mean > 0 else 0


def _jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 0.0


def _has_genre(entry: CatalogEntry, genre: str) -> bool:
    return genre in entry.genres or any(g.endswith(" " + genre) for g in entry.genres)
