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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_mlflow_server(root: Path, port: int, timeout: float = 120.0) -> subprocess.Popen:
    """A real `mlflow server` on loopback (SQLite backend and artifact root under `root`), answering when returned."""
    import os
    import time
    import urllib.request

    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
         "--artifacts-destination", str(root / "server-artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"})
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                stop_process_group(server)
                raise RuntimeError(f"mlflow server on port {port} did not start") from None
            time.sleep(0.5)


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop a process started with `start_new_session=True` and everything it started."""
    import os
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def start_server(env, family: str, port: int) -> subprocess.Popen:
    """`run.py --serve <family>` on `port`, polling the registry every second (stop it with `os.killpg`)."""
    return subprocess.Popen([sys.executable, str(PROJECT_ROOT / "run.py"), "--serve", family, "--port", str(port),
                             "--poll-seconds", "1"], env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_for_health(base: str, server: subprocess.Popen, until, timeout: float = 180.0) -> dict:
    """Poll `base`/health until `until(body)` holds; raises when the server exits or `timeout` passes."""
    import time

    import httpx

    deadline, body = time.monotonic() + timeout, None
    while True:
        try:
            body = httpx.get(f"{base}/health", timeout=5).json()
            if until(body):
                return body
        except (httpx.HTTPError, ValueError) as exc:
            body = repr(exc)
        if server.poll() is not None:
            raise RuntimeError(f"server exited: {server.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server did not reach the expected state; last /health: {body}")
        time.sleep(0.5)
