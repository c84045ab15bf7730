"""Running the real CLI from end-to-end tests."""

import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SMOKE = PROJECT_ROOT / "configs" / "distill_intent_smoke.yaml"


def run_cli(env, cwd, *args, timeout=900):
    """`run.py` with `args` in a subprocess (its ZenML/MLflow stores come from `env`)."""
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "run.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
