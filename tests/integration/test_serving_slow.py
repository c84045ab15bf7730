"""Slow checks of serving and the registry UI (run with `-m slow`): a 30 s load test with 8 concurrent clients
that moves the `production` alias 10 s in (zero errors, both versions answer; the benchmark's own CLI) and
headless Chromium finding the `production` alias on the promoted version in the MLflow UI."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.test_serving_registry import NAME, free_port, server, store  # noqa: F401 (fixtures)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_load_30s_8_clients_with_an_alias_move_has_no_errors(store, server):  # noqa: F811
    uri, _, v1, v2 = store
    base = server[0]
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "benchmarks" / "load_test_serving.py"), "--url", base,
                             "--seconds", "30", "--concurrency", "8", "--swap-to", v2, "--swap-after", "10"],
                            env={**os.environ, "MLFLOW_TRACKING_URI": uri}, capture_output=True, text=True,
                            timeout=180, check=False)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps(report))
    assert result.returncode == 0 and report["errors"] == 0 and report["ok"] > 100, report
    assert report["model_versions"] == sorted({v1, v2}) and report["swap"]["errors"] == 0, report


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs headless Chromium")
def test_mlflow_ui_shows_the_production_alias(store):  # noqa: F811
    uri, client, v1, v2 = store
    assert client.get_registered_model(NAME).aliases.get("production") is not None
    port = free_port()
    ui = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "run.py"), "--mlflow-ui", "--port", str(port)],
                          env={**os.environ, "MLFLOW_TRACKING_URI": uri}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/2.0/mlflow/registered-models/get?name={NAME}", timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline and ui.poll() is None, "MLflow UI did not start"
                time.sleep(1)
        production = str(client.get_registered_model(NAME).aliases["production"])
        dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                              "--disable-background-networking", "--virtual-time-budget=15000", "--dump-dom",
                              f"{base}/#/models/{NAME}"],
                             capture_output=True, text=True, timeout=120, check=False).stdout
        rows = {re.findall(r"Version (\d+)", row)[0]: row for row in dom.split('role="row"')
                if re.findall(r"Version (\d+)", row)}
        assert set(rows) == {v1, v2}, dom[-2000:]  # the versions table rendered
        chips = {version: re.findall(r"@&nbsp;([\w-]+)", row) for version, row in rows.items()}
        assert "production" in chips[production], chips  # the alias chip sits on the promoted version's row
        assert all("production" not in found for version, found in chips.items() if version != production), chips
    finally:
        os.killpg(ui.pid, 15)
        ui.wait(timeout=30)
