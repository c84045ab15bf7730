#!/usr/bin/env python
"""MangaAssist distillation: run a pipeline, open the MLflow UI on the project's store, or serve a model.

Exit codes: 0 success, 1 pipeline failed, 2 bad config, 3 bad data, 4 model does not load, 5 a promotion
gate failed (nothing promoted), 6 a rollback trigger fired, 7 the model registry failed (nothing decided on it),
130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
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
        "            5 a promotion gate failed (nothing promoted), 6 a rollback trigger fired,\n"
        "            7 the model registry failed or is busy (nothing was decided on the failure).",
    )
    parser.add_argument("--pipeline", choices=sorted(PIPELINES), help="pipeline to run")
    parser.add_argument("--config", type=Path, help="YAML config (default: configs/<pipeline>.yaml)")
    parser.add_argument("--no-cache", action="store_true", help="re-run every step instead of reusing cached artifacts")
    parser.add_argument("--dry-run", action="store_true",
                        help="distill_response_managed: build and validate the fine-tuning files, print the token "
                        "and cost estimate (runbook 7.4), then stop: nothing is uploaded, no job is started")
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
    parser.add_argument("--serve", metavar="WHAT", choices=[*known_families(), OPENAI_SERVER],
                        help=f"serve a family's production model over HTTP ({', '.join(known_families())}), or "
                        f"'{OPENAI_SERVER}': the OpenAI-compatible fine-tuning server (files, supervised jobs, chat "
                        "completions; --config default configs/serve_openai.yaml; needs $MANGADISTILL_API_KEY)")
    parser.add_argument("--host", default="127.0.0.1", help="address for --serve (default 127.0.0.1)")
    parser.add_argument("--poll-seconds", type=float, default=2.0,
                        help="--serve: how often the registry is checked for a new production version (default 2)")
    return parser


def _serve_openai(args: argparse.Namespace) -> int:
    """The OpenAI-compatible fine-tuning server (mangadistill/serving/openai_server.py) until Ctrl+C or SIGTERM;
    a job running at that moment stays 'running' in its SQLite store and resumes on the next start."""
    import uvicorn

    from mangadistill.config import OpenAIServerConfig, load_config
    from mangadistill.finetune.service import FineTuneService
    from mangadistill.serving.openai_server import create_openai_app
    from pipelines.stack import mlflow_tracking_uri

    api_key = os.environ.get(API_KEY_ENV, "").strip()
    if not api_key:
        print(f"error: --serve {OPENAI_SERVER} needs an API key: set ${API_KEY_ENV} (clients send it as "
              "'Authorization: Bearer <key>', e.g. OPENAI_API_KEY for the openai client)", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config or Path("configs/serve_openai.yaml"), OpenAIServerConfig)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uri, port = mlflow_tracking_uri(), args.port or 8000
    service = FineTuneService(config, tracking_uri=uri)
    print(f"OpenAI-compatible fine-tuning server on http://{args.host}:{port}/v1 (state {config.root.resolve()}, "
          f"jobs tracked in {uri}); base models {sorted(config.base_models)} (Ctrl+C to stop)", flush=True)
    with _stop_signals():
        try:
            uvicorn.run(create_openai_app(service, api_key, config.limits), host=args.host, port=port,
                        log_level="warning", access_log=False)
        except _Stopped as stopped:
            return stopped.exit_code
        finally:
            service.stop()
    return 0


def _serve(args: argparse.Namespace) -> int:
    """Serve a family's `<model>@production` with FastAPI/uvicorn until Ctrl+C or SIGTERM (see
    mangadistill/serving); uvicorn runs in this process and shuts down cleanly first (exit 0 / 143)."""
    import uvicorn

    from mangadistill.serving.app import create_app
    from mangadistill.serving.follower import RegistryFollower
    from pipelines.stack import mlflow_tracking_uri

    api_key = os.environ.get(API_KEY_ENV)
    if api_key is not None and not api_key.strip():
        print(f"error: ${API_KEY_ENV} is set but empty; set it to a key or unset it", file=sys.stderr)
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uri, port = mlflow_tracking_uri(), args.port or 8000
    name = args.model or get_family(args.serve).model_name
    follower = RegistryFollower(name, tracking_uri=uri, poll_seconds=args.poll_seconds)
    access = (f"requires 'Authorization: Bearer ${API_KEY_ENV}'" if api_key
              else f"is open (set ${API_KEY_ENV} to require a key)")
    print(f"serving {name}@production from {uri} on http://{args.host}:{port}; /predict {access} (Ctrl+C to stop)",
          flush=True)
    with _stop_signals():
        try:
            uvicorn.run(create_app(follower, api_key=api_key), host=args.host, port=port, log_level="warning",
                        access_log=False)
        except _Stopped as stopped:  # uvicorn shut down on the signal, then passed it on
            return stopped.exit_code
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
    print(f"MLflow UI on http://127.0.0.1:{port} for {uri} (Ctrl+C to stop)", flush=True)
    # one worker: a local UI needs no more, and four take a minute to start on a 2-core laptop
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]
    with _stop_signals():
        # its own process group: `mlflow ui` starts uvicorn and job runners that must stop with it
        child = subprocess.Popen(command, start_new_session=True)
        try:
            return child.wait()
        except _Stopped as stopped:
            _stop_process_group(child)
            return stopped.exit_code


#: The environment variable that, when set, makes `--serve`'s /predict require `Authorization: Bearer <key>`
#: (and that `--serve openai` requires).
API_KEY_ENV = "MANGADISTILL_API_KEY"
#: `--serve openai`: the OpenAI-compatible fine-tuning server rather than a family's model.
OPENAI_SERVER = "openai"


class _Stopped(Exception):
    """SIGTERM or SIGINT arrived; raised in the main thread by `_stop_signals`' handler."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(signal.Signals(signum).name)
        self.exit_code = 0 if signum == signal.SIGINT else 128 + signum  # Ctrl+C is how a server is stopped


class _stop_signals:  # noqa: N801 - used as `with _stop_signals():`
    """Inside: the first SIGTERM or SIGINT raises `_Stopped`; later ones are ignored so the cleanup that follows
    is not cut short. The previous handlers come back on exit."""

    def __enter__(self) -> None:
        import signal

        handled = (signal.SIGTERM, signal.SIGINT)

        def stop(signum, frame):
            for sig in handled:
                signal.signal(sig, signal.SIG_IGN)
            raise _Stopped(signum)

        self._previous = {sig: signal.signal(sig, stop) for sig in handled}

    def __exit__(self, *exc_info) -> None:
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _stop_process_group(child: subprocess.Popen, grace_s: float = 15.0) -> None:
    """SIGTERM to `child`'s process group (it leads it), SIGKILL to what is left after `grace_s`; reaps `child`."""
    import signal
    import time

    def signal_group(sig: int) -> bool:
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:  # no process left in the group
            return False
        return True

    signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    try:
        child.wait(grace_s)
    except subprocess.TimeoutExpired:
        pass
    while signal_group(0) and time.monotonic() < deadline:
        time.sleep(0.1)
    if signal_group(0):
        print(f"MLflow UI processes still running {grace_s:.0f} s after SIGTERM; killing them", file=sys.stderr)
        signal_group(signal.SIGKILL)
    child.wait()


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
    if args.dry_run:
        if "managed" not in fields:
            raise ConfigError(f"--dry-run applies to distill_response_managed, not {entry.name}")
        updates["managed"] = config.managed.model_copy(update={"dry_run": True})
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


class _RunLog:
    """The whole run's log in ``logs/<pipeline>-<timestamp>.log`` under the working directory.

    Every log record goes to the file, tracebacks included (ZenML logs a failed step with its traceback,
    then a "Skipping step" line per step downstream). On the console, a step that failed with a
    `UserError` is left to the one ``error:`` line `main` prints: its traceback and the "Skipping step"
    lines after it go to the file only. Any other failure is a bug and keeps its traceback on the console.
    """

    def __init__(self, pipeline: str, argv: list[str]) -> None:
        folder = Path("logs")
        folder.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.path = folder / f"{pipeline}-{stamp}.log"
        for n in range(2, 1000):  # two runs started in the same second
            if not self.path.exists():
                break
            self.path = folder / f"{pipeline}-{stamp}-{n}.log"
        self.file = logging.FileHandler(self.path, encoding="utf-8")
        self.file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(self.file)
        self.note(f"{time.strftime('%Y-%m-%d %H:%M:%S')} run.py {' '.join(argv)} (in {Path.cwd()})")
        self._quiet = _QuietUserErrors()

    def quiet_console(self) -> None:
        """Filter the console handlers of the root and zenml loggers (call after ZenML has attached its own)."""
        for name in (None, "zenml"):
            for handler in logging.getLogger(name).handlers:
                if handler is not self.file and isinstance(handler, logging.StreamHandler):
                    handler.addFilter(self._quiet)

    def note(self, line: str) -> None:
        """A line in the file only."""
        self.file.stream.write(line + "\n")
        self.file.flush()

    def fail(self, code: int, message: str) -> int:
        """Report a failed run: where its log is, then the one ``error:`` line (last on stderr); returns `code`."""
        self.note(f"error: {message} (exit code {code})")
        print(f"the full log, tracebacks included: {self.path}", file=sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        return code


class _QuietUserErrors(logging.Filter):
    """Console filter: drops a record carrying a `UserError` (its traceback), then the "Skipping step" lines."""

    def __init__(self) -> None:
        super().__init__()
        self.user_error_seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None and not isinstance(exc, UserError):
            exc = exc.__cause__ or exc.__context__
        if exc is not None:
            self.user_error_seen = True
            return False
        return not (self.user_error_seen and record.getMessage().startswith("Skipping step"))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.mlflow_ui:
        return _mlflow_ui(args.port or 5000)
    if args.serve == OPENAI_SERVER:
        return _serve_openai(args)
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
    for chatty in ("httpx", "httpx2"):  # the openai client's HTTP library logs every request at INFO
        logging.getLogger(chatty).setLevel(logging.WARNING)
    log = _RunLog(args.pipeline, sys.argv[1:] if argv is None else argv)  # before zenml's import: its set-up logs too
    from pipelines.stack import activate_existing_stack, ensure_stack

    tracking_uri = ""
    try:
        stack = activate_existing_stack(args.stack) if args.stack else ensure_stack()
        tracking_uri = stack.tracking_uri
        print(f"stack {stack.name}; MLflow store {stack.tracking_uri}")
        module = entry.load()
        pipeline = getattr(module, args.pipeline).with_options(enable_cache=not args.no_cache)
        log.quiet_console()
        run = pipeline(config=config)
    except UserError as exc:
        return log.fail(exc.exit_code, str(exc))
    except KeyboardInterrupt:
        log.note("interrupted")
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug's traceback is on the console above; every traceback is in the log file
        from pipelines.failures import registry_unreachable, user_error_of_last_run

        # a step stopped on a problem the user can fix, or the tracking server went away under the run
        cause = user_error_of_last_run(args.pipeline) or registry_unreachable(tracking_uri)
        if cause is not None:
            return log.fail(cause.exit_code, str(cause))
        return log.fail(1, f"pipeline {args.pipeline} failed: {exc}")
    _print_summary(args.pipeline, run, module)
    return module.exit_code(run) if hasattr(module, "exit_code") else 0  # e.g. 5 when a promotion gate failed


if __name__ == "__main__":
    sys.exit(main())
