"""``synib datasets import FORMAT FILE --out data.npz``: convert a local file into the dataset
contract, on the user's machine (the library half of ``synib datasets``; the client half,
upload/list/show/..., is in ``synib_client.cli``).

    synib datasets import multibench mosi_raw.pkl --out mosi.npz --classes 2

``register_import(subparsers)`` adds ``import`` to the client's ``synib datasets`` parser, found
through its ``SUBCOMMANDS`` default (``synib_client.main``); without the client part (no
``datasets`` command) nothing is added. numpy and the converter are imported in the handler.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from synib_client.main import SUBCOMMANDS, needs_extra
from synib_core.cli import USER_ERROR, CliError, _guarded

MULTIBENCH_MODALITIES = ("vision", "audio", "text")  # synib_core.data.multibench.MODALITIES


def parse_modalities(text: str) -> list[str]:
    """``"vision,text"`` -> ``["vision", "text"]``; CliError naming ``--modalities`` unless at
    least two distinct names of MultiBench's vision, audio, text."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in MULTIBENCH_MODALITIES]
    if unknown or len(names) < 2 or len(set(names)) != len(names):
        raise CliError(
            f"--modalities: expected at least two distinct of "
            f"{','.join(MULTIBENCH_MODALITIES)}, got {text!r}"
        )
    return names


def cmd_import_multibench(args: argparse.Namespace) -> int:
    """Convert the user's MultiBench affect pickle into a dataset .npz; progress on stderr,
    the summary on stdout."""
    out = Path(args.out)
    if out.suffix != ".npz":
        raise CliError(f"--out: the file name must end in .npz, got {str(out)!r}")
    modalities = parse_modalities(args.modalities)
    try:
        from synib_core.data.multibench import import_multibench
    except ImportError as exc:  # the client alone: the library's numpy is not installed
        print(needs_extra("datasets import", "core", exc), file=sys.stderr)
        return USER_ERROR

    summary = import_multibench(
        args.file,
        out,
        classes=args.classes,
        modalities=modalities,
        log=lambda line: print(line, file=sys.stderr),
    )
    sizes = summary["split_sizes"]
    shapes = ", ".join(f"{m['name']} {tuple(m['shape'][1:])}" for m in summary["modalities"])
    print(
        f"{out}: {summary['num_samples']} samples (train {sizes['train']} / val {sizes['val']} "
        f"/ test {sizes['test']}), {summary['num_classes']} classes "
        f"{summary['class_counts']}; {shapes}"
    )
    return 0


def register_import(subparsers: Any) -> None:
    """Add ``import multibench`` to the ``datasets`` command of ``subparsers`` (the top-level
    ``add_subparsers()`` object), when the client part made it."""
    datasets = subparsers.choices.get("datasets")
    actions = None if datasets is None else datasets.get_default(SUBCOMMANDS)
    if actions is None:
        return
    parser = actions.add_parser(
        "import", help="convert a local file (MultiBench pickle) into a dataset .npz"
    )
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")
    multibench = formats.add_parser(
        "multibench",
        help="a MultiBench affect pickle (MOSI, MOSEI, MUStARD, UR-Funny): your own file, "
        "unpickled on this machine only",
    )
    multibench.add_argument("file", help="the .pkl file (train/valid/test dicts)")
    multibench.add_argument("--out", required=True, help="output .npz file")
    multibench.add_argument(
        "--classes",
        type=int,
        choices=(2, 7),
        default=2,
        help="2: score > 0 vs <= 0 (MultiBench's rule); 7: round and clip to -3..3 (default 2)",
    )
    multibench.add_argument(
        "--modalities",
        default=",".join(MULTIBENCH_MODALITIES),
        help="comma-separated, at least two of vision,audio,text (default all three)",
    )
    multibench.set_defaults(
        func=_guarded("datasets import", cmd_import_multibench), synib_extra="core"
    )
