"""Time per training step and peak memory of SynIB vs vanilla on the same model (CPU).

    python benchmarks/step_speed.py [--rounds 3] [--steps 30] [--threads 1] [--smoke]

Model: two modalities of 256 features, mlp encoders 2 x 512, the default concat_mlp fusion (one hidden layer of 128), 10 classes,
batch 256. Every configuration runs in its own fresh process (so the peak RSS is its own), one
after the other, for several interleaved rounds; the table gives the median step time, its ratio
to vanilla's, and the process's peak RSS. A step = objective.loss + objective.backward +
optimizer.step, exactly what ``fit`` does per batch.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "vanilla": ("vanilla", {}),
    "synib feature random": ("synib", {"mask": "random", "mask_level": "feature"}),
    "synib feature full": ("synib", {"mask": "full", "mask_level": "feature"}),
    "synib feature oracle": ("synib", {"mask": "oracle", "mask_level": "feature"}),
    "synib input random": ("synib", {"mask": "random", "mask_level": "input", "fill": "noise"}),
    "synib learned (20 steps)": (
        "synib",
        {"mask": "learned", "mask_steps": 20, "w_uni": 1.0, "mask_level": "feature"},
    ),
}
COMMON = {
    "encoder": "mlp",
    "hidden": 512,
    "encoder_layers": 2,
    "fusion": "concat_mlp",
    "fusion_layers": 1,
    "lambda": 1.0,
    "batch_size": 256,
}  # fusion_hidden: default 128
D, K, B = 256, 10, 256


def _child(name: str, steps: int, threads: int) -> None:
    import torch

    from synib_core.backbones import build_model
    from synib_core.config import config_from_knobs
    from synib_core.data import DataSpec
    from synib_core.objectives import build_objective
    from synib_core.objectives.base import Batch, StepContext

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    method, knobs = CONFIGS[name]
    config = config_from_knobs({**COMMON, **knobs})
    spec = DataSpec(
        modalities=("a", "b"),
        shapes={"a": (D,), "b": (D,)},
        num_classes=K,
        oracle_sizes={"a": 32, "b": 32},
    )
    model = build_model(config, spec, method)
    objective = build_objective(method, config, spec)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    batch = Batch(
        x={"a": torch.randn(B, D), "b": torch.randn(B, D)},
        y=torch.randint(0, K, (B,)),
        index=torch.arange(B),
    )
    ctx = StepContext(
        epoch=1,
        num_epochs=10,
        step=0,
        generator=gen,
        train_prior=torch.full((K,), 1.0 / K),
        oracle={"a": torch.arange(32), "b": torch.arange(32)},
    )
    model.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out = objective.loss(model, batch, ctx)
        objective.backward(out, model, None)
        opt.step()

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"name": name, "step_ms": 1000 * statistics.median(times), "peak_rss_mib": peak_mib}
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.steps, args.threads)
        return 0
    rounds, steps = (1, 3) if args.smoke else (args.rounds, args.steps)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGS}
    for r in range(rounds):
        for name in CONFIGS:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    name,
                    "--steps",
                    str(steps),
                    "--threads",
                    str(args.threads),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            samples[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1}: {name}: {samples[name][-1]['step_ms']:.1f} ms", file=sys.stderr)
    base = statistics.median(s["step_ms"] for s in samples["vanilla"])
    print("| configuration | step time (ms, median) | ratio to vanilla | peak RSS (MiB) |")
    print("|---|---|---|---|")
    for name, rows in samples.items():
        ms = statistics.median(s["step_ms"] for s in rows)
        rss = max(s["peak_rss_mib"] for s in rows)
        print(f"| {name} | {ms:.1f} | {ms / base:.2f}x | {rss:.0f} |")
    print(
        f"\nbatch {B}, 2 modalities x {D} features, mlp 2x512, {args.threads} torch thread(s), "
        f"{rounds} rounds x {steps} steps"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
