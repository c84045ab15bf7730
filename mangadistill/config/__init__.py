"""Typed, validated configuration, one module per pipeline family.

- `base`: the strict base model, YAML loading with `extends:` layering, one-line errors, path resolution;
- `distill_intent`: data, teacher, student (Stage 1, Stage 2), evaluation, export, cost, refusal, registry;
- `distill_reranker`: the reranker track (ranking data, cross-encoder teacher, distilled student);
- `distill_response`: the response track (prompts, teacher endpoint, LoRA SFT student, rubric evaluation);
- `traffic`: where production-traffic logs come from (drift, shadow, monitoring);
- `drift`: the `drift_report` pipeline;
- `openai_server`: the OpenAI-compatible fine-tuning server (`run.py --serve openai`);
- `lifecycle`: promotion (gates, shadow, rollout), monitoring (triggers) and rollback of any model family.

Every name is re-exported here, so callers write ``from mangadistill.config import StudentConfig``.
"""

from mangadistill.config.base import (
    EXTENDS_KEY,
    ConfigT,
    StrictModel,
    load_config,
    merge_layers,
    parse_config,
    read_layered,
    resolve_relative_paths,
)
from mangadistill.config.distill_intent import *  # noqa: F403
from mangadistill.config.distill_intent import __all__ as _distill_all
from mangadistill.config.distill_reranker import *  # noqa: F403
from mangadistill.config.distill_reranker import __all__ as _reranker_all
from mangadistill.config.distill_response import *  # noqa: F403
from mangadistill.config.distill_response import __all__ as _response_all
from mangadistill.config.drift import *  # noqa: F403
from mangadistill.config.drift import __all__ as _drift_all
from mangadistill.config.lifecycle import *  # noqa: F403
from mangadistill.config.lifecycle import __all__ as _lifecycle_all
from mangadistill.config.openai_server import *  # noqa: F403
from mangadistill.config.openai_server import __all__ as _server_all
from mangadistill.config.traffic import *  # noqa: F403
from mangadistill.config.traffic import __all__ as _traffic_all

__all__ = ["EXTENDS_KEY", "ConfigT", "StrictModel", "load_config", "merge_layers", "parse_config", "read_layered",
           "resolve_relative_paths", *_distill_all, *_reranker_all, *_response_all, *_drift_all, *_lifecycle_all, *_traffic_all,
           *_server_all]
