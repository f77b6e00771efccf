"""The job's backbones before Tune: frozen features from the cache (or extracted once and
cached), prepared inputs for the pretrained encoders that train in the trial.

For every modality whose backbone is a pretrained model (``JobSpec.backbones``):
- ``train: frozen`` (the main path): fingerprint = sha256(dataset sha256, model fingerprint,
  pooling, modality). A ``dataset_features`` row with it whose file is in the store is a cache
  hit (logged with the seconds it saves); otherwise the features are extracted here (batched,
  ``torch.inference_mode``, on CUDA when this worker has one, progress logged), stored at
  ``features/<fingerprint>.npy`` and recorded. ``data.x[m]`` becomes the (N, D) float32
  features; the trials train an ``mlp`` head on them, and so does every later job.
- ``train: last_layers | full``: ``data.x[m]`` becomes the prepared inputs (token ids, mel
  frames, pixel values; lengths in ``data.lengths[m]``), computed once before ``ray.put``; each
  trial loads the model from its local files (the ``ModelInfo`` travels in the trial payload)
  and fine-tunes it (``synib_core.backbones.pretrained``).

A model no worker offers, or one that does not fit the modality, fails the job naming
``backbones.<m>.model`` (a ValueError: the job's failure reason).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from infra.db import crud
from infra.storage import Store, storage_errors
from synib_spec.backbones import BackboneSpec, ModelInfo, check_dataset_backbones
from synib_spec.model_registry import discover_models, model_folder
from worker.job_context import JobContext
from worker.storage_retry import with_storage_retry

if TYPE_CHECKING:
    from synib_core.backbones import EncoderChoice
    from synib_core.data import MultimodalData

log = logging.getLogger(__name__)

BATCH_SIZE = 64
LOG_EVERY_BATCHES = 20


def feature_fingerprint(dataset_sha256: str, model: ModelInfo, pooling: str, modality: str) -> str:
    """sha256 hex of what decides a modality's frozen features."""
    blob = "\n".join((dataset_sha256, model.fingerprint, pooling, modality))
    return hashlib.sha256(blob.encode()).hexdigest()


def feature_relpath(fingerprint: str) -> str:
    return f"features/{fingerprint}.npy"


def store_features(store: Store, feats: np.ndarray, relative: str) -> None:
    """Write (N, D) float32 ``feats`` into the store at ``relative`` through a temporary file
    (the one place the features touch the store's API: new_temp_file, put)."""
    tmp = store.new_temp_file(suffix=".npy")
    try:
        with storage_errors("writing features"), open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(feats, dtype=np.float32), allow_pickle=False)
        store.put(tmp, relative)
    finally:
        tmp.unlink(missing_ok=True)


def load_stored_features(store: Store, relative: str, n: int) -> np.ndarray | None:
    """The stored (n, D) features, or None when the file is missing or not (n, D) float32."""
    if not store.exists(relative):
        return None
    with storage_errors("reading features"):
        feats = np.load(store.local_copy(relative), allow_pickle=False)
    if feats.ndim != 2 or feats.shape[0] != n or feats.dtype != np.float32:
        log.warning("features %s: unexpected %s %s; extracting again", relative, feats.dtype,
                    feats.shape)  # fmt: skip
        return None
    return feats


def model_path(info: ModelInfo) -> str | None:
    """The local folder of a model from ``SYNIB_MODEL_DIR``; None for a model inside a PyPI
    package (its loader finds its own files)."""
    folder = model_folder(info)
    return None if folder is None else str(folder)


def extract(
    ctx: JobContext, data: MultimodalData, m: str, info: ModelInfo, pooling: str
) -> np.ndarray:
    """(N, D) features of modality ``m`` by ``info`` (batched; progress logged)."""
    import torch

    from synib_core.backbones import extract_features, load_pretrained

    device = "cuda" if torch.cuda.is_available() else "cpu"
    backbone = load_pretrained(info, model_path(info), pooling)
    batches = -(-len(data) // BATCH_SIZE)

    def progress(done: int, total: int) -> None:
        batch = -(-done // BATCH_SIZE)
        if batch % LOG_EVERY_BATCHES == 0 or done == total:
            log.info("job %s: features of %s: batch %d/%d (%d/%d samples)", ctx.job.id, m,
                     batch, batches, done, total)  # fmt: skip

    return extract_features(
        backbone,
        data.x[m],
        data.lengths.get(m),
        getattr(data, "rates", {}).get(m),
        pooling=pooling,
        batch_size=BATCH_SIZE,
        device=device,
        on_batch=progress,
    )


def frozen_features(
    ctx: JobContext, data: MultimodalData, m: str, info: ModelInfo, pooling: str
) -> np.ndarray:
    """Modality ``m``'s frozen features: the cached ones, or extracted, stored and recorded."""
    dataset_id = str(ctx.job.dataset_id)
    with ctx.sessions() as session:
        row = crud.get_dataset(session, dataset_id=dataset_id)
        sha = str(row.sha256 if row is not None and row.sha256 else data.fingerprint)
        fingerprint = feature_fingerprint(sha, info, pooling, m)
        found = crud.find_feature(session, fingerprint=fingerprint)
        cached = None if found is None else (found.path, float(found.seconds))
    relative = feature_relpath(fingerprint)
    if cached is not None:
        feats = load_stored_features(ctx.store, cached[0], len(data))
        if feats is not None:
            log.info("job %s: features of %s (%s, %s) from the cache %s: %s, %.2f s of "
                     "extraction saved", ctx.job.id, m, info.name, pooling, fingerprint[:12],
                     feats.shape, cached[1])  # fmt: skip
            _record(ctx, dataset_id, m, info, pooling, fingerprint, feats, cached)
            return feats
    t0 = time.perf_counter()
    feats = extract(ctx, data, m, info, pooling)
    seconds = time.perf_counter() - t0
    with_storage_retry(lambda: store_features(ctx.store, feats, relative), f"features {m}")
    log.info("job %s: features of %s (%s, %s) extracted in %.2f s: %s, cached as %s",
             ctx.job.id, m, info.name, pooling, seconds, feats.shape, relative)  # fmt: skip
    _record(ctx, dataset_id, m, info, pooling, fingerprint, feats, (relative, seconds))
    return feats


def _record(
    ctx: JobContext,
    dataset_id: str,
    m: str,
    info: ModelInfo,
    pooling: str,
    fingerprint: str,
    feats: np.ndarray,
    where: tuple[str, float],
) -> None:
    """The dataset's row for these features (also when another dataset with the same bytes
    computed them: the dataset page lists what its jobs use)."""
    ctx.write(
        lambda s: crud.add_feature(
            s, dataset_id=dataset_id, modality=m, model=info.name, pooling=pooling,
            fingerprint=fingerprint, dim=int(feats.shape[1]), path=where[0], seconds=where[1],
        ),
        "feature cache row",
    )  # fmt: skip


def prepare_backbones(
    ctx: JobContext, data: MultimodalData, backbones: dict[str, BackboneSpec]
) -> tuple[MultimodalData, dict[str, EncoderChoice]]:
    """The data the trials read (frozen features, prepared inputs) and modality ->
    ``EncoderChoice`` for ``fit`` (its JSON travels in the trial payloads)."""
    from synib_core.backbones import EncoderChoice

    if not backbones:
        return data, {}
    models = {i.name: i for i in discover_models(_model_dir(ctx))}
    x, lengths, oracle = dict(data.x), dict(data.lengths), dict(data.oracle)
    rates = dict(getattr(data, "rates", {}))  # MultimodalData.rates: audio sample rates
    choices: dict[str, EncoderChoice] = {}
    # The API's checks again, against this worker's own models (a job accepted while no
    # worker was serving may name one it lacks): SpecError naming backbones.<m>[.model].
    check_dataset_backbones(backbones, data.kinds, models)
    for m, spec in backbones.items():
        if not spec.pretrained:
            choices[m] = EncoderChoice(spec.encoder)
            continue
        info = models[str(spec.model)]
        path = model_path(info)
        choices[m] = EncoderChoice("pretrained", info, path, spec.train, spec.pooling)
        oracle.pop(m, None)  # its indices address the raw input
        rates.pop(m, None)  # no longer a waveform
        if spec.train == "frozen":
            x[m] = frozen_features(ctx, data, m, info, spec.pooling)
            lengths.pop(m, None)
            continue
        prepared = _prepare(ctx, data, m, info, path)
        x[m] = prepared["x"].astype(np.float32)  # token ids too: exact below 2**24
        lengths.pop(m, None)
        if "lengths" in prepared:
            lengths[m] = prepared["lengths"]
    extra: dict[str, Any] = {"rates": rates} if hasattr(data, "rates") else {}
    return dataclasses.replace(data, x=x, lengths=lengths, oracle=oracle, **extra), choices


def _prepare(
    ctx: JobContext, data: MultimodalData, m: str, info: ModelInfo, path: str | None
) -> dict[str, Any]:
    from synib_core.backbones import load_pretrained

    t0 = time.perf_counter()
    backbone = load_pretrained(info, path)
    rate = getattr(data, "rates", {}).get(m)
    prepared = backbone.prepare(data.x[m], data.lengths.get(m), rate)
    log.info("job %s: %s prepared for %s in %.2f s: %s", ctx.job.id, m, info.name,
             time.perf_counter() - t0, {k: v.shape for k, v in prepared.items()})  # fmt: skip
    return prepared


def _model_dir(ctx: JobContext) -> Path | None:
    """``SYNIB_MODEL_DIR`` (``Settings.model_dir``), None when the settings have none."""
    value = getattr(ctx.settings, "model_dir", None)
    return Path(value) if value else None
