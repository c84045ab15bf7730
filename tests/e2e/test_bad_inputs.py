"""End to end: bad inputs reach the user as one line and an exit code, never as ZenML's traceback.

A user's data file is checked before ZenML starts (seconds: imports only, so no ZenML store is ever
created); a `UserError` raised inside a step shows on the console as its `error:` line, while the run's
log file keeps the traceback. Each test gets its own throwaway ZenML and MLflow stores.
"""

import logging
import os

import pytest

from mangadistill.errors import ConfigError, DataError
from mangadistill.lifecycle.stages import RegistryStateError
from tests.e2e._cli import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def isolated(tmp_path):
    """A working directory and stores of this test's own, so it can tell whether ZenML ever started."""
    env = {**os.environ, "ZENML_CONFIG_PATH": str(tmp_path / "zenml"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "ZENML_ANALYTICS_OPT_IN": "false"}
    return tmp_path, env


def _write_bad_csv_columns(path):
    path.write_text("message,intent\nwhere is my order,order_status\nhi,greeting\n")


def _write_random_bytes(path):
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(128, 256)) * 8)


def _write_unclosed_quote(path):
    path.write_text('text,label\nhello,greeting\n"where is my order,order_status\nthanks,greeting\n')


def _write_empty(path):
    path.write_bytes(b"")


def _write_three_rows(path):
    path.write_text('{"text": "hi", "label": "greeting"}\n{"text": "refund please", "label": "returns"}\n'
                    '{"text": "hello", "label": "greeting"}\n')


BAD_FILES = {  # name: (file, source, how to write it, what the one line says after "error: <path>: ")
    "columns": ("queries.csv", "csv", _write_bad_csv_columns, "missing column(s) text, label; found message, intent"),
    "random_bytes": ("queries.csv", "csv", _write_random_bytes, "not UTF-8 text (byte 0x89 cannot be decoded"),
    "unclosed_quote": ("queries.csv", "csv", _write_unclosed_quote, 'the quote (") opened on line 3 is never closed'),
    "empty": ("queries.csv", "csv", _write_empty, "the file is empty; a csv dataset needs a header row"),
    "too_small": ("queries.jsonl", "jsonl", _write_three_rows, "only 3 row(s); the train/validation/gate split"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_data_file_is_one_line_and_exit_3_before_zenml_starts(isolated, case):
    root, env = isolated
    name, source, write, says = BAD_FILES[case]
    data = root / name
    write(data)
    config = root / "bad_data.yaml"
    config.write_text(f"data:\n  source: {source}\n  path: {name}\n")  # relative to the config's folder
    result = run_cli(env, root, "--pipeline", "distill_intent", "--config", str(config), timeout=120)
    assert result.returncode == DataError.exit_code == 3, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {data}: ") and says in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (root / "zenml").exists() and "stack mangaassist_local" not in result.stdout  # ZenML never started
    assert not (root / "logs").exists()  # the run log starts with the pipeline, after these checks


def test_user_error_inside_a_step_is_its_line_on_the_console_and_a_traceback_in_the_log(isolated):
    root, env = isolated
    # an empty store: check_production fails with RegistryStateError ("nothing is in production")
    result = run_cli(env, root, "--pipeline", "monitor_intent", timeout=300)
    console = result.stdout + result.stderr
    assert result.returncode == RegistryStateError.exit_code == 1, console[-4000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "nothing is in production" in lines[-1], result.stderr
    assert "Traceback" not in console and "Skipping step" not in console, console[-4000:]
    logs = list((root / "logs").glob("monitor_intent-*.log"))
    assert len(logs) == 1 and f"logs/{logs[0].name}" in result.stderr  # its path is printed
    log = logs[0].read_text()
    assert "Traceback (most recent call last)" in log and "RegistryStateError: mangaassist-intent: nothing is in" in log
    assert "Skipping step act_on_triggers" in log and log.rstrip().endswith("(exit code 1)")


def test_console_filter_hides_user_errors_only():
    """A bug keeps its traceback (and the "Skipping step" lines) on the console; a user error's goes to the log."""
    from run import _QuietUserErrors

    def record(message, exc=None):
        exc_info = (type(exc), exc, None) if exc is not None else None
        return logging.LogRecord("zenml", logging.ERROR, __file__, 1, message, (), exc_info)

    bug = _QuietUserErrors()
    assert bug.filter(record("Step s failed.", KeyError("x"))) and bug.filter(record("Skipping step t due to s"))
    user = _QuietUserErrors()
    wrapped = RuntimeError("step failed")
    wrapped.__cause__ = ConfigError("bad key")
    assert user.filter(record("Step s has started."))
    assert not user.filter(record("Step s failed.", wrapped))
    assert not user.filter(record("Skipping step t due to failure in upstream step(s): s"))
    assert user.filter(record("Step u has started."))
