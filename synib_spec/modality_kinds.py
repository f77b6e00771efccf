"""The kind of each modality array of a dataset file, decided once from its dtype and shape.

Kinds (``synib_spec.backbones.MODALITY_KINDS``):

| ``x_<m>`` | kind |
|---|---|
| float (N, D) | vector |
| float (N, T, D) | sequence (optional ``len_<m>`` (N,) valid steps) |
| float (N, C, H, W) | image |
| uint8 (N, H, W, C) or (N, C, H, W), C in 1, 3, 4 | image (the library reads it as float32 (N, C, H, W) / 255) |
| unicode ``<U`` (N,) | text, one string per sample (``np.array(texts, dtype=str)``) |
| float (N, T) with a ``rate_<m>`` member | audio: waveforms at ``rate_<m>`` Hz (optional ``len_<m>`` (N,) valid samples) |

A uint8 image whose last axis is 1, 3 or 4 is read channels-last (N, H, W, C), else
channels-first (N, C, H, W): an ambiguous shape such as (N, 3, 4, 4) is channels-last (store
such images as float32 (N, C, H, W) to say otherwise). Object arrays are never read: strings
must be a fixed-width unicode array. The value checks stream the member a chunk at a time, as
every other check of the contract does.

Example:
    >>> kind_of("x_img", np.dtype(np.uint8), (10, 32, 32, 3), has_rate=False)
    'image'
    >>> kind_of("x_voice", np.dtype(np.float32), (10, 16000), has_rate=True)
    'audio'
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synib_spec.npz_reader import DatasetError, NpyMember

__all__ = [
    "IMAGE_CHANNELS",
    "MAX_RATE",
    "RAW_KINDS",
    "check_readable",
    "check_text",
    "image_channels_last",
    "kind_of",
    "modality_kind",
    "rate_value",
]

IMAGE_CHANNELS = (1, 3, 4)
MAX_RATE = 384_000  # Hz: the highest common audio sample rate
RAW_KINDS = ("text", "audio")  # kinds only a pretrained model of that modality can read
STRINGS_HINT = "save strings as a fixed-width unicode array: np.array(texts, dtype=str)"


def image_channels_last(shape: tuple[int, ...]) -> bool:
    """Whether a uint8 image array of ``shape`` (N, ., ., .) is (N, H, W, C): its last axis is
    1, 3 or 4 (checked first), else it is (N, C, H, W)."""
    return shape[-1] in IMAGE_CHANNELS


def kind_of(key: str, dtype: np.dtype[Any], shape: tuple[int, ...], has_rate: bool) -> str:
    """The kind of modality array ``key`` (``x_<m>``) of ``dtype`` and ``shape``; ``has_rate``:
    the file has ``rate_<m>``. DatasetError naming the member (or ``rate_<m>``) and the reason."""
    ndim = len(shape)
    if dtype.kind == "U":
        if ndim != 1:
            raise DatasetError(key, f"text must be one string per sample, shape (N,), got {shape}")
        return "text"
    if dtype.kind == "S":
        raise DatasetError(key, f"byte strings are not text; {STRINGS_HINT}")
    if dtype == np.uint8:
        return _uint8_kind(key, shape)
    if dtype.kind != "f":
        raise DatasetError(
            key,
            f"must be a float array, uint8 images or unicode text, got dtype {dtype}",
        )
    if has_rate:
        if ndim != 2:
            raise DatasetError(
                f"rate_{key[2:]}", f"only waveforms (N, T) take a sample rate; {key} is {shape}"
            )
        return "audio"
    kinds = {2: "vector", 3: "sequence", 4: "image"}
    if ndim not in kinds:
        raise DatasetError(
            key,
            f"must have shape (N, D), (N, T, D) or (N, C, H, W) (audio (N, T) with rate_{key[2:]})"
            f", got {shape}",
        )
    return kinds[ndim]


def _uint8_kind(key: str, shape: tuple[int, ...]) -> str:
    if len(shape) == 4 and (shape[3] in IMAGE_CHANNELS or shape[1] in IMAGE_CHANNELS):
        return "image"
    raise DatasetError(
        key,
        "uint8 arrays are images (N, H, W, C) or (N, C, H, W) with C channels in 1, 3 or 4, "
        f"got shape {shape}",
    )


def modality_kind(member: NpyMember, has_rate: bool) -> str:
    """The kind of modality member ``x_<m>`` (see ``kind_of``); the one function that decides."""
    return kind_of(member.key, member.dtype, member.shape, has_rate)


def rate_value(member: NpyMember) -> int:
    """The sample rate in ``rate_<m>``: an integer scalar or (1,) array in 1..MAX_RATE Hz."""
    if member.shape not in ((), (1,)) or member.dtype.kind not in "iu":
        raise DatasetError(
            member.key,
            f"must be one integer (a scalar or shape (1,)), the sample rate in Hz, got "
            f"{member.dtype} {member.shape}",
        )
    rate = int(member.load().reshape(-1)[0])
    if not 1 <= rate <= MAX_RATE:
        raise DatasetError(member.key, f"sample rate must be 1..{MAX_RATE} Hz, got {rate}")
    return rate


def check_text(member: NpyMember, max_chars: int) -> None:
    """Every string of a text member is valid unicode (no surrogates, code points up to
    U+10FFFF) and at most ``max_chars`` characters; empty strings are fine. Streamed."""
    width = member.dtype.itemsize // 4
    codes = np.dtype(f"{member.dtype.str[0]}u4")
    for start, values in member.chunks():
        points = values.view(codes)
        if points.size and (
            int(points.max()) > 0x10FFFF or bool(((points >= 0xD800) & (points <= 0xDFFF)).any())
        ):
            bad = int(np.argmax((points > 0x10FFFF) | ((points >= 0xD800) & (points <= 0xDFFF))))
            raise DatasetError(
                member.key,
                f"sample {start + bad // max(width, 1)} holds an invalid unicode code point",
            )
        if width > max_chars:
            lengths = np.strings.str_len(values)
            if lengths.size and int(lengths.max()) > max_chars:
                at = start + int(np.argmax(lengths))
                raise DatasetError(
                    member.key,
                    f"sample {at} has {int(lengths.max())} characters, over the limit of "
                    f"{max_chars} per item",
                )


def check_readable(member: NpyMember) -> None:
    """Read the member through once (its CRC is checked): uint8 images have no bad values."""
    for _ in member.chunks():
        pass
