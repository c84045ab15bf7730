"""The production model of a drift report: which registered version it is, and its predictions.

"Production" is the version of the registered model (`mangaassist-intent`) carrying the configured
alias (``production``); a model without that alias falls back to its newest version, and the report
says which one it used. A pinned version overrides both.
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
from mangadistill.models.encoders import first_line


@dataclass(frozen=True)
class ProductionModel:
    """One registered model version and how it was chosen."""

    name: str
    version: str
    chosen_by: str  # "alias 'production'", "newest version; no alias 'production'" or "pinned version"
    training_run: str | None = None  # the ZenML run that registered it (tag `zenml_pipeline_run`), if known

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
        try:
            found = client.get_model_version(name, config.version)
        except MlflowException as exc:
            raise ModelLoadError(f"production_model.version {config.version} of '{name}' not found "
                                 f"({first_line(exc)})") from None
        return _described(found, "pinned version")
    try:
        return _described(client.get_model_version_by_alias(name, config.alias), f"alias '{config.alias}'")
    except MlflowException:
        pass  # no such alias (or no such model): fall back to the newest version, if any
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise ModelLoadError(f"no registered model '{name}' in {mlflow.get_registry_uri()}; run "
                             "`python run.py --pipeline distill_intent` first, or fix production_model.model_name")
    newest = max(versions, key=lambda version: int(version.version))
    return _described(newest, f"newest version; no alias '{config.alias}'")


def _described(version, chosen_by: str) -> ProductionModel:
    return ProductionModel(version.name, str(version.version), chosen_by, (version.tags or {}).get("zenml_pipeline_run"))


def load_production_model(model: ProductionModel):
    """The version as an MLflow pyfunc; `ModelLoadError` with one line when it does not load."""
    try:
        return mlflow.pyfunc.load_model(model.uri)
    except (MlflowException, OSError, ImportError) as exc:
        raise ModelLoadError(f"{model.uri} does not load: {first_line(exc)}") from None


def predict_intents(pyfunc, texts: Sequence[str], batch_size: int = 64) -> pd.DataFrame:
    """Columns ``predicted_intent`` (str) and ``confidence`` (float), one row per text, in order."""
    batches = [list(texts[start:start + batch_size]) for start in range(0, len(texts), batch_size)]
    parts = [as_predictions(pyfunc.predict(batch), len(batch)) for batch in batches]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"predicted_intent": [], "confidence": []})


def as_predictions(output, n_texts: int) -> pd.DataFrame:
    """The registered pyfunc's output (a DataFrame with ``intent`` and ``confidence``, the top softmax
    probability) as columns ``predicted_intent`` and ``confidence``."""
    if not isinstance(output, pd.DataFrame) or not {"intent", "confidence"} <= set(output.columns):
        found = list(output.columns) if isinstance(output, pd.DataFrame) else type(output).__name__
        raise ModelLoadError(f"the production model returned {found}; expected a DataFrame with 'intent' and "
                             "'confidence' (versions registered before that serving contract need registering again)")
    if len(output) != n_texts:
        raise ModelLoadError(f"the production model returned {len(output)} predictions for {n_texts} queries")
    return pd.DataFrame({"predicted_intent": output["intent"].astype(str).to_numpy(),
                         "confidence": output["confidence"].astype(float).to_numpy()})
