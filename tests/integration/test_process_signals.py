"""SIGTERM or Ctrl+C to `run.py --mlflow-ui` or `run.py --serve` stops everything it started.

`run.py --mlflow-ui` runs `mlflow ui` in a process group of its own (uvicorn and MLflow's job runners
under it); `run.py --serve` runs uvicorn in-process. Each is started on a throwaway SQLite store, asked
until it answers, then sent SIGTERM to its own pid only (what a process manager does) or SIGINT to its
process group (what Ctrl+C in a terminal does; the MLflow UI's group is not the terminal's). Every process
it started must be gone within 20 s, the port free, and the exit code 143 (SIGTERM) or 0 (Ctrl+C).
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from mlflow.tracking import MlflowClient

from tests.integration.test_serving_registry import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and signals as on Linux")


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('signals') / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()  # creates the store: --mlflow-ui refuses a missing one
    return uri


def wait_answering(base: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until the server answers any HTTP status on /health (the model service says 503 with no model)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{base}/health", timeout=2)
            return
        except httpx.HTTPError:
            pass
        assert process.poll() is None, f"exited early: {process.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, "did not answer"
        time.sleep(0.5)


def started_by(process: subprocess.Popen) -> list[psutil.Process]:
    """The process, its descendants and every other member of their process groups."""
    root = psutil.Process(process.pid)
    tree = [root, *root.children(recursive=True)]
    groups = {os.getpgid(p.pid) for p in tree if p.is_running()}
    members = [p for p in psutil.process_iter() if _pgid(p) in groups]
    return list({p.pid: p for p in [*tree, *members]}.values())


def _pgid(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except ProcessLookupError:
        return None


def alive(processes: list[psutil.Process]) -> list[str]:
    left = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{p.pid} {' '.join(p.cmdline()[:4])}")
        except psutil.NoSuchProcess:
            pass
    return left


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False  # something still listens
    with socket.socket() as sock:  # and it can be bound again (TIME_WAIT is fine, as for any server)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize(("command", "how", "exit_code", "at_least"), [
    (["--mlflow-ui"], "SIGTERM to run.py", 143, 3),
    (["--mlflow-ui"], "Ctrl+C", 0, 3),
    (["--serve", "intent", "--poll-seconds", "1"], "SIGTERM to run.py", 143, 1),
    (["--serve", "intent", "--poll-seconds", "1"], "Ctrl+C", 0, 1),
])
def test_a_signal_stops_run_py_and_everything_it_started(store_uri, command, how, exit_code, at_least):
    port = free_port()
    process = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "run.py"), *command, "--port", str(port)],
                               env={**os.environ, "MLFLOW_TRACKING_URI": store_uri}, cwd=PROJECT_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    processes: list[psutil.Process] = [psutil.Process(process.pid)]
    try:
        wait_answering(f"http://127.0.0.1:{port}", process)
        time.sleep(1.0)  # let the MLflow UI start its job runners too
        processes = started_by(process)
        assert len(processes) >= at_least, processes  # run.py (+ mlflow ui, its uvicorn, job runners)
        if how == "Ctrl+C":
            os.killpg(process.pid, signal.SIGINT)  # the terminal signals its foreground group: run.py's
        else:
            os.kill(process.pid, signal.SIGTERM)  # run.py only
        stopped = time.monotonic()
        assert process.wait(timeout=20) == exit_code, process.stdout.read()[-3000:]
        while alive(processes) and time.monotonic() - stopped < 20:
            time.sleep(0.2)
        assert alive(processes) == [], f"still running {time.monotonic() - stopped:.1f} s after {how}"
        assert port_is_free(port)
    finally:  # a failed test leaves nothing behind (only what this test started)
        for leftover in processes:
            try:
                leftover.kill()
            except psutil.NoSuchProcess:
                pass
        process.wait(timeout=10)
