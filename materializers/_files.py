"""Small JSON helpers over ZenML's filesystem, so materializers work on any artifact store."""

from __future__ import annotations

import json
import os
from typing import Any

from zenml.io import fileio


def write_json(uri: str, name: str, payload: Any) -> str:
    """Write `payload` as indented JSON to ``uri/name``; returns the path."""
    path = os.path.join(uri, name)
    with fileio.open(path, "w") as handle:
        json.dump(payload, handle, indent=2)
    return path


def read_json(uri: str, name: str) -> Any:
    with fileio.open(os.path.join(uri, name), "r") as handle:
        return json.load(handle)
