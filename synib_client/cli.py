"""The client's commands of the ``synib`` CLI: datasets, submit, jobs, watch, report, download,
knobs (``synib token show`` is in ``cli_token``).

``register(subparsers)`` adds them to the parser ``synib_client.main`` builds (the entry point
``client`` of the group ``synib.commands``). Each command sets ``func``: a handler taking the
parsed args and returning the exit code. A user error (bad file, unknown job, API 4xx,
unreachable server) prints ONE line on stderr and returns 2.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from synib_client.errors import ClientError
from synib_client.main import SUBCOMMANDS
from synib_client.progress import upload_progress
from synib_client.spec import check_json_data
from synib_client.sse import RETRY_FOR_S

Handler = Callable[[argparse.Namespace], int]
USER_ERROR = 2


def guarded(name: str, handler: Handler) -> Handler:
    """Turn the errors a user can cause into one line on stderr and exit code 2."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except BrokenPipeError:
            raise  # no user error: the reader of the output went away (synib_client.main)
        except (ValueError, OSError) as exc:  # ClientError, ApiError, SpecError are ValueErrors
            lines = [" ".join(line.split()) for line in str(exc).splitlines()]
            message = "; ".join(line for line in lines if line) or type(exc).__name__
            print(f"synib {name}: error: {message}", file=sys.stderr)
            return USER_ERROR
        except KeyboardInterrupt:
            print(f"synib {name}: interrupted", file=sys.stderr)
            return 130

    return run


def _client(args: argparse.Namespace) -> Any:
    from synib_client.client import Client

    return Client(url=args.url, token=args.token)


# -- datasets ---------------------------------------------------------------------------------
def _parse_sets(pairs: list[str]) -> dict[str, Any]:
    """``["n_train=100", "p=[0.4,0,0.5,0.1]"]`` -> ``{"n_train": 100, "p": [0.4, 0, 0.5, 0.1]}``."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ClientError(f"--set: expected KEY=VALUE, got {pair!r}")
        try:
            params[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ClientError(f"--set {key}: cannot parse {raw!r}") from exc
        check_json_data(params[key.strip()], f"--set {key.strip()}")
    return params


def cmd_datasets(args: argparse.Namespace) -> int:
    from synib_client.cli_format import format_datasets

    client = _client(args)
    if args.action == "upload":
        progress = upload_progress(sys.stderr, f"upload {Path(args.file).name}")
        ds = client.upload_dataset(args.file, name=args.name, progress=progress)
        done = "reused" if ds.get("reused") else "uploaded"
        print(f"{done} dataset {ds['id']} ({ds.get('name')}, {ds.get('status')})")
        if ds.get("reused"):
            print(REUSED_NOTE, file=sys.stderr)
    elif args.action == "builtin":
        params = _parse_sets(args.set or [])
        ds = client.register_builtin(args.generator, params, seed=args.seed, name=args.name)
        print(f"registered dataset {ds['id']} ({args.generator}, {ds.get('status')})")
    elif args.action == "list":
        page = client.datasets(limit=args.limit, offset=args.offset)
        print(json.dumps(page, indent=2) if args.json else format_datasets(page["data"]))
    elif args.action == "show":
        print(json.dumps(client.dataset(args.id), indent=2))
    elif args.action == "delete":
        client.delete_dataset(args.id)
        print(f"deleted dataset {args.id}")
    elif args.action == "pid":
        return _dataset_pid(client, args)
    return 0


def _dataset_pid(client: Any, args: argparse.Namespace) -> int:
    """``synib datasets pid ID [--clusters K] [--wait] [--json]``."""
    from synib_client.cli_format import format_pid

    if args.clusters is not None and not 2 <= args.clusters <= 100:
        raise ClientError(f"--clusters: expected 2..100, got {args.clusters}")
    ds = client.request_dataset_pid(args.id, clusters=args.clusters)
    if not args.wait:
        print(f"PID of dataset {args.id} queued (see: synib datasets show {args.id})")
        return 0
    print(f"PID of dataset {ds['id']} queued; waiting for a worker...", file=sys.stderr)
    pid = client.wait_dataset_pid(args.id, timeout=args.timeout)
    if args.json:
        print(json.dumps(pid, indent=2))
    if pid.get("status") == "failed":
        print(f"synib datasets pid: failed: {pid.get('error')}", file=sys.stderr)
        return 1
    if not args.json:
        print(format_pid(pid))
    return 0


# -- jobs -------------------------------------------------------------------------------------
def _retry_for(args: argparse.Namespace) -> float:
    """``--retry-for SECONDS`` checked before anything is sent (a number >= 0, finite)."""
    if args.retry_for is None:
        return RETRY_FOR_S
    try:
        seconds = float(args.retry_for)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ClientError(f"--retry-for: expected a number of seconds >= 0, got {args.retry_for}")
    return seconds


REUSED_NOTE = "(you uploaded this file before: the dataset you have is used, not a copy)"


def _say_if_reused(dataset: dict[str, Any]) -> None:
    if dataset.get("reused"):
        print(f"reused dataset {dataset['id']} {REUSED_NOTE}", file=sys.stderr)


def cmd_submit(args: argparse.Namespace) -> int:
    retry_for = _retry_for(args)
    client = _client(args)
    dataset_file = None if args.dataset_file is None else Path(args.dataset_file)
    job = client.submit(Path(args.spec), dataset_file=dataset_file, on_dataset=_say_if_reused)
    print(f"submitted job {job['id']} ({job.get('status')}, {job.get('trials_total', '?')} trials)")
    for warning in job.get("warnings") or []:
        print(f"warning: {warning}", file=sys.stderr)
    if args.watch:
        from synib_client.cli_watch import watch_job

        return watch_job(client, job["id"], retry_for=retry_for, command="submit")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from synib_client.cli_format import format_job, format_jobs

    client = _client(args)
    if args.action == "list":
        page = client.jobs(status=args.status, limit=args.limit, offset=args.offset)
        print(json.dumps(page, indent=2) if args.json else format_jobs(page["data"]))
    elif args.action == "show":
        job = client.job(args.id)
        print(json.dumps(job, indent=2) if args.json else format_job(job))
    elif args.action == "cancel":
        client.cancel(args.id)
        print(f"cancel requested for job {args.id}")
    elif args.action == "rerun-failed":
        client.rerun_failed(args.id)
        print(f"failed trials of job {args.id} queued again")
    elif args.action == "delete":
        client.delete_job(args.id)
        print(f"deleted job {args.id}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from synib_client.cli_watch import watch_job

    retry_for = _retry_for(args)
    return watch_job(_client(args), args.job_id, retry_for=retry_for)


def cmd_report(args: argparse.Namespace) -> int:
    from synib_client.cli_format import format_report

    report = _client(args).report(args.job_id)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    out = _client(args).download_best(args.job_id, args.best, args.out)
    print(f"wrote the best {args.best} model of job {args.job_id} to {out} (sha256 verified)")
    return 0


def cmd_knobs(args: argparse.Namespace) -> int:
    from synib_client.cli_format import format_knobs
    from synib_spec.knobs import knob_table, markdown_table

    if args.json:
        print(json.dumps(knob_table(), indent=2))
    elif args.markdown:
        print(markdown_table(), end="")
    else:
        print(format_knobs(knob_table()))
    return 0


# -- parser -----------------------------------------------------------------------------------
def connection_options() -> argparse.ArgumentParser:
    """``--url`` and ``--token``, as a parent parser of each command that talks to a server."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        help="server root (default: SYNIB_URL, else credentials.json, else http://127.0.0.1:8000)",
    )
    common.add_argument("--token", help="API token (default: SYNIB_TOKEN or credentials.json)")
    return common


def _add_retry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--retry-for",
        metavar="SECONDS",
        help="while watching, wait this long for an unavailable API (restart, database "
        f"outage) before giving up (default: {RETRY_FOR_S:g})",
    )


def _add_page_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the raw JSON")


def _register_datasets(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("datasets", help="upload, register and list datasets")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    upload = actions.add_parser("upload", parents=[common], help="upload an .npz file")
    upload.add_argument("file", help="dataset file (.npz, see ARCHITECTURE.md)")
    upload.add_argument("--name")
    builtin = actions.add_parser("builtin", parents=[common], help="register a built-in dataset")
    builtin.add_argument(
        "generator", help="a built-in generator (the server lists them: GET /datasets/generators)"
    )
    builtin.add_argument("--set", action="append", metavar="KEY=VALUE", help="generator param")
    builtin.add_argument("--seed", type=int, default=0)
    builtin.add_argument("--name")
    _add_page_options(actions.add_parser("list", parents=[common], help="list your datasets"))
    for action in ("show", "delete"):
        actions.add_parser(action, parents=[common], help=f"{action} a dataset").add_argument("id")
    pid = actions.add_parser(
        "pid",
        parents=[common],
        help="compute the dataset's PID on a worker (redundancy, unique, synergy, in bits)",
    )
    pid.add_argument("id")
    pid.add_argument(
        "--clusters", type=int, metavar="K", help="k-means states per modality, 2..100"
    )
    pid.add_argument("--wait", action="store_true", help="wait for the result and print it")
    pid.add_argument(
        "--timeout", type=float, default=600.0, metavar="SECONDS", help="with --wait (600)"
    )
    pid.add_argument("--json", action="store_true", help="with --wait: print the PID JSON")
    # The core part adds `import` (synib_core.cli_datasets) through SUBCOMMANDS (main.py).
    parser.set_defaults(func=guarded("datasets", cmd_datasets), **{SUBCOMMANDS: actions})


def _register_jobs(subparsers: Any, common: argparse.ArgumentParser) -> None:
    submit = subparsers.add_parser("submit", parents=[common], help="submit a job spec (YAML/JSON)")
    submit.add_argument("spec", help="job spec file, e.g. examples/xor_pid_sweep.yaml")
    submit.add_argument(
        "--dataset-file",
        metavar="PATH",
        help="upload this .npz (any path) as the job's dataset, in place of the spec's dataset "
        "or dataset_id (a spec file's own dataset.file must lie under the spec's folder)",
    )
    submit.add_argument("--watch", action="store_true", help="follow the job until it ends")
    _add_retry_option(submit)
    submit.set_defaults(func=guarded("submit", cmd_submit))
    parser = subparsers.add_parser("jobs", help="list, show and cancel jobs")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[common], help="list your jobs")
    listing.add_argument("--status", help="queued, running, succeeded, failed, cancelled, ...")
    _add_page_options(listing)
    show = actions.add_parser("show", parents=[common], help="a job and its best trials")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    for action in ("cancel", "rerun-failed", "delete"):
        actions.add_parser(action, parents=[common], help=f"{action} a job").add_argument("id")
    parser.set_defaults(func=guarded("jobs", cmd_jobs))


def _register_results(subparsers: Any, common: argparse.ArgumentParser) -> None:
    watch = subparsers.add_parser("watch", parents=[common], help="progress bars until a job ends")
    watch.add_argument("job_id")
    _add_retry_option(watch)
    watch.set_defaults(func=guarded("watch", cmd_watch))
    report = subparsers.add_parser("report", parents=[common], help="a job's comparison table")
    report.add_argument("job_id")
    report.add_argument("--json", action="store_true", help="print the report JSON")
    report.set_defaults(func=guarded("report", cmd_report))
    download = subparsers.add_parser("download", parents=[common], help="download the best model")
    download.add_argument("job_id")
    download.add_argument("--best", required=True, metavar="METHOD", help="e.g. synib")
    download.add_argument("--out", required=True, metavar="DIR", help="folder to unpack into")
    download.set_defaults(func=guarded("download", cmd_download))


def _register_knobs(subparsers: Any) -> None:
    knobs = subparsers.add_parser("knobs", help="the knobs a job spec may set (no server needed)")
    output = knobs.add_mutually_exclusive_group()
    output.add_argument("--markdown", action="store_true", help="the docs' Markdown table")
    output.add_argument("--json", action="store_true", help="the JSON of GET /api/v1/knobs")
    knobs.set_defaults(func=guarded("knobs", cmd_knobs))


def register(subparsers: Any) -> None:
    """Add datasets, submit, jobs, watch, report, download, knobs to ``subparsers``
    (the result of ``parser.add_subparsers(dest="command")``)."""
    common = connection_options()
    _register_datasets(subparsers, common)
    _register_jobs(subparsers, common)
    _register_results(subparsers, common)
    _register_knobs(subparsers)
