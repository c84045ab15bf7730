"""Session fixtures of the end-to-end tests: throwaway ZenML + MLflow stores and one smoke distill_intent run.

Shared by every e2e module, so the smoke model is trained once per test session (drift_report runs
against it).
"""

import os

import pytest

from tests.e2e._cli import SMOKE, run_cli


@pytest.fixture(scope="session")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    env = {**os.environ, "ZENML_CONFIG_PATH": str(root / "zenml"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "ZENML_ANALYTICS_OPT_IN": "false"}
    return root, env


@pytest.fixture(scope="session")
def first_run(stores):
    root, env = stores
    result = run_cli(env, root, "--pipeline", "distill_intent", "--config", str(SMOKE))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result
