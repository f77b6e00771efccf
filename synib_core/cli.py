"""The library half of the ``synib`` CLI: ``train``, ``compare``, ``data make``, ``data pid``
(and ``datasets import``, in ``cli_datasets``).

``register(subparsers)`` adds the commands to the parser built in ``worker/cli.py``; each sets
``func``, a handler taking the parsed args and returning the exit code. A user error (unknown
knob, bad value, bad dataset file, bad generator parameter) prints ONE line on stderr naming the
key and the allowed values, and returns 2. torch and the training code are imported inside the
handlers only, so building the parser is instant.

    synib data make xor_spurious --set alpha=0.9 --out xor.npz
    synib train xor.npz --method synib --set lambda=10 --set epochs=5 --out runs/synib
    synib compare xor.npz --methods vanilla,synib --seeds 0,1 --set epochs=5 --out runs/cmp
    synib data pid xor.npz --clusters 10 --json
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from synib_spec.builtin import GENERATORS

Handler = Callable[[argparse.Namespace], int]
USER_ERROR = 2
MAX_SEED = 2**31 - 1  # the job API's limit too (seeds are stored as SQL integers)
MAX_N_BOOT = 1_000_000
MAX_PID_CLUSTERS = 100  # the joint table has clusters^2 * K cells for the solver
MAX_THREADS = 1024


class CliError(ValueError):
    """A command-line value a user gave is wrong (the message names it)."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from synib_core.config import ConfigFileError, KnobError
    from synib_core.data import DatasetError

    errors: list[type[BaseException]] = [CliError, KnobError, ConfigFileError, DatasetError]
    if "synib_core.training" in sys.modules:  # only then can training have diverged
        errors.append(sys.modules["synib_core.training"].TrainingDiverged)
    return tuple(errors)


def _guarded(name: str, handler: Handler) -> Handler:
    """Turn the errors a user can cause into one line on stderr and exit code 2."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except Exception as exc:
            if not isinstance(exc, _user_errors()) and not isinstance(exc, OSError):
                raise
            message = " ".join(str(exc).split()) or type(exc).__name__
            print(f"synib {name}: error: {message}", file=sys.stderr)
            return USER_ERROR

    return run


def parse_sets(pairs: list[str] | None) -> dict[str, str]:
    """``["lr=1e-3", "mask=full"]`` -> ``{"lr": "1e-3", "mask": "full"}`` (values stay strings)."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--set: expected KEY=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def parse_int_list(flag: str, text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; CliError naming the flag otherwise."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CliError(f"{flag}: expected comma-separated integers, got {text!r}") from None
    if not values or len(set(values)) != len(values):
        raise CliError(f"{flag}: expected distinct comma-separated integers, got {text!r}")
    return values


def check_int_range(flag: str, value: int, low: int, high: int) -> int:
    """``value`` if ``low <= value <= high``; CliError naming the flag and the range otherwise."""
    if not low <= value <= high:
        raise CliError(f"{flag}: expected an integer from {low} to {high}, got {value}")
    return value


def _parse_methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    if not methods:
        raise CliError(f"--methods: expected comma-separated method names, got {text!r}")
    _check_methods(methods)
    if len(set(methods)) != len(methods):  # the report keeps one run per method and seed
        raise CliError(f"--methods: a method is named twice in {text!r}")
    return methods


def _build_config(args: argparse.Namespace) -> Any:
    from synib_core.config import config_from_knobs, load_config_file

    base = load_config_file(args.config) if args.config else None
    return config_from_knobs(parse_sets(args.set), base)


def _check_methods(methods: list[str]) -> None:
    from synib_core.config import METHODS

    for method in methods:
        if method not in METHODS:
            raise CliError(f"method: unknown method {method!r}; allowed: {', '.join(METHODS)}")


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _use_threads(args: argparse.Namespace) -> None:
    """Set torch's thread count (``--threads``, default 1 as a service trial) before any work."""
    check_int_range("--threads", args.threads, 1, MAX_THREADS)
    from synib_core.training.threads import use_threads

    use_threads(args.threads)


def cmd_train(args: argparse.Namespace) -> int:
    """Train one method on a dataset file; write metrics.json and the model bundle."""
    _check_methods([args.method])
    check_int_range("--seed", args.seed, 0, MAX_SEED)
    config = _build_config(args)
    _use_threads(args)
    from synib_core.data import load_npz
    from synib_core.training import fit, train_references

    data = load_npz(args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    refs = train_references(config, data, seed=args.seed) if args.references else None
    result = fit(
        config, data, method=args.method, seed=args.seed, references=refs, progress=progress
    )
    payload = {
        **result.metrics,
        "best_epoch": result.best_epoch,
        "method": args.method,
        "seed": args.seed,
        "history": result.history,
    }
    _write_json(out / "metrics.json", payload)
    result.save(out / "model")
    print(
        f"{args.method} seed {args.seed}: best epoch {result.best_epoch}, "
        f"val_acc {result.metrics.get('val_acc', float('nan')):.4f}, "
        f"test_acc {result.metrics.get('test_acc', float('nan')):.4f} -> {out}"
    )
    return 0


def parse_sweep(pairs: list[str] | None) -> dict[str, tuple[Any, ...]] | None:
    """``["lambda=0.1,1,10"]`` -> ``{"lambda": ("0.1", "1", "10")}``; None for no ``--sweep``
    (the default sweep), ``{}`` for ``--sweep none``."""
    if pairs is None:
        return None
    if pairs == ["none"]:
        return {}
    sweep: dict[str, tuple[Any, ...]] = {}
    for pair in pairs:
        key, sep, values = pair.partition("=")
        items = tuple(v.strip() for v in values.split(",") if v.strip())
        if not sep or not key.strip() or not items:
            raise CliError(f"--sweep: expected KNOB=V1,V2,... or 'none', got {pair!r}")
        if key.strip() in sweep:
            raise CliError(f"--sweep: knob {key.strip()!r} is swept twice")
        sweep[key.strip()] = items
    return sweep


def _run_name(method: str, seed: int, point: dict[str, Any]) -> str:
    label = "-".join(f"{k}={point[k]}" for k in sorted(point))
    return f"{method}-seed{seed}" + (f"-{label}" if label else "")


def cmd_compare(args: argparse.Namespace) -> int:
    """Train unimodal references once per seed, then every method per seed and sweep point;
    select each method's point by mean validation accuracy; write report.json."""
    # Every option is checked here, before anything trains: a bad one must not cost a run.
    methods = _parse_methods(args.methods)
    seeds = [
        check_int_range("--seeds", s, 0, MAX_SEED) for s in parse_int_list("--seeds", args.seeds)
    ]
    check_int_range("--n-boot", args.n_boot, 1, MAX_N_BOOT)
    config = _build_config(args)
    sweep = parse_sweep(args.sweep)
    _use_threads(args)
    from synib_core.config import config_from_knobs
    from synib_core.data import load_npz
    from synib_core.reporting import format_table
    from synib_core.training.sweep import DEFAULT_SWEEP, run_sweep, sweep_grid, sweep_report

    if sweep is None:
        sweep = {k: v for k, v in DEFAULT_SWEEP.items() if k not in parse_sets(args.set)}
    from synib_spec.knobs import check_rules

    for point in sweep_grid(sweep):  # a bad sweep value or rule fails now, not after training
        knobs = config_from_knobs(point, config).to_knobs()
        for method in methods:
            error = check_rules(method, knobs)
            if error is not None:
                raise CliError(f"{error.field} ({method}): {error.reason}")
    data = load_npz(args.data)
    from synib_core.backbones.model import check_no_raw_modalities

    check_no_raw_modalities(data.spec(), config.encoder)  # raw text/audio: before any PID
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # an unusable --out fails now, not after training

    def on_run(run: Any) -> None:
        print(f"seed {run.seed}: {_run_name(run.method, run.seed, run.point)}", file=sys.stderr)
        _write_json(
            out / "runs" / f"{_run_name(run.method, run.seed, run.point)}.json", run.metrics
        )

    states, data_pid = _test_split_pid(data, data.y[data.split == 2])
    result = run_sweep(data, methods=methods, seeds=seeds, base=config, sweep=sweep, on_run=on_run)
    report = sweep_report(
        result,
        baseline=args.baseline,
        n_boot=args.n_boot,
        data_pid=data_pid,
        prediction_pid=None if states is None else partial(_prediction_pid, states),
    )
    report["dataset_fingerprint"] = data.fingerprint
    report["sweep"] = {k: list(v) for k, v in sweep.items()}
    _write_json(out / "report.json", report)
    print(format_table(report))
    return 0


def _test_split_pid(data: Any, y_test: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The test inputs' k-means states (reused for every run's prediction PID) and the PID of
    the test labels with its verdict; (None, None) without the pid extra (cvxpy)."""
    from synib_core.metrics import PIDUnavailable, discretise_modalities, pid_verdict
    from synib_core.metrics.pid import pairwise_pid

    x_test = {m: a[data.split == 2] for m, a in data.x.items()}
    try:
        states = discretise_modalities(x_test, data.num_classes)
        labels = pairwise_pid(states, y_test)
    except PIDUnavailable as exc:
        print(f"note: the report has no PID lines: {exc}", file=sys.stderr)
        return None, None
    return states, {"pairs": [p.to_json() for p in labels], "verdict": pid_verdict(labels)}


def _prediction_pid(states: dict[str, Any] | None, test_pred: Any) -> list[dict[str, Any]] | None:
    from synib_core.metrics import prediction_pid

    return None if states is None else [p.to_json() for p in prediction_pid(states, test_pred)]


def cmd_data_make(args: argparse.Namespace) -> int:
    """Generate a built-in dataset and write it as an .npz file."""
    from synib_core.data import make_dataset, save_npz

    out = Path(args.out)
    if out.suffix != ".npz":
        raise CliError(f"--out: the file name must end in .npz, got {str(out)!r}")
    data = make_dataset(args.generator, args.seed, **parse_sets(args.set))
    out.parent.mkdir(parents=True, exist_ok=True)
    digest = save_npz(data, out)
    sizes = data.split_sizes()
    print(
        f"{out}: {args.generator} seed {args.seed}, train {sizes['train']} / val "
        f"{sizes['val']} / test {sizes['test']}, {data.num_classes} classes, sha256 {digest}"
    )
    return 0


def cmd_data_pid(args: argparse.Namespace) -> int:
    """PID of a dataset file (all rows): redundancy, unique information and synergy about the
    label in bits, for every pair of modalities, and a verdict in words."""
    if args.clusters is not None:
        check_int_range("--clusters", args.clusters, 2, MAX_PID_CLUSTERS)
    check_int_range("--seed", args.seed, 0, MAX_SEED)
    from synib_core.data import load_npz
    from synib_core.metrics import PIDUnavailable, dataset_pid, describe_pid, pid_verdict

    data = load_npz(args.data)
    raw = data.raw_modalities()
    if raw:
        m, kind = next(iter(raw.items()))
        raise CliError(
            f"x_{m}: holds raw {kind}; the PID reads numeric features (vectors, sequences, "
            "images): compute features with a pretrained model first"
        )
    try:
        pids = dataset_pid(data.x, data.y, clusters=args.clusters, seed=args.seed)
    except PIDUnavailable as exc:
        raise CliError(str(exc)) from None
    verdict = pid_verdict(pids)
    if args.json:
        payload = {
            "file": str(args.data), "n": int(data.y.shape[0]), "num_classes": data.num_classes,
            "clusters": args.clusters, "seed": args.seed, "unit": "bits",
            "pairs": [p.to_json() for p in pids], "verdict": verdict,
        }  # fmt: skip
        print(json.dumps(payload, indent=2))
        return 0
    states = ", ".join(f"{m} {k}" for m, k in pids[0].states.items())
    print(f"{args.data}: {data.y.shape[0]} samples, {data.num_classes} classes; states {states}")
    for pid in pids:
        print(describe_pid(pid))
    print(f"verdict: {verdict}")
    return 0


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="dataset .npz file")
    parser.add_argument("--config", help="YAML or JSON file of knobs (--set overrides it)")
    parser.add_argument(
        "--set", action="append", metavar="KNOB=VALUE", help="set a knob (repeatable)"
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads, set before any work (default 1, as a service trial's share)",
    )


def register(subparsers: Any) -> None:
    """Add ``train``, ``compare`` and ``data`` to an argparse ``add_subparsers()`` object, and
    ``import`` to its ``datasets`` command when the client part added one."""
    train = subparsers.add_parser("train", help="train one method on a dataset file")
    _add_common(train)
    train.add_argument("--method", required=True, help="vanilla, synib, masking_only, ...")
    train.add_argument("--seed", type=int, default=0, help=f"0 to {MAX_SEED} (default 0)")
    train.add_argument(
        "--references",
        action="store_true",
        help="train unimodal references first (enables the synergy metrics)",
    )
    train.set_defaults(func=_guarded("train", cmd_train))

    compare = subparsers.add_parser("compare", help="compare methods over seeds")
    _add_common(compare)
    compare.add_argument("--methods", required=True, help="comma-separated, e.g. vanilla,synib")
    compare.add_argument(
        "--seeds", default="0", help=f"comma-separated seeds, each 0 to {MAX_SEED} (default 0)"
    )
    compare.add_argument("--baseline", default="vanilla", help="method the deltas refer to")
    compare.add_argument(
        "--sweep",
        action="append",
        metavar="KNOB=V1,V2",
        help="grid over a knob (repeatable); each method's point is selected by mean val_acc "
        "over seeds; default: the library's DEFAULT_SWEEP (lambda), 'none' for no sweep",
    )
    compare.add_argument(
        "--n-boot", type=int, default=2000, help=f"bootstrap resamples, 1 to {MAX_N_BOOT}"
    )
    compare.set_defaults(func=_guarded("compare", cmd_compare))

    data = subparsers.add_parser("data", help="built-in datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    make = data_sub.add_parser("make", help="generate a built-in dataset as .npz")
    make.add_argument("generator", help=", ".join(GENERATORS))
    make.add_argument("--set", action="append", metavar="PARAM=VALUE", help="generator parameter")
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--out", required=True, help="output .npz file")
    make.set_defaults(func=_guarded("data make", cmd_data_make))
    pid = data_sub.add_parser(
        "pid", help="partial information decomposition of a dataset (bits; needs synib[pid])"
    )
    pid.add_argument("data", help="dataset .npz file")
    pid.add_argument(
        "--clusters", type=int, help="k-means states per modality (default: a rule of N and K)"
    )
    pid.add_argument("--seed", type=int, default=0, help="k-means seed (default 0)")
    pid.add_argument("--json", action="store_true", help="print JSON instead of text")
    pid.set_defaults(func=_guarded("data pid", cmd_data_pid))

    from synib_core.cli_datasets import register_import

    register_import(subparsers)  # `synib datasets import`, into the client's `datasets`
