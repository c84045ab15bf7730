"""A UserError raised inside a step is recognised from the traceback ZenML stores (no zenml imported here)."""

from mangadistill.errors import DataError
from mangadistill.lifecycle.stages import RegistryStateError
from pipelines.failures import _error_class

TRACEBACK = """Traceback (most recent call last):
  File "/x/zenml/orchestrators/step_runner.py", line 10, in run
    return_values = step_instance.call_entrypoint(**function_params)
  File "/x/mangadistill/traffic/log.py", line 150, in _read_file
    raise DataError(f"{path}: the traffic log is empty")
{last}
"""


def test_the_projects_user_errors_are_recognised_by_their_class():
    assert _error_class(TRACEBACK.replace("{last}", "mangadistill.errors.DataError: x.csv: the traffic log is empty")) \
        is DataError
    last = "mangadistill.lifecycle.stages.RegistryStateError: m: nothing is in production"
    assert _error_class(TRACEBACK.replace("{last}", last)) is RegistryStateError


def test_other_exceptions_stay_failures():
    assert _error_class(TRACEBACK.replace("{last}", "ValueError: bug")) is None  # a bug keeps exit 1 and its traceback
    assert _error_class(TRACEBACK.replace("{last}", "mangadistill.lifecycle.record.VersionRecord: not an error")) is None
    assert _error_class(TRACEBACK.replace("{last}", "mangadistill.nowhere.Missing: gone")) is None
    assert _error_class(TRACEBACK.replace("{last}", "os.system: never imported from outside the project")) is None
    assert _error_class("") is None


def test_a_registry_client_failure_raised_outside_the_life_cycle_is_a_registry_error():
    from mangadistill.lifecycle.faults import RegistryError
    from pipelines.failures import _as_user_error

    last = "mlflow.exceptions.MlflowException: API request to http://127.0.0.1:5999/api/2.0/mlflow/runs/create failed"
    error = _as_user_error(TRACEBACK.replace("{last}", last), "API request to http://127.0.0.1:5999 failed")
    assert isinstance(error, RegistryError) and error.exit_code == 7
    assert str(error).startswith("model registry error: API request") and "nothing was decided" in str(error)
    assert _as_user_error(TRACEBACK.replace("{last}", "KeyError: 'x'"), "x") is None
