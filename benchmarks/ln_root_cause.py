"""Why does the input-level mask with a LayerNorm on the encoder outputs defeat the penalty?

    python benchmarks/ln_root_cause.py [--tasks digits_pairs,xor_spurious] [--seeds 0,1,2]

Trains SynIB with input-level random masks with and without the parameter-free LayerNorm (and
the feature-level default and vanilla as references) through the library's own training pieces,
and after every epoch measures on a fixed diagnostic batch (512 training rows):

- ``shift``: mean ||z~_m - z_m|| / ||z_m|| between the counterfactual feature of the TRAINING
  mask and the clean feature (how far the corruption moves what the fusion head sees);
- ``probe``: accuracy of a logistic-regression probe telling clean from counterfactual features
  (5-fold CV): can the head recognise "this is a counterfactual" and answer it separately?
- ``cf_train``: mean KL(q(x~_m) || uniform) under the training mask (what the penalty sees);
  ``cf_eval``: the same under the evaluation mask (whole modality swapped; the cf_conf metric);
- ``pre_norm`` / ``pre_norm_cf``: mean ||h|| of the raw encoder output (before any LayerNorm) for
  clean and counterfactual inputs;
- ``cos``, ``ratio``: cosine and norm ratio between the gradients of lambda * penalty and of the
  CE, on modality m's encoder parameters.
Final rows: test accuracy and ground-truth synergy-group accuracy at the epoch selected by
validation accuracy. Results go to benchmarks/results/ln_root_cause.json; a Markdown table is
printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from synib_core.backbones import to_probs
from synib_core.config import config_from_knobs
from synib_core.data import make_dataset
from synib_core.objectives import build_objective
from synib_core.objectives.base import Batch, StepContext
from synib_core.objectives.fills import FillStep, swap_permutation
from synib_core.objectives.losses import task_terms
from synib_core.objectives.masks import MaskRequest, apply_corruption
from synib_core.objectives.penalties import kl_uniform
from synib_core.objectives.synib import SynIB
from synib_core.training.evaluate import accuracy_of, test_metrics
from synib_core.training.run import TrainingRun

RESULTS = Path(__file__).resolve().parent / "results"

TASKS: dict[str, dict[str, Any]] = {
    # The user's setting of issue #19: mlp 128 / concat_mlp 64, lr 1e-3, w_uni 0, swap fill.
    "digits_pairs": {
        "params": {"synergy_rate": 0.05},
        "common": {"hidden": 128, "fusion_hidden": 64, "lr": 1e-3, "w_uni": 0.0, "epochs": 40},
        "synib": {"lambda": 1.0, "mask": "random", "mask_prob": 0.5, "fill": "swap"},
    },
    "speech_irony": {
        "params": {"synergy_rate": 0.05},
        "common": {"hidden": 128, "fusion_hidden": 64, "lr": 1e-3, "w_uni": 0.0, "epochs": 40},
        "synib": {"lambda": 1.0, "mask": "random", "mask_prob": 0.5, "fill": "swap"},
    },
    "digit_speech": {
        "params": {"synergy_rate": 0.05},
        "common": {"hidden": 128, "fusion_hidden": 64, "lr": 1e-3, "w_uni": 0.0, "epochs": 40},
        "synib": {"lambda": 1.0, "mask": "random", "mask_prob": 0.5, "fill": "swap"},
    },
    # The paper's xor_spurious recipe at alpha 1 (docs/METHOD.md section 9).
    "xor_spurious": {
        "params": {"alpha": 1.0, "n_test": 5000},
        "common": {
            "hidden": 16, "encoder_layers": 1, "fusion_hidden": 32, "w_uni": 0.05,
            "epochs": 100, "batch_size": 128, "lr": 3e-4, "weight_decay": 1e-5,
        },
        "synib": {"lambda": 10.0, "mask": "random", "mask_prob": 0.4, "fill": "noise"},
    },
}  # fmt: skip
ARMS = {
    "input_layernorm": ("synib", {"mask_level": "input", "feature_norm": "layernorm"}),
    "input_none": ("synib", {"mask_level": "input", "feature_norm": "none"}),
    "feature_layernorm": ("synib", {"mask_level": "feature", "feature_norm": "layernorm"}),
    "vanilla_layernorm": ("vanilla", {"feature_norm": "layernorm"}),
    # full input-level swaps (not run by default; --arms to add them): a real other sample
    "input_full_layernorm": ("synib", {"mask_level": "input", "mask": "full"}),
    "input_full_none": (
        "synib",
        {"mask_level": "input", "mask": "full", "feature_norm": "none"},
    ),
}
DEFAULT_ARMS = ("input_layernorm", "input_none", "feature_layernorm", "vanilla_layernorm")
DIAG_ROWS = 512


def _ctx(run: TrainingRun, generator: torch.Generator) -> StepContext:
    return StepContext(1, 1, 0, generator, run.train_prior, run.oracle, training=True)


def _cf_inputs(builder: Any, batch: Batch, m: str, gen: torch.Generator) -> torch.Tensor:
    """Modality m's raw input corrupted by the training mask and fill: (B, ...)."""
    x = batch.x[m]
    values = x.reshape(x.shape[0], -1)
    perm = swap_permutation(values.shape[0], gen, values.device)
    step = FillStep(generator=gen, perm=perm, training=False)
    repl = builder.fill.replacement(m, values, step)
    request = MaskRequest(m, values, repl, batch.y, gen, training=False)
    return apply_corruption(values, repl, builder.mask.corruption(request)).reshape(x.shape)


def _probe(clean: np.ndarray, cf: np.ndarray) -> float:
    x = np.concatenate([clean, cf])
    y = np.r_[np.zeros(len(clean)), np.ones(len(cf))]
    clf = LogisticRegression(max_iter=500)
    return float(cross_val_score(clf, x, y, cv=5).mean())


def _grads(run: TrainingRun, objective: SynIB, batch: Batch) -> dict[str, tuple[float, float]]:
    """m -> (cos(grad lambda*penalty, grad CE), ||grad pen|| / ||grad CE||) on encoder m."""
    model = run.model
    gen = torch.Generator().manual_seed(7)
    feats = model.encode_all(batch)
    terms = task_terms(model, feats, batch.y, objective.w_uni, objective.uni_detach)
    ctx = _ctx(run, gen)
    cf = objective.counterfactuals.logits(model, batch, feats, ctx)
    pen = objective.lam * objective.counterfactual_term(model, feats, cf, batch, ctx)
    out = {}
    for m in model.modalities:
        params = list(model.encoders[m].parameters())
        g_ce = torch.autograd.grad(terms.ce, params, retain_graph=True, allow_unused=True)
        g_pen = torch.autograd.grad(pen, params, retain_graph=True, allow_unused=True)
        a = torch.cat([g.flatten() for g in g_ce if g is not None])
        b = torch.cat([g.flatten() for g in g_pen if g is not None])
        cos = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
        out[m] = (cos, float(b.norm() / a.norm().clamp_min(1e-12)))
    return out


@torch.no_grad()
def _features(run: TrainingRun, objective: SynIB, batch: Batch) -> dict[str, dict[str, float]]:
    model = run.model
    model.eval()
    gen = torch.Generator().manual_seed(11)
    feats = model.encode_all(batch)
    cf_feats = objective.counterfactuals.features(model, batch, feats, _ctx(run, gen))
    cf_logits = objective.counterfactuals.logits(model, batch, feats, _ctx(run, gen))
    perm = swap_permutation(len(batch), torch.Generator().manual_seed(13), batch.y.device)
    out = {}
    for m in model.modalities:
        z, zc = feats[m], cf_feats[m]
        shift = float(((zc - z).norm(dim=1) / z.norm(dim=1).clamp_min(1e-12)).mean())
        x_cf = _cf_inputs(objective.counterfactuals, batch, m, torch.Generator().manual_seed(17))
        h = model.encoders[m](batch.x[m], batch.lengths.get(m))
        h_cf = model.encoders[m](x_cf, batch.lengths.get(m))
        swapped = model.fuse({**feats, m: feats[m][perm]})
        out[m] = {
            "shift": shift,
            "probe": _probe(z.numpy(), zc.numpy()),
            "cf_train": float(kl_uniform(cf_logits[m]).mean()),
            "cf_eval": float(kl_uniform(swapped).mean()),
            "pre_norm": float(h.norm(dim=1).mean()),
            "pre_norm_cf": float(h_cf.norm(dim=1).mean()),
            "pre_shift": float(((h_cf - h).norm(dim=1) / h.norm(dim=1).clamp_min(1e-12)).mean()),
            "dead": float((h == 0).float().mean()),
            "conf_clean": float(to_probs(model.fuse(feats)).max(dim=1).values.mean()),
        }
    model.train()
    return out


def run_arm(task: str, arm: str, seed: int) -> dict[str, Any]:
    spec = TASKS[task]
    method, knobs = ARMS[arm]
    data = make_dataset(task, seed, **spec["params"])
    config = config_from_knobs({**spec["common"], **spec["synib"], **knobs})
    # Diagnostics need the counterfactual builder even for vanilla: a SynIB objective with the
    # same knobs measures what the penalty would see, while vanilla trains.
    probe_obj = build_objective("synib", config, data.spec())
    assert isinstance(probe_obj, SynIB)
    objective = build_objective(method, config, data.spec())
    with torch.random.fork_rng(devices=[]):
        run = TrainingRun.create(config, data, method=method, objective=objective, seed=seed)
        diag = run.train.batch(torch.arange(min(DIAG_ROWS, len(run.train))))
        history = []
        best_val, best_state = -1.0, None
        for epoch in range(1, config.epochs + 1):
            run.model.train()
            for batch in run.batches():
                out = run.objective.loss(run.model, batch, run.context(epoch))
                run.optimizer.zero_grad(set_to_none=True)
                run.objective.backward(out, run.model)
                run.optimizer.step()
                run.state.step += 1
            val = accuracy_of(run.model, run.val)
            if val > best_val:
                best_val = val
                best_state = {k: v.clone() for k, v in run.model.state_dict().items()}
            row: dict[str, Any] = {"epoch": epoch, "val_acc": val}
            if epoch in _marks(config.epochs):
                row["feat"] = _features(run, probe_obj, diag)
                row["grad"] = _grads(run, probe_obj, diag)
            history.append(row)
        assert best_state is not None
        run.model.load_state_dict(best_state)
        metrics, _ = test_metrics(run.model, run.test, None)
    return {"task": task, "arm": arm, "seed": seed, "history": history, "metrics": metrics}


def _marks(epochs: int) -> list[int]:
    """The epochs at which the diagnostics run (they cost more than an epoch)."""
    return sorted({1, min(5, epochs), min(10, epochs), epochs})


def _at(history: list[dict[str, Any]], epoch: int, key: str, sub: str) -> float:
    row = history[min(epoch, len(history)) - 1]
    values = [v[sub] if isinstance(v, dict) else v[0 if sub == "cos" else 1] for v in row[key].values()]  # fmt: skip
    return float(np.mean(values))


def table(results: list[dict[str, Any]]) -> str:
    lines = []
    for task in dict.fromkeys(r["task"] for r in results):
        rows = [r for r in results if r["task"] == task]
        marks = _marks(len(rows[0]["history"]))
        lines += [f"\n### {task} (mean over seeds and modalities; epochs {marks})\n"]
        head = "| arm | test acc | synergy group acc | shift | probe | cf_train | cf_eval |"
        head += " pre_norm clean / cf | pre_shift | dead | cos(pen, CE) | ratio |"
        lines += [head, "|---" * 12 + "|"]
        for arm in ARMS:
            sel = [r for r in rows if r["arm"] == arm]
            if not sel:
                continue

            def traj(
                key: str, sub: str, sel: list[dict[str, Any]] = sel, marks: list[int] = marks
            ) -> str:
                vals = [np.mean([_at(r["history"], e, key, sub) for r in sel]) for e in marks]
                return " → ".join(f"{v:.2f}" for v in vals)

            acc = np.mean([r["metrics"]["test_acc"] for r in sel])
            syn = np.mean([r["metrics"].get("group_synergy_acc", np.nan) for r in sel])
            pre = f"{traj('feat', 'pre_norm').split(' → ')[-1]} / "
            pre += traj("feat", "pre_norm_cf").split(" → ")[-1]
            lines.append(
                f"| {arm} | {acc:.3f} | {syn:.3f} | {traj('feat', 'shift')} | "
                f"{traj('feat', 'probe')} | {traj('feat', 'cf_train')} | "
                f"{traj('feat', 'cf_eval')} | {pre} | {traj('feat', 'pre_shift')} | "
                f"{traj('feat', 'dead')} | {traj('grad', 'cos')} | "
                f"{traj('grad', 'ratio')} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="digits_pairs,speech_irony,digit_speech,xor_spurious")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--arms", default=",".join(DEFAULT_ARMS))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = []
    for task in args.tasks.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            for arm in args.arms.split(","):
                start = time.perf_counter()
                res = run_arm(task, arm, seed)
                results.append(res)
                m = res["metrics"]
                print(
                    f"{task} {arm} seed {seed}: test {m['test_acc']:.3f} synergy group "
                    f"{m.get('group_synergy_acc', float('nan')):.3f} "
                    f"({time.perf_counter() - start:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "ln_root_cause_" + args.tasks.replace(",", "_") + ".json"
    (RESULTS / name).write_text(json.dumps(results, indent=1))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
