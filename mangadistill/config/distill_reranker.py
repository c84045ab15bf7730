"""Config of `distill_reranker`: reranking data, cross-encoder teacher, distilled student, serving, registry.

Defaults are the runbook's section 9 recipe sized for a 2-core CPU: a MiniLM-L6 cross-encoder teacher, a
3-layer student taken from its first three layers, ``alpha * L_sup + (1 - alpha) * MSE + w * L_pair``,
stop rule 9.5, ONNX INT8 served, rerank calls of K = 20 candidates timed one at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from mangadistill.config.base import StrictModel
from mangadistill.config.distill_intent import PACKAGED_MINILM, CostConfig

__all__ = ["DistillRerankerConfig", "RerankDataConfig", "RerankExportConfig", "RerankEvaluationConfig",
           "RerankGeneratedConfig", "RerankRegistryConfig", "RerankStopConfig", "RerankStudentConfig",
           "RerankTeacherConfig", "RerankTrainingConfig"]


class RerankGeneratedConfig(StrictModel):
    """Queries generated over the bundled catalog (`mangadistill.reranker.dataset`)."""

    n_queries: int = Field(500, ge=12, le=5_000, description="Distinct judgeable queries to write.")
    seed: int = Field(11, description="Generator seed (queries, synopses, hard negatives).")
    hard_negatives: int = Field(5, ge=0, le=50, description="Candidates per query the first stage missed that "
                                "share the query's series, author, a genre or a title word.")
    transfer_queries: int = Field(700, ge=0, le=20_000, description="Extra queries written without labels, scored "
                                  "by the teacher, learnt by the distilled student only (those about a held-out "
                                  "series/author/genre set are dropped); 0: none.")


class RerankDataConfig(StrictModel):
    """Where the queries and candidate lists come from, and how they are split (by query group)."""

    source: Literal["generated", "jsonl", "trec"] = Field(
        "generated", description="generated | jsonl ({query, candidates: [{text, label}]}) | trec (qrels + corpus + queries).")
    path: Path | None = Field(None, description="jsonl: the lists file; trec: the qrels file.")
    corpus_path: Path | None = Field(None, description="trec: corpus JSONL ({_id, text[, title]}).")
    queries_path: Path | None = Field(None, description="trec: queries JSONL ({_id, text}).")
    k: int = Field(20, ge=2, le=1000, description="Candidates per query (first stage + hard negatives).")
    generated: RerankGeneratedConfig = RerankGeneratedConfig()
    val_fraction: float = Field(0.15, gt=0.0, lt=0.5, description="Share of query groups for validation.")
    gate_fraction: float = Field(0.2, gt=0.0, lt=0.5, description="Share of query groups for the frozen gate set.")
    split_seed: int = Field(7, description="Split seed; fixed so the gate set stays frozen across runs.")

    @model_validator(mode="after")
    def _paths_match_source(self) -> RerankDataConfig:
        needed = {"generated": (), "jsonl": ("path",), "trec": ("path", "corpus_path", "queries_path")}[self.source]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"{', '.join(missing)}: required when source is '{self.source}'")
        if self.k <= self.generated.hard_negatives:
            raise ValueError(f"k ({self.k}) must exceed generated.hard_negatives ({self.generated.hard_negatives})")
        return self


class RerankTrainingConfig(StrictModel):
    """One training run of a cross-encoder over candidate groups."""

    epochs: int = Field(4, ge=1, le=100, description="Most passes over the training queries (the stop rule may end sooner).")
    learning_rate: float = Field(5.0e-5, gt=0.0, le=1.0, description="Peak AdamW learning rate.")
    batch_queries: int = Field(8, ge=1, le=1024, description="Queries per optimizer step.")
    group_size: int = Field(8, ge=2, le=1000, description="Candidates sampled per query and epoch (of its K).")
    max_length: int = Field(96, ge=16, le=512, description="Tokens of query + passage.")
    weight_decay: float = Field(0.01, ge=0.0, le=1.0, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="Linear warm-up share of all steps.")
    max_grad_norm: float = Field(1.0, gt=0.0, description="Gradient clipping norm.")
    dropout: float | None = Field(None, ge=0.0, lt=1.0, description="Dropout of every layer while training (null: "
                                  "the model's own, 0.1 for MiniLM). Students distil with 0: dropout noise alone "
                                  "puts an MSE of about 0.6 between a copy of the teacher and the teacher.")
    mixed_precision: Literal["no", "bf16", "fp16"] = Field("no", description="accelerate precision (GPU).")
    seed: int = Field(42, description="Seed for init, sampling and dropout.")


class RerankStopConfig(StrictModel):
    """Runbook 9.5 / 10.2: stop on a small NDCG@10 gain or an unstable top-3 swap rate; keep the best epoch."""

    enabled: bool = Field(True, description="Stop early by this rule; off = always run training.epochs.")
    min_ndcg_gain: float = Field(0.002, ge=0.0, le=1.0, description="Validation NDCG@10 gain per epoch below which to stop.")
    max_swap_rate_rise: float = Field(0.1, ge=0.0, le=1.0, description="Top-3 swap-rate rise that counts as unstable "
                                      "(0.1: a tenth of the validation queries newly swapped).")
    min_epochs: int = Field(1, ge=1, le=100, description="Epochs always trained before the rule is consulted.")
    patience: int = Field(2, ge=1, le=20, description="Consecutive epochs the condition must hold (1: the runbook's "
                          "literal rule; 2 rides out one noisy dip of a small validation set).")


class RerankTeacherConfig(StrictModel):
    """The cross-encoder teacher, fine-tuned from a packaged encoder on the labels (pointwise BCE)."""

    model: str = Field(PACKAGED_MINILM, min_length=1, description="Encoder to fine-tune: packaged:all-MiniLM-L6-v2 "
                       "(default), packaged:all-mpnet-base-v2 (stronger, ~5x slower) or a local folder.")
    training: RerankTrainingConfig = RerankTrainingConfig(epochs=2, learning_rate=1.0e-4, batch_queries=4)
    stop: RerankStopConfig = RerankStopConfig()
    score_batch_size: int = Field(64, ge=1, le=4096, description="Pairs per forward pass when scoring every list.")


class RerankStudentConfig(StrictModel):
    """The student: chosen teacher layers, trained with ``alpha * L_sup + (1 - alpha) * MSE + w * L_pair``."""

    teacher_layers: tuple[int, ...] = Field((0, 1, 2), min_length=1, max_length=12,
                                            description="Teacher encoder layers the student keeps (2-3 per the runbook; "
                                            "contiguous from the bottom: 2-layer students did not learn, see README).")
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="Weight of the supervised loss; 1 - alpha goes to MSE.")
    pairwise_weight: float = Field(0.5, ge=0.0, le=100.0, description="Weight of the Margin-MSE pairwise term.")
    centre_mse: bool = Field(True, description="MSE on scores centred on their query's mean (a ranking ignores a "
                             "per-query offset; raw-logit MSE cost 5 NDCG points, README); false: raw logits.")
    training: RerankTrainingConfig = RerankTrainingConfig(epochs=5, learning_rate=2.0e-4, batch_queries=4, dropout=0.0)
    stop: RerankStopConfig = RerankStopConfig(min_epochs=4)
    transfer_epochs: int = Field(2, ge=1, le=100, description="Epochs of the distilled student when the data has "
                                 "transfer queries (labelled + transfer per epoch; 2 x ~800 queries is about the "
                                 "optimizer steps of training.epochs x ~320 labelled ones, which the base student runs).")
    train_base: bool = Field(True, description="Also train the same student on labels only (alpha=1, no teacher), "
                             "from the pretrained encoder's layers: the 'base student' of runbook 9.3.")


class RerankExportConfig(StrictModel):
    """ONNX export and INT8 quantization of the student (the intent track's code)."""

    quantization_target: Literal["auto", "arm64", "avx2", "avx512", "avx512_vnni"] = Field(
        "auto", description="optimum preset; auto detects this CPU.")
    per_channel: bool = Field(True, description="One INT8 scale per output channel of each MatMul weight.")
    embedding_block_size: int | None = Field(32, ge=8, le=4096, description="4-bit block size of the embedding "
                                             "tables (null: keep them fp32).")
    serve: Literal["auto", "onnx_fp32", "onnx_int8_dynamic"] = Field(
        "auto", description="auto: INT8 unless it loses more than max_int8_ndcg_drop NDCG@10 against fp32.")
    max_int8_ndcg_drop: float = Field(0.01, ge=0.0, le=1.0, description="NDCG@10 INT8 may lose and still be served.")


class RerankEvaluationConfig(StrictModel):
    """How rerank calls are timed: one query and its K candidates per call, variants interleaved in one process."""

    latency_calls: int = Field(60, ge=5, le=100_000, description="Timed rerank calls per variant.")
    latency_warmup: int = Field(10, ge=0, le=10_000, description="Untimed calls per variant first.")
    num_threads: int | None = Field(1, ge=1, le=256, description="Threads per model (null: the runtime default).")
    epoch_latency_calls: int = Field(10, ge=0, le=1000, description="Rerank calls timed after each training epoch "
                                     "for the epoch table's p95 column (0: not timed).")


class RerankRegistryConfig(StrictModel):
    model_name: str = Field("mangaassist-reranker", min_length=1, description="MLflow registered model.")


class DistillRerankerConfig(StrictModel):
    """Config of the `distill_reranker` pipeline (runbook 9)."""

    data: RerankDataConfig = RerankDataConfig()
    teacher: RerankTeacherConfig = RerankTeacherConfig()
    student: RerankStudentConfig = RerankStudentConfig()
    export: RerankExportConfig = RerankExportConfig()
    evaluation: RerankEvaluationConfig = RerankEvaluationConfig()
    cost: CostConfig = CostConfig()
    registry: RerankRegistryConfig = RerankRegistryConfig()
