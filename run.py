#!/usr/bin/env python
"""MangaAssist distillation: run a pipeline, open the MLflow UI on the project's store, or serve a model.

Exit codes: 0 success, 1 pipeline failed, 2 bad config, 3 bad data, 4 model does not load, 5 a promotion
gate failed (nothing promoted), 6 a rollback trigger fired, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

from mangadistill.errors import UserError
from mangadistill.families import family_for_model, get_family, known_families
from pipelines import PIPELINES, PipelineEntry


def _parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<16} {entry.description}" for name, entry in PIPELINES.items())
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="Run a MangaAssist distillation pipeline on a local ZenML stack with MLflow tracking.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"pipelines:\n{listing}\n\n"
        "MLflow store: $MLFLOW_TRACKING_URI if set, else sqlite:///<project>/mlruns/mlflow.db.\n"
        "ZenML store: ZenML's default, or $ZENML_CONFIG_PATH if set.\n"
        "exit codes: 0 ok, 1 pipeline failed, 2 bad config, 3 bad data, 4 model does not load,\n"
        "            5 a promotion gate failed (nothing promoted), 6 a rollback trigger fired.",
    )
    parser.add_argument("--pipeline", choices=sorted(PIPELINES), help="pipeline to run")
    parser.add_argument("--config", type=Path, help="YAML config (default: configs/<pipeline>.yaml)")
    parser.add_argument("--no-cache", action="store_true", help="re-run every step instead of reusing cached artifacts")
    parser.add_argument("--stack", metavar="NAME",
                        help="run on an existing ZenML stack with an MLflow tracker (default: create/use the local one)")
    parser.add_argument("--mlflow-ui", action="store_true", help="start the MLflow UI on the project's MLflow store")
    parser.add_argument("--port", type=int, help="port for --mlflow-ui (default 5000) or --serve (default 8000)")
    # life cycle and serving, for any model family
    parser.add_argument("--version", type=int, metavar="N",
                        help="promote*: the version to promote; rollback*: the version to restore")
    parser.add_argument("--model", metavar="NAME",
                        help="promote/monitor/rollback/--serve: the registered model (its family's config, "
                        "configs/<pipeline>_<family>.yaml, is the default); default: the family's own model")
    parser.add_argument("--serve", metavar="FAMILY", choices=known_families(),
                        help=f"serve a family's production model over HTTP ({', '.join(known_families())})")
    parser.add_argument("--host", default="127.0.0.1", help="address for --serve (default 127.0.0.1)")
    parser.add_argument("--poll-seconds", type=float, default=2.0,
                        help="--serve: how often the registry is checked for a new production version (default 2)")
    return parser


def _serve(args: argparse.Namespace) -> int:
    """Serve a family's `<model>@production` with FastAPI/uvicorn until Ctrl+C (see mangadistill/serving)."""
    import uvicorn

    from mangadistill.serving.app import RegistryFollower, create_app
    from pipelines.stack import mlflow_tracking_uri

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uri, port = mlflow_tracking_uri(), args.port or 8000
    name = args.model or get_family(args.serve).model_name
    follower = RegistryFollower(name, tracking_uri=uri, poll_seconds=args.poll_seconds)
    print(f"serving {name}@production from {uri} on http://{args.host}:{port} (Ctrl+C to stop)", flush=True)
    uvicorn.run(create_app(follower), host=args.host, port=port, log_level="warning", access_log=False)
    return 0


def _mlflow_ui(port: int) -> int:
    from pipelines.stack import mlflow_tracking_uri, sqlite_path

    uri = mlflow_tracking_uri()
    if uri.startswith(("http://", "https://")):
        print(f"MLFLOW_TRACKING_URI points at a server; open {uri} in a browser.")
        return 0
    db = sqlite_path(uri)
    if db is not None and not db.exists():
        print(f"error: no MLflow store yet at {db}; run a pipeline first", file=sys.stderr)
        return 2
    print(f"MLflow UI on http://127.0.0.1:{port} for {uri} (Ctrl+C to stop)")
    # one worker: a local UI needs no more, and four take a minute to start on a 2-core laptop
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 0


def _config(args: argparse.Namespace, entry: PipelineEntry):
    """The validated config: --config, else the pipeline's (or, with --model, the model's family's) default;
    then --model and --version applied."""
    from mangadistill.config import load_config, parse_config, resolve_relative_paths
    from mangadistill.errors import ConfigError

    fields = entry.config_model.model_fields
    if args.model is not None and "family" not in fields:
        raise ConfigError(f"--model applies to the life-cycle pipelines (promote, monitor, rollback), not {entry.name}")
    if args.version is not None and "candidate_version" not in fields:
        raise ConfigError(f"--version applies to the promote and rollback pipelines, not {entry.name}")
    family = family_for_model(args.model) if args.model else None
    path = args.config or entry.default_config_for(family.name if family else "intent")
    if args.config is None and family is not None and not path.is_file():  # a family without a shipped config
        config = parse_config({"family": family.name}, entry.config_model, source=f"--model {args.model}")
    else:
        path = path.resolve()
        config = resolve_relative_paths(load_config(path, entry.config_model), path.parent)
    updates = {"model_name": args.model} if args.model else {}
    if args.version is not None:
        updates["candidate_version"] = args.version
    return config.model_copy(update=updates) if updates else config


def _print_summary(name: str, run, module) -> None:
    """The step-status table, then whatever the pipeline module's `summary(run)` renders."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 132)  # piped output: wide enough for the tables
    steps = Table(title=f"{name} run {run.name}", show_header=True)
    steps.add_column("step")
    steps.add_column("status")
    for step_name, step_run in run.steps.items():
        steps.add_row(step_name, str(step_run.status.value))
    console.print(steps)
    for renderable in module.summary(run):
        console.print(renderable, soft_wrap=isinstance(renderable, str))  # keep URIs and ids on one line


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.mlflow_ui:
        return _mlflow_ui(args.port or 5000)
    if args.serve:
        return _serve(args)
    if not args.pipeline:
        _parser().print_help()
        return 2
    entry = PIPELINES[args.pipeline]
    from mangadistill.preflight import preflight

    try:
        config = _config(args, entry)
        preflight(config)  # cheap checks (files exist, models load) before any pipeline starts
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("mangadistill").setLevel(logging.INFO)
    from pipelines.stack import activate_existing_stack, ensure_stack

    try:
        stack = activate_existing_stack(args.stack) if args.stack else ensure_stack()
        print(f"stack {stack.name}; MLflow store {stack.tracking_uri}")
        module = entry.load()
        pipeline = getattr(module, args.pipeline).with_options(enable_cache=not args.no_cache)
        run = pipeline(config=config)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the step's traceback is already in ZenML's log above
        from pipelines.failures import user_error_of_last_run

        cause = user_error_of_last_run(args.pipeline)  # a step stopped on a problem the user can fix
        if cause is not None:
            print(f"error: {cause}", file=sys.stderr)
            return cause.exit_code
        print(f"error: pipeline {args.pipeline} failed: {exc}", file=sys.stderr)
        return 1
    _print_summary(args.pipeline, run, module)
    return module.exit_code(run) if hasattr(module, "exit_code") else 0  # e.g. 5 when a promotion gate failed


if __name__ == "__main__":
    sys.exit(main())
