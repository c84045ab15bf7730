"""Model families: what differs between tracks (intent classifier, responder, reranker, ...).

`get_family("intent")` returns the registered family; `register_family(family)` adds one (a test family
does this from the tests); `family_for_model("mangaassist-intent")` finds a family by its registered model.

A family that lives outside this package is made known to `run.py` (and to every process it starts)
by naming its module in ``$MANGADISTILL_FAMILIES`` (comma-separated module paths); the module calls
`register_family` when imported.
"""

from __future__ import annotations

import importlib
import os

from mangadistill.errors import ConfigError
from mangadistill.families.base import Answer, Family, FetchArtifact, NoOptions, Predictor

_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Make `family` available by its name (replacing a family of the same name)."""
    _FAMILIES[family.name] = family
    return family


def known_families() -> tuple[str, ...]:
    _load_builtin()
    return tuple(sorted(_FAMILIES))


def get_family(name: str) -> Family:
    """The family called `name`; a `ConfigError` listing the known ones otherwise."""
    _load_builtin()
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ConfigError(f"family '{name}' is unknown; known families: {', '.join(sorted(_FAMILIES))}") from None


def family_for_model(model_name: str) -> Family | None:
    """The family whose default registered model is `model_name`, if any."""
    _load_builtin()
    return next((f for f in _FAMILIES.values() if f.model_name == model_name), None)


#: Environment variable naming extra family modules to import (comma-separated), e.g. ``my_pkg.families.ranker``.
PLUGINS_ENV = "MANGADISTILL_FAMILIES"
_plugins_loaded: set[str] = set()


def _load_builtin() -> None:
    if "intent" not in _FAMILIES:
        from mangadistill.families.intent import IntentFamily

        register_family(IntentFamily())
    if "responder" not in _FAMILIES:
        from mangadistill.families.responder import ResponderFamily

        register_family(ResponderFamily())
    if "reranker" not in _FAMILIES:
        from mangadistill.families.reranker import RerankerFamily

        register_family(RerankerFamily())
    for module in filter(None, (part.strip() for part in os.environ.get(PLUGINS_ENV, "").split(","))):
        if module not in _plugins_loaded:
            _plugins_loaded.add(module)
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ConfigError(f"${PLUGINS_ENV}: cannot import family module '{module}' ({exc})") from None


__all__ = ["Answer", "Family", "FetchArtifact", "NoOptions", "Predictor", "family_for_model", "get_family",
           "known_families", "register_family"]
