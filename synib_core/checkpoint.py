"""Model bundles: save a trained model with everything needed to rebuild it, load it, predict.

A bundle is a directory (or a ``.zip`` of one, files at its root or in one folder) holding
``model.safetensors`` (the weights) and ``bundle.json`` (format version, library version,
method, the knobs of the config, the data spec, the metrics, the dataset fingerprint, the
weights' sha256, the calibration ``temperature`` (T > 0 fitted on the validation split; the
logits are divided by it in ``predict_proba``; 1 when absent, as in bundles written before it
existed) and any ``extra`` JSON such as the job and trial config).

Example:
    >>> result = fit(config, data, method="synib")                          # doctest: +SKIP
    >>> result.save("out/model.zip")
    >>> model = load("out/model.zip")
    >>> model.predict({"a": xa, "b": xb})        # xa: (N, 64), xb: (N, 64) -> (N,) int64
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from synib_core import __version__
from synib_core.backbones import EncoderChoice, MultimodalModel, build_model
from synib_core.config import KnobError, TrainConfig, config_from_knobs
from synib_core.data import DataSpec

__all__ = [
    "FORMAT_VERSION",
    "BundleError",
    "LoadedModel",
    "PredictInputError",
    "check_inputs",
    "load",
    "save_bundle",
]

FORMAT = "synib-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "bundle.json"
PREDICT_BATCH = 1024


class BundleError(ValueError):
    """A path is not a readable model bundle; the message says what is wrong."""


class PredictInputError(ValueError):
    """Arrays given to ``predict`` do not fit the model: ``field`` names the bad input."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _check_array(spec: DataSpec, m: str, value: Any) -> np.ndarray:
    """x[m] as float32 (N, *shape); raises PredictInputError naming ``x[m]``."""
    arr = np.asarray(value)
    want = tuple(spec.shapes[m])
    if arr.dtype.kind not in "biuf":
        raise PredictInputError(f"x[{m!r}]", f"expected numbers, got dtype {arr.dtype}")
    if arr.ndim != len(want) + 1 or tuple(arr.shape[1:]) != want:
        raise PredictInputError(
            f"x[{m!r}]", f"expected shape (N, {', '.join(map(str, want))}), got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise PredictInputError(f"x[{m!r}]", "contains NaN or infinite values")
    return np.ascontiguousarray(arr, dtype=np.float32)


def check_inputs(
    spec: DataSpec, x: Mapping[str, Any], lengths: Mapping[str, Any] | None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Validate predict inputs against ``spec``: same modalities, per-sample shapes, one N."""
    if not isinstance(x, Mapping):
        raise PredictInputError("x", "expected a dict modality -> array")
    expected = list(spec.modalities)
    missing = [m for m in expected if m not in x]
    extra = [m for m in x if m not in expected]
    if missing or extra:
        raise PredictInputError(
            "x", f"the model expects modalities {expected}; missing {missing}, unknown {extra}"
        )
    arrays = {m: _check_array(spec, m, x[m]) for m in expected}
    sizes = {m: a.shape[0] for m, a in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise PredictInputError("x", f"modalities have different numbers of samples: {sizes}")
    n = next(iter(sizes.values()))
    lens: dict[str, np.ndarray] = {}
    for m, v in (lengths or {}).items():
        sequence = len(spec.shapes[m]) == 2 or m in spec.has_lengths  # (T, D), or token ids (L,)
        if m not in arrays or not sequence:
            raise PredictInputError("lengths", f"{m!r} is not a sequence modality of the model")
        lv = np.asarray(v)
        steps = spec.shapes[m][0]
        if (
            lv.shape != (n,)
            or lv.dtype.kind not in "iu"
            or lv.min(initial=1) < 1
            or lv.max(initial=1) > steps
        ):
            raise PredictInputError(
                f"lengths[{m!r}]",
                f"expected ({n},) integers in 1..{steps}, got {lv.shape} {lv.dtype}",
            )
        lens[m] = lv.astype(np.int64)
    return arrays, lens


def _spec_to_json(spec: Any) -> dict[str, Any]:
    return {
        "modalities": list(spec.modalities),
        "shapes": {m: list(spec.shapes[m]) for m in spec.modalities},
        "num_classes": int(spec.num_classes),
        "has_lengths": list(getattr(spec, "has_lengths", ())),
    }


def _spec_from_json(d: Mapping[str, Any]) -> DataSpec:
    return DataSpec(
        modalities=tuple(d["modalities"]),
        shapes={m: tuple(int(s) for s in shape) for m, shape in d["shapes"].items()},
        num_classes=int(d["num_classes"]),
        has_lengths=tuple(d.get("has_lengths", ())),
    )


def _bundle_files(
    model: MultimodalModel,
    config: TrainConfig,
    method: str,
    spec: Any,
    metrics: Mapping[str, float],
    dataset_fingerprint: str,
    extra: Mapping[str, Any] | None,
    temperature: float,
) -> dict[str, bytes]:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = save_safetensors(state)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "method": method,
        "config": config.to_knobs(),
        "spec": _spec_to_json(spec),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "dataset_fingerprint": dataset_fingerprint,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "temperature": float(temperature),
        "extra": dict(extra or {}),
        "backbones": {m: c.to_json() for m, c in model.backbones.items()},
    }
    return {MANIFEST_FILE: json.dumps(manifest, indent=2).encode(), WEIGHTS_FILE: weights}


def save_bundle(
    path: str | Path,
    model: MultimodalModel,
    config: TrainConfig,
    method: str,
    spec: Any,
    metrics: Mapping[str, float],
    dataset_fingerprint: str,
    *,
    extra: Mapping[str, Any] | None = None,
    temperature: float = 1.0,
) -> Path:
    """Write the bundle to directory ``path``, or to a zip archive when ``path`` ends in .zip.

    spec: modalities, per-sample shapes and num_classes (``synib_core.data.DataSpec``);
    extra: any JSON-serialisable mapping stored as is (e.g. the job and trial config);
    temperature: T > 0 of the calibration (``predict_proba`` divides the logits by it).
    """
    if not (isinstance(temperature, int | float) and 0 < temperature < float("inf")):
        raise ValueError(f"temperature: must be a finite number > 0, got {temperature!r}")
    files = _bundle_files(
        model, config, method, spec, metrics, dataset_fingerprint, extra, temperature
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix.lower() == ".zip":
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, blob in files.items():
                zf.writestr(name, blob)
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        (target / name).write_bytes(blob)
    return target


def _read_zip(path: Path) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if PurePosixPath(n).name == MANIFEST_FILE]
            if not names:
                raise BundleError(f"{path}: the archive holds no {MANIFEST_FILE}")
            folder = PurePosixPath(min(names, key=len)).parent
            files = {}
            for name in (MANIFEST_FILE, WEIGHTS_FILE):
                member = str(folder / name) if str(folder) != "." else name
                try:
                    files[name] = zf.read(member)
                except KeyError:
                    raise BundleError(f"{path}: the archive holds no {member}") from None
            return files
    except zipfile.BadZipFile:
        raise BundleError(f"{path}: not a valid zip archive") from None


def _read_files(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        missing = [n for n in (MANIFEST_FILE, WEIGHTS_FILE) if not (path / n).is_file()]
        if missing:
            raise BundleError(f"{path}: not a model bundle (missing {', '.join(missing)})")
        return {n: (path / n).read_bytes() for n in (MANIFEST_FILE, WEIGHTS_FILE)}
    if path.is_file():
        return _read_zip(path)
    raise BundleError(f"{path}: no such bundle directory or zip file")


def _parse_manifest(path: Path, files: Mapping[str, bytes]) -> dict[str, Any]:
    try:
        manifest = json.loads(files[MANIFEST_FILE])
    except ValueError as exc:
        raise BundleError(f"{path}: {MANIFEST_FILE} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{path}: {MANIFEST_FILE} is not a {FORMAT} manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BundleError(
            f"{path}: bundle format version {version!r} is newer than this library "
            f"supports ({FORMAT_VERSION}); upgrade synib"
        )
    digest = hashlib.sha256(files[WEIGHTS_FILE]).hexdigest()
    if manifest.get("weights_sha256") != digest:
        raise BundleError(f"{path}: {WEIGHTS_FILE} does not match its checksum (corrupt file)")
    return manifest


@dataclass
class LoadedModel:
    """A rebuilt model in eval mode with its config, method, spec and metrics."""

    model: MultimodalModel
    config: TrainConfig
    method: str
    spec: DataSpec
    metrics: dict[str, float]
    dataset_fingerprint: str
    library_version: str
    extra: dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0
    # Pretrained encoders loaded for raw inputs, kept across predict calls.
    raw_encoders: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.spec.modalities)

    @torch.no_grad()
    def predict_proba(
        self,
        x: Mapping[str, np.ndarray],
        lengths: Mapping[str, np.ndarray] | None = None,
        *,
        rates: Mapping[str, int] | None = None,
        model_dir: str | Path | None = None,
    ) -> np.ndarray:
        """(N, K) float32 class probabilities, calibrated: softmax (or sigmoid) of logits / T.

        x: modality -> (N, *shape) arrays with the per-sample shapes the model was trained on,
        or raw data: for a modality with a pretrained encoder (N,) strings, (N, T) waveforms
        or uint8 images, encoded by the installed model (``synib_core.raw_inputs``); uint8
        images (N, H, W, C) or (N, C, H, W) of any other modality;
        lengths: optional modality -> (N,) valid steps of sequence modalities (audio: valid
        samples); rates: audio modality -> sample rate in Hz; model_dir: where folder models
        are installed.
        """
        from synib_core.metrics import temperature_probs
        from synib_core.objectives.base import Batch
        from synib_core.raw_inputs import RawInputError, encode_raw_inputs

        if isinstance(x, Mapping):
            try:
                x, lengths = encode_raw_inputs(
                    self.model.backbones,
                    self.spec.shapes,
                    x,
                    lengths,
                    rates,
                    model_dir,
                    self.raw_encoders,
                )
            except RawInputError as exc:
                raise PredictInputError(exc.field, exc.reason) from None
        arrays, lens = check_inputs(self.spec, x, lengths)
        n = next(iter(arrays.values())).shape[0]
        device = next(iter(self.model.parameters()), torch.empty(0)).device
        out = []
        for s in range(0, n, PREDICT_BATCH):
            batch = Batch(
                x={m: torch.from_numpy(a[s : s + PREDICT_BATCH]).to(device) for m, a in arrays.items()},
                y=torch.zeros(0, dtype=torch.long),
                lengths={m: torch.from_numpy(v[s : s + PREDICT_BATCH]).to(device) for m, v in lens.items()},
            )  # fmt: skip
            out.append(self.model(batch).float().cpu())  # (B, out_dim) logits
        return temperature_probs(torch.cat(out).numpy(), self.temperature)  # the fit's own path

    def predict(
        self,
        x: Mapping[str, np.ndarray],
        lengths: Mapping[str, np.ndarray] | None = None,
        *,
        rates: Mapping[str, int] | None = None,
        model_dir: str | Path | None = None,
    ) -> np.ndarray:
        """(N,) int64 predicted classes (argmax of ``predict_proba``, same arguments)."""
        probs = self.predict_proba(x, lengths, rates=rates, model_dir=model_dir)
        return probs.argmax(axis=1).astype(np.int64)


def load(path: str | Path, *, device: str = "cpu") -> LoadedModel:
    """Rebuild the model of a bundle directory or ``.zip`` (see ``save_bundle``) on ``device``."""
    p = Path(path)
    files = _read_files(p)
    manifest = _parse_manifest(p, files)
    try:
        config = config_from_knobs(manifest["config"])
        spec = _spec_from_json(manifest["spec"])
        with torch.random.fork_rng(devices=[]):  # initial weights are overwritten anyway
            backbones = {
                m: EncoderChoice.from_json(c) for m, c in (manifest.get("backbones") or {}).items()
            }
            model = build_model(config, spec, manifest["method"], backbones)
        model.load_state_dict(load_safetensors(files[WEIGHTS_FILE]))
        temperature = float(manifest.get("temperature", 1.0))
        if not 0 < temperature < float("inf"):
            raise TypeError(f"temperature {temperature} is not a finite number > 0")
    except (KeyError, TypeError, ValueError, KnobError, RuntimeError) as exc:
        raise BundleError(f"{p}: cannot rebuild the model ({exc})") from None
    model.to(torch.device(device)).eval()
    return LoadedModel(
        model=model,
        config=config,
        method=str(manifest["method"]),
        spec=spec,
        metrics=dict(manifest.get("metrics", {})),
        dataset_fingerprint=str(manifest.get("dataset_fingerprint", "")),
        library_version=str(manifest.get("library_version", "")),
        extra=dict(manifest.get("extra") or {}),
        temperature=temperature,
    )
