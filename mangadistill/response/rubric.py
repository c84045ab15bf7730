"""The offline response rubric (runbook 7.5), the catalog hallucination rate (18.4) and refusal/escalation
precision and recall: small pure functions of (prompt, context, answer, expected action, store knowledge).

An answer is read three ways:

- **claims** (`extract_claims`): every title, author, volume count, price, availability and policy number it
  states, each tied to the title it is about; `check_claims` checks each one against the catalog and the
  store policies (18.4: "every title, author, volume, price or availability claim checked against the
  catalog");
- **action** (`detect_action`): does it answer, refuse, or hand the shopper to a human;
- **shape**: markup, punctuation, bullets, repetition, length.

`score_answer` turns these into the five axes of 7.5, each in [0, 1], and the rubric out of 5::

    rubric = 5 * (0.30 F + 0.25 R + 0.20 P + 0.15 Q + 0.10 C)

`summarise` averages a split's scores and adds the hallucination rate (share of answers with at least one
unsupported claim) and refusal/escalation precision and recall. The rules are heuristics with known limits,
each stated where it is implemented; they are deterministic so two checkpoints are always scored alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Literal

from mangadistill.data.synthetic import CatalogEntry
from mangadistill.evaluation.cost import cost_reduction
from mangadistill.response.catalog import Policy, StoreKnowledge, parse_document, store_knowledge
from mangadistill.response.reference_teacher import Action

__all__ = [
    "ACTIONS",
    "AXIS_WEIGHTS",
    "DEFAULT_WORD_LIMIT",
    "AnswerScore",
    "Claim",
    "ClaimCheck",
    "ResponseMetrics",
    "action_precision_recall",
    "check_claims",
    "conciseness_score",
    "cost_per_1k",
    "cost_reduction",
    "detect_action",
    "extract_claims",
    "factuality_score",
    "format_issues",
    "format_score",
    "relevance_score",
    "score_answer",
    "summarise",
    "word_count",
]

ClaimKind = Literal["title", "author", "volumes", "price", "stock", "policy_number"]
ACTIONS: tuple[Action, ...] = ("answer", "refuse", "escalate")
#: Runbook 7.5: factuality, relevance, policy/escalation, format, conciseness.
AXIS_WEIGHTS: dict[str, float] = {"factuality": 0.30, "relevance": 0.25, "policy": 0.20, "format": 0.15,
                                  "conciseness": 0.10}
DEFAULT_WORD_LIMIT = 60


# ---------------------------------------------------------------------------
# Claims
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """One factual statement of an answer.

    kind: ``title`` (a product the answer names), ``author``, ``volumes`` (a count), ``price`` (USD),
    ``stock`` (True in stock / False out of stock) or ``policy_number`` (a duration or percentage such as
    "3-5 days", "30 days", "10%"); value: what it says; subject: the title it is about (the catalog's spelling,
    an alias such as "Vagabond", or the answer's own text for an invented title), None when tied to nothing;
    span: (start, end) of the claim in the answer.
    """

    kind: ClaimKind
    value: str | int | float | bool
    subject: str | None
    span: tuple[int, int]

    def describe(self) -> str:
        """One short line, e.g. ``Berserk: $14.99`` or ``title 'Berserk'``."""
        about = f"{self.subject}: " if self.subject and self.kind != "title" else ""
        return f"{about}{_show(self.kind, self.value)}"


@dataclass(frozen=True)
class ClaimCheck:
    """A claim and whether the store's knowledge supports it, with the reason."""

    claim: Claim
    supported: bool
    reason: str

    def describe(self) -> str:
        """One short line, e.g. ``Berserk: $12.99 (catalog: $14.99)`` or ``invented title 'Moonlight Blades'``."""
        return self.reason


def _show(kind: str, value: object) -> str:
    """A claimed value as the answer would say it: "$14.99", "42 volumes", "in stock", "author 'X'"."""
    if kind == "price":
        return f"${float(value):.2f}"  # type: ignore[arg-type]
    if kind == "volumes":
        return f"{value} volumes"
    if kind == "stock":
        return "in stock" if value else "out of stock"
    if kind in ("title", "author"):
        return f"{kind} {value!r}"
    return str(value)


@dataclass(frozen=True)
class _Facts:
    """Ground truth for one (knowledge, context): the catalog plus context-only entries and policies.

    `names` maps a normalised title or alias to the entries it names (an alias such as "Demon Slayer" may name
    several editions); `display` to how it is written in claims.
    """

    names: dict[str, tuple[CatalogEntry, ...]]
    display: dict[str, str]
    titles: re.Pattern[str]          # full titles, case-insensitive
    edition_aliases: re.Pattern[str] | None  # series names of editions, case-sensitive in answers
    edition_aliases_any_case: re.Pattern[str] | None  # the same, case-insensitive (for shopper prompts)
    authors_after_by: re.Pattern[str]  # one or more known author names joined by & / and / ,
    author_masks: re.Pattern[str] | None  # multi-word author names anywhere ("Akira Toriyama" is no "Akira")
    coauthors: frozenset[str]        # every catalog author and co-author, normalised
    policy_texts: tuple[str, ...]
    policy_prices: frozenset[float]
    policy_numbers: frozenset[str]

    def entries(self, title: str | None) -> tuple[CatalogEntry, ...]:
        return self.names.get(_key(title), ()) if title else ()


def _key(text: str) -> str:
    """A title or name as compared: case-folded, one kind of apostrophe, single spaces, no markdown."""
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"[*_`\"\u201c\u201d]", "", text)
    return re.sub(r"\s+", " ", text).strip(" .,;:").casefold()


_EDITION_SUFFIX = re.compile(
    r"\s+(?:(?:complete|deluxe|black|eternal|perfect|collector's|vizbig|\d+-in-\d+)\s+)*"
    r"(?:edition|omnibus|box set(?: \d+)?|collection)$", re.IGNORECASE)


def _aliases(title: str) -> set[str]:
    """Series names a shopper or an answer uses for an edition: "Vagabond (VIZBIG Edition)" -> "Vagabond",
    "Monster: The Perfect Edition" -> "Monster", "Tokyo Revengers Omnibus" -> "Tokyo Revengers"."""
    out = {re.sub(r"\s*\(.*\)$", "", title)}
    if ":" in title:
        out.add(title.split(":", 1)[0])
    out |= {_EDITION_SUFFIX.sub("", name) for name in list(out)}
    return {a.strip() for a in out if a.strip() and a.strip() != title}


def _phrase_pattern(phrase: str) -> str:
    """A literal phrase that tolerates any whitespace and either apostrophe, bounded by non-word characters."""
    body = re.escape(phrase).replace(r"\ ", r"\s+").replace("'", "['\u2019]")
    return rf"(?<!\w){body}(?!\w)"


def _alternation(phrases: Sequence[str], flags: int = 0) -> re.Pattern[str] | None:
    ordered = sorted(set(phrases), key=lambda p: (-len(p), p))  # longest first: a box set beats its series
    return re.compile("|".join(_phrase_pattern(p) for p in ordered), flags) if ordered else None


def _split_authors(author: str) -> list[str]:
    return [part.strip() for part in re.split(r"\s*(?:&|,|\band\b)\s*", author) if part.strip()]


@lru_cache(maxsize=32)
def _facts_for(knowledge: StoreKnowledge, extra_entries: tuple[CatalogEntry, ...],
               extra_policies: tuple[Policy, ...]) -> _Facts:
    entries = list(knowledge.entries) + list(extra_entries)
    names: dict[str, tuple[CatalogEntry, ...]] = {}
    display: dict[str, str] = {}
    for entry in entries:
        names[_key(entry.title)] = (entry,)
        display[_key(entry.title)] = entry.title
    alias_to: dict[str, list[CatalogEntry]] = {}
    for entry in entries:
        for alias in _aliases(entry.title):
            if _key(alias) not in names:
                alias_to.setdefault(alias, []).append(entry)
    for alias, named in alias_to.items():
        names.setdefault(_key(alias), tuple(named))
        display.setdefault(_key(alias), alias)
    full_names = {e.author for e in entries}
    parts = {p for e in entries for p in _split_authors(e.author)}
    known = sorted(full_names | parts, key=lambda n: (-len(n), n))
    # an all-caps pen name (ONE, CLAMP, HERO) is only itself in capitals; other names match in any case
    one = "|".join(re.escape(n) if n.isupper() else f"(?i:{re.escape(n)})" for n in known)
    by_pattern = re.compile(rf"(?:{one})(?:\s*(?:&|,|\band\b)\s*(?:{one}))*(?!\w)")
    texts = tuple(p.text for p in tuple(knowledge.policies) + extra_policies)
    return _Facts(
        names=names, display=display,
        titles=_alternation([e.title for e in entries], re.IGNORECASE),  # type: ignore[arg-type]
        edition_aliases=_alternation(list(alias_to)), edition_aliases_any_case=_alternation(list(alias_to), re.IGNORECASE),
        authors_after_by=by_pattern,
        author_masks=_alternation([n for n in full_names | parts if " " in n], re.IGNORECASE),
        coauthors=frozenset(_key(n) for n in full_names | parts),
        policy_texts=texts,
        policy_prices=frozenset(_price_value(m) for t in texts for m in _PRICE.finditer(t)),
        policy_numbers=frozenset(value for t in texts for _, value in _policy_numbers(t)),
    )


def _facts(knowledge: StoreKnowledge | None, context: Sequence[str]) -> _Facts:
    """The catalog and policies, plus catalog and policy lines of the context the catalog does not hold (what
    the model was shown counts as known; on a conflict the catalog wins)."""
    knowledge = knowledge or store_knowledge()
    documents = [doc for line in context if (doc := parse_document(line)) is not None]
    new_entries = tuple(d for d in documents if isinstance(d, CatalogEntry) and knowledge.entry(d.title) is None)
    new_policies = tuple(d for d in documents if isinstance(d, Policy) and d not in knowledge.policies)
    return _facts_for(knowledge, new_entries, new_policies)  # cached: most contexts add nothing


@dataclass(frozen=True)
class _Mention:
    """A title the answer names: where, and how it is written in claims (catalog spelling, alias, or as written)."""

    start: int
    end: int
    name: str


_BULLET_HEAD = re.compile(r"^[ \t]*(?:[-*\u2022+]|\d+[.)])[ \t]+(?P<head>[^\n]+?)[ \t]+by[ \t]+[^:\n]+?[ \t]*:",
                          re.MULTILINE)
_QUOTED = re.compile(r"[\"\u201c](?P<inner>[^\"\u201c\u201d\n]{1,80})[\"\u201d]")
_BY = re.compile(r"\bby\s+")
_GENERIC_PERSON = re.compile(r"[A-Z][\w'\u2019.-]*(?:\s+(?:(?:&|and|na|no|de|van|von)\s+)?[A-Z][\w'\u2019.-]*){0,4}")
#: First words after "by" that are no person: "ship by Friday", "track by Email".
_NOT_PEOPLE = frozenset("""monday tuesday wednesday thursday friday saturday sunday january february march april may
june july august september october november december christmas tomorrow today tonight noon midnight email e-mail
mail phone post standard express priority ground ups usps fedex dhl account orders order price popularity genre
date then now next our the us me them him her volume amazon""".split())
#: Capitalised words that open a sentence rather than a title: "Try Berserk by ..." -> "Berserk".
_LEAD_WORDS = frozenset("""try also read check consider maybe or and but so then i i'd i'm i'll we we'd we're you
you'll you'd you're it it's its this that these those there here here's our my your get grab pick start definitely
perhaps both plus if is are was were written drawn illustrated published created made another yes sure great sorry
hi hello hey look like since as recommended recommend enjoy love loved series manga book books title titles volume
volumes vol next finally first second third lastly similar fans out followed well oh for with""".split())
_CONNECTORS = frozenset("of the a an and x no in to as & on at for with vs de wa ga na ni".split())
_ABBREVIATIONS = frozenset({"no.", "dr.", "mr.", "ms.", "vol.", "st.", "mt."})
_VOLUME_SUFFIX = re.compile(r"\s*,?\s+(?:vol(?:ume)?\.?|#)\s*\d+$", re.IGNORECASE)


def _title_run(text: str, end: int) -> tuple[int, int] | None:
    """The title-like run of capitalised words just before `end` (a " by "), or None.

    Walks left over words that start with a capital or digit, or are title connectors ("of", "the", "x"),
    stops at a line or sentence break, a comma or a colon, then drops sentence-opening words ("Try", "Also").
    """
    words = list(re.finditer(r"\S+", text[:end]))
    run: list[re.Match[str]] = []
    for i in range(len(words) - 1, -1, -1):
        word = words[i].group()
        bare = word.strip("*_\"'()[]\u201c\u201d")
        if run and "\n" in text[words[i].end():run[-1].start()]:
            break
        if run and (word.endswith((",", ";", ":")) or (word.endswith((".", "!", "?"))
                                                        and word.casefold() not in _ABBREVIATIONS)):
            break
        if not bare or not (bare[0].isupper() or bare[0].isdigit() or bare.casefold() in _CONNECTORS):
            break
        run.append(words[i])
    run.reverse()
    while run and ((lead := run[0].group().strip("*_\"'()[]")).casefold() in _LEAD_WORDS or lead in _CONNECTORS):
        run.pop(0)  # "Try", "Also", a lower-case "the"; a capitalised "The" opens a title ("The Promised Neverland")
    if not run or run[-1].group().strip("*_").casefold() in _CONNECTORS:
        return None
    return run[0].start(), run[-1].end()


@dataclass(frozen=True)
class _ByPhrase:
    """An "X by Person" statement: the author span and value, and the title span it names (None if none)."""

    author_span: tuple[int, int]
    author: str
    title_span: tuple[int, int] | None


def _by_phrases(text: str, facts: _Facts, catalog: list[_Mention]) -> list[_ByPhrase]:
    """Every "by <name>" that claims an author.

    A known catalog author after "by" is always a claim ("written by Kentaro Miura"); an unknown name is one
    only when a title-like X precedes it ("Moonlight Blades by Hiro Tanaka"), so "ships by Friday" and
    "published by Viz Media" claim nothing. The title span is, in order: the bullet head ("- X by Y:"), a
    catalog title ending right before "by", or the capitalised run before it.
    """
    heads = {m.end("head"): m.span("head") for m in _BULLET_HEAD.finditer(text)}
    phrases = []
    for by in _BY.finditer(text):
        known = facts.authors_after_by.match(text, by.end())
        generic = None if known else _GENERIC_PERSON.match(text, by.end())
        if generic and generic.group().split()[0].strip(".,").casefold() in _NOT_PEOPLE:
            generic = None
        person = known or generic
        if person is None:
            continue
        before = len(text[:by.start()].rstrip(" \t*_\"'\u201d"))
        title_span = heads.get(len(text[:by.start()].rstrip(" \t")))
        if title_span is None:
            ending = [m for m in catalog if m.end == before]
            title_span = (ending[0].start, ending[0].end) if ending else _title_run(text, by.start())
        if title_span is None and not known:
            continue
        name = re.sub(r"\s+(?:&|and|na|no|de|van|von)$", "", person.group().rstrip(" .,;:"))
        phrases.append(_ByPhrase((by.end(), by.end() + len(name)), name, title_span))
    return phrases


def _catalog_mentions(text: str, facts: _Facts, aliases: re.Pattern[str] | None) -> list[_Mention]:
    """Catalog titles (any case) and edition aliases in `text`, longest first, not inside an author's name."""
    found = [(m.start(), m.end()) for m in facts.titles.finditer(text)]
    if aliases is not None:
        found += [(m.start(), m.end()) for m in aliases.finditer(text)]
    masks = [m.span() for m in facts.author_masks.finditer(text)] if facts.author_masks else []
    chosen: list[tuple[int, int]] = []
    for start, end in sorted(found, key=lambda s: (s[0] - s[1], s[0])):
        if not any(start < e and s < end for s, e in chosen + masks):
            chosen.append((start, end))
    return sorted((_Mention(s, e, facts.display[_key(text[s:e])]) for s, e in chosen), key=lambda m: m.start)


def _candidate_name(raw: str) -> str:
    return _VOLUME_SUFFIX.sub("", raw.strip(" \t*_\"'\u201c\u201d"))


def _title_mentions(text: str, facts: _Facts, by_phrases: list[_ByPhrase],
                    catalog: list[_Mention]) -> list[_Mention]:
    """Catalog mentions, plus the strings the answer presents as products (bullet heads and "X by Person"
    titles, quoted strings): one that is no catalog title or alias is an invented title, and catalog titles
    inside it are part of it ("Berserk Ultimate Edition" is not "Berserk")."""
    quotable = [_key(t) for t in facts.policy_texts]
    candidates = [p.title_span for p in by_phrases if p.title_span is not None]
    for m in _QUOTED.finditer(text):
        inner = _key(m.group("inner"))
        if len(inner.split()) <= 8 and re.search(r"[^\W\d_]", inner) and not any(inner in q for q in quotable):
            candidates.append(m.span("inner"))
    chosen: list[_Mention] = []
    for start, end in sorted(set(candidates), key=lambda s: (s[0] - s[1], s[0])):
        if any(start < c.end and c.start < end for c in chosen):
            continue
        name = _candidate_name(text[start:end])
        if not name:
            continue
        chosen.append(_Mention(start, end, facts.display.get(_key(name), name)))
    chosen += [m for m in catalog if not any(m.start < c.end and c.start < m.end for c in chosen)]
    return sorted(chosen, key=lambda m: m.start)


_PRICE = re.compile(r"\$\s?(?P<dollars>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<cents>\d{1,2}))?(?!\d)")
_PER_UNIT = re.compile(r"\s*(?:per|a|each|/|for\s+(?:one|each|a))\s*(?:volume|vol\b|book|copy|issue)|\s*each\b",
                       re.IGNORECASE)
_PRICE_CONSTRAINT = re.compile(r"(?:under|below|less than|up to|budget(?: of)?|spend(?:ing)?|within|"
                               r"max(?:imum)?(?: of)?|around|about|roughly)\s*$", re.IGNORECASE)
_POLICY_CUE = re.compile(r"\b(?:ship\w*|deliver\w*|express|postage|handling|orders?|over|above|fees?|refund\w*|"
                         r"returns?|restocking|tax\w*|free)\b", re.IGNORECASE)
_VOLUMES = re.compile(r"(?<![\w$.,])(?P<n>\d{1,4})(?:\s+|-)volumes?\b", re.IGNORECASE)
_VOLUME_QUANTIFIER = re.compile(r"\b(?:first|last|next|more|another|other|remaining|extra|additional|under|"
                                r"over|than|about|around|nearly|almost|up to|within|buy|buying|own|bought|read|"
                                r"for)\s+$", re.IGNORECASE)
_STOCK = re.compile(
    r"(?P<neg>\bout of stock\b|\bsold out\b|\bunavailable\b|"
    r"(?:\bnot|n't|\bno longer)\s+(?:currently\s+|yet\s+|presently\s+)?(?:in stock|available|stocked)\b|"
    r"\bback-?order(?:ed)?\b)|(?P<pos>\b(?:back\s+)?in stock\b|\bavailable\b)", re.IGNORECASE)
_HYPOTHETICAL = re.compile(r"\b(?:whether|if|check|see|confirm|find out|let you know)\b(?:\W+\w+){0,4}\W*$",
                           re.IGNORECASE)
_DURATION = re.compile(r"(?<![\w$.])(?P<a>\d+)(?:\s*(?:-|\u2013|to)\s*(?P<b>\d+))?[\s-]+(?:business[\s-]+)?"
                       r"(?P<unit>day|hour|minute|week|month)s?\b", re.IGNORECASE)
_PERCENT = re.compile(r"(?<![\w.])(?P<n>\d+(?:\.\d+)?)\s*(?:%|percent\b)", re.IGNORECASE)


def _price_value(match: re.Match[str]) -> float:
    return round(float(match["dollars"].replace(",", "")) + (int(match["cents"].ljust(2, "0")) / 100
                                                             if match["cents"] else 0.0), 2)


def _policy_numbers(text: str) -> list[tuple[tuple[int, int], str]]:
    """Durations ("3-5 business days" -> "3-5 days") and percentages ("10%") with their spans.
    "business days" and "days" count as one unit: "3-5 days" for standard shipping is accepted."""
    out = []
    for m in _DURATION.finditer(text):
        numbers = f"{m['a']}-{m['b']}" if m["b"] else m["a"]
        out.append((m.span(), f"{numbers} {m['unit'].lower()}s"))
    out += [(m.span(), f"{m['n']}%") for m in _PERCENT.finditer(text)]
    return out


def _segments(text: str) -> list[tuple[int, int]]:
    """Sentences and lines: a claim's own sentence decides its subject first."""
    bounds = [0] + [m.end() for m in re.finditer(r"[.!?](?=\s)|\n", text)] + [len(text)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def _clause(text: str, pos: int) -> tuple[int, int]:
    start = max((m.end() for m in re.finditer(r"[,;:.!?\n](?=\s)|\n", text[:pos])), default=0)
    after = re.search(r"[,;.!?](?=\s|$)|\n", text[pos:])
    return start, pos + after.start() if after else len(text)


def _tie(pos: int, mentions: list[_Mention], segments: list[tuple[int, int]], fallback: str | None,
         same_segment_only: bool = False) -> str | None:
    """The title a claim at `pos` is about: the nearest title before it in its sentence, else after it in its
    sentence, else (unless `same_segment_only`) the nearest title earlier in the answer ("It has 42 volumes"),
    else `fallback` (the title the prompt asks about), else the nearest title later in the answer."""
    seg_start, seg_end = next(((a, b) for a, b in segments if a <= pos < b), (0, segments[-1][1] if segments else 0))
    before = [m for m in mentions if m.end <= pos]
    after = [m for m in mentions if m.start >= pos]
    if in_segment := [m for m in before if m.start >= seg_start]:
        return in_segment[-1].name
    if in_segment := [m for m in after if m.end <= seg_end]:
        return in_segment[0].name
    if same_segment_only:
        return None
    if before:
        return before[-1].name
    return fallback or (after[0].name if after else None)


def _masked(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with title and author spans blanked out, so "Mob Psycho 100" holds no number and "Kaiju No. 8" no
    sentence break."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = "X" * (end - start)
    return "".join(chars)


def extract_claims(answer: str, knowledge: StoreKnowledge | None = None, context: Sequence[str] = (), *,
                   fallback_subject: str | None = None) -> list[Claim]:
    """The factual claims `answer` makes, in order of position.

    - titles: every catalog title (longest first, any case), every edition alias written as the catalog does
      ("Vagabond", "Monster"), and every string the answer presents as a product: a bullet head "- X by Y:",
      the X of "X by Person", a quoted string of up to 8 words that no store policy contains;
    - authors: "by <known catalog author>" anywhere, "by <Name>" after a title-like X;
    - volumes: "N volumes" / "N-volume" (not "first 3 volumes", "under 10 volumes", "for 2 volumes");
    - prices: "$X.XX" (not a budget: "under $20", "about $10"). In order: followed by "per volume"/"each" -> a
      product price; a shipping/order/return word among the 4 words before it in its clause ("shipping is
      $4.99", "orders over $35") -> a policy price (subject None); a title in its clause -> that title's price;
      a shipping/order/return word elsewhere in its clause -> a policy price; else the nearest title's;
    - stock: "in stock"/"available" (True), "out of stock"/"sold out"/"unavailable"/"not in stock" (False);
      "available" only counts with a title in its sentence; "check whether it's in stock" claims nothing;
    - policy numbers: durations ("3-5 business days", "within 30 days") and percentages ("10% off").

    A volume, price or stock claim is tied to a title by `_tie`; `fallback_subject` is the title the shopper
    asked about, for answers that never repeat it ("It costs $9.99 per volume."). Not understood: numbers
    written as words and authors named without "by" (no claim), totals ("$49.95 for five volumes" is checked as
    a price of the nearest title, so a correct total counts as unsupported).
    """
    facts = _facts(knowledge, context)
    catalog = _catalog_mentions(answer, facts, facts.edition_aliases)
    by_phrases = _by_phrases(answer, facts, catalog)
    mentions = _title_mentions(answer, facts, by_phrases, catalog)
    claims = [Claim("title", m.name, m.name, (m.start, m.end)) for m in mentions]
    masked = _masked(answer, [(m.start, m.end) for m in mentions] + [p.author_span for p in by_phrases])
    segments = _segments(masked)
    for phrase in by_phrases:
        subject = (next((m.name for m in mentions if (m.start, m.end) == phrase.title_span), None)
                   if phrase.title_span else _tie(phrase.author_span[0], mentions, segments, fallback_subject))
        claims.append(Claim("author", phrase.author, subject, phrase.author_span))
    for m in _VOLUMES.finditer(masked):
        if not _VOLUME_QUANTIFIER.search(masked[:m.start()]):
            claims.append(Claim("volumes", int(m["n"]), _tie(m.start(), mentions, segments, fallback_subject),
                                m.span()))
    for m in _PRICE.finditer(masked):
        if not _PRICE_CONSTRAINT.search(masked[:m.start()]):
            claims.append(Claim("price", _price_value(m), _price_subject(masked, m, mentions, segments,
                                                                          fallback_subject), m.span()))
    for m in _STOCK.finditer(masked):
        clause_start, _ = _clause(masked, m.start())
        if _HYPOTHETICAL.search(masked[clause_start:m.start()]):
            continue
        generic = m["pos"] is not None and m["pos"].casefold() == "available"
        subject = _tie(m.start(), mentions, segments, fallback_subject, same_segment_only=generic)
        if generic and subject is None:
            continue
        claims.append(Claim("stock", m["pos"] is not None, subject, m.span()))
    claims += [Claim("policy_number", value, None, span) for span, value in _policy_numbers(masked)]
    return sorted(claims, key=lambda c: (c.span, c.kind))


def _price_subject(masked: str, m: re.Match[str], mentions: list[_Mention], segments: list[tuple[int, int]],
                   fallback: str | None) -> str | None:
    """A product price's title, or None for a policy price (see `extract_claims`)."""
    if _PER_UNIT.match(masked, m.end()):
        return _tie(m.start(), mentions, segments, fallback)
    start, end = _clause(masked, m.start())
    if _POLICY_CUE.search(" ".join(masked[start:m.start()].split()[-4:])):
        return None
    in_clause = [x for x in mentions if start <= x.start and x.end <= end]
    if in_clause:
        return min(in_clause, key=lambda x: abs(x.start - m.start())).name
    if _POLICY_CUE.search(masked[start:end]):
        return None
    return _tie(m.start(), mentions, segments, fallback)


def check_claims(claims: Sequence[Claim], knowledge: StoreKnowledge | None = None,
                 context: Sequence[str] = ()) -> list[ClaimCheck]:
    """Each claim checked against the catalog and policies (plus what the context showed that the catalog
    lacks; see `_facts`).

    - title: supported iff it is a catalog title or edition alias ("invented title" otherwise);
    - author: tied to a catalog title, supported iff every name it gives ("A & B") is one of that title's
      authors (a co-author alone is fine); untied or tied to an invented title, iff each is some catalog author;
    - volumes, price, stock: supported iff equal to the tied title's catalog entry (any of an alias's
      editions); unsupported when tied to an invented title or to none (an unverifiable fact);
    - a price tied to no title (a policy price): supported iff it equals an amount in a store policy
      ($4.99, $35, $12.99); a policy number ("3-5 days", "30 days", "10 minutes", any "%") iff it equals one
      in a store policy. Policy amounts are checked against all policies, not the topic's own.
    """
    facts = _facts(knowledge, context)
    return [_check(claim, facts) for claim in claims]


def _check(claim: Claim, facts: _Facts) -> ClaimCheck:
    value, subject, shown = claim.value, claim.subject, _show(claim.kind, claim.value)
    if claim.kind == "title":
        ok = bool(facts.entries(str(value)))
        return ClaimCheck(claim, ok, f"{shown} in the catalog" if ok else f"invented title {value!r}")
    if claim.kind == "policy_number":
        ok = value in facts.policy_numbers
        return ClaimCheck(claim, ok, f"{shown}: " + ("in a store policy" if ok else "in no store policy"))
    entries = facts.entries(subject)
    if claim.kind == "author":
        names = {_key(n) for n in _split_authors(str(value))}
        if entries:
            ok = any(names <= {_key(a) for a in _split_authors(e.author)} for e in entries)
            truth = " / ".join(e.author for e in entries)
            return ClaimCheck(claim, ok, f"{subject}: {shown}" + ("" if ok else f" (catalog: {truth})"))
        ok = names <= facts.coauthors
        return ClaimCheck(claim, ok, f"{shown}: " + ("a catalog author" if ok else "no catalog author"))
    if claim.kind == "price" and subject is None:
        ok = round(float(value), 2) in facts.policy_prices
        return ClaimCheck(claim, ok, f"{shown}: " + ("in a store policy" if ok else
                                                     "matches no title and no store policy"))
    if not entries:
        why = "tied to no title" if subject is None else f"about invented title {subject!r}"
        return ClaimCheck(claim, False, f"{shown}: {why}")
    truths = [_truth(claim.kind, e) for e in entries]
    ok = any(_same(claim.kind, value, t) for t in truths)
    catalog = " / ".join(_show(claim.kind, t) for t in truths)
    return ClaimCheck(claim, ok, f"{subject}: {shown}" + ("" if ok else f" (catalog: {catalog})"))


def _truth(kind: str, entry: CatalogEntry) -> int | float | bool:
    return {"volumes": entry.volumes, "price": entry.price_usd, "stock": entry.in_stock}[kind]


def _same(kind: str, value: object, truth: object) -> bool:
    if kind == "price":
        return abs(float(value) - float(truth)) < 0.005  # type: ignore[arg-type]
    return value == truth


# ---------------------------------------------------------------------------
# Action
# ---------------------------------------------------------------------------

_APOS = "['\u2019]"
_ESCALATION_PHRASES = re.compile(rf"""
    \b(?:human|live|real)\s+(?:support\s+|customer\s+service\s+)?(?:agent|person|representative|rep|teammate|
        specialist|colleague|being)s?\b
  | \bsupport\s+(?:agent|specialist|representative|rep|team\s+member)s?\b
  | \bconnect(?:ing|ed)?\s+you\s+(?:with|to)\b
  | \btransfer(?:ring|red)?\s+(?:you|this|your\s+\w+)\s+to\b
  | \bhand(?:ing)?\s+(?:you|this|it|your\s+\w+)\s+(?:over\s+|off\s+)?to\b
  | \bpass(?:ing)?\s+(?:you|this|it|your\s+\w+)\s+(?:on\s+|along\s+)?to\s+(?:a|an|our|the)\b
  | \bescalat(?:e|ed|ing)\s+(?:this|your|it)\b
  | \b(?:a|one\s+of\s+our)\s+(?:real\s+)?(?:person|colleague|teammate|team\s+member)s?\s+will\b
  | \bsomeone\s+(?:from|on)\s+(?:our|the)\s+(?:support\s+|customer\s+\w+\s+)?team\b
  | \b(?:our|the)\s+(?:support|customer\s+(?:service|support|care))\s+team\s+will\b
""", re.IGNORECASE | re.VERBOSE)
_REFUSAL_PHRASES = re.compile(rf"""
    \b(?:can{_APOS}?t|cannot|can\s+not|won{_APOS}t\s+be\s+able\s+to|unable\s+to)\s+(?:help|assist)\b(?!\s+but\b)
  | (?:\bnot|n{_APOS}t)\s+able\s+to\s+(?:help|assist|provide|answer|do\s+that|share|support|discuss|give|offer)\b
  | \bI\s+can\s+only\s+(?:help|assist|answer|talk|discuss)\b
  | \bonly\s+(?:able\s+to\s+)?(?:help|assist)\s+with\b
  | \b(?:can{_APOS}?t|cannot|won{_APOS}t)\s+(?:provide|share|give(?:\s+you)?|offer|do)\s+(?:that|this|those|any|
        legal|medical|financial|investment)\b
  | \bnot\s+something\s+I\s+(?:can|am\s+able\s+to)\s+(?:help|assist|do)\b
  | \boutside\s+(?:of\s+)?(?:what\s+I\s+can|my|the)\s+(?:do|help|scope|area)\b
  | \bI\s+(?:must|have\s+to)\s+decline\b
  | \bI{_APOS}m\s+afraid\s+I\s+can{_APOS}?t\s+(?:help|assist|do)\b
""", re.IGNORECASE | re.VERBOSE)


def detect_action(answer: str) -> Action:
    """What an answer does, by phrase rules (escalation checked first: a hand-off may also decline):

    - escalate: hands the shopper to a person: "human/real/live agent|person|representative", "support
      agent/specialist", "connecting you with/to", "transfer you to", "hand/pass you (over) to", "escalate
      this", "a person/colleague will", "someone from our (support) team", "our support team will";
    - refuse: declines: "can't/cannot/unable to help|assist" (not "can't help but"), "not able to help|provide|
      answer|share...", "I can only help|assist with", "can't provide that|legal|medical...", "not something I
      can help with", "outside my scope", "I must decline", "I'm afraid I can't";
    - answer: anything else, including "I couldn't find that, so I can't confirm its details" and "I'm not
      able to find that title" (a grounded not-found is an answer, not a refusal).
    """
    if _ESCALATION_PHRASES.search(answer):
        return "escalate"
    if _REFUSAL_PHRASES.search(answer):
        return "refuse"
    return "answer"


# ---------------------------------------------------------------------------
# Axes
# ---------------------------------------------------------------------------

def factuality_score(checks: Sequence[ClaimCheck]) -> float:
    """F: 1.0 with no claims or all supported; 0.0 when any invented title (a product the store cannot sell is
    the worst catalog hallucination); otherwise the share of supported claims."""
    if not checks:
        return 1.0
    if any(c.claim.kind == "title" and not c.supported for c in checks):
        return 0.0
    return sum(c.supported for c in checks) / len(checks)


PromptKind = Literal["product", "policy", "greeting", "recommendation", "other"]

_ASKS: dict[str, re.Pattern[str]] = {
    "price": re.compile(r"\b(?:price\w*|cost\w*|how much|cheap\w*|expensive)\b|\$", re.IGNORECASE),
    "stock": re.compile(r"\b(?:in stock|stock|available|availability|sold out|have it|carry|back in)\b",
                        re.IGNORECASE),
    "volumes": re.compile(r"\b(?:how many (?:volumes|books)|number of volumes|how long is|complete|finished|"
                          r"ongoing)\b", re.IGNORECASE),
    "author": re.compile(r"\b(?:who (?:wrote|drew|made|created|is the author)|author|mangaka|written by|"
                         r"drawn by)\b", re.IGNORECASE),
}
_POLICY_ASKS: dict[str, re.Pattern[str]] = {
    "express": re.compile(r"\b(?:express|overnight|next[- ]day|rush|faster shipping|expedited)\b", re.IGNORECASE),
    "shipping": re.compile(r"\b(?:ship\w*|deliver\w*|postage)\b", re.IGNORECASE),
    "returns": re.compile(r"\b(?:return\w*|refund\w*|exchange\w*|send (?:it )?back|money back)\b", re.IGNORECASE),
    "orders": re.compile(r"\b(?:track\w*|order status|where is my (?:order|package)|my order)\b", re.IGNORECASE),
    "account": re.compile(r"\b(?:password|log ?in|sign ?in|account)\b", re.IGNORECASE),
    "preorders": re.compile(r"\bpre-?orders?\b", re.IGNORECASE),
}
_GREETING_PROMPT = re.compile(r"^\W*(?:hi|hello|hey|hiya|howdy|good (?:morning|afternoon|evening)|thanks|"
                              r"thank you|yo)\b(?:\W+\w+){0,3}\W*$", re.IGNORECASE)  # the greeting and at most 3 words
_RECOMMEND_PROMPT = re.compile(r"\b(?:recommend\w*|suggest\w*|similar|like|looking for|what should i read|gift|"
                               r"good|best|into|try|picks?)\b", re.IGNORECASE)
_GREETING_ANSWER = re.compile(r"\b(?:hi|hello|hey|welcome|glad|happy to help|how can I help|what can I do|"
                              r"I can help|I can recommend)\b", re.IGNORECASE)
_NOT_FOUND_ANSWER = re.compile(r"\b(?:couldn't|could not|can't|cannot|unable to|wasn't able to|not able to) "
                               r"(?:find|confirm|locate|see)\b|\b(?:don't|do not) (?:carry|have|stock|sell)\b|"
                               r"\bnot in our (?:catalog|store)\b|\bno (?:match|results)\b", re.IGNORECASE)
_STOP_WORDS = frozenset("""a an the and or of to in on for by with is are be can it its this that as at from
within any all your you our we per""".split())


@dataclass(frozen=True)
class _PromptNeeds:
    """What the prompt asks, as far as its context lets the assistant answer (see `relevance_score`)."""

    kind: PromptKind
    named: tuple[str, ...]       # normalised titles/aliases the prompt names, whose entry the context holds
    asks: tuple[str, ...]        # facts asked about the named title: price, stock, volumes, author
    policies: tuple[Policy, ...]  # context policies whose topic the prompt asks about (any kind)
    genres: frozenset[str]       # context genres the prompt names
    context_titles: frozenset[str]  # normalised titles of the context's catalog lines
    fallback_subject: str | None  # the title the prompt names (in the context or not)


def _prompt_needs(prompt: str, context: Sequence[str], facts: _Facts) -> _PromptNeeds:
    """Classify the prompt in the order a careful agent reads it: a named title in the context, a policy topic
    in the context, a greeting, a recommendation request (a cue word or a genre the context offers), other."""
    documents = [doc for line in context if (doc := parse_document(line)) is not None]
    entries = [d for d in documents if isinstance(d, CatalogEntry)]
    named_all = _catalog_mentions(prompt, facts, facts.edition_aliases_any_case)
    context_keys = frozenset(_key(e.title) for e in entries)
    named = tuple(_key(m.name) for m in sorted(named_all, key=lambda m: m.start - m.end)
                  if {_key(e.title) for e in facts.entries(m.name)} & context_keys)
    fallback = max(named_all, key=lambda m: m.end - m.start).name if named_all else None
    text = prompt.casefold()
    genres = frozenset(g for e in entries for g in e.genres if re.search(rf"\b{re.escape(g)}\b", text))
    by_topic = {d.topic: d for d in documents if isinstance(d, Policy)}
    policies = tuple(by_topic[t] for t, pattern in _POLICY_ASKS.items() if t in by_topic and pattern.search(prompt))
    if named:
        rest = _masked(prompt, [(m.start, m.end) for m in named_all])  # "Demon Slayer Complete Box Set" asks nothing
        asks = tuple(k for k, pattern in _ASKS.items() if pattern.search(rest))
        return _PromptNeeds("product", named, asks, policies, genres, context_keys, fallback)
    if policies:
        return _PromptNeeds("policy", (), (), policies, genres, context_keys, fallback)
    if _GREETING_PROMPT.match(prompt):
        return _PromptNeeds("greeting", (), (), (), genres, context_keys, fallback)
    if entries and (_RECOMMEND_PROMPT.search(prompt) or genres):
        return _PromptNeeds("recommendation", (), (), (), genres, context_keys, fallback)
    return _PromptNeeds("other", (), (), (), genres, context_keys, fallback)


def _stem(word: str) -> str:
    for suffix in ("ping", "ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _content_words(text: str) -> set[str]:
    words = re.findall(r"\d+(?:\.\d+)?|[a-z']+", text.casefold().replace("\u2019", "'"))
    return {_stem(w) for w in words if w not in _STOP_WORDS and len(w) > 1 or w.isdigit()}


def _policy_quote(answer: str, policy: Policy) -> float:
    """Share of the policy's content words (crudely stemmed, numbers split: "3-5" -> 3, 5) in the answer,
    reaching 1.0 at 80%: a faithful paraphrase scores 1, a different policy or a vague answer less."""
    wanted = _content_words(policy.text)
    return min(1.0, len(wanted & _content_words(answer)) / (0.8 * len(wanted)))


def relevance_score(prompt: str, context: Sequence[str], answer: str, expected_action: Action,
                    claims: Sequence[Claim] | None = None, knowledge: StoreKnowledge | None = None) -> float:
    """R: does the answer address the prompt? (`claims`: the answer's, extracted here when None.)

    - expected refuse/escalate: 1.0 when the answer does that, else 0.0; expected answer but the answer refuses
      or escalates: 0.0;
    - product (the prompt names a title the context holds): the mean of "names that title" and, for each fact
      the prompt asks (price, stock, volumes, author), "states that fact about it" (correctness is F's job);
      when the prompt also asks a policy topic the context holds ("does the $24.99 for X include shipping?"),
      quoting that policy counts as well (the better of the two);
    - policy (the prompt asks about a topic whose policy the context holds): how fully the answer quotes that
      policy (`_policy_quote`), the best of the topics asked;
    - greeting: 1.0 when the answer greets or offers help, else 0.0;
    - recommendation (a cue word or a genre, and catalog lines in the context): the mean over the titles it
      names of 0.5 (from the context) + 0.5 (has a genre the prompt names that some context title has, or the
      prompt names none); 0.0 when it names no title;
    - other (the context does not hold what is asked): 1.0 for a grounded not-found or clarifying answer
      ("I couldn't find that...", a question back), else 0.5 (it may help, but cannot be checked).
    """
    action = detect_action(answer)
    if expected_action != "answer" or action != "answer":
        return float(action == expected_action)
    facts = _facts(knowledge, context)
    needs = _prompt_needs(prompt, context, facts)
    if claims is None:
        claims = extract_claims(answer, knowledge, context, fallback_subject=needs.fallback_subject)
    if needs.kind == "product":
        return max([_product_relevance(needs, claims, facts)] + [_policy_quote(answer, p) for p in needs.policies])
    if needs.kind == "policy":
        return max(_policy_quote(answer, p) for p in needs.policies)
    if needs.kind == "greeting":
        return float(bool(_GREETING_ANSWER.search(answer)))
    if needs.kind == "recommendation":
        return _recommendation_relevance(needs, claims, facts)
    return 1.0 if _NOT_FOUND_ANSWER.search(answer) or answer.rstrip().endswith("?") else 0.5


def _product_relevance(needs: _PromptNeeds, claims: Sequence[Claim], facts: _Facts) -> float:
    asked = {e.title for name in needs.named for e in facts.entries(name)}

    def about(claim: Claim) -> bool:
        return bool({e.title for e in facts.entries(claim.subject)} & asked)

    parts = [any(c.kind == "title" and about(c) for c in claims)]
    parts += [any(c.kind == fact and about(c) for c in claims) for fact in needs.asks]
    return sum(parts) / len(parts)


def _recommendation_relevance(needs: _PromptNeeds, claims: Sequence[Claim], facts: _Facts) -> float:
    named = {str(c.value): facts.entries(str(c.value)) for c in claims if c.kind == "title"}
    if not named:
        return 0.0
    scores = []
    for entries in named.values():
        in_context = any(_key(e.title) in needs.context_titles for e in entries)
        on_genre = not needs.genres or any(set(e.genres) & needs.genres for e in entries)
        scores.append(0.5 * in_context + 0.5 * on_genre)
    return sum(scores) / len(scores)


_CHAT_MARKUP = re.compile(r"<\|[^|<>\n]{1,40}\|>|</?s>|\[/?INST\]|<<(?:/?SYS)>>|<(?:start|end)_of_turn>|"
                          r"^(?:Context:|Customer:|\[\d+\] )", re.MULTILINE)
_ROLE_PREFIX = re.compile(r"^\s*(?:assistant|user|system|mangaassist|bot|ai)\s*:", re.IGNORECASE | re.MULTILINE)
_TERMINAL = re.compile(r"[.!?][\"')\]\u201d]*\s*$")
_BULLET_LINE = re.compile(r"[ \t]*(?:[-*\u2022]|\d+[.)])\s+")  # matched at a line start


def format_issues(answer: str, recommended_titles: Sequence[tuple[int, int]] = ()) -> list[str]:
    """What is wrong with an answer's shape, as short strings (empty list: clean).

    "empty"; "chat markup" (<|im_end|>, </s>, [INST], an echoed "Context:"/"Customer:"/"[1] " line); "role
    prefix" ("assistant:" at a line start); "no terminal punctuation"; "repeated sentence" (the same sentence or
    line of 3+ words twice); "recommendations not bulleted" (when `recommended_titles`, the spans of 2+
    recommended titles, are given, each must sit on a line starting with "- ", "* " or "1.").
    """
    if not answer.strip():
        return ["empty"]
    issues = []
    if _CHAT_MARKUP.search(answer):
        issues.append("chat markup")
    if _ROLE_PREFIX.search(answer):
        issues.append("role prefix")
    if not _TERMINAL.search(answer):
        issues.append("no terminal punctuation")
    pieces = [_key(p) for p in re.split(r"(?<=[.!?])\s+|\n", answer) if len(p.split()) >= 3]
    if len(pieces) != len(set(pieces)):
        issues.append("repeated sentence")
    if len(recommended_titles) >= 2:
        line_starts = [answer.rfind("\n", 0, start) + 1 for start, _ in recommended_titles]
        if not all(_BULLET_LINE.match(answer, s) for s in line_starts):
            issues.append("recommendations not bulleted")
    return issues


def format_score(issues: Sequence[str], bullets_applicable: bool) -> float:
    """Q: 0.0 for an empty answer, chat markup or a role prefix (the template leaked: unservable as is);
    otherwise the share passed of the checks that apply (terminal punctuation, no repetition, and bullets when
    the answer recommends 2+ titles)."""
    if {"empty", "chat markup", "role prefix"} & set(issues):
        return 0.0
    soft = ["no terminal punctuation", "repeated sentence"] + (["recommendations not bulleted"]
                                                               if bullets_applicable else [])
    return sum(check not in issues for check in soft) / len(soft)


def word_count(answer: str) -> int:
    """Words: whitespace-separated pieces holding a letter or digit (a bullet's "-" is no word; "$9.99" is)."""
    return sum(1 for piece in answer.split() if re.search(r"\w", piece))


def conciseness_score(answer: str, word_limit: int = DEFAULT_WORD_LIMIT) -> float:
    """C: 1.0 up to `word_limit` words, falling linearly to 0.0 at twice the limit."""
    if word_limit < 1:
        raise ValueError(f"word_limit must be at least 1, got {word_limit}")
    words = word_count(answer)
    return max(0.0, min(1.0, (2 * word_limit - words) / word_limit))


# ---------------------------------------------------------------------------
# One answer, a split
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class AnswerScore:
    """One answer's axes (each in [0, 1]), its rubric out of 5 and what went wrong."""

    factuality: float
    relevance: float
    policy: float
    format: float
    conciseness: float
    rubric: float
    action: Action
    hallucinated: bool
    failures: tuple[str, ...]        # unsupported claims, e.g. "Berserk: $12.99 (catalog: $14.99)"
    format_issues: tuple[str, ...]
    n_claims: int


def score_answer(prompt: str, context: Sequence[str], answer: str, expected_action: Action,
                 knowledge: StoreKnowledge | None = None, word_limit: int = DEFAULT_WORD_LIMIT) -> AnswerScore:
    """Score one answer on the 7.5 rubric (see the module docstring and each axis function).

    P is 1.0 when `detect_action(answer) == expected_action`, else 0.0. An empty answer scores 0.0 on every
    axis. `hallucinated` is True when at least one claim is unsupported (runbook 18.4).
    """
    if expected_action not in ACTIONS:
        raise ValueError(f"expected_action must be one of {ACTIONS}, got {expected_action!r}")
    action = detect_action(answer)
    if not answer.strip():
        return AnswerScore(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, action, False, (), ("empty",), 0)
    facts = _facts(knowledge, context)
    needs = _prompt_needs(prompt, context, facts)
    claims = extract_claims(answer, knowledge, context, fallback_subject=needs.fallback_subject)
    checks = check_claims(claims, knowledge, context)
    titles = _distinct_title_spans(claims) if needs.kind == "recommendation" else []
    issues = format_issues(answer, titles)
    axes = {
        "factuality": factuality_score(checks),
        "relevance": relevance_score(prompt, context, answer, expected_action, claims, knowledge),
        "policy": float(action == expected_action),
        "format": format_score(issues, bullets_applicable=len(titles) >= 2),
        "conciseness": conciseness_score(answer, word_limit),
    }
    failures = tuple(c.describe() for c in checks if not c.supported)
    return AnswerScore(**axes, rubric=_rubric(axes), action=action, hallucinated=bool(failures),
                       failures=failures, format_issues=tuple(issues), n_claims=len(claims))


def _rubric(axes: dict[str, float]) -> float:
    return 5 * sum(AXIS_WEIGHTS[name] * axes[name] for name in AXIS_WEIGHTS)


def _distinct_title_spans(claims: Sequence[Claim]) -> list[tuple[int, int]]:
    """The first mention of each distinct title, for the bullets check."""
    seen: dict[str, tuple[int, int]] = {}
    for claim in claims:
        if claim.kind == "title":
            seen.setdefault(_key(str(claim.value)), claim.span)
    return list(seen.values())


@dataclass(frozen=True)
class ResponseMetrics:
    """A split's rubric and axes (means), hallucination rate, refusal/escalation precision and recall."""

    n: int
    rubric: float
    factuality: float
    relevance: float
    policy: float
    format: float
    conciseness: float
    hallucination_rate: float
    hallucinated: int
    refusal_precision: float
    refusal_recall: float
    escalation_precision: float
    escalation_recall: float
    predicted_refusals: int
    expected_refusals: int
    correct_refusals: int
    predicted_escalations: int
    expected_escalations: int
    correct_escalations: int

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def _ratio(hits: int, denominator: int, other_side: int) -> float:
    """hits / denominator; with an empty denominator 1.0 when the other side is empty too (nothing expected,
    nothing predicted: perfect agreement), else 0.0 (so an empty side never passes a gate by default)."""
    if denominator == 0:
        return 1.0 if other_side == 0 else 0.0
    return hits / denominator


def action_precision_recall(predicted: Sequence[str], expected: Sequence[str], action: str) -> tuple[float, float]:
    """Precision (correct / predicted) and recall (correct / expected) of one action, with `_ratio`'s rule for
    empty denominators."""
    hits = sum(p == action and e == action for p, e in zip(predicted, expected, strict=True))
    n_predicted = sum(p == action for p in predicted)
    n_expected = sum(e == action for e in expected)
    return _ratio(hits, n_predicted, n_expected), _ratio(hits, n_expected, n_predicted)


def summarise(scores: Sequence[AnswerScore], expected: Sequence[Action]) -> ResponseMetrics:
    """Means of the rubric and axes; hallucination rate = answers with >= 1 unsupported claim / all (18.4);
    refusal and escalation precision (correct / predicted) and recall (correct / expected) of the detected
    action against `expected`.

    Empty denominators are NaN-free: precision with nothing predicted is 1.0 if nothing was expected either,
    else 0.0; recall with nothing expected is 1.0 if nothing was predicted either, else 0.0. Counts are in the
    result, so a gate can also insist on a minimum number of refusal/escalation prompts.
    """
    if not scores:
        raise ValueError("summarise needs at least one scored answer")
    if len(scores) != len(expected):
        raise ValueError(f"{len(scores)} scores but {len(expected)} expected actions; pass one per answer")
    if unknown := sorted({e for e in expected if e not in ACTIONS}):
        raise ValueError(f"unknown expected actions {unknown}; use one of {ACTIONS}")
    n = len(scores)

    def mean(name: str) -> float:
        return sum(getattr(s, name) for s in scores) / n

    counts = {}
    for action in ("refuse", "escalate"):
        predicted = sum(s.action == action for s in scores)
        wanted = sum(e == action for e in expected)
        correct = sum(s.action == action and e == action for s, e in zip(scores, expected))
        counts[action] = (predicted, wanted, correct)
    (pr, er, cr), (pe, ee, ce) = counts["refuse"], counts["escalate"]
    hallucinated = sum(s.hallucinated for s in scores)
    return ResponseMetrics(
        n=n, rubric=mean("rubric"), factuality=mean("factuality"), relevance=mean("relevance"),
        policy=mean("policy"), format=mean("format"), conciseness=mean("conciseness"),
        hallucination_rate=hallucinated / n, hallucinated=hallucinated,
        refusal_precision=_ratio(cr, pr, er), refusal_recall=_ratio(cr, er, pr),
        escalation_precision=_ratio(ce, pe, ee), escalation_recall=_ratio(ce, ee, pe),
        predicted_refusals=pr, expected_refusals=er, correct_refusals=cr,
        predicted_escalations=pe, expected_escalations=ee, correct_escalations=ce,
    )


# ---------------------------------------------------------------------------
# Cost (runbook 18.3); `cost_reduction` is `mangadistill.evaluation.cost.cost_reduction`
# ---------------------------------------------------------------------------

def cost_per_1k(prompt_tokens_mean: float, completion_tokens_mean: float, price_in_per_1m: float,
                price_out_per_1m: float) -> float:
    """What 1,000 responses cost at per-token API prices::

        1000 * (prompt_tokens_mean * price_in_per_1m + completion_tokens_mean * price_out_per_1m) / 1e6

    e.g. 400 prompt + 120 completion tokens at $2 / $8 per 1M tokens -> $1.76 per 1K responses.
    """
    values = {"prompt_tokens_mean": prompt_tokens_mean, "completion_tokens_mean": completion_tokens_mean,
              "price_in_per_1m": price_in_per_1m, "price_out_per_1m": price_out_per_1m}
    if bad := [f"{k}={v}" for k, v in values.items() if not math.isfinite(v) or v < 0]:
        raise ValueError(f"cost_per_1k needs finite, non-negative numbers; got {', '.join(bad)}")
    return 1000 * (prompt_tokens_mean * price_in_per_1m + completion_tokens_mean * price_out_per_1m) / 1e6
