"""`ModelDir`: a saved classifier folder, usable without importing torch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

#: File in every model folder describing it (labels, role, max length, parameter count, format).
MODEL_CARD = "mangadistill.json"
#: File suffixes that hold weights (what `size_mb` counts).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx")


def read_card(folder: str | Path) -> dict:
    """The `mangadistill.json` card of a model folder; {} for a folder without one (e.g. a user's HF folder)."""
    path = Path(folder) / MODEL_CARD
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


@dataclass(frozen=True)
class ModelDir:
    """A folder holding a saved classifier: HF weights + config, its tokenizer, and `mangadistill.json`.

    The card records labels, role, max length and parameter count, so the folder alone is enough to
    serve the model.
    """

    path: str
    #: True when the folder is scratch space owned by the pipeline: the materializer moves it into the
    #: artifact store instead of copying it. Never set this on a folder a user handed in.
    ephemeral: bool = False

    @property
    def card(self) -> dict:
        return json.loads((Path(self.path) / MODEL_CARD).read_text(encoding="utf-8"))

    @property
    def labels(self) -> list[str]:
        return list(self.card["labels"])

    def size_mb(self) -> float:
        """Size on disk of the weight files (what a deployment ships), in MB (10^6 bytes)."""
        files = [p for p in Path(self.path).rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES]
        return sum(p.stat().st_size for p in files) / 1e6
