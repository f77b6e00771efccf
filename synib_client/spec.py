"""Job spec files for the client: load YAML/JSON, refuse what JSON cannot carry, and split off
the ``dataset`` shorthand (``Client.submit`` then uploads or registers the dataset it names).

A spec names its data in one of three ways:
- ``dataset_id: <id>`` (an existing dataset),
- ``dataset: {builtin: xor_pid, params: {...}, seed: 0, name: ...}`` (registered, or an identical
  existing built-in dataset reused),
- ``dataset: {file: data.npz, name: ...}`` (uploaded; relative to the spec file, and only a
  file under the spec's folder: a spec someone else wrote cannot make you upload
  ``~/.ssh/id_rsa`` or ``../../secret``; a file elsewhere is given on the command line,
  ``synib submit SPEC --dataset-file PATH``).
"""

from __future__ import annotations

import datetime
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from synib_client.errors import ClientError


class SpecError(ClientError):
    """A job spec the client cannot send (names the field and the reason)."""


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``)."""


_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def load_spec(spec: dict[str, Any] | str | Path) -> tuple[dict[str, Any], Path]:
    """Return ``(spec dict, folder relative paths are resolved against)``.

    Raises SpecError naming the field when the spec is not plain JSON data (see
    ``check_json_data``), so nothing is uploaded or registered for a spec that cannot be sent.
    """
    if isinstance(spec, dict):
        check_json_data(spec)
        return dict(spec), Path.cwd()
    path = Path(spec)
    if not path.is_file():
        raise SpecError(f"spec: no such file: {path}")
    try:
        text = path.read_text()
        body = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_SpecLoader)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        reason = str(exc).replace("\n", " ")
        raise SpecError(f"spec: cannot parse {path}: {reason}") from exc
    except RecursionError:
        raise SpecError(f"spec: cannot parse {path}: nested too deeply") from None
    if not isinstance(body, dict):
        raise SpecError(f"spec: {path} must hold a mapping (dataset_id, methods, ...)")
    check_json_data(body)
    return body, path.parent


def check_json_data(value: Any, field: str = "") -> None:
    """Raise SpecError naming the field (``resources.cpus_per_trial``, ``methods[0]``) unless
    ``value`` is plain JSON data: mappings with string keys, lists, strings, finite numbers,
    booleans, null.

    YAML reads an unquoted ``2026-01-15`` as a date and ``.inf``/``.nan`` as non-finite floats;
    neither can be sent as JSON. Example: check_json_data({"name": date(2026, 1, 15)}) raises
    ``name: a date (2026-01-15) is not allowed; quote it: "2026-01-15"``.
    """
    try:
        _check_json_value(value, field, set(), [MAX_SPEC_VALUES])
    except RecursionError:
        raise SpecError(f"{field or 'spec'}: nested too deeply") from None


MAX_SPEC_VALUES = 100_000
"""Values a spec may hold, counted as sent: YAML aliases repeat a value wherever they appear,
and nested ones ("billion laughs") multiply a few lines into billions. A job spec has tens."""

_TIME_KINDS = {
    datetime.date: "a date",
    datetime.datetime: "a date and time",
    datetime.time: "a time",
}


def _check_json_value(value: Any, field: str, parents: set[int], budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise SpecError(
            f"spec: more than {MAX_SPEC_VALUES} values once YAML aliases are expanded; "
            "a job spec needs far fewer"
        )
    if value is None or isinstance(value, (str, bool, int)):
        return
    where = field or "spec"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SpecError(f"{where}: infinity/NaN ({value}) is not allowed; give a number")
        return
    if isinstance(value, (datetime.date, datetime.time)):
        raise SpecError(
            f"{where}: {_TIME_KINDS.get(type(value), 'a date')} ({value.isoformat()}) is not "
            f'allowed; quote it: "{value.isoformat()}"'
        )
    if not isinstance(value, (dict, list, tuple)):
        raise SpecError(
            f"{where}: a value of type {type(value).__name__} is not allowed; give a string, "
            "a number, true/false, null, a list or a mapping"
        )
    if id(value) in parents:  # a YAML anchor that contains its own alias
        raise SpecError(f"{where}: refers to itself (a recursive YAML anchor)")
    parents.add(id(value))
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SpecError(f"{where}: the key {key!r} is not a string; quote it")
            _check_json_value(item, f"{field}.{key}" if field else key, parents, budget)
    else:
        for index, item in enumerate(value):
            _check_json_value(item, f"{field}[{index}]", parents, budget)
    parents.discard(id(value))


@dataclass(frozen=True)
class DatasetShorthand:
    """A spec's ``dataset`` entry: a built-in dataset (``builtin``, ``params``, ``seed``) or a
    file to upload (``file``, already resolved against the spec's folder)."""

    builtin: str | None = None
    file: Path | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    name: str | None = None


def split_dataset(
    body: dict[str, Any], base_dir: Path, confined: bool = True
) -> tuple[dict[str, Any], DatasetShorthand | None]:
    """``(spec without its dataset entry, the entry)``; the entry is None when the spec names a
    ``dataset_id``. SpecError when it names neither or both, or the entry is malformed, or
    (``confined``: the spec came from a file) ``dataset.file`` is not under ``base_dir``."""
    body = dict(body)
    shorthand = body.pop("dataset", None)
    if shorthand is None:
        if not body.get("dataset_id"):
            raise SpecError("dataset_id: missing (or give dataset: {builtin: ...} or {file: ...})")
        return body, None
    if body.get("dataset_id"):
        raise SpecError("dataset: give either dataset_id or dataset, not both")
    if not isinstance(shorthand, dict) or len({"builtin", "file"} & set(shorthand)) != 1:
        raise SpecError("dataset: must be a mapping with exactly one of builtin or file")
    unknown = set(shorthand) - {"builtin", "file", "params", "seed", "name"}
    if unknown:
        raise SpecError(f"dataset: unknown keys {sorted(unknown)}")
    name = shorthand.get("name")
    if "file" in shorthand:
        given = str(shorthand["file"])
        path = confined_path(base_dir, given) if confined else base_dir / Path(given).expanduser()
        return body, DatasetShorthand(file=path, name=name)
    params = shorthand.get("params") or {}
    seed = shorthand.get("seed", 0)
    if not isinstance(params, dict):
        raise SpecError("dataset.params: must be a mapping of generator parameters")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise SpecError(f"dataset.seed: must be an integer, got {seed!r}")
    return body, DatasetShorthand(
        builtin=str(shorthand["builtin"]), params=params, seed=seed, name=name
    )


def confined_path(base_dir: Path, given: str) -> Path:
    """``base_dir / given`` if it stays under ``base_dir`` once resolved (symbolic links
    followed), else SpecError naming ``dataset.file``.

    Example: confined_path(Path("jobs"), "data/x.npz") -> jobs/data/x.npz; "../x.npz",
    "/etc/passwd" and "~/x.npz" raise.
    """
    folder = base_dir.resolve()
    if Path(given).is_absolute() or given.startswith("~"):
        problem = "an absolute path"
    elif not (folder / given).resolve().is_relative_to(folder):
        problem = "outside the spec's folder"
    else:
        return base_dir / given
    raise SpecError(
        f"dataset.file: {given!r} is {problem}; a spec file may name only files under its own "
        f"folder ({folder}); give a file elsewhere on the command line: "
        "synib submit SPEC --dataset-file PATH"
    )


def is_same_builtin(
    dataset: dict[str, Any], generator: str, params: dict[str, Any], seed: int
) -> bool:
    """Whether a DatasetPublic is a usable (not failed) built-in dataset with these generator,
    params and seed (older rows kept the seed inside ``params``)."""
    if dataset.get("source") != "builtin" or dataset.get("builtin_name") != generator:
        return False
    if dataset.get("status") == "failed":
        return False
    stored = dict(dataset.get("params") or {})
    stored_seed = dataset.get("seed", stored.pop("seed", 0))
    return bool(stored == params and stored_seed == seed)
