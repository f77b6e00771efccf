"""`digit_speech`: a handwritten digit image + a spoken number; a mismatch is its own class.

Each sample shows an 8x8 digit image from scikit-learn's bundled digits (view "image", 64
pixels in [0, 1]) while a voice says a number from zero to nine (view "speech": espeak-ng, one of
several voices, pitches and speeds, embedded by resemblyzer's voice encoder, 256-d).

Labels 0..9: the digit, when the spoken number matches the image (group "redundant": either view
tells it); label 10, "mismatch", for a share ``synergy_rate`` of the samples whose spoken
number differs from the image's digit (uniform over the nine others; group "synergy").

Why neither view alone reveals a mismatch: the image's digit is uniform in both groups, and so
is the spoken number (the digit itself, or a uniform other digit); images and utterances come
from the same pools whatever the group. Only the equality between the views tells the groups
apart. Images and utterances are partitioned into train/val/test pools (stratified 70/15/15,
seeded); the utterance bank is fixed, so speech features are extracted once per machine.
"""

from __future__ import annotations

import os

import numpy as np

from synib_core.data.dataset import MultimodalData
from synib_core.data.extractors import speech_features, utterance_spec
from synib_core.data.feature_cache import with_features
from synib_core.data.speech_irony import paired_dataset, pools

MISMATCH_CLASS = 10
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VOICES = (
    "en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us+f1", "en-us+f3",
    "en-us+m3", "en-gb+f2", "en-gb+m5", "en-us+klatt2", "en-gb-x-rp+f4",
)  # fmt: skip
PITCHES = (25, 50, 75)
SPEEDS = (130, 175)


def number_bank() -> tuple[list[str], np.ndarray]:
    """Every spoken-number utterance spec and its digit: 10 x 12 voices x 3 pitches x 2 speeds."""
    specs, digits = [], []
    for digit, word in enumerate(WORDS):
        for voice in VOICES:
            for pitch in PITCHES:
                for speed in SPEEDS:
                    specs.append(utterance_spec(word, voice, pitch=pitch, speed=speed))
                    digits.append(digit)
    return specs, np.asarray(digits, dtype=np.int64)


def _rows(
    rng: np.random.Generator, n: int, synergy_rate: float, image_pool: list, speech_pool: list
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(image index, speech index, y, is_mismatch), each (n,), for one split."""
    mismatch = np.zeros(n, dtype=bool)
    mismatch[rng.permutation(n)[: round(synergy_rate * n)]] = True
    shown = rng.integers(0, 10, size=n)
    spoken = np.where(mismatch, (shown + rng.integers(1, 10, size=n)) % 10, shown)
    i_idx = np.array([rng.choice(image_pool[d]) for d in shown], dtype=np.int64)
    s_idx = np.array([rng.choice(speech_pool[d]) for d in spoken], dtype=np.int64)
    return i_idx, s_idx, np.where(mismatch, MISMATCH_CLASS, shown), mismatch


def make_digit_speech(
    seed: int,
    *,
    n_train: int,
    n_val: int,
    n_test: int,
    synergy_rate: float,
    fingerprint: str,
    cache_dir: str | os.PathLike[str] | None = None,
) -> MultimodalData:
    """Views "image" (N, 64) and "speech" (N, 256) float32; 11 classes (digits, mismatch);
    group "synergy" (mismatch) or "redundant"."""
    from sklearn.datasets import load_digits  # lazy: scikit-learn is optional for synib_core

    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / 16.0).reshape(-1, 64)
    specs, spoken_digit = number_bank()
    speech_x = speech_features(specs, cache_dir)
    image_pools = pools(np.asarray(bunch.target, dtype=np.int64), 10, seed)
    return paired_dataset(
        np.random.default_rng(seed),
        (n_train, n_val, n_test),
        synergy_rate,
        _rows,
        {"image": (images, image_pools), "speech": (speech_x, pools(spoken_digit, 10, seed + 1))},
        num_classes=MISMATCH_CLASS + 1,
        fingerprint=with_features(fingerprint, speech_x),
    )
