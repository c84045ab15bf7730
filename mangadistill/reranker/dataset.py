"""Reranking data: shopper queries, each with K candidate passages and graded relevance (0-3), split by query.

Three sources, one shape (`RerankDataset`):

- ``generated`` (default): queries written from templates over the bundled catalog (titles, "something
  like ...", authors, genres and their synonyms, price bounds), deterministic from a seed. Candidates are
  the first-stage retriever's (`corpus.Bm25`) top ``K - hard_negatives`` plus ``hard_negatives`` entries
  the retriever missed that share the query's series, author, a genre or a title word with what it names;
  listed in first-stage order. Labels come from the documented rules (`judge`). A query whose candidates
  hold nothing relevant is left out and counted (``no_relevant_candidate``).
- ``jsonl``: one object per line, ``{"query": str, "candidates": [{"text": str, "label": 0-3}, ...]}``
  (optional ``query_id``, ``split`` in train/val/gate).
- ``trec``: TREC qrels (``qid 0 docid rel`` per line) with a BEIR-style corpus (``{"_id", "text"[, "title"]}``
  per line) and queries (``{"_id", "text"}`` per line); each query's candidates are its judged documents
  plus BM25's best unjudged ones (label 0), K in all.

Generated data can add *transfer queries* (``transfer_queries``, runbook 3.4 and TinyBERT's task-specific
augmentation): more queries written the same way, with their candidate lists but **no labels**
(``labels`` is None, split ``transfer``). Only the teacher's scores of them are ever used, by the
distilled student; the base student (labels only) never sees them. Their groups are disjoint from the
validation and gate groups (a transfer query about a held-out series, author or genre set is dropped and
counted as ``transfer_in_held_out_group``), and they do not change the train / val / gate split, which is
decided on the labelled queries alone.

Queries are split into train / val / gate by *group* (the series, author or genres a generated query is
about; the query itself otherwise), so near-identical queries never sit on both sides of a split. Bad rows
are quarantined with their line number and the reason (never their content), and counted. PII is
scrubbed from every query and passage before anything is stored.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from mangadistill.data.cleaning import scrub_pii
from mangadistill.data.loaders import iter_json_objects
from mangadistill.data.synthetic import CatalogEntry, series_name
from mangadistill.errors import DataError
from mangadistill.reranker.corpus import GENRE_WORDS, Bm25, Passage, catalog_passages, normalize, series_key
from mangadistill.reranker.judge import RelevanceJudge

__all__ = ["SPLITS", "TRANSFER", "QuarantinedRow", "RerankDataset", "RerankQuery", "generate_dataset", "read_jsonl_lists",
           "read_trec"]

Split = Literal["train", "val", "gate", "transfer"]
SPLITS: tuple[str, ...] = ("train", "val", "gate")  # every labelled dataset has all three
TRANSFER = "transfer"  # unlabelled queries only the teacher scores (module docstring)


class RerankQuery(BaseModel):
    """One query and its candidate list (document ids in first-stage order) with their labels."""

    model_config = ConfigDict(frozen=True)

    query_id: str
    query: str
    doc_ids: tuple[str, ...]
    labels: tuple[int, ...] | None  # None: an unlabelled transfer query
    split: Split
    kind: str = "given"
    group: str = ""


class QuarantinedRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    line: int
    reason: str


class RerankDataset(BaseModel):
    """Every query by split, the passages they refer to, and what was quarantined."""

    model_config = ConfigDict(frozen=True)

    queries: tuple[RerankQuery, ...]
    corpus: dict[str, str]
    quarantined: tuple[QuarantinedRow, ...] = ()
    source: str = "generated"
    k: int = 20
    skipped: dict[str, int] = {}

    def split(self, name: str) -> list[RerankQuery]:
        return [q for q in self.queries if q.split == name]

    def texts(self, query: RerankQuery) -> list[str]:
        return [self.corpus[d] for d in query.doc_ids]

    def fingerprint(self) -> str:
        """A hash of everything training reads (queries, candidates, labels, splits, passages)."""
        digest = hashlib.sha256()
        for q in self.queries:
            digest.update(f"{q.query_id}\t{q.query}\t{q.split}\t{','.join(q.doc_ids)}\t{q.labels}\n".encode())
        for doc_id in sorted(self.corpus):
            digest.update(f"{doc_id}\t{self.corpus[doc_id]}\n".encode())
        return digest.hexdigest()[:16]

    def counts(self) -> dict[str, dict[str, int]]:
        """Queries per split and kind, candidates and labels, quarantined and skipped rows."""
        return {
            "split": dict(Counter(q.split for q in self.queries)),
            "kind": dict(Counter(q.kind for q in self.queries)),
            "label": {str(k): v for k, v in sorted(Counter(l for q in self.queries for l in q.labels or ()).items())},
            "candidates": {"passages": len(self.corpus), "pairs": sum(len(q.doc_ids) for q in self.queries)},
            "quarantined": {"rows": len(self.quarantined)},
            "skipped": dict(self.skipped),
        }


def _check_splits(queries: Sequence[RerankQuery], where: str) -> None:
    have = Counter(q.split for q in queries)
    missing = [s for s in SPLITS if not have[s]]
    if missing:
        raise DataError(f"{where}: no queries in split(s) {', '.join(missing)} ({len(queries)} queries in all); "
                        "add queries or lower data.val_fraction / data.gate_fraction")


def _assign_splits(groups: Iterable[str], val_fraction: float, gate_fraction: float, seed: int) -> dict[str, str]:
    """Each group to a split: groups shuffled by `seed`, the first `gate_fraction` to gate, then val, then train."""
    ordered = sorted(set(groups))
    random.Random(seed).shuffle(ordered)
    n_gate, n_val = round(gate_fraction * len(ordered)), round(val_fraction * len(ordered))
    return {g: "gate" if i < n_gate else "val" if i < n_gate + n_val else "train" for i, g in enumerate(ordered)}


# ---------------------------------------------------------------------------------------------------------
# Generated
# ---------------------------------------------------------------------------------------------------------

_TITLE = ("do you have {title}?", "is {title} in stock", "{title} volume {n}", "price of {title}", "{title} manga",
          "looking for {title}", "how many volumes does {title} have?", "{title} vol {n} please")
_SIMILAR = ("something like {title}", "manga similar to {title}", "i loved {title}, what next?",
            "recommendations for fans of {title}", "what should i read if i liked {title}?")
_AUTHOR = ("manga by {author}", "other books from {author}", "what did {author} write?", "{author} series")
_GENRE = ("{g} manga", "recommend a {g} series", "good {g} and {g2} manga", "looking for something {g}",
          "best {g} reads", "any {g} {g2} books?")
_PRICE = ("{g} manga under ${p}", "{g} series for less than ${p}", "cheap {g} manga below ${p}")
_KINDS = (("title", 0.3), ("similar", 0.15), ("author", 0.15), ("genre", 0.25), ("genre_price", 0.15))


def _genre_phrase(genre: str, rng: random.Random) -> str:
    return rng.choice((genre, *GENRE_WORDS.get(genre, ())))


def _write_query(kind: str, entry: CatalogEntry, rng: random.Random) -> tuple[str, str]:
    """A query of `kind` about `entry`, and its split group."""
    title = entry.title if rng.random() < 0.7 else series_name(entry.title).split(":")[0]
    genres = list(entry.genres)
    rng.shuffle(genres)
    if kind == "title":
        text = rng.choice(_TITLE).format(title=title, n=rng.randint(1, max(1, entry.volumes)))
        return text, f"series:{series_key(entry)}"
    if kind == "similar":
        return rng.choice(_SIMILAR).format(title=title), f"series:{series_key(entry)}"
    if kind == "author":
        author = rng.choice(entry.author.split(" & "))
        return rng.choice(_AUTHOR).format(author=author), f"author:{entry.author}"
    g, g2 = genres[0], genres[1] if len(genres) > 1 else genres[0]
    if kind == "genre":
        template = rng.choice(_GENRE)
        text = template.format(g=_genre_phrase(g, rng), g2=_genre_phrase(g2, rng))
        return text, "genres:" + "+".join(sorted({g, g2} if "{g2}" in template else {g}))
    text = rng.choice(_PRICE).format(g=_genre_phrase(g, rng), p=rng.choice((10, 12, 15, 20, 25)))
    return text, f"genres:{g}"


def _hard_negatives(entry: CatalogEntry, entries: Sequence[CatalogEntry], labels: Sequence[int],
                    exclude: set[int], n: int, rng: random.Random) -> list[int]:
    """Up to `n` entries not in `exclude`, less than perfectly relevant, that look like `entry`: same series,
    same author, a shared genre, or a shared title word (in that order of preference)."""
    words = set(normalize(entry.title).split())
    tiers: list[list[int]] = [[], [], [], []]
    for i, other in enumerate(entries):
        if i in exclude or labels[i] >= 3 or other == entry:
            continue
        if series_key(other) == series_key(entry):
            tiers[0].append(i)
        elif other.author == entry.author:
            tiers[1].append(i)
        elif words & set(normalize(other.title).split()) - {"the", "of", "a", "no", "in"}:
            tiers[2].append(i)
        elif set(other.genres) & set(entry.genres):
            tiers[3].append(i)
    chosen: list[int] = []
    for tier in tiers:
        rng.shuffle(tier)
        chosen.extend(tier[: n - len(chosen)])
    return chosen


def generate_dataset(n_queries: int, seed: int, k: int = 20, hard_negatives: int = 5, val_fraction: float = 0.15,
                     gate_fraction: float = 0.2, split_seed: int = 7, transfer_queries: int = 0) -> RerankDataset:
    """`n_queries` distinct generated queries (see the module docstring), the same for the same arguments, plus
    up to `transfer_queries` unlabelled ones (those outside the held-out groups); the labelled queries and
    their splits do not depend on `transfer_queries`."""
    if not 0 <= hard_negatives < k:
        raise ValueError(f"hard_negatives must be in [0, k), got {hard_negatives} with k={k}")
    passages = catalog_passages(seed)
    entries = [p.entry for p in passages]
    judge = RelevanceJudge(entries)
    retriever = Bm25([p.text for p in passages])
    rng = random.Random(seed)
    kinds, weights = zip(*_KINDS, strict=True)
    drafts: list[tuple[str, str, str, list[str], list[int]]] = []
    seen: set[str] = set()
    skipped: Counter[str] = Counter()
    wanted = n_queries + transfer_queries
    for _ in range(wanted * 20):
        if len(drafts) == wanted:
            break
        kind = rng.choices(kinds, weights)[0]
        entry = rng.choice(entries)
        text, group = _write_query(kind, entry, rng)
        if normalize(text) in seen:
            continue
        seen.add(normalize(text))
        grades = judge.grade(text)
        if grades is None:
            skipped["unjudgeable"] += 1
            continue
        first = retriever.top(text, k - hard_negatives)
        hard = _hard_negatives(entry, entries, grades, set(first), hard_negatives, rng)
        scores = retriever.scores(text)
        chosen = sorted(set(first) | set(hard), key=lambda i: (-scores[i], i))  # first-stage order
        if max(grades[i] for i in chosen) == 0:
            skipped["no_relevant_candidate"] += 1
            continue
        drafts.append((kind, text, group, [passages[i].doc_id for i in chosen], [grades[i] for i in chosen]))
    if len(drafts) < wanted:
        raise DataError(f"data.generated.n_queries={n_queries} + transfer_queries={transfer_queries}: only "
                        f"{len(drafts)} distinct judgeable queries could be written from the catalog; ask for fewer")
    labelled, extra = drafts[:n_queries], drafts[n_queries:]
    splits = _assign_splits((d[2] for d in labelled), val_fraction, gate_fraction, split_seed)
    queries = [RerankQuery(query_id=f"q{i:05d}", query=text, doc_ids=tuple(ids), labels=tuple(labels),
                           split=splits[group], kind=kind, group=group)
               for i, (kind, text, group, ids, labels) in enumerate(labelled)]
    held_out = {group for group, split in splits.items() if split != "train"}
    for i, (kind, text, group, ids, _) in enumerate(extra, start=n_queries):
        if group in held_out:
            skipped["transfer_in_held_out_group"] += 1
            continue
        queries.append(RerankQuery(query_id=f"t{i:05d}", query=text, doc_ids=tuple(ids), labels=None,
                                   split=TRANSFER, kind=kind, group=group))
    queries = tuple(queries)
    _check_splits(queries, f"generated data (n_queries={n_queries})")
    return RerankDataset(queries=queries, corpus={p.doc_id: p.text for p in passages}, source="generated", k=k,
                         skipped=dict(skipped))


# ---------------------------------------------------------------------------------------------------------
# Bring your own
# ---------------------------------------------------------------------------------------------------------


def _doc_id(text: str) -> str:
    return "doc-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def _label(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or not 0 <= value <= 3:
        return None
    return int(value)


def _problem(record: dict) -> str | None:
    query, candidates = record.get("query"), record.get("candidates")
    if not isinstance(query, str) or not query.strip():
        return "'query' must be a non-empty string"
    if not isinstance(candidates, list) or not candidates:
        return "'candidates' must be a non-empty list"
    for j, candidate in enumerate(candidates):
        if not isinstance(candidate, dict) or not isinstance(candidate.get("text"), str) or not candidate["text"].strip():
            return f"candidates[{j}] needs a non-empty 'text'"
        if _label(candidate.get("label")) is None:
            return f"candidates[{j}].label must be an integer 0-3 (got {candidate.get('label')!r})"
    if record.get("split") not in (None, *SPLITS):
        return f"'split' must be one of {', '.join(SPLITS)} (got {record.get('split')!r})"
    return None


def read_jsonl_lists(path: Path, *, val_fraction: float, gate_fraction: float, split_seed: int) -> RerankDataset:
    """Read ``{query, candidates: [{text, label}]}`` lines; bad lines quarantined (number and reason only)."""
    if not path.is_file():
        raise DataError(f"data.path: {path} does not exist (a JSON-lines file of {{query, candidates}} objects)")
    corpus: dict[str, str] = {}
    drafts: list[tuple[str, str, list[str], list[int], str | None]] = []
    quarantined: list[QuarantinedRow] = []
    for line, record, problem, _ in iter_json_objects(path):
        problem = problem or _problem(record)
        if problem:
            quarantined.append(QuarantinedRow(line=line, reason=problem))
            continue
        ids, labels = [], []
        for candidate in record["candidates"]:
            text = scrub_pii(candidate["text"].strip())[0]
            corpus.setdefault(_doc_id(text), text)
            ids.append(_doc_id(text))
            labels.append(_label(candidate["label"]))
        query = scrub_pii(record["query"].strip())[0]
        drafts.append((str(record.get("query_id") or f"line{line}"), query, ids, labels, record.get("split")))
    if not drafts:
        raise DataError(f"{path}: no usable query ({len(quarantined)} lines quarantined; first: "
                        f"{quarantined[0].reason if quarantined else 'the file is empty'})")
    auto = _assign_splits((normalize(d[1]) for d in drafts if d[4] is None), val_fraction, gate_fraction, split_seed)
    queries = tuple(RerankQuery(query_id=qid, query=query, doc_ids=tuple(ids), labels=tuple(labels),
                                split=split or auto[normalize(query)], group=normalize(query))
                    for qid, query, ids, labels, split in drafts)
    _check_splits(queries, str(path))
    return RerankDataset(queries=queries, corpus=corpus, quarantined=tuple(quarantined), source="jsonl",
                         k=max(len(q.doc_ids) for q in queries))


def read_trec(qrels: Path, corpus_path: Path, queries_path: Path, *, k: int, val_fraction: float,
              gate_fraction: float, split_seed: int) -> RerankDataset:
    """TREC qrels + BEIR-style corpus and queries (see the module docstring) as candidate lists of `k`."""
    for name, path in (("data.path (qrels)", qrels), ("data.corpus_path", corpus_path),
                       ("data.queries_path", queries_path)):
        if not path.is_file():
            raise DataError(f"{name}: {path} does not exist")
    quarantined: list[QuarantinedRow] = []
    passages: list[Passage] = []
    for line, record, problem, _ in iter_json_objects(corpus_path):
        if problem or not isinstance(record.get("_id"), (str, int)) or not isinstance(record.get("text"), str):
            quarantined.append(QuarantinedRow(line=line, reason=f"corpus: {problem or 'needs _id and text'}"))
            continue
        text = " ".join(part for part in (record.get("title") or "", record["text"]) if part).strip()
        passages.append(Passage(str(record["_id"]), scrub_pii(text)[0]))
    texts: dict[str, str] = {}
    for line, record, problem, _ in iter_json_objects(queries_path):
        if problem or not isinstance(record.get("_id"), (str, int)) or not str(record.get("text") or "").strip():
            quarantined.append(QuarantinedRow(line=line, reason=f"queries: {problem or 'needs _id and text'}"))
            continue
        texts[str(record["_id"])] = scrub_pii(str(record["text"]).strip())[0]
    known = {p.doc_id for p in passages}
    judged: dict[str, dict[str, int]] = {}
    for line, raw in enumerate(qrels.read_text(encoding="utf-8").splitlines(), start=1):
        parts = raw.split()
        if not parts or parts[0].lower() in {"query-id", "qid"}:
            continue
        grade = _label(int(parts[3])) if len(parts) == 4 and parts[3].lstrip("-").isdigit() else None
        reason = ("expected 'qid 0 docid rel' with rel 0-3" if grade is None else
                  f"unknown query id {parts[0]}" if parts[0] not in texts else
                  f"unknown document id {parts[2]}" if parts[2] not in known else None)
        if reason:
            quarantined.append(QuarantinedRow(line=line, reason=f"qrels: {reason}"))
            continue
        judged.setdefault(parts[0], {})[parts[2]] = grade
    if not judged:
        raise DataError(f"{qrels}: no usable judgement ({len(quarantined)} rows quarantined)")
    retriever = Bm25([p.text for p in passages])
    queries = []
    auto = _assign_splits(judged, val_fraction, gate_fraction, split_seed)
    for qid, grades in judged.items():
        fill = [passages[i].doc_id for i in retriever.top(texts[qid], k) if passages[i].doc_id not in grades]
        ids = (list(grades) + fill)[: max(k, len(grades))]
        queries.append(RerankQuery(query_id=qid, query=texts[qid], doc_ids=tuple(ids),
                                   labels=tuple(grades.get(d, 0) for d in ids), split=auto[qid], group=qid))
    _check_splits(queries, str(qrels))
    used = {d for q in queries for d in q.doc_ids}
    return RerankDataset(queries=tuple(queries), corpus={p.doc_id: p.text for p in passages if p.doc_id in used},
                         quarantined=tuple(quarantined), source="trec", k=k)
