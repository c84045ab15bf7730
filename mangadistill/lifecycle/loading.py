"""THE loader: "load version N of a registered model for prediction", for every reader.

Promotion (shadow), monitoring, drift reports, the server and the benchmarks all load a version through
`load_version`, which reads the version's record and asks its family to load it, with the thread count
the approved benchmark was timed with (so latencies compare like with like).
"""

from __future__ import annotations

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mangadistill.errors import ModelLoadError
from mangadistill.families import Predictor, get_family
from mangadistill.lifecycle.record import VersionRecord, read_record


def load_version(name: str, version: str, record: VersionRecord | None = None, *,
                 client: MlflowClient | None = None, num_threads: int | None = None,
                 default_family: str = "intent") -> Predictor:
    """Version `version` of `name`, loaded by its family; a one-line `ModelLoadError` when it does not load."""
    try:
        record = record or read_record(client or MlflowClient(), name, str(version), default_family)
        threads = num_threads if num_threads is not None else record.serving_threads  # 0: the runtime default
        return get_family(record.family).load(name, str(version), record, threads)
    except (MlflowException, OSError, ImportError, KeyError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"models:/{name}/{version} does not load: {first}") from None
