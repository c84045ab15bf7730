"""The store's knowledge as retrievable documents: catalog entries and store policies.

A document renders to one line of retrieval context (what a model sees) and parses back from it (what the
reference teacher reads when it is served over the OpenAI protocol). The rendering is owned here and only
here, so the rubric, the teacher and the dataset agree on what a context line says.

Catalog line::

    Berserk by Kentaro Miura (Dark Horse; dark fantasy, action, horror, seinen): 42 volumes, $14.99 per volume, in stock.

Policy line::

    Shipping policy: Standard shipping takes 3-5 business days and costs $4.99; orders over $35 ship free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from mangadistill.data.synthetic import CatalogEntry, load_catalog

__all__ = [
    "POLICIES",
    "Policy",
    "StoreKnowledge",
    "parse_document",
    "render_entry",
    "store_knowledge",
]


@dataclass(frozen=True)
class Policy:
    """One store policy: a topic and the sentence a careful agent may quote."""

    topic: str
    text: str

    def render(self) -> str:
        return f"{self.topic.capitalize()} policy: {self.text}"


#: The store policies the assistant may quote. Every number an answer gives about shipping, returns,
#: orders or accounts must come from one of these sentences.
POLICIES: tuple[Policy, ...] = (
    Policy("shipping", "Standard shipping takes 3-5 business days and costs $4.99; orders over $35 ship free."),
    Policy("express", "Express shipping takes 1-2 business days and costs $12.99."),
    Policy("returns", "Unopened items can be returned within 30 days for a full refund; damaged items are replaced "
                      "free of charge."),
    Policy("orders", "Shoppers can track an order under Account > Orders with the order number; MangaAssist cannot "
                     "see order details."),
    Policy("account", "Passwords are reset from the sign-in page with 'Forgot password'; a reset link arrives by "
                      "email within 10 minutes."),
    Policy("preorders", "Pre-orders are charged when the volume ships and can be cancelled any time before that."),
)

_ENTRY_LINE = re.compile(
    r"^(?P<title>.+) by (?P<author>.+?) \((?P<publisher>[^;()]+); (?P<genres>[^()]+)\): "
    r"(?P<volumes>\d+) volumes?, \$(?P<price>\d+\.\d{2}) per volume, (?P<stock>in stock|out of stock)\.$"
)
_POLICY_LINE = re.compile(r"^(?P<topic>[A-Z][a-z]+) policy: (?P<text>.+)$")


def render_entry(entry: CatalogEntry) -> str:
    """One catalog entry as a context line (see the module docstring)."""
    volumes = f"{entry.volumes} volume{'s' if entry.volumes != 1 else ''}"
    stock = "in stock" if entry.in_stock else "out of stock"
    return (f"{entry.title} by {entry.author} ({entry.publisher}; {', '.join(entry.genres)}): "
            f"{volumes}, ${entry.price_usd:.2f} per volume, {stock}.")


def parse_document(line: str) -> CatalogEntry | Policy | None:
    """A context line back into the document it renders; None for a line in neither layout."""
    if match := _ENTRY_LINE.match(line.strip()):
        return CatalogEntry(
            title=match["title"], author=match["author"], volumes=int(match["volumes"]),
            price_usd=float(match["price"]), genres=tuple(g.strip() for g in match["genres"].split(",")),
            publisher=match["publisher"], in_stock=match["stock"] == "in stock",
        )
    if match := _POLICY_LINE.match(line.strip()):
        return Policy(match["topic"].lower(), match["text"])
    return None


@dataclass(frozen=True)
class StoreKnowledge:
    """Everything the store knows: the ground truth that factuality is checked against (runbook 18.4)."""

    entries: tuple[CatalogEntry, ...]
    policies: tuple[Policy, ...]

    def documents(self) -> list[str]:
        """Every document as a context line: catalog entries first, then policies."""
        return [render_entry(e) for e in self.entries] + [p.render() for p in self.policies]

    def entry(self, title: str) -> CatalogEntry | None:
        """The entry with this title (case-insensitive), if the store carries it."""
        return self._by_title().get(title.casefold())

    def authors(self) -> frozenset[str]:
        return frozenset(e.author for e in self.entries)

    def genres(self) -> tuple[str, ...]:
        """Every genre in the catalog, most common first (ties alphabetically)."""
        counts: dict[str, int] = {}
        for entry in self.entries:
            for genre in entry.genres:
                counts[genre] = counts.get(genre, 0) + 1
        return tuple(sorted(counts, key=lambda g: (-counts[g], g)))

    def _by_title(self) -> dict[str, CatalogEntry]:
        return {e.title.casefold(): e for e in self.entries}


@lru_cache(maxsize=1)
def store_knowledge() -> StoreKnowledge:
    """The bundled catalog and the store policies."""
    return StoreKnowledge(entries=tuple(load_catalog()), policies=POLICIES)
