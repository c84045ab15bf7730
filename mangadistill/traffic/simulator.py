"""The production-traffic simulator: a deterministic day of MangaAssist traffic with a drift knob.

It returns raw traffic (string columns ``text`` and ``label``), PII included as real logs would have it;
:func:`mangadistill.traffic.load_traffic` is what scrubs it, as it does a user's log, before anything is
stored or logged. Call that, not this, for anything that leaves the process.

The simulator stands in for a day of MangaAssist production traffic. At ``drift=0`` it draws from the
same generator as the training data (:func:`mangadistill.data.synthetic.generate_intent_dataset`,
default intent mix, a different seed), so a drift report should not flag it. ``drift`` in (0, 1]
moves the log away from the training distribution in the three ways the runbook warns about
(sections 3.4 and 10.3, "shift/noise if logs are stale"):

- **a shifted intent mix**: the class weights are interpolated from
  :data:`~mangadistill.data.synthetic.DEFAULT_CLASS_WEIGHTS` towards :data:`SHIFTED_CLASS_WEIGHTS`
  (a holiday rush: more order-status and shipping questions, more out-of-scope traffic);
- **new titles and slang**: a share ``NEW_STYLE_SHARE * drift`` of the rows is written in a newer
  register (:data:`DRIFTED_TEMPLATES`): series that are not in the catalog (:data:`NEW_TITLES`) and
  chat slang ("ngl", "fr", "lowkey") the training data never contains;
- **more out-of-scope traffic**: part of the shifted mix, plus new out-of-scope topics among the
  new-style rows (gacha banners, AI art, streaming).

Determinism: the base rows come from the seeded generator, the new-style rows from one
``random.Random`` seeded with a string derived from ``seed``; the same arguments give the same frame
in any process.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from types import MappingProxyType

import pandas as pd

from mangadistill.data.intents import MANGA_INTENTS
from mangadistill.data.synthetic import DEFAULT_CLASS_WEIGHTS, generate_intent_dataset

#: Intent mix at ``drift=1``: a holiday rush with a viral new series (sums to 1).
SHIFTED_CLASS_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "recommendation": 0.10,
        "product_details": 0.10,
        "price": 0.08,
        "order_status": 0.20,
        "shipping": 0.14,
        "returns_refunds": 0.06,
        "account_help": 0.03,
        "escalation": 0.04,
        "greeting": 0.05,
        "out_of_scope": 0.20,
    }
)

#: Share of new-style rows (new titles, slang) at ``drift=1``; it scales linearly with ``drift``.
NEW_STYLE_SHARE = 0.5

#: Series customers ask about that are not in the bundled catalog (newer than the training data).
NEW_TITLES: tuple[str, ...] = (
    "Kagurabachi", "Gachiakuta", "Akane-banashi", "Ichi the Witch", "Kill Blue", "Hima-Ten",
    "Nue's Exorcist", "Me and Roboco", "Shinobi Undercover", "Rooster Fighter", "Kowloon Generic Romance",
    "Medalist", "Zom 100", "Ruri Dragon", "Undead Unluck", "Hell's Paradise", "Mission Yozakura Family",
    "Wind Breaker", "Dandelion Academy", "Starfall Kitchen",
)

_OPENERS = ("yo ", "ngl ", "ok so ", "bruh ", "lowkey ", "fr ", "")
_CLOSERS = (" fr", " no cap", " ngl", " istg", " rn", " lol", " pls", "")

#: New-style phrasings per intent: slang and titles the training data does not contain.
DRIFTED_TEMPLATES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "recommendation": (
            "{open}{title} was peak, whats the next banger like it{close}",
            "{open}need smth w the same aura as {title}{close}",
            "{open}finished {title} and im cooked, recs?{close}",
            "{open}which new series is giving {title} vibes{close}",
        ),
        "product_details": (
            "{open}is {title} vol {vol} out yet{close}",
            "{open}how many vols of {title} r there{close}",
            "{open}does {title} vol {vol} have the color pages{close}",
        ),
        "price": (
            "{open}how much is {title} vol {vol}{close}",
            "{open}{title} box when?? and how much{close}",
            "{open}is {title} on sale or nah{close}",
        ),
        "order_status": (
            "{open}where tf is my {title} order {order}{close}",
            "{open}my pkg {order} been stuck for days{close}",
            "{open}order {order} still says processing, whats up{close}",
            "{open}did my {title} preorder even go thru{close}",
        ),
        "shipping": (
            "{open}do u ship {title} overseas{close}",
            "{open}how long til {title} gets here if i order rn{close}",
            "{open}express shipping for {title} vol {vol}?{close}",
        ),
        "returns_refunds": (
            "{open}{title} vol {vol} came bent, i want my money back{close}",
            "{open}got the wrong {title} vol, how do i send it back{close}",
        ),
        "account_help": (
            "{open}cant log in, app keeps crashing{close}",
            "{open}how do i change my email on here{close}",
        ),
        "escalation": (
            "{open}this is the 3rd time {order} got messed up, get me a real person{close}",
            "{open}im done w this bot, manager now{close}",
        ),
        "greeting": (
            "{open}heyyy{close}",
            "{open}wsg{close}",
            "{open}sup bot{close}",
        ),
        "out_of_scope": (
            "{open}is the new gacha banner worth pulling{close}",
            "{open}make me an ai pic of {title} characters{close}",
            "{open}where do i stream the {title} anime{close}",
            "{open}rate my {title} tier list{close}",
            "{open}whats the best crypto to buy rn{close}",
            "{open}write a diss track about {title}{close}",
        ),
    }
)


def shifted_class_weights(drift: float) -> dict[str, float]:
    """Intent mix at a drift level: ``(1 - drift) * default + drift * shifted`` (sums to 1)."""
    return {label: (1.0 - drift) * DEFAULT_CLASS_WEIGHTS[label] + drift * SHIFTED_CLASS_WEIGHTS[label]
            for label in MANGA_INTENTS}


def simulate_traffic(n_rows: int, seed: int, drift: float = 0.0) -> pd.DataFrame:
    """``n_rows`` labelled production queries; ``drift=0`` is the training distribution (module docstring).

    Returns a frame with string columns ``text`` and ``label`` in shuffled order. Like real logs it
    contains duplicates, PII and typos (unscrubbed: `mangadistill.traffic.load_traffic` scrubs it); unlike
    a training dump it has no rows with invalid labels.
    """
    if not 0.0 <= drift <= 1.0:
        raise ValueError(f"drift must be in [0, 1], got {drift!r}")
    if n_rows < 1:
        raise ValueError(f"n_rows must be >= 1, got {n_rows!r}")
    weights = shifted_class_weights(drift) if drift > 0 else None
    n_new = round(n_rows * NEW_STYLE_SHARE * drift)
    base = generate_intent_dataset(n_rows - n_new, seed, class_weights=weights, malformed_rate=0.0) \
        if n_rows > n_new else pd.DataFrame(columns=["text", "label"])
    rng = random.Random(f"traffic:{seed}:{drift}")
    new = pd.DataFrame([_new_style_row(rng, weights or DEFAULT_CLASS_WEIGHTS) for _ in range(n_new)],
                       columns=["text", "label"])
    frame = pd.concat([base, new], ignore_index=True)
    order = list(range(len(frame)))
    rng.shuffle(order)
    return frame.iloc[order].reset_index(drop=True).astype(str)


def _new_style_row(rng: random.Random, weights: Mapping[str, float]) -> tuple[str, str]:
    """One query in the newer register: an intent from ``weights``, a slang template, a new title."""
    label = rng.choices(MANGA_INTENTS, weights=[weights[label] for label in MANGA_INTENTS])[0]
    template = rng.choice(DRIFTED_TEMPLATES[label])
    text = template.format(open=rng.choice(_OPENERS), close=rng.choice(_CLOSERS), title=rng.choice(NEW_TITLES),
                           vol=rng.randint(1, 15), order=f"MA-{rng.randint(100000, 999999)}")
    return text, label
