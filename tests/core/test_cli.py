"""synib_core.cli through a tiny argparse parser built from `register` (as the `synib` script, synib_client/main.py, composes it)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from synib_core.cli import register
from synib_core.data import load_npz
from synib_core.training.sweep import DEFAULT_SWEEP

torch.set_num_threads(1)
TINY = [
    "--set",
    "epochs=2",
    "--set",
    "hidden=8",
    "--set",
    "fusion_hidden=8",
    "--set",
    "batch_size=32",
]


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="synib")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "xor.npz"
    params = ["--set", "n_train=64", "--set", "n_val=32", "--set", "n_test=64", "--set", "dim=12"]
    assert (
        run_cli(["data", "make", "xor_spurious", *params, "--seed", "3", "--out", str(path)]) == 0
    )
    return path


def test_data_make_writes_a_valid_file(tiny_npz: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = load_npz(tiny_npz)
    assert data.split_sizes() == {"train": 64, "val": 32, "test": 64}
    assert data.x["a"].shape == (160, 12)
    out = tiny_npz.parent / "pid.npz"
    assert (
        run_cli(["data", "make", "xor_pid", "--set", "p=[0.25,0.25,0.25,0.25]", "--out", str(out)])
        == 0
    )
    pid = load_npz(out)
    assert pid.group is not None and len(set(pid.group.tolist())) == 4
    assert "sha256" in capsys.readouterr().out


def test_train_writes_metrics_and_model(tiny_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = [
        "train",
        str(tiny_npz),
        "--method",
        "synib",
        *TINY,
        "--set",
        "lambda=2",
        "--no-progress",
    ]
    assert run_cli([*argv, "--references", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 2 and metrics["best_epoch"] in (1, 2)
    for key in ("val_acc", "test_acc", "test_macro_f1", "test_ece", "synergy_n", "cf_conf_a"):
        assert key in metrics
    assert (out / "model").is_dir() and any((out / "model").iterdir())
    from synib_core import load

    model = load(out / "model")
    data = load_npz(tiny_npz).subset("test")
    pred = model.predict({m: np.asarray(x) for m, x in data.x.items()})
    assert np.mean(pred == data.y) == pytest.approx(metrics["test_acc"])


def test_compare_writes_report(
    tiny_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cmp"
    argv = ["compare", str(tiny_npz), "--methods", "vanilla,synib", "--seeds", "0,1", *TINY]
    assert run_cli([*argv, "--n-boot", "100", "--no-progress", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["seeds"] == [0, 1] and set(report["methods"]) == {"vanilla", "synib"}
    assert len(report["methods"]["synib"]["metrics"]["test_acc"]["values"]) == 2
    assert "test_acc" in report["methods"]["synib"]["delta_vs_baseline"]
    assert set(report["references"]) == {"0", "1"} and "test_acc" in report["references"]["0"]["a"]
    assert report["sweep"] == {"lambda": list(DEFAULT_SWEEP["lambda"])}  # the default sweep
    for lam in DEFAULT_SWEEP["lambda"]:
        assert (out / "runs" / f"synib-seed1-lambda={lam}.json").exists()
    assert (out / "runs" / "vanilla-seed1.json").exists()  # vanilla reads no lambda: one run
    chosen = report["methods"]["synib"]["best_config"]["lambda"]
    curve = {p["config"]["lambda"]: p["val_acc"]["mean"] for p in report["methods"]["synib"]["sweep_curve"]}  # fmt: skip
    assert curve[chosen] == max(curve.values())
    table = capsys.readouterr().out
    assert "synib" in table and "Δ test_acc" in table
    assert f"synib: selected lambda={chosen}" in table
    assert "synib vs vanilla: synergy_acc" in table.splitlines()[-1]


def test_compare_with_an_explicit_sweep_or_none(tiny_npz: Path, tmp_path: Path) -> None:
    argv = ["compare", str(tiny_npz), "--methods", "synib", "--seeds", "0", *TINY, "--no-progress"]
    assert run_cli([*argv, "--sweep", "none", "--out", str(tmp_path / "a")]) == 0
    assert json.loads((tmp_path / "a" / "report.json").read_text())["sweep"] == {}
    sweep = ["--sweep", "lambda=0.5,2", "--sweep", "mask_prob=0.3"]
    assert run_cli([*argv, *sweep, "--out", str(tmp_path / "b")]) == 0
    runs = sorted(p.name for p in (tmp_path / "b" / "runs").iterdir())
    assert runs == [
        "synib-seed0-lambda=0.5-mask_prob=0.3.json",
        "synib-seed0-lambda=2.0-mask_prob=0.3.json",
    ]
    assert run_cli([*argv, "--sweep", "lambda=-1", "--out", str(tmp_path / "c")]) == 2
    assert not (tmp_path / "c").exists()  # refused before anything trained


def _service_trial(data_path: Path, method: str, seed: int, knobs: dict[str, str]) -> dict:
    """What a service trial does (worker/trainable.py): set the trial's threads, then ``fit``."""
    from synib_core.config import config_from_knobs
    from synib_core.training import fit
    from synib_core.training.threads import use_threads

    use_threads(1)
    result = fit(config_from_knobs(knobs), load_npz(data_path), method=method, seed=seed)
    return result.metrics


def test_cli_and_a_service_trial_give_the_same_numbers(tiny_npz: Path, tmp_path: Path) -> None:
    knobs = {"epochs": "2", "hidden": "8", "fusion_hidden": "8", "batch_size": "32"}
    torch.set_num_threads(2)  # whatever the process had before, the CLI sets its own
    argv = ["train", str(tiny_npz), "--method", "synib", *TINY, "--seed", "4", "--no-progress"]
    assert run_cli([*argv, "--out", str(tmp_path / "cli")]) == 0
    assert torch.get_num_threads() == 1  # the default: one thread, as a service trial
    cli = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    torch.set_num_threads(2)
    service = _service_trial(tiny_npz, "synib", 4, knobs)
    assert {k: cli[k] for k in service} == service
    assert run_cli([*argv, "--threads", "2", "--out", str(tmp_path / "two")]) == 0
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)


def test_threads_must_be_positive(
    tiny_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", str(tiny_npz), "--method", "vanilla", *TINY, "--threads", "0"]
    assert run_cli([*argv, "--out", str(tmp_path / "o")]) == 2
    assert "--threads: expected an integer from 1 to" in capsys.readouterr().err


def test_vanilla_runs_with_feature_norm_none(tiny_npz: Path, tmp_path: Path) -> None:
    """A method that never masks is not refused by a rule between the mask knobs: the rule
    check is per method (``synib_spec.knobs.check_rules``)."""
    argv = ["train", str(tiny_npz), "--method", "vanilla", *TINY, "--set", "feature_norm=none"]
    assert run_cli([*argv, "--no-progress", "--out", str(tmp_path / "v")]) == 0


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "{data}", "--method", "synib", "--set", "lamda=1"], "lamda"),
        (["train", "{data}", "--method", "synib", "--set", "mask=everything"], "mask"),
        (["train", "{data}", "--method", "magic"], "vanilla"),
        (["train", "{data}", "--method", "synib", "--set", "novalue"], "--set"),
        (["compare", "{data}", "--methods", "vanilla", "--seeds", "a,b"], "--seeds"),
        (["train", "{missing}", "--method", "vanilla"], "file"),
        (["data", "make", "xor_pid", "--set", "p=1,2"], "p"),
        (["data", "make", "mnist"], "xor_spurious"),
        (["data", "make", "xor_pid", "--set", "size=3"], "size"),
    ],
)
def test_user_errors_exit_2_with_one_line(
    argv: list[str], needle: str, tiny_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    filled = [a.format(data=tiny_npz, missing=tmp_path / "nope.npz") for a in argv]
    out = str(tmp_path / ("o.npz" if argv[0] == "data" else "o"))
    assert run_cli([*filled, "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--n-boot", "0"], "--n-boot: expected an integer from 1 to 1000000, got 0"),
        (["--n-boot", "1000001"], "--n-boot: expected an integer from 1 to 1000000, got 1000001"),
        (["--seeds", "0,-1"], "--seeds: expected an integer from 0 to 2147483647, got -1"),
        (
            ["--seeds", str(2**64)],
            f"--seeds: expected an integer from 0 to 2147483647, got {2**64}",
        ),
        (["--methods", "vanilla,synib,vanilla"], "--methods: a method is named twice in"),
        (["--set", "mask=oracle"], "mask_level (synib): mask='oracle' corrupts the dataset's"),
    ],
)
def test_compare_checks_its_options_before_training(
    options: list[str],
    message: str,
    tiny_npz: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "cmp"
    argv = ["compare", str(tiny_npz), "--methods", "vanilla,synib", *TINY, "--no-progress"]
    assert run_cli([*argv, *options, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"synib compare: error: {message}") and err.count("\n") == 1, err
    assert not out.exists()  # nothing trained, nothing written


def test_compare_checks_the_out_folder_before_training(
    tiny_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "a-file"
    out.write_text("not a folder")
    argv = ["compare", str(tiny_npz), "--methods", "vanilla", *TINY, "--no-progress"]
    assert run_cli([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("synib compare: error: ") and err.count("\n") == 1, err  # no training


@pytest.mark.parametrize("seed", ["-1", str(2**64)])
def test_train_refuses_a_seed_out_of_range(
    seed: str, tiny_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", str(tiny_npz), "--method", "vanilla", *TINY, "--seed", seed]
    assert run_cli([*argv, "--no-progress", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"synib train: error: --seed: expected an integer from 0 to 2147483647, got {seed}\n"
    )
    assert not (tmp_path / "run").exists()


def test_unknown_knob_names_the_allowed_knobs(
    tiny_npz: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run_cli(["train", str(tiny_npz), "--method", "synib", "--set", "lamda=1", "--out", "x"])
        == 2
    )
    err = capsys.readouterr().err
    assert "lamda" in err and "lambda" in err and "mask_prob" in err


def test_registering_imports_no_torch() -> None:
    code = (
        "import argparse, sys; from synib_core.cli import register; "
        "p = argparse.ArgumentParser(); register(p.add_subparsers()); "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
