"""Idempotent set-up of the ZenML stack the pipelines run on: local orchestrator and artifact store,
MLflow experiment tracker and MLflow model registry, all pointing at one MLflow store.

MLflow store: ``$MLFLOW_TRACKING_URI`` when set (a server or a database), otherwise the project-local
SQLite file ``mlruns/mlflow.db`` with artifacts in ``mlruns/artifacts``. The ZenML store is ZenML's own
(``$ZENML_CONFIG_PATH`` when set). Safe to call on every run, from any working directory.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from pipelines import PIPELINES, PROJECT_ROOT

logger = logging.getLogger(__name__)

STACK_NAME = "mangaassist_local"
TRACKER_NAME = "mangaassist_mlflow_tracker"
REGISTRY_NAME = "mangaassist_mlflow_registry"
LOCAL_MLFLOW_DIR = PROJECT_ROOT / "mlruns"


def mlflow_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, or the project-local SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{LOCAL_MLFLOW_DIR / 'mlflow.db'}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (absolute; a relative one is relative to the cwd), else None.

    SQLAlchemy's form: ``sqlite:///rel/path.db`` is relative, ``sqlite:////abs/path.db`` absolute. Taking
    ``urlparse(uri).path`` instead gives ``//abs/path.db``, which POSIX keeps as a double-slash path whose
    ``as_uri()`` (``file:////abs/...``) MLflow turns into ``file://abs/...``: artifacts then land in ``/path``.
    """
    if not uri.startswith("sqlite:///"):
        return None
    return Path(urlparse(uri).path[1:]).absolute()


def _tracker_config(uri: str) -> dict[str, str]:
    """Tracker configuration; credentials come from MLflow's standard environment variables."""
    config = {"tracking_uri": uri}
    env = {"tracking_username": "MLFLOW_TRACKING_USERNAME", "tracking_password": "MLFLOW_TRACKING_PASSWORD",
           "tracking_token": "MLFLOW_TRACKING_TOKEN"}
    config.update({key: os.environ[var] for key, var in env.items() if os.environ.get(var)})
    if uri.startswith(("http://", "https://")) and not (
        "tracking_token" in config or {"tracking_username", "tracking_password"} <= config.keys()
    ):
        # ZenML insists on one auth method for remote servers; a server without auth ignores this token.
        config["tracking_token"] = "no-auth"
    return config


@dataclass(frozen=True)
class StackInfo:
    name: str
    tracking_uri: str


def _ensure_component(client, component_type, name: str, flavor: str, configuration: dict) -> None:
    try:
        existing = client.get_stack_component(component_type, name_id_or_prefix=name, allow_name_prefix_match=False)
    except KeyError:
        client.create_stack_component(name=name, flavor=flavor, component_type=component_type, configuration=configuration)
        return
    current = {key: existing.configuration.get(key) for key in configuration}
    if current != configuration or existing.flavor_name != flavor:
        client.update_stack_component(name_id_or_prefix=name, component_type=component_type, configuration=configuration)


def _ensure_experiments(uri: str) -> None:
    """Create each pipeline's MLflow experiment with its artifacts beside a local SQLite store.

    Without this, experiments created against ``sqlite:///`` keep artifacts under ``./mlruns`` relative
    to whatever directory the run started from.
    """
    db = sqlite_path(uri)
    if db is None:
        return
    import mlflow

    db.parent.mkdir(parents=True, exist_ok=True)
    client = mlflow.MlflowClient(tracking_uri=uri)
    for name in PIPELINES:
        if client.get_experiment_by_name(name) is None:
            client.create_experiment(name, artifact_location=(db.parent / "artifacts" / name).as_uri())


def ensure_stack() -> StackInfo:
    """Create or update, then activate, the project's stack; returns its name and MLflow store."""
    from zenml.client import Client
    from zenml.enums import StackComponentType
    from zenml.utils import source_utils

    source_utils.set_custom_source_root(str(PROJECT_ROOT))
    uri = mlflow_tracking_uri()
    _ensure_experiments(uri)
    client = Client()
    _ensure_component(client, StackComponentType.EXPERIMENT_TRACKER, TRACKER_NAME, "mlflow", _tracker_config(uri))
    _ensure_component(client, StackComponentType.MODEL_REGISTRY, REGISTRY_NAME, "mlflow", {})
    default = client.get_stack("default")
    components = {
        StackComponentType.ORCHESTRATOR: default.components[StackComponentType.ORCHESTRATOR][0].name,
        StackComponentType.ARTIFACT_STORE: default.components[StackComponentType.ARTIFACT_STORE][0].name,
        StackComponentType.EXPERIMENT_TRACKER: TRACKER_NAME,
        StackComponentType.MODEL_REGISTRY: REGISTRY_NAME,
    }
    try:
        client.get_stack(STACK_NAME, allow_name_prefix_match=False)
    except KeyError:
        client.create_stack(name=STACK_NAME, components=components)
    if client.active_stack_model.name != STACK_NAME:
        client.activate_stack(STACK_NAME)
    return StackInfo(STACK_NAME, uri)


def activate_existing_stack(name: str) -> StackInfo:
    """Activate a stack the user registered (e.g. remote orchestrator + MLflow server) instead of ours."""
    from zenml.client import Client
    from zenml.enums import StackComponentType
    from zenml.utils import source_utils

    from mangadistill.errors import UserError

    source_utils.set_custom_source_root(str(PROJECT_ROOT))
    client = Client()
    try:
        stack = client.get_stack(name, allow_name_prefix_match=False)
    except KeyError:
        raise UserError(f"--stack {name}: no such ZenML stack (see `zenml stack list`)") from None
    trackers = stack.components.get(StackComponentType.EXPERIMENT_TRACKER) or []
    if not trackers or trackers[0].flavor_name != "mlflow":
        raise UserError(f"--stack {name}: the stack needs an MLflow experiment tracker (zenml stack update -e ...)")
    if client.active_stack_model.id != stack.id:
        client.activate_stack(stack.id)
    return StackInfo(name, str(trackers[0].configuration.get("tracking_uri") or "the stack's local MLflow store"))
