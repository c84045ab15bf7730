"""The MangaAssist intent taxonomy shared by the generator, cleaning and evaluation."""

from __future__ import annotations

#: The ten MangaAssist intents, in the label-id order of the bundled dataset.
MANGA_INTENTS: tuple[str, ...] = (
    "recommendation",
    "product_details",
    "price",
    "order_status",
    "shipping",
    "returns_refunds",
    "account_help",
    "escalation",
    "greeting",
    "out_of_scope",
)

#: Rare but high-risk intents whose recall is gated separately (runbook 6.2, 6.9).
MANGA_RARE_INTENTS: tuple[str, ...] = ("escalation",)

#: The class the assistant answers with a refusal (runbook 4.2 refusal precision/recall).
MANGA_REFUSAL_INTENT: str = "out_of_scope"
