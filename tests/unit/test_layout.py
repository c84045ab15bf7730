"""Architecture guard: the core package imports without zenml (steps are the only ZenML adapters)."""

import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_core_package_never_imports_zenml():
    code = (
        "import importlib, pkgutil, sys\n"
        "import mangadistill\n"
        "for m in pkgutil.walk_packages(mangadistill.__path__, 'mangadistill.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(k for k in sys.modules if k == 'zenml' or k.startswith('zenml.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_help_lists_the_pipelines_without_starting_anything():
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "run.py"), "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0
    assert "distill_intent" in result.stdout and "--no-cache" in result.stdout and "exit codes" in result.stdout
