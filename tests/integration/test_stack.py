"""Stack bootstrap is idempotent and follows MLFLOW_TRACKING_URI, in the sandbox ZenML store."""

from zenml.client import Client
from zenml.enums import StackComponentType

from pipelines.stack import REGISTRY_NAME, STACK_NAME, TRACKER_NAME, ensure_stack, sqlite_path


def test_ensure_stack_creates_activates_and_is_idempotent(monkeypatch, tmp_path):
    first = ensure_stack()
    second = ensure_stack()
    client = Client()
    assert first == second
    assert client.active_stack_model.name == STACK_NAME
    components = client.active_stack_model.components
    assert components[StackComponentType.EXPERIMENT_TRACKER][0].name == TRACKER_NAME
    assert components[StackComponentType.MODEL_REGISTRY][0].name == REGISTRY_NAME
    assert len(client.list_stacks(name=STACK_NAME)) == 1
    # the experiment exists with artifacts beside the SQLite file, not under the working directory
    import mlflow

    db = sqlite_path(first.tracking_uri)
    experiment = mlflow.MlflowClient(first.tracking_uri).get_experiment_by_name("distill_intent")
    assert experiment.artifact_location.startswith((db.parent / "artifacts").as_uri())

    other = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    third = ensure_stack()
    tracker = client.get_stack_component(StackComponentType.EXPERIMENT_TRACKER, TRACKER_NAME)
    assert third.tracking_uri == other and tracker.configuration["tracking_uri"] == other
