"""Step: advance the staged rollout on a passing shadow evaluation; at 100% promote to production (never cached)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from mlflow.tracking import MlflowClient
from zenml import step

from mangadistill.config import PromoteConfig
from mangadistill.lifecycle.service import advance_rollout as advance
from mangadistill.lifecycle.stages import flag_ungated_production, stage_table
from steps._context import log_output_metadata

logger = logging.getLogger(__name__)


@step(enable_cache=False, experiment_tracker=True)
def advance_rollout(candidate: dict[str, Any], shadow_report: dict[str, Any],
                    config: PromoteConfig) -> Annotated[dict[str, Any], "promotion"]:
    """Runbook 15.2: 5% shadow -> 10% -> 25% -> 50% -> 100% (= the `production` alias)."""
    client, name, version = MlflowClient(), candidate["name"], candidate["version"]
    if shadow_report.get("skipped") is not None or not shadow_report.get("version"):
        return {"promoted": False, "rollout": None, "flags": flag_ungated_production(client, name),
                "stages": stage_table(client, name)}
    result = advance(client, name, version, bool(shadow_report["passed"]), config)
    result["flags"] = flag_ungated_production(client, name)
    result["stages"] = stage_table(client, name)
    logger.info("rollout of version %s: %s%s", version, result["rollout_note"],
                f"; {result['move']}" if result["promoted"] else "")
    log_output_metadata({"promoted": result["promoted"], "rollout": result["rollout"]})
    return result
