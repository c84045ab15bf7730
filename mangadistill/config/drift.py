"""Config of the `drift_report` pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from mangadistill.config.base import StrictModel
from mangadistill.config.distill_intent import PACKAGED_MINILM
from mangadistill.config.traffic import TrafficConfig

# -------------------------------------------------------------------------------------- drift report
#: Evidently stattests a config may name, per column type (see Evidently's "customize data drift").
NumericalStattest = Literal["ks", "wasserstein", "psi", "jensenshannon", "kl_div", "hellinger", "anderson",
                            "cramer_von_mises", "mannw", "ed", "es", "t_test", "emperical_mmd"]
CategoricalStattest = Literal["TVD", "chisquare", "z", "jensenshannon", "psi", "kl_div", "hellinger", "g_test",
                              "fisher_exact"]
TextStattest = Literal["perc_text_content_drift", "abs_text_content_drift"]


class ReferenceDataConfig(StrictModel):
    """The dataset version production traffic is compared with, and which of its splits."""

    artifact_version_id: str | None = Field(
        None, min_length=1,
        description="ZenML artifact version id of an `intent_dataset`. Default: the one of the latest "
        "successful distill_intent run in the active ZenML store.",
    )
    split: Literal["train", "val", "gate"] = Field(
        "gate", description="Split used as reference. gate (default): held-out queries the production model "
        "never trained on, so its predictions and confidence are compared like for like with new traffic; "
        "train: the model fits these more closely than any new query, so predicted_intent and confidence "
        "can drift with nothing changed.",
    )


class ProductionModelConfig(StrictModel):
    """The registered model whose predictions are monitored."""

    model_name: str = Field("mangaassist-intent", min_length=1, description="MLflow registered model.")
    alias: str = Field("production", min_length=1,
                       description="Alias tried first; when the model has no such alias, its newest version.")
    version: str | None = Field(None, pattern=r"^[1-9][0-9]*$", description="Pin a version (overrides alias).")
    batch_size: int = Field(64, ge=1, le=4096, description="Queries per predict call.")


class EmbeddingConfig(StrictModel):
    """Sentence embeddings whose distribution is compared, reduced to principal components."""

    model: str = Field(PACKAGED_MINILM,
                       description="Sentence-transformers folder (mean pooling); also the vocabulary of oov_rate.")
    components: int = Field(3, ge=1, le=20, description="Principal components (fitted on the reference) tested.")
    batch_size: int = Field(64, ge=1, le=4096, description="Queries per encoder batch.")


class DriftDetectionConfig(StrictModel):
    """Per-column drift tests and the dataset-level verdict. A method left empty is Evidently's default."""

    drift_share: float = Field(
        0.3, gt=0.0, le=1.0,
        description="Dataset drift, and a retraining recommendation, when at least this share of the "
        "monitored columns drift.",
    )
    numerical_method: NumericalStattest | None = Field(
        None, description="Default: K-S p-value up to 1000 reference rows, normed Wasserstein above."
    )
    numerical_threshold: float | None = Field(None, gt=0.0, le=1.0, description="Default: the method's own.")
    categorical_method: CategoricalStattest | None = Field(
        "TVD", description="TVD: permutation test of total variation distance; copes with unseen intents."
    )
    categorical_threshold: float | None = Field(0.05, gt=0.0, le=1.0, description="p-value or distance threshold.")
    text_method: TextStattest | None = Field(
        None, description="Default: domain classifier, bootstrap percentile up to 1000 rows, ROC AUC above."
    )
    text_threshold: float | None = Field(None, gt=0.0, le=1.0, description="Default: the method's own.")


class DriftReportConfig(StrictModel):
    """Config of the `drift_report` pipeline."""

    reference: ReferenceDataConfig = ReferenceDataConfig()
    traffic: TrafficConfig = TrafficConfig()
    production_model: ProductionModelConfig = ProductionModelConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    detection: DriftDetectionConfig = DriftDetectionConfig()

__all__ = ['ReferenceDataConfig', 'ProductionModelConfig', 'EmbeddingConfig', 'DriftDetectionConfig', 'DriftReportConfig', 'NumericalStattest', 'CategoricalStattest', 'TextStattest']
