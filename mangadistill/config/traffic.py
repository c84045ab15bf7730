"""Where production-traffic logs come from (drift reports, shadow evaluation, monitoring)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from mangadistill.config.base import StrictModel


class TrafficSimulatorConfig(StrictModel):
    """Knobs of the production-traffic simulator (`mangadistill.traffic.simulator`)."""

    n_rows: int = Field(1000, ge=20, le=1_000_000, description="Queries to simulate (before de-duplication).")
    seed: int = Field(101, description="Simulator seed; pick one unlike the training data's.")
    drift: float = Field(
        0.0, ge=0.0, le=1.0,
        description="0: the training distribution; towards 1: a shifted intent mix, new titles and slang, "
        "more out-of-scope traffic.",
    )


class TrafficConfig(StrictModel):
    """Where the production-traffic log comes from (read and simulated only by `mangadistill.traffic`)."""

    source: Literal["simulator", "csv", "jsonl"] = Field(
        "simulator", description="The bundled simulator, or a CSV/JSONL log with `text` (and optional `label`)."
    )
    path: Path | None = Field(None, description="Log file for csv/jsonl sources (relative to the config file).")
    simulator: TrafficSimulatorConfig = TrafficSimulatorConfig()
    max_rows: int | None = Field(None, ge=10, le=10_000_000,
                                 description="Replay at most this many lines of the log (the first ones).")

    @model_validator(mode="after")
    def _path_matches_source(self) -> TrafficConfig:
        if self.source == "simulator" and self.path is not None:
            raise ValueError("path: only used with source csv or jsonl; remove it")
        if self.source != "simulator" and self.path is None:
            raise ValueError(f"path: required when source is '{self.source}'")
        return self


__all__ = ['TrafficSimulatorConfig', 'TrafficConfig']
