"""`speech_irony`: text sentiment + vocal tone, where a contradiction between them is irony.

The paper's CREMA-D "irony" extension rebuilt from offline signals. Each sample has:
- view "text": a review-like sentence with a positive or negative sentiment, embedded by
  all-MiniLM-L6-v2 (384-d);
- view "voice": a NEUTRAL carrier sentence (CREMA-D style: the words carry no sentiment) spoken
  by espeak-ng in a cheerful tone (high pitch, fast) or a gloomy tone (low pitch, slow), by one of
  several voices, embedded by resemblyzer's voice encoder (256-d).

Labels: 0 negative, 1 positive, 2 ironic. A share ``synergy_rate`` of the samples is ironic: the
tone contradicts the text (group "synergy", label 2); the others have a tone that agrees with
the text (group "redundant", label = the sentiment, readable from either view).

Why neither view alone reveals irony: the sentiment is uniform in both groups, and the tone is
"the sentiment, flipped with probability synergy_rate", hence uniform too; the sentences and the
utterances are drawn from the same pools whatever the group. Only the relation between the views
(sentiment XOR tone) marks an ironic sample. Sentences and utterances are partitioned into
train/val/test pools (stratified 70/15/15, seeded), so no test sentence or utterance is seen in
training. The banks are fixed (the seed only draws the pools and the rows), so the features are
extracted once per machine (``feature_cache``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from synib_core.data.dataset import MultimodalData
from synib_core.data.extractors import speech_features, text_features, utterance_spec
from synib_core.data.feature_cache import with_features
from synib_spec.datasets import stratified_split

IRONY_CLASS = 2

POSITIVE = (
    "I absolutely loved the {}.",
    "The {} was wonderful.",
    "What a fantastic {}!",
    "I'm so happy with the {}.",
    "The {} exceeded all my expectations.",
    "Honestly, the best {} I have ever had.",
    "I really enjoyed the {}.",
    "The {} made my whole day.",
)
NEGATIVE = (
    "I absolutely hated the {}.",
    "The {} was terrible.",
    "What an awful {}!",
    "I'm so disappointed with the {}.",
    "The {} fell far short of my expectations.",
    "Honestly, the worst {} I have ever had.",
    "I really regret the {}.",
    "The {} ruined my whole day.",
)
OBJECTS = (
    "movie", "dinner", "hotel room", "concert", "flight", "haircut", "book", "meeting",
    "vacation", "pizza", "service", "weather", "party", "lecture", "game", "coffee", "phone",
    "car ride", "show", "museum visit", "birthday cake", "new job", "neighbourhood",
    "train journey", "apartment",
)  # fmt: skip
# Carrier sentences in the style of CREMA-D: no sentiment in the words.
NEUTRAL = (
    "It's eleven o'clock.",
    "That is exactly what happened.",
    "I'm on my way to the meeting.",
    "I wonder what this is about.",
    "The airplane is almost full.",
    "Maybe tomorrow it will be cold.",
    "I would like a new alarm clock.",
    "I think I have a doctor's appointment.",
    "Don't forget a jacket.",
    "I think I've seen this before.",
    "The surface is slick.",
    "We'll stop in a couple of minutes.",
)
VOICES = (
    "en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us+f1", "en-us+f3",
    "en-us+m3", "en-gb+f2", "en-gb+m5", "en-us+klatt2", "en-gb-x-rp+f4", "en-us+m1",
    "en-gb+f4", "en-us+m7", "en-029+f1",
)  # fmt: skip
# tone -> ((pitch low, high), (speed low, high)), drawn uniformly: 0 gloomy (lower, slower),
# 1 cheerful (higher, faster). The ranges overlap, and the voices differ in their own pitch,
# so the tone is not always audible: a realistic, imperfect unimodal cue.
TONES = {0: ((15, 55), (110, 160)), 1: ((45, 85), (150, 200))}
BANK_SEED = 20_260_101  # fixed: the banks (and so the feature cache) do not depend on the seed


def sentence_bank() -> tuple[list[str], np.ndarray]:
    """Every sentence and its sentiment (0 negative, 1 positive): 2 x 8 x 25 = 400."""
    texts, labels = [], []
    for label, templates in ((0, NEGATIVE), (1, POSITIVE)):
        for template in templates:
            for obj in OBJECTS:
                texts.append(template.format(obj))
                labels.append(label)
    return texts, np.asarray(labels, dtype=np.int64)


def voice_bank(draws: int = 2) -> tuple[list[str], np.ndarray]:
    """Every utterance spec and its tone: sentences x voices x tones x ``draws`` (pitch, speed): 12 x 16 x 2 x 2 = 768."""
    rng = np.random.default_rng(BANK_SEED)
    specs, tones = [], []
    for sentence in NEUTRAL:
        for voice in VOICES:
            for tone, (pitches, speeds) in TONES.items():
                for _ in range(draws):
                    pitch = int(rng.integers(pitches[0], pitches[1] + 1))
                    speed = int(rng.integers(speeds[0], speeds[1] + 1))
                    specs.append(utterance_spec(sentence, voice, pitch=pitch, speed=speed))
                    tones.append(tone)
    return specs, np.asarray(tones, dtype=np.int64)


def pools(labels: np.ndarray, n_values: int, seed: int) -> list[list[np.ndarray]]:
    """pools[split][value] -> bank indices of that label value in that split's pool."""
    split = stratified_split(labels, seed=seed)
    return [[np.flatnonzero((split == s) & (labels == v)) for v in range(n_values)] for s in (0, 1, 2)]  # fmt: skip


RowDraw = Callable[
    [np.random.Generator, int, float, list, list],
    tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
]


def paired_dataset(
    rng: np.random.Generator,
    sizes: tuple[int, int, int],
    synergy_rate: float,
    draw: RowDraw,
    banks: dict[str, tuple[np.ndarray, list[list[np.ndarray]]]],
    *,
    num_classes: int,
    fingerprint: str,
) -> MultimodalData:
    """The rows of train, validation and test (in that order, ``sizes``), each split drawn by
    ``draw(rng, n, synergy_rate, pool_a, pool_b)`` -> (index a, index b, y, is_synergy) from
    that split's pools, gathered from the two views' feature banks: ``banks`` maps each view's
    name to (its features (N_bank, D), its pools), view a first."""
    (name_a, (bank_a, pools_a)), (name_b, (bank_b, pools_b)) = banks.items()
    parts = [
        (*draw(rng, n, synergy_rate, pools_a[sid], pools_b[sid]), np.full(n, sid, dtype=np.int8))
        for sid, n in enumerate(sizes)
    ]
    a_idx, b_idx, y, synergy, split = (np.concatenate(col) for col in zip(*parts, strict=True))
    return MultimodalData(
        x={name_a: bank_a[a_idx], name_b: bank_b[b_idx]},
        y=y.astype(np.int64),
        split=split,
        group=np.where(synergy, "synergy", "redundant"),
        oracle={},
        lengths={},
        num_classes=num_classes,
        fingerprint=fingerprint,
    )


def _rows(
    rng: np.random.Generator, n: int, synergy_rate: float, text_pool: list, voice_pool: list
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(text index, voice index, y, is_ironic), each (n,), for one split."""
    ironic = np.zeros(n, dtype=bool)
    ironic[rng.permutation(n)[: round(synergy_rate * n)]] = True
    sentiment = rng.integers(0, 2, size=n)
    tone = np.where(ironic, 1 - sentiment, sentiment)
    t_idx = np.array([rng.choice(text_pool[s]) for s in sentiment], dtype=np.int64)
    v_idx = np.array([rng.choice(voice_pool[t]) for t in tone], dtype=np.int64)
    return t_idx, v_idx, np.where(ironic, IRONY_CLASS, sentiment), ironic


def make_speech_irony(
    seed: int,
    *,
    n_train: int,
    n_val: int,
    n_test: int,
    synergy_rate: float,
    fingerprint: str,
    cache_dir: str | os.PathLike[str] | None = None,
) -> MultimodalData:
    """Views "text" (N, 384) and "voice" (N, 256) float32; 3 classes (negative, positive,
    ironic); group "synergy" (ironic) or "redundant"."""
    texts, sentiment = sentence_bank()
    specs, tone = voice_bank()
    text_x = text_features(texts, cache_dir)
    voice_x = speech_features(specs, cache_dir)
    return paired_dataset(
        np.random.default_rng(seed),
        (n_train, n_val, n_test),
        synergy_rate,
        _rows,
        {"text": (text_x, pools(sentiment, 2, seed)), "voice": (voice_x, pools(tone, 2, seed + 1))},
        num_classes=IRONY_CLASS + 1,
        fingerprint=with_features(fingerprint, text_x, voice_x),
    )
