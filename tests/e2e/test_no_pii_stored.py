"""End to end: PII planted in every input path is never stored (issue 12, item 1).

Unique, recognisable values of every kind the scrubber knows (e-mail, phone, card, street addresses with
their postal codes, a Japanese 〒 code, a named postcode, IBANs) are planted in every way outside text gets
in: the training CSV of distill_intent (kept rows, exact and near duplicates, rows quarantined for an
unknown or missing label or an empty text, PII in the label column), the shadow traffic log of
promote_intent (JSONL with a line that is not JSON, a line that is not an object, an object without text),
the traffic log of monitor_intent (CSV) and the log of drift_report (JSONL). The four pipelines run through
the real CLI in a throwaway ZenML + MLflow store (one distill run serves promote, monitor and drift);
about 1.5 minutes on 2 idle cores, 4 when they are shared.

Then everything they stored is collected and searched for the planted values, as written and normalised
(lower case, letters and digits only: the card's 16 digits run together, the IBAN without spaces):
- the console output of every run;
- MLflow, through its API: every run of every experiment (params, tags, metrics, all artifacts
  downloaded), every logged model (params, tags, artifacts: the pyfunc's files), every registered model and
  version (tags, description, aliases, source);
- ZenML, through its API: every artifact version loaded with its materializer and turned into text
  (DataFrames, datasets, dicts, HTML; the text files of model folders), the metadata and config of every
  run, step and artifact, and every log stream of every run and step (`log_collection`, files in the
  artifact store; a stream whose file was never written, i.e. a step that logged nothing, is noted);
- as a catch-all, the raw bytes of every file under the stores' folder: both SQLite databases, the MLflow
  artifact folders, the ZenML artifact store (step logs included) and the `logs/<pipeline>-<time>.log`
  files run.py writes. Compressed files (ZenML's Parquet) are covered by the loaded artifacts above, not by
  this byte scan, and the normalised search runs on text files only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mangadistill.data.intents import MANGA_INTENTS
from mangadistill.data.synthetic import generate_intent_dataset
from tests.e2e._cli import PROJECT_ROOT, run_cli

pytestmark = pytest.mark.e2e

CONFIGS = PROJECT_ROOT / "configs"

# One value of every kind `mangadistill.data.cleaning.scrub_pii` knows; none occurs in the code or the
# bundled data (the package's source travels with the registered model, so a value quoted in a comment of
# cleaning.py would be found there).
PLANTED = {
    "email": "planted.alice.7731@example.org",
    "phone": "+44 20 7946 0615",
    "card": "5312 7731 9904 4128",
    "address_uk": "17 Quillfeather Lane, London EC1V 4PW",
    "address_us": "4417 Marrowbone Street, Springfield, IL 62719",
    "postcode_jp": "〒163-8001 東京都新宿区西新宿2-8-1",
    "postcode": "SW1A 2AA",
    "iban_de": "DE27 7731 0042 8817 5566 01",
    "iban_gb": "GB47QUIL77310042881755",
}
# Parts that give a value away on their own (searched as written, case-insensitively).
FRAGMENTS = ("planted.alice", "7731@example", "7946 0615", "7946-0615", "quillfeather", "marrowbone", "ec1v 4pw",
             "il 62719", "163-8001", "西新宿2-8-1", "sw1a 2aa", "7731 0042", "8817 5566", "quil7731", "7731 9904",
             "9904 4128")
_MIN_NORMALISED = 10  # shorter runs of letters and digits turn up by chance in megabytes of numbers


def _normalise(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def _needles() -> tuple[list[str], list[str]]:
    """(searched as written, lower-cased; searched in the normalised text)."""
    written = sorted({value.lower() for value in PLANTED.values()} | set(FRAGMENTS))
    normalised = set()
    for value in PLANTED.values():
        normalised |= {_normalise(value), re.sub(r"\D", "", value)}
    normalised |= {_normalise(fragment) for fragment in FRAGMENTS}
    return written, sorted(needle for needle in normalised if len(needle) >= _MIN_NORMALISED)


# ------------------------------------------------------------------------------------------ inputs
def _p(template: str) -> str:
    return template.format(**PLANTED)


# (text, label): in-scope rows carrying PII; then rows the cleaning stage quarantines.
TRAIN_PLANTED = [
    (_p("where is my order MA-483920? mail me at {email}"), "order_status"),
    (_p("please call {phone} about my refund"), "returns_refunds"),
    (_p("charge my card {card} for vol 12 of One Piece"), "price"),
    (_p("ship to {address_uk} please"), "shipping"),
    (_p("deliver it to {address_us} by friday"), "shipping"),
    (_p("my address is {postcode_jp}, how long does shipping take?"), "shipping"),
    (_p("refund it to my IBAN {iban_de} please"), "returns_refunds"),
    (_p("send the money back to {iban_gb}"), "returns_refunds"),
    (_p("postcode {postcode}, do you ship there?"), "shipping"),
    (_p("where is my order MA-483920? mail me at {email}"), "order_status"),  # exact duplicate
    (_p("PLEASE CALL {phone} ABOUT MY REFUND!"), "returns_refunds"),         # near duplicate
    (_p("{email} {phone} {card}"), "not_an_intent"),                          # unknown label
    ("", _p("{email}")),                                                      # empty text, PII label
    ("   ", _p("{card}")),                                                    # blank text, PII label
    ("I want to talk to a human now", _p("{phone}")),                         # the label is PII
    (_p("{address_uk} {iban_gb} {postcode_jp}"), ""),                         # no label
]
TRAFFIC_PLANTED = [
    (_p("hi, my email is {email}, where is MA-483920?"), "order_status"),
    (_p("call {phone} or ship to {address_us}"), "shipping"),
    (_p("refund to {iban_de} or {iban_gb}, card {card}"), "returns_refunds"),
    (_p("{address_uk} {postcode_jp} postcode {postcode}"), "shipping"),
    (_p("what do I do with {email}"), _p("{email}")),  # label outside the model's intents
    ("   ", _p("{phone}")),                             # empty text
]
BAD_JSON_LINES = [
    _p('{{"text": "refund {card} to {email}", "label": "returns_refunds"'),  # not JSON (never closed)
    json.dumps(_p("{phone} {address_uk} {iban_de}")),                          # JSON, not an object
    json.dumps({"message": _p("{email} {iban_gb}"), "label": "price"}),       # an object without text
]


def _write_jsonl(path: Path, rows: pd.DataFrame, bad_lines: list[str]) -> None:
    lines = [json.dumps(record, ensure_ascii=False) for record in rows.to_dict("records")]
    lines[len(lines) // 2 : len(lines) // 2] = bad_lines
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _config(folder: Path, name: str, base: str, changes: dict) -> Path:
    path = folder / name
    path.write_text(json.dumps({"extends": str(CONFIGS / base), **changes}, ensure_ascii=False))  # JSON is YAML
    return path


def _inputs(folder: Path) -> dict[str, Path]:
    """The planted input files and the four configs that read them (kept out of the stores' folders)."""
    folder.mkdir()
    traffic = pd.DataFrame(TRAFFIC_PLANTED, columns=["text", "label"])
    train = pd.concat([generate_intent_dataset(160, 13), pd.DataFrame(TRAIN_PLANTED, columns=["text", "label"])])
    train.to_csv(folder / "train.csv", index=False)
    _write_jsonl(folder / "shadow.jsonl", pd.concat([generate_intent_dataset(60, 2027), traffic]), BAD_JSON_LINES)
    pd.concat([generate_intent_dataset(60, 2028), traffic]).to_csv(folder / "monitor.csv", index=False)
    _write_jsonl(folder / "drift.jsonl", pd.concat([generate_intent_dataset(150, 101), traffic])[["text"]],
                 BAD_JSON_LINES)
    data = {"source": "csv", "path": str(folder / "train.csv"), "labels": list(MANGA_INTENTS),
            "rare_labels": ["escalation"], "refusal_label": "out_of_scope"}
    return {
        "distill_intent": _config(folder, "distill.yaml", "distill_intent_smoke.yaml", {"data": data}),
        "promote_intent": _config(folder, "promote.yaml", "promote_intent_smoke.yaml", {
            "shadow": {"traffic": {"source": "jsonl", "path": str(folder / "shadow.jsonl")}}}),
        "monitor_intent": _config(folder, "monitor.yaml", "monitor_intent_smoke.yaml", {
            "traffic": {"source": "csv", "path": str(folder / "monitor.csv")}}),
        "drift_report": _config(folder, "drift.yaml", "drift_report_smoke.yaml", {
            "traffic": {"source": "jsonl", "path": str(folder / "drift.jsonl")}}),
    }


# ---------------------------------------------------------------------------------------- the runs
def _run_and_collect(root: Path) -> dict[str, subprocess.CompletedProcess]:
    """Run the four pipelines on planted inputs in stores under `root`; collect what they hold in `root/collected`."""
    stores = root / "stores"
    stores.mkdir()
    env = {**os.environ, "ZENML_CONFIG_PATH": str(stores / "zenml"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{stores / 'mlflow.db'}", "ZENML_ANALYTICS_OPT_IN": "false"}
    configs = _inputs(root / "inputs")
    outputs, seconds = {}, {}
    for pipeline, config in configs.items():
        start = time.perf_counter()
        result = run_cli(env, stores, "--pipeline", pipeline, "--config", str(config))
        seconds[pipeline] = round(time.perf_counter() - start)
        outputs[pipeline] = result
        allowed = (0, 6) if pipeline == "monitor_intent" else (0,)  # a trigger may fire on the planted log
        assert result.returncode in allowed, f"{pipeline}: " + result.stdout[-3000:] + result.stderr[-3000:]
    collected = root / "collected"
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "tests.e2e.test_no_pii_stored", str(collected)], env=env,
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    seconds["collect"] = round(time.perf_counter() - start)
    assert result.returncode == 0, "collecting the stores failed: " + result.stderr[-3000:]
    (collected / "console").mkdir()
    for pipeline, output in outputs.items():
        (collected / "console" / f"{pipeline}.txt").write_text(output.stdout + output.stderr, encoding="utf-8")
    print(f"seconds: {seconds}")
    return outputs


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """(folder of inputs, stores and what was collected from them, {pipeline: its CLI run})."""
    root = tmp_path_factory.mktemp("no-pii")
    return root, _run_and_collect(root)


def _hits(folder: Path, written: list[str], normalised: list[str]) -> list[str]:
    """'file: needle' for every planted value found in any file under `folder`."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        text = data.decode("utf-8", errors="ignore").lower()
        found += [f"{path.relative_to(folder)}: {needle!r}" for needle in written if needle in text]
        if b"\0" not in data[:8192]:  # a text file: also look for the values with separators dropped
            flat = _normalise(text)
            found += [f"{path.relative_to(folder)}: {needle!r} (normalised)" for needle in normalised if needle in flat]
    return found


def test_every_input_path_was_exercised(stored):
    """The planted rows went where the test says: quarantined, de-duplicated, counted, replayed."""
    root, outputs = stored
    runs = json.loads((root / "collected" / "mlflow_runs.json").read_text(encoding="utf-8"))
    metrics = {run["experiment"]: run["metrics"] for run in runs if "run_id" in run and run["metrics"]}
    distill = metrics["distill_intent"]
    assert distill["data/quarantined"] >= 5 and distill["data/exact_duplicates"] >= 1
    assert distill["data/rows_with_pii"] >= 14 and distill["data/pii_scrubbed_in_cleaning"] == 0
    for kind in ("email", "phone", "card", "address", "postcode", "iban"):
        assert distill[f"data/pii_{kind}"] >= 1, kind
    assert "online_shadow_compare" in outputs["promote_intent"].stdout
    assert metrics["promote_intent"]["shadow/quarantined_rows"] >= 5  # 3 bad JSON lines, an unknown label, a blank
    assert metrics["monitor_intent"]["monitor/quarantined_rows"] >= 2
    drift = metrics["drift_report"]
    assert drift["traffic_quarantined"] >= 4 and drift["traffic_rows_with_pii"] >= 5


def test_no_planted_value_is_stored_anywhere(stored):
    root, _ = stored
    written, normalised = _needles()
    sanity = _hits(root / "inputs", written, normalised)  # the search finds every value where it was planted
    for value in PLANTED.values():
        assert any(repr(value.lower()) in hit for hit in sanity), value
    leaks = _hits(root / "collected", written, normalised) + _hits(root / "stores", written, [])
    assert not leaks, "planted PII stored:\n" + "\n".join(leaks[:60])


# ---------------------------------------------------------------------------- collection (subprocess)
def _text_of(value, seen_dirs: set[str]) -> str:
    """An artifact turned into text: frames as CSV, datasets split by split, model folders' text files."""
    from mangadistill.data.dataset import IntentDataset
    from mangadistill.models.model_dir import ModelDir

    if isinstance(value, pd.DataFrame):
        return value.to_csv()
    if isinstance(value, IntentDataset):
        parts = [value.train, value.val, value.gate, value.quarantine]
        return "\n".join([frame.to_csv() for frame in parts] + [json.dumps(value.report), repr(value.labels)])
    if isinstance(value, ModelDir):
        return _folder_text(Path(value.path), seen_dirs)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, Path) or (isinstance(value, str) and len(value) < 1024 and "\n" not in value):
        return _folder_text(Path(value), seen_dirs) if Path(value).is_dir() else str(value)
    if hasattr(value, "__dict__"):
        return "\n".join(f"{key}: {_text_of(item, seen_dirs)}" for key, item in vars(value).items())
    return str(value)


_TEXT_SUFFIXES = {".json", ".txt", ".md", ".csv", ".yaml", ".yml", ".html", ".log", ".jsonl", ".py", ""}


def _folder_text(folder: Path, seen_dirs: set[str]) -> str:
    if str(folder) in seen_dirs:
        return ""
    seen_dirs.add(str(folder))
    return "\n".join(path.read_text(encoding="utf-8", errors="ignore") for path in sorted(folder.rglob("*"))
                     if path.is_file() and path.suffix.lower() in _TEXT_SUFFIXES)


def _collect_mlflow(out: Path) -> None:
    import mlflow
    from mlflow.entities import ViewType

    client = mlflow.MlflowClient()
    runs = []
    for experiment in client.search_experiments(view_type=ViewType.ALL):
        runs_of = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=10_000)
        for run in runs_of:
            runs.append({"experiment": experiment.name, "run_id": run.info.run_id, "run_name": run.info.run_name,
                         "params": run.data.params, "tags": run.data.tags, "metrics": run.data.metrics})
            mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="",
                                                dst_path=str(out / "mlflow_artifacts" / run.info.run_id))
        for model in client.search_logged_models([experiment.experiment_id]):
            runs.append({"experiment": experiment.name, "logged_model": model.model_id, "name": model.name,
                         "params": model.params, "tags": model.tags, "metrics": {}})
            mlflow.artifacts.download_artifacts(artifact_uri=model.artifact_location,
                                                dst_path=str(out / "mlflow_models" / model.model_id))
    (out / "mlflow_runs.json").write_text(json.dumps(runs, ensure_ascii=False, indent=1), encoding="utf-8")
    registry = []
    for model in client.search_registered_models():
        registry.append({"name": model.name, "description": model.description, "tags": model.tags,
                         "aliases": model.aliases})
        for version in client.search_model_versions(f"name='{model.name}'"):
            registry.append({"version": version.version, "description": version.description, "tags": version.tags,
                             "source": version.source, "run_id": version.run_id, "aliases": version.aliases})
    (out / "mlflow_registry.json").write_text(json.dumps(registry, ensure_ascii=False, indent=1), encoding="utf-8")


def _collect_zenml(out: Path) -> None:
    from zenml.client import Client

    client = Client()
    folder, seen_dirs, metadata = out / "zenml_artifacts", set(), []
    folder.mkdir(parents=True)
    for version in client.list_artifact_versions(size=1000).items:
        metadata.append({"artifact": version.name, "metadata": version.run_metadata})
        text = _text_of(version.load(), seen_dirs)
        (folder / f"{version.name}-{version.id}.txt").write_text(text, encoding="utf-8")
    logs = out / "zenml_step_logs"
    logs.mkdir()
    for run in client.list_pipeline_runs(size=1000).items:
        metadata.append({"run": run.name, "metadata": run.run_metadata, "config": str(run.config)})
        streams = [(f"{run.id}", entry) for entry in run.log_collection or []]
        for name, step in run.steps.items():
            metadata.append({"step": name, "metadata": step.run_metadata})
            streams += [(f"{run.id}-{name}", entry) for entry in step.log_collection or []]
        for number, (name, entry) in enumerate(streams):
            uri = Path(entry.uri) if entry.uri else None
            if uri is None or not uri.exists():  # a stream that was never written (nothing logged)
                metadata.append({"log_stream_without_file": name, "uri": entry.uri})
                continue
            text = _folder_text(uri, set()) if uri.is_dir() else uri.read_text(encoding="utf-8", errors="ignore")
            (logs / f"{name}-{number}.txt").write_text(text, encoding="utf-8")
    (out / "zenml_metadata.json").write_text(json.dumps(metadata, default=str, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":  # the collection, in the throwaway stores' environment (ZENML_CONFIG_PATH, ...)
    target = Path(sys.argv[1])
    target.mkdir(parents=True)
    _collect_mlflow(target)
    _collect_zenml(target)
