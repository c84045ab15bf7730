"""The production model of a drift report: which registered version it is, and its predictions.

"Production" is the version of the registered model (`mangaassist-intent`) that the configured stage
alias (``production``) points at, resolved by the one stage resolver (`mangadistill.lifecycle.stages`);
a model without that alias falls back to its newest version, and the report says which one it used. A
pinned version overrides both. The version is loaded by the one loader (`mangadistill.lifecycle.loading`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mangadistill.config import ProductionModelConfig
from mangadistill.errors import ModelLoadError
from mangadistill.families import Predictor
from mangadistill.lifecycle import stages
from mangadistill.lifecycle.record import read_record
from mangadistill.models.encoders import first_line


@dataclass(frozen=True)
class ProductionModel:
    """One registered model version and how it was chosen."""

    name: str
    version: str
    chosen_by: str  # "alias 'production'", "newest version; no alias 'production'" or "pinned version"
    training_run: str | None = None  # the pipeline run that registered it, if known

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def as_dict(self) -> dict[str, str | None]:
        return {**asdict(self), "uri": self.uri}


def resolve_production_model(config: ProductionModelConfig, client: MlflowClient | None = None) -> ProductionModel:
    """The version to monitor: the pinned one, else the aliased one, else the newest; `ModelLoadError` if none."""
    client = client or MlflowClient()
    name = config.model_name
    if config.version is not None:
        version, chosen_by = config.version, "pinned version"
    else:
        version, chosen_by = stages.version_with_alias(client, name, config.alias), f"alias '{config.alias}'"
        if version is None:
            version, chosen_by = stages.newest_version(client, name), f"newest version; no alias '{config.alias}'"
    if version is None:
        raise ModelLoadError(f"no registered model '{name}' in {mlflow.get_registry_uri()}; run "
                             "`python run.py --pipeline distill_intent` first, or fix production_model.model_name")
    try:
        record = read_record(client, name, version)
    except MlflowException as exc:
        raise ModelLoadError(f"production_model.version {version} of '{name}' not found ({first_line(exc)})") from None
    return ProductionModel(name, str(version), chosen_by, record.provenance.pipeline_run)


def predict_intents(model: Predictor, texts: Sequence[str], batch_size: int = 64) -> pd.DataFrame:
    """Columns ``predicted_intent`` (str) and ``confidence`` (float, the top softmax probability), one row per text."""
    answers = [answer for start in range(0, len(texts), batch_size)
               for answer in model.predict(list(texts[start:start + batch_size]))]
    if len(answers) != len(texts):
        raise ModelLoadError(f"the production model returned {len(answers)} predictions for {len(texts)} queries")
    return pd.DataFrame({"predicted_intent": [str(a["intent"]) for a in answers],
                         "confidence": [float(a["confidence"]) for a in answers]})
