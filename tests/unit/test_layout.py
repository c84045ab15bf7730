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


def test_readme_layout_names_every_package_and_top_level_folder():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout"):readme.index("## Dependencies")]
    listed = {line.split()[0] for line in layout.splitlines() if line.strip() and not line.startswith(("#", "`"))
              and line.split()[0].endswith("/")}
    packages = {f"{p.name}/" for p in (PROJECT_ROOT / "mangadistill").iterdir()
                if p.is_dir() and (p / "__init__.py").exists()}
    folders = {f"{p.name}/" for p in PROJECT_ROOT.iterdir()
               if p.is_dir() and not p.name.startswith((".", "_")) and p.name not in {"mlruns", "checkpoints", "logs"}
               and not p.name.endswith(".egg-info")}
    assert packages - listed == set(), f"mangadistill packages missing from the README layout: {packages - listed}"
    assert folders - listed == set(), f"top-level folders missing from the README layout: {folders - listed}"
    assert listed - packages - folders <= {"mangadistill/", "unit/", "integration/", "e2e/", "families/",
                                           "fixtures/", "benchmarks/"}, listed - packages - folders
