"""Deterministic synthetic MangaAssist traffic for training and testing intent classifiers.

The generator writes chat messages a customer of an online manga store might send to the MangaAssist
shopping assistant, each labelled with one of the ten intents in
:data:`mangadistill.data.intents.MANGA_INTENTS`. It stands in for production traffic, which the project
cannot ship, so it is deliberately messy in the ways real traffic is messy and that the later stages
(cleaning, PII scrubbing, de-duplication, training, evaluation) must cope with.

Design
------
A clean row is made by drawing an intent from a class distribution, drawing a template for it and
filling the template. Templates use two bits of syntax: ``[a|b|c]`` picks one alternative (possibly
empty) and ``{slot}`` is filled from the bundled catalog (:func:`load_catalog`) and small vocabularies:
``{title}``, ``{series}``, ``{author}``, ``{vol}``, ``{price}``, ``{genre}``, ``{publisher}``,
``{order}`` (``MA-483920``), ``{date}``, ``{days}``, ``{country}``, ``{city}``.

Templates come in two pools per intent: :data:`INTENT_TEMPLATES` (the canonical phrasings, including
pairs written to sit next to a neighbouring intent: "how much is vol 3 of X" vs "how many pages is
vol 3 of X", "when will my order arrive" vs "if I order today when will it arrive", "I want a refund"
vs "refund me or I file a chargeback") and :data:`INDIRECT_TEMPLATES` (long-tail phrasings that avoid
the obvious keywords, :data:`INDIRECT_SHARE` of the templated rows). A row may also get a context
sentence ("I live in Toronto."), a clause that rules out another intent ("I don't want a refund, ..."),
a greeting-like prefix or a polite suffix. All of these keep the label of the actual request, so a
model has to read the request, not spot a keyword.

Some rows have no single right label. :data:`AMBIGUOUS_QUERIES` (short: "one piece", "vol 12?",
"refund") and :data:`BORDERLINE_TEMPLATES` (full sentences annotators disagree on,
:data:`BORDERLINE_SHARE` of the rows) carry a distribution over two to four intents, and the label is
drawn from it. :data:`LABEL_NOISE_RATE` of the templated rows get a plausible neighbouring label, as
an annotator would (never *into* the rare escalation class). This irreducible error keeps a good
classifier between roughly 85% and 95% accuracy rather than at 100%.

Knobs of :func:`generate_intent_dataset`
----------------------------------------
``class_weights``
    Relative frequency of each intent among the templated rows. The default
    (:data:`DEFAULT_CLASS_WEIGHTS`) is imbalanced: recommendation and product_details are common,
    escalation is rare (about 3.5%). A mapping given here *replaces* the default; intents it leaves
    out get weight 0 (and are also removed from the ambiguous and borderline distributions).
``ambiguous_rate``
    Share of rows that are :data:`AMBIGUOUS_QUERIES`.
``pii_rate``
    Share of rows with personal data embedded naturally: e-mail addresses, phone numbers in several
    national formats, Luhn-valid card numbers (grouped by spaces, dashes or not at all) and street
    addresses ("my email is ...", "ship to 221 Baker Street"). PII is added after the noise, so
    every injected value is intact for a scrubber to find.
``noise_rate``
    Share of rows with one to three kinds of surface noise: typos (swapped, dropped or doubled
    letters), ALL CAPS or all lowercase, dropped punctuation, chat-speak ("pls", "u", "thx") and
    stray whitespace.
``duplicate_rate``
    Share of rows that copy an earlier row: two thirds verbatim (same text and label), the rest
    near-duplicates differing only in case, punctuation or whitespace. Short messages also collide
    by chance ("hi", "refund"), so the real duplicate share is higher.
``malformed_rate``
    Share of rows that a cleaning stage must quarantine: empty or whitespace-only text, or a label
    outside ``MANGA_INTENTS`` ("unknown", "", "other", ...). At least one such row is emitted when
    the rate is positive and ``n_rows >= 200``.

Determinism: every random choice comes from one ``random.Random(seed)`` created per call and consumed
in a fixed order; nothing depends on global RNG state, on ``hash()`` of strings or on set iteration
order, so the same arguments give the same frame in any process.
"""

from __future__ import annotations

import json
import math
import numbers
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

import pandas as pd

from mangadistill.data.intents import MANGA_INTENTS

__all__ = [
    "AMBIGUOUS_QUERIES",
    "BORDERLINE_SHARE",
    "BORDERLINE_TEMPLATES",
    "CatalogEntry",
    "DEFAULT_CLASS_WEIGHTS",
    "INDIRECT_SHARE",
    "INDIRECT_TEMPLATES",
    "INTENT_TEMPLATES",
    "LABEL_NOISE_RATE",
    "generate_intent_dataset",
    "load_catalog",
]

# ---------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------

_CATALOG_PACKAGE = "mangadistill.resources"
_CATALOG_FILE = "manga_catalog.json"
_CATALOG_FIELDS = ("title", "author", "volumes", "price_usd", "genres", "publisher")


@dataclass(frozen=True)
class CatalogEntry:
    """One series (or box set / omnibus edition) sold by the store."""

    title: str
    author: str
    volumes: int
    price_usd: float
    genres: tuple[str, ...]
    publisher: str
    #: Whether the store has it in stock now (the response track's availability claims are checked against it).
    in_stock: bool = True


def load_catalog() -> list[CatalogEntry]:
    """Read the bundled manga catalog shipped in ``mangadistill.resources``.

    Raises:
        ValueError: if an entry lacks a field or has a field of the wrong type.
    """
    resource = resources.files(_CATALOG_PACKAGE) / _CATALOG_FILE
    raw = json.loads(resource.read_text(encoding="utf-8"))
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{_CATALOG_FILE} must hold a non-empty JSON list")
    return [_parse_catalog_entry(item, index) for index, item in enumerate(raw)]


def _parse_catalog_entry(item: object, index: int) -> CatalogEntry:
    """Validate one raw JSON object from the catalog and convert it."""
    if not isinstance(item, dict):
        raise ValueError(f"catalog entry {index} is not an object")
    missing = [field for field in _CATALOG_FIELDS if field not in item]
    if missing:
        raise ValueError(f"catalog entry {index} lacks fields {missing}")
    genres = item["genres"]
    valid = (
        isinstance(item["title"], str)
        and isinstance(item["author"], str)
        and isinstance(item["publisher"], str)
        and isinstance(item["volumes"], int)
        and item["volumes"] >= 1
        and isinstance(item["price_usd"], (int, float))
        and item["price_usd"] > 0
        and isinstance(genres, list)
        and bool(genres)
        and all(isinstance(genre, str) for genre in genres)
    )
    if not valid:
        raise ValueError(f"catalog entry {index} ({item.get('title')!r}) has a malformed field")
    return CatalogEntry(
        title=item["title"],
        author=item["author"],
        volumes=item["volumes"],
        price_usd=float(item["price_usd"]),
        genres=tuple(genres),
        publisher=item["publisher"],
        in_stock=bool(item.get("in_stock", True)),
    )


# ---------------------------------------------------------------------------
# Templates, one constant per intent
# ---------------------------------------------------------------------------

RECOMMENDATION_TEMPLATES: tuple[str, ...] = (
    "[can you|could you|pls] recommend something like {title}?",
    "I just finished {title}, what should I read next?",
    "[looking for|I want|need] a {genre} manga for a [beginner|newbie|first-time reader]",
    "what's a good {genre} series that's already [finished|complete|done]?",
    "any manga similar to {title} but [a bit darker|less violent|funnier|more romantic]?",
    "my [daughter|son|niece|little brother] is [10|12|13|15] and loves {title}, any suggestions [for them|]?",
    "recommend me a short {genre} series, [ideally|preferably|] under [5|10|12] volumes",
    "what are your [best selling|most popular|top rated] {genre} titles right now?",
    "I want something [else|] by {author} that isn't {title}",
    "gift ideas for a [friend|coworker|boyfriend|girlfriend] who is really into {genre}?",
    "is {title} [good|worth it] if I [liked|loved|enjoyed] {title2}?",
    "should I start {title} or {title2} first?",
    "I only watched the {title} anime, which manga would I enjoy?",
    "top [3|5|10] {genre} manga you'd recommend?",
    "I'm [new to|just getting into|completely new to] manga, where do I [even|] start?",
    "suggest a {genre} manga with a strong [female|male] lead",
    "I need a [completed|finished|short] series I can binge [this weekend|on vacation|over the holidays]",
    "what else has {author} [written|drawn|done] that is worth reading?",
    "which {publisher} series are worth picking up?",
    "I loved the [art|story|characters] in {title}, anything [similar|like that]?",
    "what's trending in {genre} [this month|right now|lately]?",
    "recommend a box set for a [birthday|christmas|graduation] present, budget around {price}",
    "something [wholesome|cozy|lighthearted] like {title} please",
    "I'm kind of burnt out on shonen, what's a good [seinen|josei|shojo] to try?",
    "what's a good manga to read on a long [flight|train ride|trip]?",
    "my [book club|reading group|class] wants to try a manga, what would you [pick|suggest|recommend]?",
    "best {genre} manga of all time in your opinion?",
    "any hidden gems that fans of {title} would like?",
    "what should I pick up after volume {vol} of {title}?",
    "I want a {genre} series with [few|not many] volumes, kind of like {title}",
    "which is better for a teenager, {title} or {title2}?",
    "[need|I need|looking for] a manga recommendation for my [nephew|niece|cousin] who loves {genre}",
    "I read {title} and {title2} last year and loved both, what next?",
    "is {title} worth starting or should I skip it?",
    "what would you suggest for someone who [hates|can't stand|isn't into] [romance|gore|sports manga]?",
    "is {title} complete? I want to start a [finished|completed] series [next|this summer]",
    "how many volumes is {title}? trying to decide what to read next",
    "what's the cheapest way to get into {genre}, any good starter series?",
    "I have about {price} for a gift, which series would you [get|buy|pick]?",
    "is {title} appropriate for a [10|12|14] year old or is there something better?",
    "I'm between {title} and {title2}, which one has the better ending?",
    "what did people who bought {title} also [like|buy|read]?",
    "any {genre} like {title} that has already finished in English?",
    'is {title} [any good|good|worth reading]?',
    'is {title} worth it for a {genre} fan?',
    "what's {title} like? thinking of starting it",
    'is {title} vol {vol} where it gets good? should I keep going?',
)

PRODUCT_DETAILS_TEMPLATES: tuple[str, ...] = (
    "how many volumes does {title} have?",
    "how many pages is volume {vol} of {title}?",
    "is {title} [complete|finished] or still ongoing?",
    "who [publishes|translates] the English edition of {title}?",
    "is volume {vol} of {title} in stock?",
    "does the {series} box set include volume {vol}?",
    "what size are the {title} books, standard tankobon?",
    "is {title} vol {vol} hardcover or paperback?",
    "who [wrote|drew|is the author of] {title}?",
    "what age rating does {title} have?",
    "is {title} published by {publisher}?",
    "when does volume {vol} of {title} come out?",
    "does {title} volume {vol} have color pages?",
    "is the deluxe edition of {series} different from the regular one?",
    "which chapters are in {title} volume {vol}?",
    "is {series} available as an omnibus?",
    "[tell me about|give me details on|info on] {title}",
    "what genre is {title}?",
    "does {title} read right to left or is it flipped?",
    "does {title} have [mature content|nudity|a lot of gore]?",
    "are the {title} books in English?",
    "what's the ISBN for {title} vol {vol}?",
    "is {title} volume {vol} the latest one?",
    "do you have {title} in the original Japanese?",
    "how many books are in the {series} box set?",
    "is there a digital version of {title} vol {vol}?",
    "what condition are the used copies of {title} in?",
    "does {title} vol {vol} come with the [bonus poster|dust jacket|extra chapter]?",
    "what is {title} about? no spoilers please",
    "how many volumes of {title} are out in English so far?",
    "is your copy of {title} vol {vol} a first printing?",
    "I saw {title} vol {vol} listed as preorder, is it actually released?",
    "is {title} vol {vol} back in stock yet?",
    "what's the difference between the {series} box set and buying the volumes?",
    "does volume {vol} of {title} finish the arc?",
    "is the {price} {title} set the one with all {n} volumes?",
    "is {title} a good read? how long is it, how many volumes?",
    "does the {series} box set come with a [poster|booklet|bookmark] or just the books?",
    "is {title} vol {vol} shrink wrapped or could it be a returned copy?",
    "will {title} vol {vol} ship in the [original|collector's] packaging?",
    "is {title} by {author} the same as the anime?",
    "I already own volumes 1 to {vol} of {title}, which one is next?",
    'is {title} vol {vol} available?',
    'is {title} vol {vol} available in hardcover?',
    'what comes in the {series} box set?',
    'is {title} long?',
    'is the paper quality on {title} good or is it a cheap print?',
)

PRICE_TEMPLATES: tuple[str, ...] = (
    "how much is volume {vol} of {title}?",
    "what's the price of the {series} box set?",
    "how much does {title} cost?",
    "is {title} on sale [right now|this week|at the moment]?",
    "any discount if I buy all {n} volumes of {title}?",
    "price for {title} vol {vol}?",
    "why is {title} vol {vol} {price} when it was cheaper last week?",
    "do you price match [Amazon|Barnes and Noble|Right Stuf] on {title}?",
    "how much would volumes 1 to {vol} of {title} cost in total?",
    "do you have any [coupon|promo|discount] codes?",
    "is there a [student|teacher|military] discount?",
    "how much is the {series} omnibus compared to the single volumes?",
    "what's the cheapest {genre} box set you have?",
    "is {price} the final price or is tax added on top?",
    "does the {price} for {title} include shipping?",
    "when is your next [sale|promotion|black friday deal]?",
    "are used copies of {title} cheaper?",
    "how much for {title} in hardcover?",
    "is the {series} deluxe edition really {price}?",
    "the site says {price} for {title} vol {vol}, is that right?",
    "do bundles of {title} get a discount?",
    "how much is the preorder for {title} vol {vol}?",
    "what does {title} cost per volume?",
    "is there a bulk discount for a [school|library|classroom] order?",
    "how much cheaper is the digital edition of {title}?",
    "is {title} cheaper here or on the {publisher} store?",
    "your price for {title} went up to {price}, why?",
    "what would volumes {vol} and {vol2} of {title} come to?",
    "do members get a discount on {author} books?",
    "I have {price} to spend, how many volumes of {title} can I get?",
    "can I get {title} vol {vol} any cheaper?",
    "how much is the whole {title} series?",
    "is {title} vol {vol} worth {price} or is the box set a better deal?",
    "how many volumes can I get for {price}?",
    "would the {series} box set be cheaper than volumes 1 to {vol}?",
    "is shipping included in the price of {title} or is that extra?",
    "do preorders get charged the price on release day or now?",
    "how much is {title} in {country}, do you show local prices?",
    'is {title} vol {vol} available any cheaper?',
    'what do you charge for {title}?',
    'how much would my order come to with {title} vol {vol} added?',
    'is {title} vol {vol} available at the sale price?',
    'how much is the {series} box set with the [poster|bonus booklet]?',
)

ORDER_STATUS_TEMPLATES: tuple[str, ...] = (
    "where is my order {order}?",
    "my order {order} still says [processing|pending|preparing], what's going on?",
    "has order {order} shipped yet?",
    "when will my order arrive? it's {order}",
    "I ordered {title} vol {vol} on {date} and still haven't received it",
    "can you check the status of {order}?",
    "tracking for {order} hasn't updated in {days} days",
    "can I cancel order {order}?",
    "I need to change the delivery address on order {order}",
    "the tracking says delivered but there's no package [at my door|in my mailbox|anywhere]",
    "was my preorder for {title} vol {vol} charged yet?",
    "[part of|half of|one book from] my order is missing, is the rest coming separately?",
    "can I add {title} vol {vol} to order {order}?",
    "will {order} get here before {date}?",
    "I got a [shipping|dispatch] confirmation [email|] but no tracking number",
    "what's the ETA on my {title} preorder?",
    "order {order} status [please|pls|]",
    "did my order go through? I never got a confirmation [email|text]",
    "why was my order {order} split into two packages?",
    "my package is stuck in {city}, order {order}",
    "I placed an order on {date}, when does it ship?",
    "how do I see what I ordered [last month|last week|in {date}]?",
    "the courier says my parcel went back to the sender, order {order}",
    "can you [expedite|speed up|rush] my order {order}?",
    "is my order {order} still on backorder?",
    "my {series} box set order hasn't moved since {date}",
    "change the shipping method on order {order} to express please",
    "I ordered {title} {days} days ago, where is it?",
    "it's been {days} days and my [books haven't|order hasn't|package hasn't] arrived",
    "my order number is {order}, any update?",
    "the tracking link for {order} doesn't work",
    "my order {order} was supposed to ship express to {country}, where is it?",
    "I'm logged in but I can't find the tracking for my last order",
    "when will {title} vol {vol} arrive? I ordered it {date}",
    "shipping said {days} days but my order {order} is late",
    "I was charged for {order} but it never shipped",
    "my order {order} arrived but the {title} volume wasn't in the box, is it coming later?",
    'when will my order reach {city}?',
    'how long until my delivery to {city} shows up? I ordered {date}',
    'my order to {country} is [late|taking forever|overdue]',
    'is my order going to be delivered to {city} this week?',
)

SHIPPING_TEMPLATES: tuple[str, ...] = (
    "do you ship to {country}?",
    "how long does shipping to {country} take?",
    "how much is shipping to {city}?",
    "do you [offer|have|do] free shipping[ on manga| on box sets|]?",
    "what's the minimum [order|spend] for free [shipping|delivery]?",
    "which [couriers|carriers|delivery companies] do you use?",
    "can I get [next day|same day|overnight] delivery to {city}?",
    "do you ship [internationally|overseas|outside the US]?",
    "how are the books packed? I'm worried about [dented corners|bent covers|damage]",
    "will I have to pay customs [fees|duties] in {country}?",
    "do you deliver to [PO boxes|apartments|a parcel locker]?",
    "if I order today when will it arrive in {country}?",
    "is express shipping available to {country}?",
    "can I pick up my order in store in {city}?",
    "how long do preorders take to ship after release?",
    "do you [ship|deliver] to [APO/FPO|military|PO box] addresses?",
    "what are your shipping times during the holidays?",
    "can you ship a box set to {country} without it getting crushed?",
    "do you combine shipping if I order multiple volumes?",
    "what's the delivery time for [standard|economy|express] shipping?",
    "is [international|overseas|standard] shipping tracked?",
    "can I send a gift straight to a friend in {city}?",
    "if I order {title} today when would it get to {city}?",
    "is there free shipping on orders over {price}?",
    "does shipping to {country} include taxes and duties?",
    "what days [of the week|] do you [dispatch|send out|ship] orders?",
    "do you ship to Hawaii and Alaska?",
    "are there any [countries|regions|states] you don't ship to?",
    "I live in {city}, how many days for delivery?",
    "can you ship to my work address instead of home?",
    "do you have a shipping option without a signature?",
    "I'm about to place an order, how long will it take to reach {city}?",
    "what happens to my order if nobody is home for the delivery?",
    "will my order ship in a box or a padded envelope?",
    "do orders to {country} get a tracking number?",
    "if I preorder {title} vol {vol}, does it ship on release day?",
    "how much would it cost to ship the {series} box set to {country}?",
    'when would an order placed today reach {city}?',
    'how long does delivery to {city} usually take?',
    'my friend in {country} wants to order, do you deliver there?',
    'is delivery to {city} usually on time this week?',
)

RETURNS_REFUNDS_TEMPLATES: tuple[str, ...] = (
    "how do I return {title} vol {vol}?",
    "my copy of {title} arrived with a [torn|bent|creased] cover, can I get a replacement?",
    "what's your [return|refund|exchange] policy[ on manga| for box sets|]?",
    "I received the wrong volume, I ordered vol {vol} but got vol {vol2}",
    "can I return an opened [box set|volume|book]?",
    "how long does a refund take to [show up|come through|hit my account]?",
    "I want a refund for order {order}",
    "I got two copies of {title} by mistake, can I send one back?",
    "the pages in {title} vol {vol} are [misprinted|upside down|blank], can I exchange it?",
    "can I return a preorder I [no longer want|don't want anymore]?",
    "do I have to pay for return [shipping|postage]?",
    "refund status for order {order}?",
    "can I exchange {title} for {title2}?",
    "my refund hasn't arrived after {days} days",
    "is there a restocking fee [for returns|if I send it back|]?",
    "I bought {title} as a gift, can the recipient return it?",
    "the box set came damaged in transit, what do I do?",
    "can I get store credit instead of a [refund|cash refund]?",
    "how many days do I have to return [something|a book|an item]?",
    "I was charged twice for order {order}, please refund one of them",
    "the print quality on {title} vol {vol} is awful, I'd like my money back",
    "can you send me a return label for order {order}?",
    "you sent the Japanese edition by mistake, can I swap it?",
    "can I return only [part|some] of my order?",
    "I changed my mind about {title}, can I still return it?",
    "a water damaged book arrived, I need a replacement",
    "where do I [mail|send|post] my return [to|]?",
    "vol {vol} of {title} is missing pages, I want a new copy",
    "I returned {title} on {date}, when do I get my money?",
    "I'm really upset, the {series} box set arrived crushed, how do I return it?",
    "the order {order} arrived but the wrong book was inside, what now?",
    "can I cancel and get my money back? it already shipped",
    "the price of {title} dropped to {price} after I bought it, can I get the difference back?",
    "I was sent {title2} instead of {title}, how do I swap it?",
    "the refund for {order} went to an old card, what happens now?",
    'I want my money back for {order}',
    'this is the second damaged copy of {title}, I want a refund',
    "I'm not happy with {title} vol {vol}, can I send it back?",
    "I'm not happy with how {order} arrived, can I get a refund?",
)

ACCOUNT_HELP_TEMPLATES: tuple[str, ...] = (
    "I [forgot|can't remember|lost] my password",
    "how do I reset my password?",
    "I can't log [in|into my account|in on the app]",
    "how do I change the email on my account?",
    "can you [delete|close|deactivate] my account?",
    "how do I update my saved [payment method|credit card|billing info]?",
    "I never got the [verification|confirmation|sign up] email",
    "my account got locked after too many [attempts|tries|login attempts]",
    "how do I [turn off|stop|unsubscribe from] marketing emails?",
    "how do I change the default [shipping|billing] address in my [profile|account]?",
    "where can I see my [loyalty|reward] points?",
    "can I merge [two|my two|both my] accounts?",
    "how do I turn on two-factor authentication?",
    "the [app|website|site] keeps logging me out",
    "I want to change my [username|display name]",
    "how do I download a copy of my data?",
    "my [wishlist|cart|saved items] disappeared",
    "where is my order history in the app?",
    "can I add a second user to my account?",
    "my gift card balance isn't showing on my account",
    "how do I stop the release alerts for {title}?",
    "the password reset link [expired|doesn't work|never arrived]",
    "I signed up with the wrong email address",
    "how do I cancel my [membership|subscription|premium plan]?",
    "why can't I add a new card to my account?",
    "I'm not getting the login code on my phone",
    "how do I update my [birthday|name|phone number] on my profile?",
    "how do I link my account to the mobile app?",
    "it says my email is already registered but I never made an account",
    "can I change the name on my account?",
    "I can't see order {order} in my account, did I use a different login?",
    "my orders aren't showing up since I changed my email",
    "how do I save my shipping address so I don't type it every time?",
    "I got an email saying my password was changed but I didn't do it, how do I reset it?",
    "why does checkout keep asking me to log in again?",
    "I placed an order as a guest, can I attach it to my account?",
    "I can't see my orders in my account",
    "my account doesn't show the points from order {order}",
    'I want to change the email my order updates go to',
    "the app shows someone else's name on my orders, how do I fix my profile?",
)

ESCALATION_TEMPLATES: tuple[str, ...] = (
    "I want to speak to a [human|person|real person]",
    "get me a real person, this bot is useless",
    "let me talk to your [manager|supervisor]",
    "this is the third time I'm asking about {order}, I want a supervisor now",
    "refund me today or I'm filing a chargeback",
    "I'm disputing this charge with my bank if {order} isn't fixed",
    "my lawyer will be in touch about order {order}",
    "I'm reporting your store to the Better Business Bureau",
    "someone hacked my account and placed orders I didn't make",
    "there are charges from you on my card that I never made, this is fraud",
    "one of your delivery drivers was harassing me",
    "a staff member sent me inappropriate messages",
    "the {series} box set had a sharp metal edge and my kid cut their hand",
    "the ink on {title} made my son sick, it smells like chemicals",
    "honestly I don't want to be alive anymore",
    "I feel like hurting myself and I don't know who to talk to",
    "this is unacceptable, escalate this to someone who can actually help",
    "I've waited {days} weeks for my refund, I'm taking legal action",
    "I want to file a formal complaint",
    "transfer me to a customer service agent",
    "connect me with a live agent please",
    "someone changed my password and email, my account was stolen",
    "I will sue if I don't hear back by {date}",
    "I'm contacting consumer protection about order {order}",
    "your courier threatened me at my door",
    "stop the bot, human agent please",
    "fix {order} today or I'm calling my bank and reversing the payment",
    "this is a scam, give me my money back and put me through to someone in charge",
    "my card was stolen and used on your site",
    "I'm done with this chatbot, I need an actual employee",
    "I've asked for a refund three times for {order}, I want a manager",
    "this is my [fourth|third|fifth] message about a damaged box set, get someone senior",
    "my order {order} never came and nobody answers, I'm opening a dispute with paypal",
    "your bot keeps sending me in circles, can a person look at my refund",
    "I didn't authorize order {order}, someone is using my account",
    "I want my money back for {order} or I'm going to my bank",
    'this is the second damaged copy of {title}, I want to speak to someone',
    "I'm not happy with how you handled {order}, put me through to a manager",
    'I want a refund for order {order} and I want to talk to a person about it',
)

GREETING_TEMPLATES: tuple[str, ...] = (
    "[hi|hello|hey|hiya|heyyy|yo][!||.]",
    "[hi|hello|hey] there[!|]",
    "good [morning|afternoon|evening][!|]",
    "[hello|hi], anyone there?",
    "[hi|hey]! just browsing",
    "[thanks|thank you|ty], that's all",
    "thank you so much[!|]",
    "[bye|goodbye|bye bye][!|]",
    "have a [good|nice|great] day",
    "ok [thanks|thx|cool]",
    "cool, thanks for the help",
    "[hey|hi|hello] MangaAssist",
    "[hi|hello], how are you?",
    "what's up",
    "konnichiwa[!|]",
    "[hello|hi], I'm new here",
    "thanks, you [were|have been] [really|super|very] helpful",
    "see you [later|soon]",
    "[great|perfect|ok|alright], thank you[!|]",
    "[morning|evening]!",
    "[hi|hello] there, can you help me?",
    "sup",
    "ok bye",
    "thanks again[!| for the help|]",
    "[hello|hi] MangaAssist, nice to meet you",
    "that answers [it|my question], thanks",
    "perfect, that's everything I needed",
    "[awesome|great|nice], I'll [check it out|think about it]. thanks!",
    "hi, I have a question",
    "hello! quick question for you",
    "thanks, that's all I needed about my order",
    "ok got it, thanks for checking",
    "hey, hope you're having a good day",
)

OUT_OF_SCOPE_TEMPLATES: tuple[str, ...] = (
    "what's the weather in {city} [tomorrow|this weekend|today]?",
    "can you help with my [math|chemistry|history] homework?",
    "write a [python|javascript] script that scrapes a website",
    "what should I take for a [migraine|fever|sore throat]?",
    "can you give me legal advice about my [landlord|divorce|boss]?",
    "where can I read {title} [free scans|for free online|raws]?",
    "send me a pdf of {title} vol {vol}",
    "write me a {title} fanfic chapter",
    "who would win, [Goku|Naruto|Saitama] or [Luffy|Ichigo|Gojo]?",
    "translate this paragraph into Japanese for me",
    "what's the capital of {country}?",
    "tell me a joke",
    "how do I hack into my [ex's|friend's|boss's] [instagram|email|phone]?",
    "recommend a good [pizza place|sushi restaurant|hotel] in {city}",
    "what [stocks|crypto] should I buy this year?",
    "can you write my college essay about {title}?",
    "how do I make a fake ID?",
    "what's the best free site to stream anime?",
    "draw me a picture of the main character of {title}",
    "explain quantum physics simply",
    "when does the {title} anime come out on [Netflix|Crunchyroll]?",
    "how do I get around the age check on a [manga pirate site|scan site|streaming site]?",
    "who is going to win the election?",
    "book me a flight to [Tokyo|Osaka|Seoul]",
    "rate my manga drawing",
    "give me a torrent link for the {series} box set",
    "can you diagnose this rash on my arm?",
    "what's [15|20|25]% of [80|120|64]?",
    "how do I get rid of a virus on my [laptop|phone|pc]?",
    "is {author} married?",
    "write a [rap|poem|haiku] about {title}",
    "what's a good recipe for dinner tonight?",
    "can you recommend a good [movie|netflix show|video game] like {title}?",
    "who voices the main character in the {title} anime?",
    "how much does a trip to Japan cost?",
    "what's {title} rated on MyAnimeList?",
    "can you help me draw manga, what pen should I use?",
    "is it legal to sell my own {title} fan art?",
    "explain the ending of {title} to me in detail",
    "what's the best {genre} anime?",
    'recommend some {genre} anime to watch',
    'how much do manga artists earn?',
    'what time does the {title} anime episode drop?',
)

#: Templates per intent, keyed by the labels of ``MANGA_INTENTS``.
INTENT_TEMPLATES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "recommendation": RECOMMENDATION_TEMPLATES,
        "product_details": PRODUCT_DETAILS_TEMPLATES,
        "price": PRICE_TEMPLATES,
        "order_status": ORDER_STATUS_TEMPLATES,
        "shipping": SHIPPING_TEMPLATES,
        "returns_refunds": RETURNS_REFUNDS_TEMPLATES,
        "account_help": ACCOUNT_HELP_TEMPLATES,
        "escalation": ESCALATION_TEMPLATES,
        "greeting": GREETING_TEMPLATES,
        "out_of_scope": OUT_OF_SCOPE_TEMPLATES,
    }
)

#: Indirect, long-tail phrasings per intent: they avoid the obvious keywords ("refund",
#: "ship", "how much") and use many synonyms, so a keyword matcher cannot lean on them.
RECOMMENDATION_INDIRECT: tuple[str, ...] = (
    "[my|our] [kid|teen|partner] [devoured|tore through|binged] {title}, what [else|now]?",
    "[stuck|bored|lost] between series, help me pick my next read",
    "what would a {title} fan [enjoy|dig|get into] [next|after that]?",
    "[craving|in the mood for] something [cozy|bleak|funny|epic|romantic] [tonight|this weekend]",
    "need my next [obsession|binge|addiction] after {title}",
    "which [series|manga] has [the best|great|amazing] [fights|worldbuilding|art|characters]?",
    "[point me to|show me] [a few|some] {genre} titles [worth my time|that are actually good]",
    "what's [popular|hot|everyone reading] [with teens|right now|among {genre} fans]?",
    "my [friend|coworker|sister] [hates|doesn't like] {genre}, what [might|would] win them over?",
    "what [should|could] I [grab|try|read] [if|since] I [adored|liked] {author}'s [work|style]?",
    "[got|have] a [long weekend|week off|snow day] coming, what [series|manga] [should I|could I] [dive "
    "into|marathon]?",
    "[anything|something] [that feels|that reads] like [watching|reading] {title} [for the first time|again]?",
    "I [want|need] [to cry|a good laugh|to be scared], [give me|what's] a [manga|series] [for that|that does that]",
    "[surprise me|pick one for me] - I [like|enjoy] {genre} [and|but also] [comedy|romance|action|horror]",
    "[who|which author] [writes|draws] [stuff|stories] [similar to|in the vein of] {author}?",
)

PRODUCT_DETAILS_INDIRECT: tuple[str, ...] = (
    "[roughly|about] how thick is {title} vol {vol}?",
    "[does|will] {title} [end|wrap up] [in|at] vol {vol}?",
    "[which|what] [translator|imprint|publisher] [handles|does] the English {title}?",
    "are there [any extras|bonus chapters|afterwords|author notes] in {title} vol {vol}?",
    "are {title} [books|volumes] [glossy|matte|larger than normal|A5 sized]?",
    "[what's the|whats the] [release date|publication date|street date] [for|of] {title} vol {vol}?",
    "[how mature|how violent|how dark|how scary] is {title}?",
    "[can you confirm|just checking] {title} vol {vol} is the [english|uncensored|newest] [release|printing|edition]",
    "[got|do you have] {title} vol {vol} [on the shelf|ready to go|available now]?",
    "[is|was] {title} [ever|] [censored|edited|abridged] in the [english|US] [release|version]?",
    "is there [furigana|a glossary|a page of translation notes] in {title}?",
    "[what|which] [arc|part|story] does {title} vol {vol} [cover|start]?",
    "what [condition|state] are the [second hand|pre-owned] {title} [copies|volumes] in?",
    "does the {series} box set [have|come with] a [slipcase|collector box|sturdy box]?",
    "are [the|all the] {title} [volumes|books] [still|currently] in print?",
)

PRICE_INDIRECT: tuple[str, ...] = (
    "[what's|whats] the [damage|total|cost] for {title} vols 1-{vol}?",
    "[could I get|any chance of] [a deal|a better price|money off] on {title}?",
    "are there any [deals|promos|markdowns|bargains] on {genre} [this week|right now]?",
    "does {title} ever [go on sale|get discounted|drop in price]?",
    "how much [would it|will it] [set me back|run me] to get {title}?",
    "is {price} [a fair|a good|the usual] price for {title} vol {vol}?",
    "[cost|costs] of the {series} box set [vs|versus|compared to] buying [singles|individual volumes]?",
    "[do you|can you] [match|beat] a lower price [I saw|from another store] for {title}?",
    "how much would the full run of {title} [come to|add up to]?",
    "[is it|would it be] [cheaper|less] to [preorder|wait for] {title} vol {vol}?",
    "[what|how much] [do|would] [three|a few|two] volumes of {title} [come to|cost me]?",
    "{title} vol {vol} [costs|is] {price}? [seems|that's] [high|steep|a lot]",
    "[got|have] a [coupon|voucher|gift code], [does|will] it [work|apply] on {title}?",
    "are [box sets|omnibuses] [cheaper|a better deal] [per book|overall] than [singles|single volumes]?",
    "[any|are there] [loyalty|member|bundle] [savings|deals|prices] on {genre} [series|box sets]?",
)

ORDER_STATUS_INDIRECT: tuple[str, ...] = (
    "[still|been] waiting on my [stuff|books|manga|package] from {date}",
    "[any news|any update|what's happening] [on|with] {order}?",
    "[nothing|no package] [showed up|has arrived] [yet|today] [for|from] {order}",
    "I [bought|purchased|paid for] {title} [last|this] [week|month] and [nothing|no box] [yet|so far]",
    "{order} [says|shows] [label created|in transit|out for delivery] [for days|since {date}|forever]",
    "[did {order} leave|has {order} left] the warehouse [yet|already]?",
    "[where's|wheres|where is] my [stuff|parcel|delivery|package]?",
    "[can|could] you [stop|halt|hold] {order} before it [goes out|leaves|ships]?",
    "the [books|volumes] I [ordered|bought] on {date} [haven't|still haven't] [come|turned up]",
    "[what|which] [stage|step] is {order} [at|in] [now|right now]?",
    "[it's|its] been [a week|two weeks|{days} days] since I [paid|checked out] and [nothing|no tracking] [yet|so far]",
    "has my {title} [preorder|purchase] [gone out|shipped|been sent] [yet|already]?",
    "[the|my] [courier|carrier|mailman] [never came|didn't show|missed me] [with|for] {order}",
    "[can you|pls] [look up|find|check on] [my purchase|what I bought] [from|on] {date}?",
    "[my|the] [package|parcel|box] [says|shows] [delayed|exception|held at customs] [for|on] {order}",
)

SHIPPING_INDIRECT: tuple[str, ...] = (
    "how many days [to get|for a parcel to get|for delivery] to {city}?",
    "which [carriers|couriers|services] [deliver|go] to {country}?",
    "does {country} [get|have] [free|cheap|tracked] [delivery|postage]?",
    "how much [is postage|does postage cost] [to|for] {country}?",
    "[any|is there a] way to get [books|my stuff|it] [faster|quicker|by {date}] in {city}?",
    "[do you|can you] [post|mail|send] [books|manga|parcels] [abroad|overseas|to {country}]?",
    "[what's|whats] the [cutoff|deadline] [to get|for] [delivery|arrival] [before|by] {date}?",
    "are [deliveries|parcels] [left at the door|signed for|insured]?",
    "[how fast|how quickly] [can|does] [stuff|a box] [get|reach] [to|] {city}?",
    "do you have [express|priority|economy] [options|postage] [for|to] {country}?",
    "[how much do you charge|what would it cost] to [send|deliver] [a couple of|a few] books to {city}?",
    "is [weekend|saturday|evening] delivery [possible|available] in {city}?",
    "[do|will] [parcels|books|orders] to {country} [go|travel] by [air|sea|ground]?",
    "[will|would] [import|customs|VAT] [charges|fees] [apply|hit me] [in|for] {country}?",
    "[ordering|buying] [soon|next week] - [what's|how long is] the [usual|typical] [transit|delivery] time to "
    "{country}?",
)

RETURNS_REFUNDS_INDIRECT: tuple[str, ...] = (
    "{title} vol {vol} [came|arrived] with [half the pages glued|a coffee stain|a cracked spine|the cover ripped], "
    "what can you do?",
    "[can I|how do I] [send back|swap|give back] a [book|volume|copy] I [don't like|bought by mistake|already own]?",
    "[money back|reimbursement|my money] [for|on] {order} [please|when?|hasn't come]",
    "[wrong|incorrect|different] [book|volume|edition] in my [box|package|parcel], [help|what now]?",
    "[the|my] {series} box set [is|was] [dented|crushed|scratched|wet] [on arrival|when it came|out of the box]",
    "are [returns|exchanges] [free|possible] [after {days} days|on sale items|on preorders]?",
    "[I'd like|I want|can I have] [a replacement|a new copy|an exchange] [for|of] {title} vol {vol}",
    "[got charged|was billed] [twice|double|the wrong amount] for {title}, [can you|please] [fix|reverse] [it|that]?",
    "[don't|do not] [want|need] {title} [anymore|after all], [what do I do|how does that work]?",
    "[how|when] [will|do] I get [reimbursed|credited|paid back] for {order}?",
)

ACCOUNT_HELP_INDIRECT: tuple[str, ...] = (
    "[can't|cannot|unable to] [sign in|get in|access my profile]",
    "[my|the] [verification|sign-in|2FA] code [isn't arriving|never comes|doesn't show up]",
    "[how do I|where do I] [edit|update|fix] my [profile|details|contact info|saved addresses]?",
    "[it keeps saying|error says] [wrong password|invalid login|user not found]",
    "[I|we] [made|created|have] [two|duplicate] [profiles|accounts] by accident",
    "[remove|delete|wipe] my [card|data|info] from your [site|system|records]",
    "[how do I|can I] [opt out of|stop|mute] [newsletters|promo emails|notifications]?",
    "[lost|forgot] [access to|the password for] the email [I signed up with|on my account]",
    "[my|the] [profile|account] [page|settings] [won't load|is blank|shows an error]",
    "[how do I|can I] [switch|move] my [login|sign in] to [google|apple|a new email]?",
)

ESCALATION_INDIRECT: tuple[str, ...] = (
    "[I've had enough|I'm fed up|this is ridiculous], [I'm going to|gonna] [call my card company|go to my bank|get a "
    "lawyer|take you to small claims]",
    "[you people|your company] [stole|took] my money [and|,] [I want|get me] [someone in charge|a real answer]",
    "[somebody|someone] [got into|accessed|broke into] my [account|profile] and [bought|ordered] [stuff|books]",
    "[going to|I will] [report|expose|post about] [you|this store] [everywhere|on twitter|to the authorities]",
    "[need|want] [an actual|a living|a real] [person|human being|agent], [now|not a bot|today]",
    "[my|our] [child|kid|daughter|son] [got hurt on|was injured by|cut themselves on] [the packaging|a box set|a "
    "staple]",
    "[your driver|a delivery guy|an employee|one of your staff] [was abusive|yelled at me|made threats|followed me "
    "home]",
    "[I|we] [never authorized|did not authorize|didn't make] [these|those] [charges|purchases]",
    "I'm [in a really dark place|not okay|thinking about ending it], [please|can] [someone|a person] [talk to me|help]",
    "[this|that] [is|was] [the last straw|outrageous|criminal], [escalate|forward] [it|this] [now|immediately|today]",
)

GREETING_INDIRECT: tuple[str, ...] = (
    "[heya|howdy|greetings|hey hey][!|]",
    "[hi|hello], [nice|good] to [meet|see] you",
    "[thanks|thank you|cheers], [bye|see ya|take care][!|]",
    "[ok|okay|alright] [that's it|we're done|all good], [thanks|thx|cheers]",
)

OUT_OF_SCOPE_INDIRECT: tuple[str, ...] = (
    "[what's|whats] [the plot|the story] of the {title} [movie|live action]?",
    "[how do I|can you teach me to] [draw|ink|screentone] like {author}?",
    "[can you|pls] [summarize|explain] [chapter|episode] [12|100|1000] of {title} [for me|in detail]",
    "[where|how] [can I|do I] [download|rip|get] {title} [raws|epubs|for free]?",
    "which is better, [cats or dogs|tabs or spaces|tea or coffee]?",
    "[what's|whats] your [opinion|take] on [politics|religion|the news]?",
    "[do|can] you [dream|feel things|fall in love]?",
    "[help me|can you] [write|fix] my [resume|cover letter|homework]",
    "who [dies|wins|ends up together] at the end of {title}?",
    "[what|which] [laptop|phone|headphones] should I [buy|get]?",
)

#: Indirect phrasings per intent, keyed by the labels of ``MANGA_INTENTS``.
INDIRECT_TEMPLATES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "recommendation": RECOMMENDATION_INDIRECT,
        "product_details": PRODUCT_DETAILS_INDIRECT,
        "price": PRICE_INDIRECT,
        "order_status": ORDER_STATUS_INDIRECT,
        "shipping": SHIPPING_INDIRECT,
        "returns_refunds": RETURNS_REFUNDS_INDIRECT,
        "account_help": ACCOUNT_HELP_INDIRECT,
        "escalation": ESCALATION_INDIRECT,
        "greeting": GREETING_INDIRECT,
        "out_of_scope": OUT_OF_SCOPE_INDIRECT,
    }
)

#: Longer but genuinely borderline messages: annotators disagree on them, so each
#: carries a label distribution instead of one label (irreducible error, like
#: :data:`AMBIGUOUS_QUERIES`, but in full sentences).
BORDERLINE_TEMPLATES: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = (
    (
        "I ordered {title} vol {vol} and it's [not what I expected|different from the photos]",
        (("returns_refunds", 0.6), ("product_details", 0.25), ("order_status", 0.15)),
    ),
    (
        "can I still get {title} vol {vol} by {date}?",
        (("shipping", 0.45), ("product_details", 0.3), ("order_status", 0.25)),
    ),
    (
        "my {series} box set came damaged and nobody is answering my emails",
        (("returns_refunds", 0.85), ("escalation", 0.15)),
    ),
    (
        "is {series} vol {vol} cheaper in the box set or should I just wait for the next volume?",
        (("price", 0.65), ("recommendation", 0.35)),
    ),
    ("I can't find my order [anywhere|in the app|on the site]", (("order_status", 0.55), ("account_help", 0.45))),
    ("do you have {title}?", (("product_details", 0.7), ("price", 0.15), ("recommendation", 0.15))),
    ("anything new from {author}?", (("recommendation", 0.5), ("product_details", 0.5))),
    (
        "I need to change my [address|delivery address]",
        (("account_help", 0.45), ("order_status", 0.4), ("shipping", 0.15)),
    ),
    ("I was charged {price} but the site said less", (("price", 0.45), ("returns_refunds", 0.55))),
    ("my order {order} is [wrong|messed up|not right]", (("returns_refunds", 0.6), ("order_status", 0.4))),
    (
        "the {title} volume I got looks different from the listing",
        (("returns_refunds", 0.55), ("product_details", 0.45)),
    ),
    (
        "is {title} vol {vol} coming back [soon|in stock]?",
        (("product_details", 0.65), ("order_status", 0.2), ("shipping", 0.15)),
    ),
    (
        "{title} vol {vol} hasn't shipped and I [want|might want] to cancel",
        (("order_status", 0.6), ("returns_refunds", 0.4)),
    ),
    ("can I get {title} delivered to {country} for under {price}?", (("shipping", 0.55), ("price", 0.45))),
    (
        "why haven't I heard back about {order}?",
        (("order_status", 0.7), ("returns_refunds", 0.3)),
    ),
    ("I keep getting emails about {title}", (("account_help", 0.7), ("product_details", 0.2), ("out_of_scope", 0.1))),
    ("is {title} ok for [kids|a 10 year old|young readers]?", (("product_details", 0.55), ("recommendation", 0.45))),
    ("which edition of {series} should I buy?", (("recommendation", 0.5), ("product_details", 0.35), ("price", 0.15))),
    (
        "can you do anything about {order}? it's a mess",
        (("escalation", 0.6), ("returns_refunds", 0.2), ("order_status", 0.2)),
    ),
    ("I want to talk about my refund", (("returns_refunds", 0.85), ("escalation", 0.15))),
    ("hi, I have a problem", (("greeting", 0.4), ("order_status", 0.35), ("account_help", 0.25))),
    ("do you sell {title} [merch|figures|posters]?", (("out_of_scope", 0.5), ("product_details", 0.5))),
    ("can I get {title} in [Spanish|French|German]?", (("product_details", 0.75), ("out_of_scope", 0.25))),
    ("what's the deal with {title} vol {vol}?", (("product_details", 0.5), ("price", 0.3), ("order_status", 0.2))),
    ("my payment for {title} didn't go through", (("account_help", 0.45), ("order_status", 0.4), ("price", 0.15))),
    ("is the {series} box set a good gift?", (("recommendation", 0.65), ("product_details", 0.35))),
    ("I got an email that my order was cancelled?", (("order_status", 0.7), ("account_help", 0.3))),
    ("the {title} preorder price changed", (("price", 0.6), ("order_status", 0.25), ("returns_refunds", 0.15))),
)

#: Short underspecified queries and the distribution of intents they carry.
AMBIGUOUS_QUERIES: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = (
    ("{title}", (("product_details", 0.4), ("recommendation", 0.35), ("price", 0.25))),
    ("{title}?", (("product_details", 0.4), ("price", 0.35), ("recommendation", 0.25))),
    ("{title} price?", (("price", 0.85), ("product_details", 0.15))),
    ("{title} vol {vol}", (("product_details", 0.45), ("price", 0.35), ("order_status", 0.2))),
    ("vol {vol}?", (("product_details", 0.45), ("price", 0.3), ("order_status", 0.25))),
    ("{series} box set", (("product_details", 0.4), ("price", 0.4), ("recommendation", 0.2))),
    ("{author}", (("recommendation", 0.55), ("product_details", 0.45))),
    ("{genre}", (("recommendation", 0.85), ("product_details", 0.15))),
    ("{genre} manga", (("recommendation", 0.9), ("product_details", 0.1))),
    ("refund", (("returns_refunds", 0.9), ("order_status", 0.1))),
    ("refund now", (("returns_refunds", 0.8), ("escalation", 0.2))),
    ("help", (("account_help", 0.45), ("greeting", 0.25), ("order_status", 0.3))),
    ("help pls", (("account_help", 0.55), ("order_status", 0.45))),
    ("shipping", (("shipping", 0.75), ("order_status", 0.25))),
    ("shipping cost", (("shipping", 0.6), ("price", 0.4))),
    ("my order", (("order_status", 0.75), ("shipping", 0.1), ("returns_refunds", 0.15))),
    ("{order}", (("order_status", 0.8), ("returns_refunds", 0.1), ("shipping", 0.1))),
    ("cancel", (("order_status", 0.5), ("account_help", 0.3), ("returns_refunds", 0.2))),
    ("cancel order", (("order_status", 0.7), ("returns_refunds", 0.3))),
    ("in stock?", (("product_details", 0.75), ("order_status", 0.25))),
    ("tracking", (("order_status", 0.85), ("shipping", 0.15))),
    ("damaged", (("returns_refunds", 0.85), ("shipping", 0.15))),
    ("wrong book", (("returns_refunds", 0.85), ("order_status", 0.15))),
    ("thanks", (("greeting", 0.9), ("out_of_scope", 0.1))),
    ("ok", (("greeting", 0.7), ("out_of_scope", 0.3))),
    ("manga", (("recommendation", 0.5), ("out_of_scope", 0.3), ("greeting", 0.2))),
    ("anime", (("out_of_scope", 0.6), ("recommendation", 0.4))),
    ("human", (("escalation", 0.75), ("greeting", 0.25))),
    ("agent", (("escalation", 0.7), ("account_help", 0.3))),
    ("password", (("account_help", 1.0),)),
    ("login", (("account_help", 0.9), ("order_status", 0.1))),
    ("email", (("account_help", 0.6), ("order_status", 0.4))),
    ("discount?", (("price", 0.8), ("account_help", 0.2))),
    ("sale", (("price", 0.7), ("recommendation", 0.3))),
    ("new releases", (("recommendation", 0.6), ("product_details", 0.4))),
    ("preorder", (("product_details", 0.45), ("order_status", 0.35), ("price", 0.2))),
    ("charged twice", (("returns_refunds", 0.8), ("account_help", 0.2))),
    ("hello??", (("greeting", 0.85), ("escalation", 0.15))),
    ("free", (("price", 0.4), ("out_of_scope", 0.35), ("shipping", 0.25))),
    ("{country}", (("shipping", 0.9), ("out_of_scope", 0.1))),
    # Vague requests that are a few words longer but just as underspecified.
    ("question about {title}", (("product_details", 0.5), ("price", 0.3), ("recommendation", 0.2))),
    ("problem with my order", (("order_status", 0.5), ("returns_refunds", 0.35), ("shipping", 0.15))),
    ("I need help with an order", (("order_status", 0.6), ("returns_refunds", 0.25), ("account_help", 0.15))),
    ("can someone help me", (("account_help", 0.4), ("order_status", 0.4), ("greeting", 0.2))),
    ("about {title} vol {vol}", (("product_details", 0.4), ("price", 0.3), ("order_status", 0.3))),
    ("{title} delivery", (("shipping", 0.5), ("order_status", 0.5))),
    ("{title} vol {vol} not here yet", (("order_status", 0.8), ("returns_refunds", 0.2))),
    ("money back?", (("returns_refunds", 1.0),)),
    ("still waiting", (("order_status", 0.85), ("returns_refunds", 0.15))),
    ("{country} shipping?", (("shipping", 0.9), ("price", 0.1))),
    ("account", (("account_help", 0.85), ("order_status", 0.15))),
    ("{title} in stock", (("product_details", 0.85), ("order_status", 0.15))),
    ("box set deals", (("price", 0.7), ("recommendation", 0.3))),
    ("something like {title}", (("recommendation", 0.9), ("product_details", 0.1))),
    ("new {author} book?", (("product_details", 0.5), ("recommendation", 0.5))),
    ("this is taking forever", (("order_status", 0.7), ("shipping", 0.3))),
)

# ---------------------------------------------------------------------------
# Class mix and fixed difficulty settings (not knobs: they calibrate the task)
# ---------------------------------------------------------------------------

#: Default relative intent frequencies (they sum to 1); escalation is rare on purpose.
DEFAULT_CLASS_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "recommendation": 0.165,
        "product_details": 0.16,
        "price": 0.12,
        "order_status": 0.13,
        "shipping": 0.10,
        "returns_refunds": 0.08,
        "account_help": 0.06,
        "escalation": 0.035,
        "greeting": 0.07,
        "out_of_scope": 0.08,
    }
)

#: Share of non-ambiguous rows that are :data:`BORDERLINE_TEMPLATES` messages.
BORDERLINE_SHARE: float = 0.08

#: Share of templated rows drawn from ``INDIRECT_TEMPLATES`` instead of ``INTENT_TEMPLATES``.
INDIRECT_SHARE: float = 0.35

#: Share of templated rows that get a plausible wrong label (annotator error).
LABEL_NOISE_RATE: float = 0.015

#: Plausible wrong labels an annotator might pick for each intent. Nothing is flipped
#: *into* the rare escalation class, whose recall is gated on its own.
_LABEL_NEIGHBOURS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "recommendation": ("product_details", "out_of_scope"),
        "product_details": ("price", "recommendation"),
        "price": ("product_details", "shipping"),
        "order_status": ("shipping", "account_help", "returns_refunds"),
        "shipping": ("order_status", "price"),
        "returns_refunds": ("order_status", "price"),
        "account_help": ("order_status", "shipping"),
        "escalation": ("returns_refunds", "account_help"),
        "greeting": ("out_of_scope",),
        "out_of_scope": ("recommendation", "greeting"),
    }
)

# ---------------------------------------------------------------------------
# Conversational wrappers and surface noise
# ---------------------------------------------------------------------------

#: Share of templated rows that get a context sentence before the request.
_CONTEXT_RATE = 0.2
#: Background sentences customers add before their actual request; they carry no intent.
_CONTEXT_CLAUSES: tuple[str, ...] = (
    "I just finished {title} and loved it.",
    "I ordered {title} vol {vol} [last week|a few days ago|on {date}].",
    "I live in {city}.",
    "I've been collecting {title} for [years|a while].",
    "my last order took ages.",
    "I'm buying for my [nephew|niece|partner|brother].",
    "I have an account with my work email.",
    "the last box set I got was a bit dented.",
    "I'm on a budget this month.",
    "I'm a huge {genre} fan.",
    "I'm in {country} [right now|for work|at the moment].",
    "I already own the first {vol} volumes of {title}.",
    "your site is a bit confusing.",
    "I've been waiting all week.",
    "I'm a returning customer.",
    "my friend recommended {title} to me.",
    "I usually buy from {publisher} directly.",
)
#: Intents whose messages never get a context or redirect clause (urgent or unrelated messages).
_NO_CONTEXT_INTENTS: tuple[str, ...] = ("greeting", "out_of_scope", "escalation")

#: Share of templated rows that first rule out a neighbouring intent ("I don't want a refund, ...").
_REDIRECT_RATE = 0.12
#: Clauses that rule out one intent ("I don't want a refund, ..."); the label stays the real ask.
_REDIRECT_CLAUSES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "recommendation": (
            "I don't need recommendations,",
            "not looking for suggestions,",
            "I already know what I want to read,",
        ),
        "product_details": (
            "I already know what {title} is about,",
            "I don't care about the page count,",
            "I know it's in stock,",
        ),
        "price": ("price doesn't matter,", "I'm not asking about the price,", "I know how much it costs,"),
        "order_status": ("my order already arrived,", "this isn't about an existing order,", "I don't need tracking,"),
        "shipping": ("shipping is fine,", "not asking about delivery times,", "I know you ship to {country},"),
        "returns_refunds": (
            "I don't want a refund,",
            "I'm not trying to return anything,",
            "no need for a replacement,",
        ),
        "account_help": ("my account is fine,", "I already reset my password,", "logging in works,"),
        "escalation": ("no need for a manager,", "I don't need a human,", "I'm not complaining,"),
    }
)

#: Shares of non-greeting rows that open with a greeting-like prefix / end with a polite suffix.
_PREFIX_RATE = 0.22
_SUFFIX_RATE = 0.15
_PREFIXES: tuple[str, ...] = (
    "hi, ",
    "hey, ",
    "hello! ",
    "quick question: ",
    "sorry to bother you but ",
    "um ",
    "ok so ",
    "excuse me, ",
    "hi there, ",
    "good morning, ",
    "hey MangaAssist, ",
    "question - ",
    "so ",
    "hello, ",
    "hi again, ",
    "can you help? ",
    "I was wondering, ",
    "one more thing: ",
)
_SUFFIXES: tuple[str, ...] = (
    " thanks!",
    " thx",
    " please",
    " asap",
    " ty",
    " thank you",
    " :)",
    " thanks in advance",
    " cheers",
    " ??",
    " lol",
    " appreciate it",
)

_CHAT_SPEAK: tuple[tuple[str, str], ...] = (
    (r"\bplease\b", "pls"),
    (r"\byou\b", "u"),
    (r"\byour\b", "ur"),
    (r"\bthanks\b", "thx"),
    (r"\bare\b", "r"),
    (r"\bwant to\b", "wanna"),
    (r"\bgoing to\b", "gonna"),
    (r"\bbecause\b", "bc"),
    (r"\bwhat\b", "wat"),
    (r"\bvolume\b", "vol"),
    (r"\bI'm\b", "im"),
    (r"\bdon't\b", "dont"),
    (r"\bcan't\b", "cant"),
    (r"\bwith\b", "w/"),
    (r"\bto\b", "2"),
)
_CHAT_SPEAK_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), replacement) for pattern, replacement in _CHAT_SPEAK
)
_ALTERNATIVES = re.compile(r"\[([^\[\]]*)\]")
_MULTIPLE_SPACES = re.compile(r" {2,}")
_PRONOUN_I = re.compile(r"I\b")
_DOUBLED_ARTICLE = re.compile(r"\b(the) the\b", re.IGNORECASE)
_SPACE_BEFORE_PUNCTUATION = re.compile(r" ([?!.,])")
_EDITION_SUFFIX = re.compile(
    r"[\s:]*(\(.*?\)|(Season .*)?(Complete )?Box Set.*|Omnibus|(Complete )?Deluxe Edition"
    r"|(Complete )?Collector's Edition|3-in-1 Edition|Black Edition|The Perfect Edition)$"
)
_TYPO_WORD = re.compile(r"^[A-Za-z]{4,}$")
_SOFT_PUNCTUATION = re.compile(r"[?!,;:]|\.(?=\s|$)")

# ---------------------------------------------------------------------------
# Slot vocabularies
# ---------------------------------------------------------------------------

_TITLE_ALIASES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "Jujutsu Kaisen": ("JJK", "jujutsu"),
        "Attack on Titan": ("AoT", "shingeki"),
        "My Hero Academia": ("MHA", "BNHA"),
        "Frieren: Beyond Journey's End": ("Frieren",),
        "Fullmetal Alchemist": ("FMA",),
        "Demon Slayer: Kimetsu no Yaiba": ("Demon Slayer", "kimetsu"),
        "Spy x Family": ("spy family", "SxF"),
        "Chainsaw Man": ("CSM", "chainsawman"),
        "Hunter x Hunter": ("HxH", "hunter hunter"),
        "One-Punch Man": ("OPM", "one punch man"),
        "Kaguya-sama: Love Is War": ("Kaguya-sama", "love is war"),
        "That Time I Got Reincarnated as a Slime": ("Slime", "tensura"),
        "JoJo's Bizarre Adventure: Stardust Crusaders": ("JoJo", "jojo part 3"),
        "Yotsuba&!": ("Yotsuba",),
        "Haikyu!!": ("Haikyuu",),
        "Mob Psycho 100": ("Mob Psycho",),
    }
)
_COUNTRIES: tuple[str, ...] = (
    "Canada", "Mexico", "the UK", "Ireland", "Germany", "France", "Australia",
    "New Zealand", "Japan", "Brazil", "the Philippines", "Singapore", "India",
    "South Africa", "Norway", "Poland", "Chile", "Puerto Rico", "Italy", "Spain",
)
_CITIES: tuple[str, ...] = (
    "Toronto", "Vancouver", "London", "Manchester", "Berlin", "Paris", "Sydney",
    "Auckland", "Osaka", "Seattle", "Austin", "Chicago", "Brooklyn", "Miami",
    "Denver", "Portland", "Manila", "Sao Paulo", "Dublin", "Honolulu",
)
_MONTHS: tuple[str, ...] = (
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
)
_WEEKDAYS: tuple[str, ...] = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_FIRST_NAMES: tuple[str, ...] = (
    "kenji", "mari", "alex", "jordan", "sofia", "liam", "yuki", "priya", "diego",
    "hannah", "tom", "aiko", "marcus", "chloe", "omar", "emma", "ravi", "nina",
)
_LAST_NAMES: tuple[str, ...] = (
    "tanaka", "smith", "garcia", "nguyen", "kowalski", "sato", "patel", "brown",
    "mueller", "rossi", "kim", "oconnor", "silva", "johnson", "ito", "lopez",
)
_EMAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com",
    "proton.me", "aol.com", "mail.com", "gmx.de", "yahoo.co.jp",
)
_STREET_NAMES: tuple[str, ...] = (
    "Baker Street", "Maple Ave", "Oak Street", "Sunset Blvd", "Elm Drive",
    "Cedar Lane", "Market St", "Pine Road", "Lakeview Terrace", "Highland Ave",
    "Amphitheatre Pkwy", "Willow Way", "King Street", "Church Road",
)
_ADDRESS_TOWNS: tuple[str, ...] = (
    "Mountain View, CA 94043", "Springfield, IL 62704", "Austin, TX 78701",
    "Portland, OR 97205", "Toronto, ON M5V 2T6", "London NW1 6XE",
    "Brooklyn, NY 11201", "Seattle, WA 98101", "Denver, CO 80202", "Dublin 2",
)

# ---------------------------------------------------------------------------
# PII clauses
# ---------------------------------------------------------------------------

_CONTACT_CLAUSES: tuple[str, ...] = (
    "my email is {email}",
    "email me at {email}",
    "you can reach me at {email}",
    "my account email is {email}",
    "my number is {phone}",
    "call me at {phone}",
    "text me on {phone}",
    "I'm {name}, {email}",
    "this is {name}, my phone is {phone}",
)
_ADDRESS_CLAUSES: tuple[str, ...] = (
    "ship to {address}",
    "my address is {address}",
    "I live at {address}",
    "it should go to {address}",
    "deliver it to {address}",
)
_CARD_CLAUSES: tuple[str, ...] = (
    "my card number is {card}",
    "I paid with card {card}",
    "the card was {card}",
    "charged to {card}",
    "card {card} exp 09/27",
)
#: Intents whose messages plausibly carry an address or a card number.
_ADDRESS_INTENTS: tuple[str, ...] = ("order_status", "shipping", "returns_refunds", "account_help", "escalation")
_CARD_INTENTS: tuple[str, ...] = ("order_status", "returns_refunds", "account_help", "escalation", "price")

# ---------------------------------------------------------------------------
# Malformed rows
# ---------------------------------------------------------------------------

_BLANK_TEXTS: tuple[str, ...] = ("", " ", "   ", "\n", "\t \n")
_INVALID_LABELS: tuple[str, ...] = ("unknown", "", "other", "n/a", "intent_10")
_EXACT_DUPLICATE_SHARE = 2 / 3


# ---------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------


def generate_intent_dataset(
    n_rows: int,
    seed: int = 13,
    *,
    class_weights: Mapping[str, float] | None = None,
    pii_rate: float = 0.06,
    noise_rate: float = 0.15,
    ambiguous_rate: float = 0.08,
    duplicate_rate: float = 0.04,
    malformed_rate: float = 0.005,
) -> pd.DataFrame:
    """Generate ``n_rows`` labelled MangaAssist messages, deterministically.

    Args:
        n_rows: number of rows to return (>= 1).
        seed: seed of the single ``random.Random`` that drives every choice.
        class_weights: relative intent frequencies replacing
            :data:`DEFAULT_CLASS_WEIGHTS`; intents left out get weight 0.
        pii_rate: share of rows with an e-mail, phone, card number or address.
        noise_rate: share of rows with typos, casing, punctuation or chat-speak noise.
        ambiguous_rate: share of short ambiguous queries with a sampled label.
        duplicate_rate: share of rows copying an earlier row (exact or near).
        malformed_rate: share of rows with blank text or an invalid label.

    Returns:
        A frame with exactly the columns ``text`` and ``label`` (both ``str``)
        and ``n_rows`` rows, in shuffled order.

    Raises:
        ValueError: naming the offending argument when one is out of range.
    """
    _validate_arguments(
        n_rows,
        seed,
        {
            "pii_rate": pii_rate,
            "noise_rate": noise_rate,
            "ambiguous_rate": ambiguous_rate,
            "duplicate_rate": duplicate_rate,
            "malformed_rate": malformed_rate,
        },
    )
    n_rows, seed = int(n_rows), int(seed)
    weights = _resolve_class_weights(class_weights)
    rng = random.Random(seed)
    filler = _SlotFiller(load_catalog())

    n_malformed = _malformed_count(n_rows, malformed_rate)
    n_duplicates = _duplicate_count(n_rows, n_malformed, duplicate_rate)
    n_base = n_rows - n_malformed - n_duplicates

    rows = [
        _base_row(rng, filler, weights, pii_rate=pii_rate, noise_rate=noise_rate, ambiguous_rate=ambiguous_rate)
        for _ in range(n_base)
    ]
    rows.extend(_duplicate_rows(rng, rows, n_duplicates))
    rows.extend(_malformed_row(rng, filler, weights) for _ in range(n_malformed))
    rng.shuffle(rows)
    return pd.DataFrame(rows, columns=["text", "label"])


# ---------------------------------------------------------------------------
# Argument handling
# ---------------------------------------------------------------------------


def _validate_arguments(n_rows: int, seed: int, rates: Mapping[str, float]) -> None:
    """Raise ``ValueError`` naming the first invalid argument."""
    if isinstance(n_rows, bool) or not isinstance(n_rows, numbers.Integral) or n_rows < 1:
        raise ValueError(f"n_rows must be an integer >= 1, got {n_rows!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    for name, value in rates.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def _resolve_class_weights(class_weights: Mapping[str, float] | None) -> dict[str, float]:
    """Return validated, normalised weights for every intent (missing ones are 0)."""
    if class_weights is None:
        return dict(DEFAULT_CLASS_WEIGHTS)
    unknown = sorted(str(label) for label in class_weights if label not in MANGA_INTENTS)
    if unknown:
        raise ValueError(f"class_weights has unknown labels {unknown}; expected labels from MANGA_INTENTS")
    for label, weight in class_weights.items():
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"class_weights[{label!r}] must be a finite number >= 0, got {weight!r}")
    total = float(sum(class_weights.values()))
    if total <= 0:
        raise ValueError("class_weights must give at least one intent a positive weight")
    return {label: float(class_weights.get(label, 0.0)) / total for label in MANGA_INTENTS}


def _malformed_count(n_rows: int, malformed_rate: float) -> int:
    """Rows to corrupt: round(n * rate), but at least 1 from 200 rows on."""
    if malformed_rate <= 0:
        return 0
    count = round(n_rows * malformed_rate)
    if n_rows >= 200:
        count = max(1, count)
    return min(count, n_rows)


def _duplicate_count(n_rows: int, n_malformed: int, duplicate_rate: float) -> int:
    """Rows that copy another row, leaving at least one original row to copy."""
    available = n_rows - n_malformed - 1
    if available <= 0:
        return 0
    return min(round(n_rows * duplicate_rate), available)


# ---------------------------------------------------------------------------
# Slot filling
# ---------------------------------------------------------------------------


class _SlotFiller:
    """Fills template slots from the catalog; holds no state beyond the catalog."""

    def __init__(self, catalog: Sequence[CatalogEntry]) -> None:
        self._catalog = tuple(catalog)
        self._genres = tuple(sorted({genre for entry in catalog for genre in entry.genres}))

    def fill(self, template: str, rng: random.Random) -> str:
        """Pick one option of every ``[a|b]`` group, then replace every ``{slot}``."""
        text = _expand_alternatives(template, rng).format_map(self._slot_values(rng))
        return _DOUBLED_ARTICLE.sub(r"\1", text)

    def _slot_values(self, rng: random.Random) -> dict[str, str]:
        """Sample one consistent set of slot values (title, its author, a valid volume, ...)."""
        entry = rng.choice(self._catalog)
        other = rng.choice(self._catalog)
        title = _customer_title(entry.title, rng)
        vol = rng.randint(1, entry.volumes)
        vol2 = rng.randint(1, entry.volumes)
        if vol2 == vol:
            vol2 = vol - 1 if vol > 1 else vol + 1
        return {
            "title": title,
            "title2": _customer_title(other.title, rng),
            "series": _series_name(entry.title, rng),
            "author": entry.author,
            "publisher": entry.publisher,
            "vol": str(vol),
            "vol2": str(vol2),
            "n": str(entry.volumes),
            "price": f"${entry.price_usd:.2f}",
            "genre": rng.choice(self._genres),
            "order": _order_number(rng),
            "date": _date_phrase(rng),
            "days": str(rng.randint(3, 21)),
            "country": rng.choice(_COUNTRIES),
            "city": rng.choice(_CITIES),
        }


def _expand_alternatives(template: str, rng: random.Random) -> str:
    """Replace each ``[a|b|c]`` group by one option (possibly empty) and tidy the spaces."""
    text = _ALTERNATIVES.sub(lambda match: rng.choice(match.group(1).split("|")), template)
    text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", _MULTIPLE_SPACES.sub(" ", text))
    return text.strip()


def _spoken_title(title: str, rng: random.Random) -> str:
    """Render a catalog title the way a customer would type it."""
    aliases = _TITLE_ALIASES.get(title, ())
    if aliases and rng.random() < 0.3:
        return rng.choice(aliases)
    short = re.sub(r"\s*\(.*?\)", "", title)
    if ":" in short and rng.random() < 0.6:
        short = short.split(":", 1)[0]
    return short.lower() if rng.random() < 0.3 else short


def _customer_title(title: str, rng: random.Random) -> str:
    """How a customer names a catalog entry: box sets always, other editions often, by the series name."""
    if "Box Set" in title or (_EDITION_SUFFIX.search(title) and rng.random() < 0.5):
        return _series_name(title, rng)
    return _spoken_title(title, rng)


def series_name(title: str) -> str:
    """The bare series name of a title: ``Berserk Deluxe Edition`` -> ``Berserk``, ``Bleach Box Set 1`` -> ``Bleach``."""
    return _EDITION_SUFFIX.sub("", title)


def _series_name(title: str, rng: random.Random) -> str:
    """The bare series name of a title, for templates that name the edition themselves."""
    return _spoken_title(series_name(title), rng)


def _order_number(rng: random.Random) -> str:
    """An order id such as ``MA-483920`` in one of a few user spellings."""
    digits = f"{rng.randint(100000, 999999)}"
    return rng.choice((f"MA-{digits}", f"MA-{digits}", f"ma-{digits}", f"#MA-{digits}", f"MA{digits}"))


def _date_phrase(rng: random.Random) -> str:
    """A date a customer might mention ("March 3", "3/14", "Monday")."""
    month = rng.randint(1, 12)
    day = rng.randint(1, 28)
    forms = (f"{_MONTHS[month - 1]} {day}", f"{month}/{day}", rng.choice(_WEEKDAYS), f"the {_ordinal(day)}")
    return rng.choice(forms)


def _ordinal(day: int) -> str:
    """English ordinal for a day of the month (1st, 2nd, 3rd, 4th, 11th, ...)."""
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


# ---------------------------------------------------------------------------
# Row construction
# ---------------------------------------------------------------------------


def _base_row(
    rng: random.Random,
    filler: _SlotFiller,
    weights: Mapping[str, float],
    *,
    pii_rate: float,
    noise_rate: float,
    ambiguous_rate: float,
) -> tuple[str, str]:
    """One row before duplication: ambiguous, borderline or templated, then noise and PII."""
    row = None
    if rng.random() < ambiguous_rate:
        row = _distributed_row(rng, filler, weights, AMBIGUOUS_QUERIES)
    elif rng.random() < BORDERLINE_SHARE:
        row = _distributed_row(rng, filler, weights, BORDERLINE_TEMPLATES)
    if row is None:
        row = _templated_row(rng, filler, weights)
    text, label = row
    # Noise first, PII second: customers misspell their words, not their card numbers, and a
    # scrubber downstream should find every injected value.
    if rng.random() < noise_rate:
        text = _apply_noise(text, rng)
    if rng.random() < pii_rate:
        text = _inject_pii(text, label, rng)
    return text, label


def _templated_row(rng: random.Random, filler: _SlotFiller, weights: Mapping[str, float]) -> tuple[str, str]:
    """A filled template of a sampled intent, wrapped and possibly mislabelled."""
    label = _sample_label(rng, weights)
    pool = INDIRECT_TEMPLATES if rng.random() < INDIRECT_SHARE else INTENT_TEMPLATES
    text = filler.fill(rng.choice(pool[label]), rng)
    text = _add_context(text, label, rng, filler)
    text = _add_redirect(text, label, rng, filler)
    text = _wrap_conversationally(text, label, rng)
    return text, _maybe_mislabel(label, rng, weights)


def _sample_label(rng: random.Random, weights: Mapping[str, float]) -> str:
    """Draw an intent according to ``weights``."""
    return rng.choices(MANGA_INTENTS, weights=[weights[label] for label in MANGA_INTENTS])[0]


def _distributed_row(
    rng: random.Random,
    filler: _SlotFiller,
    weights: Mapping[str, float],
    templates: Sequence[tuple[str, tuple[tuple[str, float], ...]]],
) -> tuple[str, str] | None:
    """An ambiguous or borderline message with a label drawn from its intent distribution.

    Intents with zero class weight are removed from each distribution; returns
    ``None`` when the sampled template has no allowed intent left.
    """
    template, distribution = rng.choice(templates)
    allowed = [(label, p) for label, p in distribution if weights[label] > 0]
    if not allowed:
        return None
    label = rng.choices([label for label, _ in allowed], weights=[p for _, p in allowed])[0]
    return filler.fill(template, rng), label


def _add_context(text: str, label: str, rng: random.Random, filler: _SlotFiller) -> str:
    """Sometimes prepend a background sentence that carries no intent of its own."""
    if label in _NO_CONTEXT_INTENTS or rng.random() >= _CONTEXT_RATE:
        return text
    return f"{filler.fill(rng.choice(_CONTEXT_CLAUSES), rng)} {text}"


def _add_redirect(text: str, label: str, rng: random.Random, filler: _SlotFiller) -> str:
    """Sometimes prepend a clause that rules out a neighbouring intent by name."""
    if label in _NO_CONTEXT_INTENTS or rng.random() >= _REDIRECT_RATE:
        return text
    ruled_out = [other for other in _LABEL_NEIGHBOURS[label] if other in _REDIRECT_CLAUSES]
    if not ruled_out:
        return text
    clause = filler.fill(rng.choice(_REDIRECT_CLAUSES[rng.choice(ruled_out)]), rng)
    return f"{clause} {_lowercase_first(text)}"


def _lowercase_first(text: str) -> str:
    """Lower-case the first letter of a sentence that now follows a clause, except the pronoun "I"."""
    return text if _PRONOUN_I.match(text) else text[:1].lower() + text[1:]


def _wrap_conversationally(text: str, label: str, rng: random.Random) -> str:
    """Sometimes add a greeting-like prefix or a polite suffix to a non-greeting message."""
    if label == "greeting":
        return text
    if rng.random() < _PREFIX_RATE:
        text = rng.choice(_PREFIXES) + text
    if rng.random() < _SUFFIX_RATE:
        text = text + rng.choice(_SUFFIXES)
    return text


def _maybe_mislabel(label: str, rng: random.Random, weights: Mapping[str, float]) -> str:
    """With probability ``LABEL_NOISE_RATE`` swap to an allowed neighbouring intent."""
    if rng.random() >= LABEL_NOISE_RATE:
        return label
    neighbours = [other for other in _LABEL_NEIGHBOURS[label] if weights[other] > 0]
    return rng.choice(neighbours) if neighbours else label


# ---------------------------------------------------------------------------
# PII
# ---------------------------------------------------------------------------


def _inject_pii(text: str, label: str, rng: random.Random) -> str:
    """Embed one PII clause before or after ``text``."""
    clause = _pii_clause(label, rng)
    if rng.random() < 0.5:
        text = text.rstrip()
        separator = " " if text.endswith(("?", "!", ".")) else rng.choice((" - ", ", ", ". ", " "))
        return f"{text}{separator}{clause}"
    return f"{clause}. {text}"


def _pii_clause(label: str, rng: random.Random) -> str:
    """A PII clause suited to the intent (addresses and cards only where plausible)."""
    kinds = ["contact"]
    if label in _ADDRESS_INTENTS:
        kinds.append("address")
    if label in _CARD_INTENTS:
        kinds.append("card")
    kind = rng.choice(kinds)
    if kind == "address":
        return rng.choice(_ADDRESS_CLAUSES).format(address=_street_address(rng))
    if kind == "card":
        return rng.choice(_CARD_CLAUSES).format(card=_card_number(rng))
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    return rng.choice(_CONTACT_CLAUSES).format(
        email=_email_address(first, last, rng),
        phone=_phone_number(rng),
        name=f"{first.title()} {last.title()}",
    )


def _email_address(first: str, last: str, rng: random.Random) -> str:
    """A realistic personal e-mail address."""
    local = rng.choice(
        (
            f"{first}.{last}",
            f"{first}{last}{rng.randint(1, 99)}",
            f"{first[0]}{last}",
            f"{first}_{last[0]}",
            f"{first}{rng.randint(1980, 2009)}",
        )
    )
    return f"{local}@{rng.choice(_EMAIL_DOMAINS)}"


def _phone_number(rng: random.Random) -> str:
    """A phone number in one of several national formats (555 numbers for the US)."""
    area = rng.choice(("415", "212", "646", "310", "503", "206", "917"))
    line = f"{rng.randint(100, 199):04d}"
    formats = (
        f"+1 {area}-555-{line}",
        f"({area}) 555 {line}",
        f"{area}.555.{line}",
        f"{area}555{line}",
        f"+44 20 7946 {rng.randint(0, 999):04d}",
        f"+81 90-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
        f"0{rng.randint(400, 499)} {rng.randint(100, 999)} {rng.randint(100, 999)}",
    )
    return rng.choice(formats)


def _card_number(rng: random.Random) -> str:
    """A Luhn-valid 16-digit Visa/Mastercard number, grouped with spaces, dashes or not at all."""
    digits = [rng.choice((4, 5))] + [rng.randint(0, 9) for _ in range(14)]
    digits.append(_luhn_check_digit(digits))
    groups = ["".join(str(d) for d in digits[i : i + 4]) for i in range(0, 16, 4)]
    return rng.choice((" ", "-", " ", "")).join(groups)


def _luhn_check_digit(digits: Sequence[int]) -> int:
    """The digit that makes ``digits + [check]`` pass the Luhn test."""
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10


def _street_address(rng: random.Random) -> str:
    """A street address, sometimes with a unit and a town."""
    address = f"{rng.randint(1, 2400)} {rng.choice(_STREET_NAMES)}"
    if rng.random() < 0.3:
        address += f" Apt {rng.randint(1, 40)}{rng.choice('ABCD')}"
    if rng.random() < 0.6:
        address += f", {rng.choice(_ADDRESS_TOWNS)}"
    return address


# ---------------------------------------------------------------------------
# Surface noise
# ---------------------------------------------------------------------------


def _apply_noise(text: str, rng: random.Random) -> str:
    """Apply one to three noise operations in sequence."""
    operations: tuple[Callable[[str, random.Random], str], ...] = (
        _add_typo,
        _add_typo,
        _change_case,
        _strip_punctuation,
        _chat_speak,
        _extra_whitespace,
    )
    for operation in rng.sample(operations, rng.randint(1, 3)):
        text = operation(text, rng)
    return text


def _add_typo(text: str, rng: random.Random) -> str:
    """Swap, drop or double one letter in one purely alphabetic word."""
    words = text.split(" ")
    candidates = [index for index, word in enumerate(words) if _TYPO_WORD.match(word)]
    if not candidates:
        return text
    index = rng.choice(candidates)
    word = words[index]
    position = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        word = word[:position] + word[position + 1] + word[position] + word[position + 2 :]
    elif kind == 1:
        word = word[:position] + word[position + 1 :]
    else:
        word = word[:position] + word[position] + word[position:]
    words[index] = word
    return " ".join(words)


def _change_case(text: str, rng: random.Random) -> str:
    """ALL CAPS (angry typing) or all lowercase (lazy typing)."""
    return text.upper() if rng.random() < 0.3 else text.lower()


def _strip_punctuation(text: str, rng: random.Random) -> str:
    """Drop sentence punctuation but keep characters inside e-mails, ids and prices."""
    del rng  # deterministic operation; signature shared with the other noise operations
    return _SOFT_PUNCTUATION.sub("", text)


def _chat_speak(text: str, rng: random.Random) -> str:
    """Replace common words by chat-speak ("pls", "u", "thx")."""
    for pattern, replacement in _CHAT_SPEAK_RULES:
        if rng.random() < 0.7:
            text = pattern.sub(replacement, text)
    return text


def _extra_whitespace(text: str, rng: random.Random) -> str:
    """Double a space, or pad the message with stray spaces."""
    if " " in text and rng.random() < 0.6:
        spaces = [index for index, char in enumerate(text) if char == " "]
        index = rng.choice(spaces)
        return text[:index] + "  " + text[index:]
    return rng.choice(("  ", " ", "\t")) + text + rng.choice(("  ", " ", ""))


# ---------------------------------------------------------------------------
# Duplicates and malformed rows
# ---------------------------------------------------------------------------


def _duplicate_rows(rng: random.Random, rows: Sequence[tuple[str, str]], count: int) -> list[tuple[str, str]]:
    """Copies of earlier rows: about two thirds exact, the rest near-duplicates."""
    copies = []
    for number in range(count):
        text, label = rng.choice(rows)
        if number >= round(count * _EXACT_DUPLICATE_SHARE):
            text = _near_duplicate(text, rng)
        copies.append((text, label))
    return copies


def _near_duplicate(text: str, rng: random.Random) -> str:
    """The same message differing only in case, punctuation or whitespace."""
    variants = [
        text.lower(),
        text.upper(),
        text.rstrip("?!. ") if text.rstrip("?!. ") else text + "?",
        text + "?",
        text + "!!",
        "  " + text,
        text.replace(" ", "  ", 1),
        text.capitalize(),
    ]
    rng.shuffle(variants)
    for variant in variants:
        if variant != text:
            return variant
    return text + " "


def _malformed_row(rng: random.Random, filler: _SlotFiller, weights: Mapping[str, float]) -> tuple[str, str]:
    """A row for the cleaning stage to quarantine: blank text or an invalid label."""
    if rng.random() < 0.5:
        return rng.choice(_BLANK_TEXTS), _sample_label(rng, weights)
    text, _ = _templated_row(rng, filler, weights)
    return text, rng.choice(_INVALID_LABELS)
