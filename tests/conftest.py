"""Test-wide isolation: every test process gets a throwaway ZenML store and MLflow store.

Set before anything imports zenml or mlflow, so no test touches the user's ~/.config/zenml or the
project's mlruns/.
"""

import os
import sys
import tempfile
from pathlib import Path

_SANDBOX = Path(tempfile.mkdtemp(prefix="mangadistill-tests-"))
os.environ["ZENML_CONFIG_PATH"] = str(_SANDBOX / "zenml")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_SANDBOX / 'mlflow' / 'mlflow.db'}"
os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
(_SANDBOX / "mlflow").mkdir(parents=True, exist_ok=True)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))
