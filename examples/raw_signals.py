"""Raw text, speech and images to a trained model and back, over the REST API.

The task is `speech_irony` (docs/METHOD.md, "Datasets") with its raw signals instead of
features, plus a third modality:
- `text`: a review sentence with a positive or negative sentiment (raw strings);
- `voice`: a neutral carrier sentence spoken by espeak-ng in a cheerful or gloomy tone (raw
  waveforms, variable length, with `rate_voice` and `len_voice`);
- `rating`: the reviewer's score as a handwritten digit (scikit-learn's 8x8 digits as uint8
  images): 6-9 for a positive review, 1-4 for a negative one (redundant with the text).
Labels: 0 negative, 1 positive, 2 ironic: the tone contradicts the words, which neither
modality shows alone (group "synergy").

The job reads the text with the packaged all-MiniLM-L6-v2 and the voice with resemblyzer's
voice encoder, both frozen (their features are computed once by the worker and cached for
every later job), and the rating with a small CNN trained from scratch; it compares vanilla
with SynIB over lambda. The downloaded model then predicts from raw strings, waveforms and
images: the frozen encoders are referenced by name and fingerprint, not copied into it.

Needs a running service (`make run`; the CLI's credentials are used) whose worker has the
signals extra (`pip install 'synib[signals]'`), and espeak-ng here to make the dataset:

    python examples/raw_signals.py                 # about 5 minutes on a 2-core CPU
    python examples/raw_signals.py --smoke         # tiny: checks the path in about 2 minutes
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from synib_client.client import Client
from synib_core import load
from synib_core.data.extractors import synthesize
from synib_core.data.speech_irony import IRONY_CLASS, pools, sentence_bank, voice_bank

NAMES = ("negative", "positive", "ironic")


def digit_images(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as uint8 (N, 8, 8, 1) images and their digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    return images, digits.target


def build_dataset(n: int, seed: int, irony_rate: float = 0.3) -> dict[str, np.ndarray]:
    """The arrays of the dataset file: x_text (N,) str, x_voice (N, T) float32 + len_voice +
    rate_voice, x_rating (N, 8, 8, 1) uint8, y, split, group. Train, validation and test draw
    sentences and utterances from disjoint pools (no test sentence is seen in training)."""
    rng = np.random.default_rng(seed)
    texts, sentiment = sentence_bank()
    specs, tones = voice_bank()
    text_pools, voice_pools = pools(sentiment, 2, seed), pools(tones, 2, seed + 1)
    images, digit = digit_images(rng)
    sizes = (round(0.6 * n), round(0.2 * n), n - round(0.6 * n) - round(0.2 * n))
    rows: dict[str, list] = {k: [] for k in ("text", "voice", "rating", "y", "split", "group")}
    for split, size in enumerate(sizes):
        for _ in range(size):
            positive = int(rng.integers(0, 2))
            ironic = rng.random() < irony_rate
            tone = positive ^ int(ironic)
            rows["text"].append(texts[rng.choice(text_pools[split][positive])])
            rows["voice"].append(specs[rng.choice(voice_pools[split][tone])])
            score = rng.choice(
                np.flatnonzero(np.isin(digit, (6, 7, 8, 9) if positive else (1, 2, 3, 4)))
            )
            rows["rating"].append(images[score])
            rows["y"].append(IRONY_CLASS if ironic else positive)
            rows["split"].append(split)
            rows["group"].append("synergy" if ironic else "redundant")
    print(f"speaking {n} utterances with espeak-ng ...", flush=True)
    waves, rates = zip(*(synthesize(spec) for spec in rows["voice"]), strict=True)
    longest = max(len(w) for w in waves)
    voice = np.zeros((n, longest), dtype=np.float32)
    for i, wave in enumerate(waves):
        voice[i, : len(wave)] = wave
    return {
        "x_text": np.array(rows["text"], dtype=str),
        "x_voice": voice,
        "len_voice": np.array([len(w) for w in waves], dtype=np.int64),
        "rate_voice": np.array(rates[0], dtype=np.int64),
        "x_rating": np.stack(rows["rating"]),
        "y": np.array(rows["y"], dtype=np.int64),
        "split": np.array(rows["split"], dtype=np.int8),
        "group": np.array(rows["group"]),
    }


def job_spec(dataset_id: str, epochs: int, smoke: bool) -> dict:
    lambdas = [0.0, 1.0] if smoke else [0.0, 0.3, 1.0, 3.0]
    return {
        "name": "raw signals: text + voice + rating",
        "dataset_id": dataset_id,
        "methods": ["vanilla", "synib"],
        "backbones": {
            "text": {"encoder": "pretrained", "model": "all-minilm-l6-v2", "train": "frozen"},
            "voice": {"encoder": "pretrained", "model": "resemblyzer-voice", "train": "frozen"},
            "rating": {"encoder": "cnn"},
        },
        "config": {"hidden": 64, "encoder_layers": 1, "lr": 1e-3, "batch_size": 32},
        "epochs": epochs,
        "sweep": {"lambda": {"type": "grid", "values": lambdas}},
        "seeds": [0],
        "resources": {"cpus_per_trial": 1},
    }


def wait(client: Client, job_id: str, timeout_s: float) -> dict:
    deadline, last = time.monotonic() + timeout_s, ""
    while time.monotonic() < deadline:
        job = client.job(job_id)
        line = f"job {job_id[:8]}: {job['status']} ({job.get('trials_done', 0)}/{job['trials_total']} trials)"
        if line != last:
            print(line, flush=True)
            last = line
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(2)
    raise SystemExit(f"job {job_id} did not finish within {timeout_s:.0f} s")


def predict_from_raw(model_dir: Path, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The downloaded model's predictions on the test rows, from the raw arrays."""
    model = load(model_dir)
    test = arrays["split"] == 2
    x = {"text": arrays["x_text"][test], "voice": arrays["x_voice"][test],
         "rating": arrays["x_rating"][test]}  # fmt: skip
    lengths = {"voice": arrays["len_voice"][test]}
    return model.predict(x, lengths, rates={"voice": int(arrays["rate_voice"])})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=400, help="samples (60/20/20 split)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="120 samples, 3 epochs")
    args = parser.parse_args(argv)
    n, epochs = (120, 3) if args.smoke else (args.n, args.epochs)
    arrays = build_dataset(n, args.seed)
    with tempfile.TemporaryDirectory() as tmp, Client() as client:
        path = Path(tmp) / "raw_signals.npz"
        np.savez(path, **arrays)
        dataset = client.upload_dataset(path, name="raw signals (text, voice, rating)")
        kinds = {m["name"]: m["kind"] for m in dataset["summary"]["modalities"]}
        print(f"dataset {dataset['id'][:8]}: {n} samples, modalities {kinds}")
        job = client.submit(job_spec(dataset["id"], epochs, args.smoke))
        done = wait(client, job["id"], timeout_s=3600)
        if done["status"] != "succeeded":
            print(f"job {done['status']}: {done.get('failure_reason')}", file=sys.stderr)
            return 1
        features = client.dataset(dataset["id"])["features"]
        for f in features:
            print(
                f"cached features: {f['modality']} by {f['model']} ({f['dim']}-d, {f['seconds']:.1f} s)"
            )
        report = client.report(job["id"])
        print("verdict:", report["verdicts"].get("synib"))
        best = report["methods"]["synib"]["metrics"]
        print(f"the job's own numbers for SynIB's selected model: test_acc "
              f"{best['test_acc']['mean']:.3f}, group_synergy_acc "
              f"{best['group_synergy_acc']['mean']:.3f}")  # fmt: skip
        out = client.download_best(job["id"], "synib", Path(tmp) / "model")
        predicted = predict_from_raw(out, arrays)
    truth = arrays["y"][arrays["split"] == 2]
    ironic = truth == IRONY_CLASS
    print(f"downloaded SynIB model on {len(truth)} raw test samples: accuracy "
          f"{(predicted == truth).mean():.3f}, on the ironic ones {(predicted[ironic] == truth[ironic]).mean():.3f}")  # fmt: skip
    for i in range(3):
        print(f"  {str(arrays['x_text'][arrays['split'] == 2][i])!r}: predicted {NAMES[predicted[i]]}, "
              f"truth {NAMES[truth[i]]}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
