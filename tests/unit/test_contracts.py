"""Architecture guards for "one owner per contract": what crosses the registry boundary (version tags,
aliases) and the traffic-log boundary is read and written only through its module.

The guards read the source as text and walk its syntax tree (`ast`), so comments and docstrings may
name the calls freely while every real call or attribute access counts. Nothing here imports zenml.
"""

import ast
import re
from pathlib import Path

from mangadistill.config import MonitorConfig, PromoteConfig, load_config
from mangadistill.families.intent import IntentFamily

ROOT = Path(__file__).resolve().parents[2]
RECORD_MODULE = "mangadistill/lifecycle/record.py"
STAGES_MODULE = "mangadistill/lifecycle/stages.py"
TRAFFIC_PACKAGE = "mangadistill/traffic/"


def _production_sources() -> dict[str, ast.Module]:
    files = [ROOT / "run.py", *(path for folder in ("mangadistill", "steps", "pipelines")
                                for path in sorted((ROOT / folder).rglob("*.py")))]
    assert len(files) > 50, "the guards found too few files to be looking in the right place"
    return {path.relative_to(ROOT).as_posix(): ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for path in files}


SOURCES = _production_sources()


def _where(path: str, node: ast.AST, what: str) -> str:
    return f"{path}:{node.lineno}: {what}"


def _called(tree: ast.Module) -> set[int]:
    """ids of the Attribute nodes that are the function of a call (``x.aliases(...)``)."""
    return {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}


def _attribute_uses(names: set[str], skip=lambda node, calls: False) -> list[str]:
    found = []
    for path, tree in SOURCES.items():
        calls = _called(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in names and not skip(node, calls):
                found.append(_where(path, node, f".{node.attr}"))
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("getattr", "setattr") and len(node.args) >= 2
                  and isinstance(node.args[1], ast.Constant) and node.args[1].value in names):
                found.append(_where(path, node, f"{node.func.id}(..., {node.args[1].value!r})"))
    return found


def _outside(found: list[str], owner: str) -> list[str]:
    return [line for line in found if not line.startswith(f"{owner}:")]


# ------------------------------------------------------------------------------ (a) version tags
def _run_tags(node: ast.Attribute, calls: set[int]) -> bool:
    """``run.data.tags`` is an MLflow *run*'s tags and ``client.get_registered_model(name).tags`` the registered
    model's (the stage-move lease), not a model version's."""
    if isinstance(node.value, ast.Attribute) and node.value.attr == "data":
        return True
    value = node.value
    return (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute)
            and value.func.attr == "get_registered_model")


def test_model_version_tags_are_read_and_written_only_by_the_record_module():
    found = _attribute_uses({"set_model_version_tag", "delete_model_version_tag", "tags"}, skip=_run_tags)
    for path, tree in SOURCES.items():  # tags handed to a new version at creation are written too
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("create_model_version", "register_model")
                    and any(keyword.arg == "tags" for keyword in node.keywords)):
                found.append(_where(path, node, f"{node.func.attr}(tags=...)"))
    assert any(line.startswith(f"{RECORD_MODULE}:") for line in found), "the guard no longer sees the owner itself"
    assert _outside(found, RECORD_MODULE) == [], (
        "model-version tags are read or written outside mangadistill/lifecycle/record.py; ask it instead "
        "(read_record / record_of / update_record / find_by_source)")


# ---------------------------------------------------------------------------------- (b) aliases
def _alias_function_call(node: ast.Attribute, calls: set[int]) -> bool:
    """``stages.aliases(client, name)`` calls the owner's function; MLflow's ``.aliases`` is a plain attribute."""
    return node.attr == "aliases" and id(node) in calls


ALIAS_URI = re.compile(r"models:/[^\s'\"]*@")


def test_aliases_are_read_and_moved_only_by_the_stages_module():
    found = _attribute_uses({"set_registered_model_alias", "delete_registered_model_alias",
                             "get_model_version_by_alias", "aliases"}, skip=_alias_function_call)
    for path, tree in SOURCES.items():  # loading ``models:/name@alias`` resolves a stage behind the resolver's back
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ALIAS_URI.search(node.value):
                found.append(_where(path, node, f"alias URI {node.value!r}"))
    assert any(line.startswith(f"{STAGES_MODULE}:") for line in found), "the guard no longer sees the owner itself"
    assert _outside(found, STAGES_MODULE) == [], (
        "registry aliases are read or moved outside mangadistill/lifecycle/stages.py; use version_in_stage / "
        "aliases / the stage moves there")


# ---------------------------------------------------------------------------------- (c) traffic
TRAFFIC_DEFINITIONS = {"simulate_traffic", "load_traffic", "TrafficLog", "for_drift"}
TRAFFIC_READER = re.compile(r"^_?(simulate|read|parse|generate|scrub)\w*traffic", re.IGNORECASE)


def test_exactly_one_traffic_module():
    found = []
    for path, tree in SOURCES.items():
        if path.startswith(TRAFFIC_PACKAGE):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and (
                    node.name in TRAFFIC_DEFINITIONS or TRAFFIC_READER.match(node.name)):
                found.append(_where(path, node, f"defines {node.name}"))
            # the simulator's output is unscrubbed: only load_traffic may run it
            elif isinstance(node, ast.ImportFrom) and node.module and (
                    node.module == "mangadistill.traffic.simulator"
                    or any(alias.name == "simulate_traffic" for alias in node.names)):
                found.append(_where(path, node, f"imports the simulator ({node.module})"))
            elif isinstance(node, ast.Import) and any(a.name == "mangadistill.traffic.simulator" for a in node.names):
                found.append(_where(path, node, "imports the simulator"))
            # a traffic config's log file is opened only by mangadistill.traffic.load_traffic
            elif isinstance(node, ast.Attribute) and node.attr == "path" and (
                    (isinstance(node.value, ast.Attribute) and "traffic" in node.value.attr)
                    or (isinstance(node.value, ast.Name) and "traffic" in node.value.id)):
                found.append(_where(path, node, "reads a traffic config's log path"))
    assert found == [], "traffic logs are simulated or read outside mangadistill/traffic/; call load_traffic"
    assert not (ROOT / "mangadistill" / "drift" / "traffic.py").exists()
    assert not (ROOT / "mangadistill" / "promotion" / "traffic.py").exists()


def test_the_traffic_guard_sees_the_traffic_package_itself():
    defined = {node.name for path, tree in SOURCES.items() if path.startswith(TRAFFIC_PACKAGE)
               for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    assert TRAFFIC_DEFINITIONS <= defined


# ------------------------------------------------------------------ (d) family defaults == shipped YAML
CONFIGS = ROOT / "configs"


def test_intent_defaults_equal_the_shipped_explicit_blocks():
    family = IntentFamily()
    promote = load_config(CONFIGS / "promote_intent.yaml", PromoteConfig)
    monitor = load_config(CONFIGS / "monitor_intent.yaml", MonitorConfig)
    assert promote.offline_gates is not None and promote.shadow.gates is not None and monitor.triggers is not None
    assert promote.offline_gates == family.default_offline_gates()
    assert list(promote.offline_gates) == list(family.default_offline_gates())  # same order in reports
    assert promote.shadow.gates == family.default_shadow_gates()
    assert list(promote.shadow.gates) == list(family.default_shadow_gates())
    assert monitor.triggers == family.default_triggers()
    assert promote.family_options == family.options_model() == monitor.family_options
    assert promote.registered_model == monitor.registered_model == family.model_name
