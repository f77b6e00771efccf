"""Overhead of the service over a direct run: the same 8-trial sweep both ways, and a job's
fixed overhead.

    python benchmarks/sweep_overhead.py [--epochs 10] [--cpus 2] [--rounds 1] [--smoke]

The sweep: xor_pid (saved as .npz), vanilla + synib over lambda {0.1, 1, 10}, seeds {0, 1}
(2 + 6 trials), the mlp of examples/xor_pid_sweep.yaml (``KNOBS``), ``--epochs`` epochs, one
unimodal reference model per modality and seed. It runs:

1. directly, in one fresh process, serially: exactly what ``synib compare`` does per seed
   (``train_references`` once, then ``fit`` per trial; ``synib compare`` itself cannot sweep
   lambda, so the loop calls the same two functions), 1 torch thread; then the work of the
   tiny job below (references of one seed, one 1-epoch ``fit``);
2. through the service: ``synib serve`` (SQLite, SQLite broker, local Ray with
   ``SYNIB_CPUS=--cpus``) in a subprocess with a temp state dir; the .npz is uploaded. A first
   tiny job (1 trial, 1 epoch, 1 seed) starts the worker's Ray (the worker keeps it for every
   later job); ``FIXED_JOBS`` more tiny jobs then give a job's fixed overhead: its wall time
   minus the direct time of the same work. Then the sweep is submitted with
   ``max_concurrent_trials`` 1 and then 2 (1 CPU per trial) and followed on its event stream
   (as ``Client.wait`` and ``synib watch`` do) until it succeeded.

Wall times include everything (the direct process's start and imports; for the service, from
POST to the ``succeeded`` event); the job's own timestamps split the service's time into
queue wait, setup (dataset load, Tune start, the first trial's process start; the references
train beside the trials), trials and finalisation (artifacts, report). A second table gives
each job's CPU seconds by component (``_cpu.CpuMeter``: trial processes, references, driver,
API, Ray daemons) and the speed-up they allow on the machine's cores. With ``--rounds N`` the
pair of sweep jobs runs N times on the same service, in alternating order (1 then 2 at a time,
then 2 then 1, ...), so that a host that speeds up or slows down during the run favours
neither. Targets from the issue are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from _cpu import COMPONENTS, OTHER, TRIALS, CpuMeter
from _service import Service, exit_on_sigterm, markdown_table, run_serve

from synib_client.client import Client

# The model of examples/xor_pid_sweep.yaml (the documented laptop-sized sweep).
KNOBS: dict[str, Any] = {
    "encoder": "mlp", "hidden": 256, "encoder_layers": 2, "fusion": "concat_mlp",
    "fusion_hidden": 64, "fusion_layers": 1, "batch_size": 64, "lr": 1e-3, "w_uni": 1.0,
    "mask": "random", "mask_level": "input", "fill": "noise", "device": "cpu",
}  # fmt: skip
SMOKE_DATA = {"n_train": 200, "n_val": 50, "n_test": 200}
TARGET_RATIO, TARGET_SPEEDUP, TARGET_FIXED_S = 1.3, 1.5, 6.0
FIXED_JOBS = 3  # tiny jobs on a worker whose Ray runs: their median is the fixed overhead
RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Sweep:
    """vanilla once per seed + synib per lambda and seed, ``epochs`` epochs each."""

    epochs: int = 10
    lambdas: tuple[float, ...] = (0.1, 1.0, 10.0)
    seeds: tuple[int, ...] = (0, 1)

    def trials(self) -> list[tuple[str, int, dict[str, Any]]]:
        """(method, seed, knobs) of every trial, in the service's order (method, lambda, seed)."""
        base = {**KNOBS, "epochs": self.epochs}
        out = [("vanilla", s, dict(base)) for s in self.seeds]
        out += [("synib", s, {**base, "lambda": v}) for v in self.lambdas for s in self.seeds]
        return out


# ---- the direct run (a child process) ----------------------------------------------------


def direct_child(npz: str, sweep: Sweep) -> None:
    """Runs in a fresh process: references once per seed, then the 8 fits; prints JSON."""
    t0 = time.perf_counter()
    import torch

    from synib_core.config import config_from_knobs
    from synib_core.data import load_npz
    from synib_core.training import fit, train_references

    torch.set_num_threads(1)
    data = load_npz(npz)
    out: dict[str, Any] = {"import_load_s": time.perf_counter() - t0, "trials": []}
    t1 = time.perf_counter()
    refs = {
        s: train_references(config_from_knobs({**KNOBS, "epochs": sweep.epochs}), data, seed=s)
        for s in sweep.seeds
    }
    out["references_s"] = time.perf_counter() - t1
    for method, seed, knobs in sweep.trials():
        t2 = time.perf_counter()
        fit(config_from_knobs(knobs), data, method=method, seed=seed, references=refs[seed])
        out["trials"].append(time.perf_counter() - t2)
    t3 = time.perf_counter()  # the tiny job's work: references of one seed, one 1-epoch fit
    tiny = config_from_knobs({**KNOBS, "epochs": 1})
    tiny_refs = train_references(tiny, data, seed=0)
    fit(tiny, data, method="vanilla", seed=0, references=tiny_refs)
    out["tiny_s"] = time.perf_counter() - t3
    print(json.dumps(out))


def run_direct(npz: Path, sweep: Sweep) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    argv = [
        sys.executable,
        __file__,
        "--direct-child",
        str(npz),
        "--sweep",
        json.dumps(asdict(sweep)),
    ]
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t0
    return result


# ---- the service run ---------------------------------------------------------------------


def _ts(text: str | None) -> float:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def wait_for_log(log: Path, pattern: str, timeout_s: float, start: int = 0) -> str:
    """Wait until ``pattern`` (a regex) appears in the service log after byte ``start``;
    returns the log from there."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with log.open("rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        if re.search(pattern, text):
            return text
        time.sleep(0.2)
    raise RuntimeError(f"{pattern!r} not in the service log after {timeout_s:.0f} s")


# Celery's line once the job's task returned (after the job's final status).
TASK_DONE = r"Task synib\.run_job\[[^\]]+\] succeeded in"


def upload(service: Service, npz: Path) -> str:
    with service.client() as client, npz.open("rb") as f:
        response = client.post("/datasets", files={"file": ("xor_pid.npz", f)})
        response.raise_for_status()
        return str(response.json()["id"])


def sweep_spec(dataset_id: str, sweep: Sweep, concurrent: int) -> dict[str, Any]:
    return {
        "name": f"sweep overhead x{concurrent}",
        "dataset_id": dataset_id,
        "methods": ["vanilla", "synib"],
        "config": KNOBS,
        "sweep": {"lambda": {"type": "grid", "values": list(sweep.lambdas)}},
        "seeds": list(sweep.seeds),
        "epochs": sweep.epochs,
        "resources": {"cpus_per_trial": 1},
        "max_concurrent_trials": concurrent,
    }


def tiny_spec(dataset_id: str) -> dict[str, Any]:
    """One vanilla trial of one epoch on one seed (with its references)."""
    return {
        "name": "fixed overhead",
        "dataset_id": dataset_id,
        "methods": ["vanilla"],
        "config": KNOBS,
        "sweep": {},
        "seeds": [0],
        "epochs": 1,
        "resources": {"cpus_per_trial": 1},
    }


def run_job(service: Service, spec: dict[str, Any], timeout_s: float = 1800) -> dict[str, Any]:
    """Submit the job and follow it as a client does (``Client.wait``: the job's event stream)
    until it ends: wall time, the job and its trials, what the worker logged meanwhile
    (ray.init, per-trial and tuner.fit seconds) and the CPU seconds by component."""
    log_start = service.log.stat().st_size
    meter = CpuMeter(service.pid).start()
    with service.client() as client, Client(service.url, service.token) as follower:
        t0 = time.perf_counter()
        job = client.post("/jobs", json=spec).raise_for_status().json()
        job = follow(follower, job["id"], timeout_s, service.log)
        wall = time.perf_counter() - t0
        meter.stop()
        trials = client.get(f"/jobs/{job['id']}/trials").raise_for_status().json()["data"]
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job['id']} {job['status']}: {job['failure_reason']}")
    # The next job is measured on a ready worker: after this job's task has returned.
    t1 = time.perf_counter()
    text = wait_for_log(service.log, TASK_DONE, 120, start=log_start)
    after = {"task_returned_s": time.perf_counter() - t1}
    cpu = {
        "components": meter.seconds,
        "benchmark_s": meter.own_s,
        "wall_s": meter.wall_s,
        "started": meter.started(),
    }
    return {"wall_s": wall, "job": job, "trials": trials, "log": text, "cpu": cpu, "after": after}


def follow(client: Client, job_id: str, timeout_s: float, log: Path) -> dict[str, Any]:
    """The job once terminal, followed through its event stream (the server checks for new
    events every 0.5 s); RuntimeError after ``timeout_s``."""
    done: dict[str, Any] = {}

    def wait() -> None:
        try:
            done["job"] = client.wait(job_id)
        except Exception as exc:  # reported below, in the caller's thread
            done["error"] = exc

    thread = threading.Thread(target=wait, name="follow", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if "error" in done:
        raise RuntimeError(f"following job {job_id} failed: {done['error']}")
    if "job" not in done:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"job {job_id} not finished after {timeout_s} s\n{tail}")
    return dict(done["job"])


def log_seconds(text: str, pattern: str) -> list[float]:
    """The ``<number> s`` that ends each worker log line matching ``pattern``."""
    return [float(m) for m in re.findall(pattern + r"[^\n]*?([\d.]+) s", text)]


# The worker's line once Tune's run returned (``job <id>: tuner.fit took <s> s``; before the
# redesign ``tuner.fit: <n> trials in <s> s``).
TUNER_FIT = r"tuner\.fit(?::| took)"


def tuner_end(text: str) -> float:
    """Epoch seconds of the worker's last ``tuner.fit`` log line (local time, as logged)."""
    stamp = r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}):[^\]]*\] (?:job \S+: )?"
    found = re.findall(stamp + TUNER_FIT, text)
    if not found:
        raise RuntimeError("no 'tuner.fit' line in the worker log")
    return datetime.strptime(found[-1], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def phases(run: dict[str, Any]) -> dict[str, float]:
    """Seconds of one service job, consecutive: queue (created -> started), setup (-> first
    trial started: ray.init, dataset, Tune start), trials (-> tuner.fit returned),
    rest (-> finished: artifacts, report); plus ray_init, tuner_fit and trial_sum as logged."""
    job, text = run["job"], run["log"]
    created, started, finished = (_ts(job[k]) for k in ("created_at", "started_at", "finished_at"))
    first_trial = min(_ts(t["started_at"]) for t in run["trials"] if t["started_at"])
    trials_end = tuner_end(text)
    return {
        "queue": started - created,
        "setup": first_trial - started,
        "trials": trials_end - first_trial,
        "rest": finished - trials_end,
        "job": finished - created,
        "ray_init": sum(log_seconds(text, r"ray\.init took")),
        "tuner_fit": sum(log_seconds(text, TUNER_FIT)),
        "trial_sum": sum(log_seconds(text, r"trial \S+ ended after")),
    }


# ---- report ----------------------------------------------------------------------------------


def _service_row(label: str, run: dict[str, Any], p: dict[str, float]) -> list[str]:
    values = [run["wall_s"], p["job"], p["queue"], p["setup"], p["trials"], p["trial_sum"]]
    return [label, *(f"{v:.1f}" for v in values), f"{p['rest']:.1f}"]


def report(
    direct: dict[str, Any], serial: dict[str, Any], parallel: dict[str, Any], first_job: str
) -> str:
    p1, p2 = phases(serial), phases(parallel)
    fit_sum = sum(direct["trials"])
    pre = direct["import_load_s"] + direct["references_s"]
    rows = [
        ["direct (compare loop), serial", f"{direct['wall_s']:.1f}", "-", "-", f"{pre:.1f}",
         f"{fit_sum:.1f}", f"{fit_sum:.1f}", "-"],
        _service_row("service, 1 trial at a time", serial, p1),
        _service_row("service, 2 trials at a time", parallel, p2),
    ]  # fmt: skip
    cols = ["run", "wall s", "job s", "queued->started s", "setup s", "trials s"]
    table = markdown_table([*cols, "sum of trials s", "rest s"], rows)
    ratio = serial["wall_s"] / direct["wall_s"]
    speedup = serial["wall_s"] / parallel["wall_s"]
    n = len(direct["trials"])
    per_trial = (p1["trial_sum"] - fit_sum) / n
    init_s = sum(log_seconds(first_job, r"ray\.init took"))
    artifacts_s = sum(log_seconds(serial["log"], r"model artifact\(s\) in"))
    report_s = sum(log_seconds(serial["log"], r"report computed in"))
    stored_s = sum(log_seconds(serial["log"], r"s, stored in"))
    return "\n".join(
        [
            table,
            "",
            f"- service serial / direct: **{ratio:.2f}x** (target <= {TARGET_RATIO}x: "
            f"{'met' if ratio <= TARGET_RATIO else 'MISSED'})",
            f"- service 2 trials at a time vs 1: **{speedup:.2f}x** faster (target >= "
            f"{TARGET_SPEEDUP}x: {'met' if speedup >= TARGET_SPEEDUP else 'MISSED'})",
            "- wall = POST -> the `succeeded` event on the job's event stream (checked every "
            "0.5 s by the server); job = the job's own "
            "created_at -> finished_at = queued->started + setup + trials (first trial started -> "
            "tuner.fit returned) + rest (artifacts, report); sum of trials: each trial's "
            "start -> end as the worker logged it",
            f"- setup (serial job) {p1['setup']:.1f} s = dataset load + Tune start + the first "
            "trial's process start (the references train beside the trials: one Ray task per "
            f"seed; directly, serially: {direct['references_s']:.1f} s, imports and data "
            f"{direct['import_load_s']:.1f} s)",
            f"- once per worker process, in its first job (not in the table): ray.init "
            f"{init_s:.1f} s (the worker keeps its Ray across jobs)",
            "- between the jobs (not in the table): the worker's task returned "
            f"{serial['after']['task_returned_s']:.1f} s after the serial job's `succeeded` event",
            f"- tuner.fit (serial job): {p1['tuner_fit']:.1f} s, of which the trials' own "
            f"time {p1['trial_sum']:.1f} s (the rest: Tune's start, trial process starts, "
            "scheduling)",
            f"- per-trial overhead (service trial minus direct fit, serial): {per_trial:.2f} s "
            f"({n} trials; the trial's process start where Tune does not reuse one, Tune "
            "bookkeeping, a checkpoint and a database row per epoch)",
            f"- rest (serial job) {p1['rest']:.1f} s: model artifacts {artifacts_s:.2f} s, "
            f"report computed in {report_s:.2f} s, stored in {stored_s:.2f} s",
        ]
    )


def fixed_report(first: dict[str, Any], tiny: list[dict[str, Any]], direct: dict[str, Any]) -> str:
    """A job's fixed overhead: tiny jobs (one 1-epoch trial, one seed) through the service on a
    worker whose Ray runs, minus the direct time of the same work."""
    walls = sorted(run["wall_s"] for run in tiny)
    median = walls[len(walls) // 2]
    fixed = median - direct["tiny_s"]
    rows = [
        ["first job of the worker (starts its Ray)", f"{first['wall_s']:.1f}"],
        *([f"tiny job {i}", f"{run['wall_s']:.1f}"] for i, run in enumerate(tiny, start=1)),
        ["the same work directly (references of 1 seed, one 1-epoch fit)",
         f"{direct['tiny_s']:.1f}"],
    ]  # fmt: skip
    return "\n".join(
        [
            "A job's fixed overhead (tiny jobs: 1 trial x 1 epoch, 1 seed):",
            "",
            markdown_table(["run", "wall s"], rows),
            "",
            f"- fixed overhead (median tiny job minus the direct work): **{fixed:.1f} s** "
            f"(target <= {TARGET_FIXED_S:g} s: {'met' if fixed <= TARGET_FIXED_S else 'MISSED'})",
        ]
    )


def rounds_report(
    rounds: list[tuple[dict[str, Any], dict[str, Any]]], direct: dict[str, Any]
) -> str:
    """Each round's two jobs (round 1 sends 1-at-a-time first, round 2 the other first, and
    so on, so that a host speeding up or slowing down during the run favours neither), and the
    speed-up over all rounds: total serial wall time over total parallel wall time."""
    rows = []
    for i, (a, b) in enumerate(rounds, start=1):
        first = "1 at a time" if i % 2 else "2 at a time"
        rows.append([str(i), first, f"{a['wall_s']:.1f}", f"{b['wall_s']:.1f}",
                     f"{a['wall_s'] / b['wall_s']:.2f}x"])  # fmt: skip
    serial_s = sum(a["wall_s"] for a, _ in rounds)
    parallel_s = sum(b["wall_s"] for _, b in rounds)
    speedup = serial_s / parallel_s
    ratio = serial_s / len(rounds) / direct["wall_s"]
    table = markdown_table(
        ["round", "sent first", "1 at a time s", "2 at a time s", "speed-up"], rows
    )
    return "\n".join([
        f"Rounds ({len(rounds)}), the jobs of each on the same running service:",
        "",
        table,
        "",
        f"- over all rounds: 2 trials at a time vs 1: **{speedup:.2f}x** faster (target >= "
        f"{TARGET_SPEEDUP}x: {'met' if speedup >= TARGET_SPEEDUP else 'MISSED'}); mean serial "
        f"job / direct: **{ratio:.2f}x** (target <= {TARGET_RATIO}x: "
        f"{'met' if ratio <= TARGET_RATIO else 'MISSED'})",
    ])  # fmt: skip


def cpu_report(serial: dict[str, Any], parallel: dict[str, Any], cores: int) -> str:
    """CPU seconds of each job by component (``_cpu.CpuMeter``), and what they imply: a job
    cannot take less wall time than its CPU seconds over the cores."""
    names = [name for name, _ in COMPONENTS] + [OTHER]
    runs = [serial["cpu"], parallel["cpu"]]
    rows = [[name, *(f"{r['components'].get(name, 0.0):.1f}" for r in runs)] for name in names]
    rows.append(["this benchmark (posting, following the event stream)",
                 *(f"{r['benchmark_s']:.1f}" for r in runs)])  # fmt: skip
    totals = [sum(r["components"].values()) + r["benchmark_s"] for r in runs]
    rows.append(["**all of the above**", *(f"**{t:.1f}**" for t in totals)])
    rows.append([f"available ({cores} cores x the job's wall time)",
                 *(f"{cores * r['wall_s']:.1f}" for r in runs)])  # fmt: skip
    table = markdown_table(["CPU seconds", "1 trial at a time", "2 at a time"], rows)
    trials = [r["components"].get(TRIALS, 0.0) for r in runs]
    rest = totals[1] - trials[1]
    return "\n".join([
        "CPU time of each job, by component (sampled from /proc every 0.5 s):",
        "",
        table,
        "",
        f"- the parallel job used {totals[1]:.1f} CPU seconds: on {cores} cores it cannot take "
        f"less than {totals[1] / cores:.1f} s (it took {parallel['wall_s']:.1f} s); the serial "
        f"job took {serial['wall_s']:.1f} s, so the speed-up cannot exceed "
        f"{serial['wall_s'] / (totals[1] / cores):.2f}x",
        f"- of that, {trials[1]:.1f} s trained the trials (serially: {trials[0]:.1f} s) and "
        f"{rest:.1f} s went to the rest; serially, most of the rest runs on the core the one "
        "trial leaves free",
        *(f"- processes started during the {label} job (count, their CPU seconds): "
          + (", ".join(f"{name}: {n}, {cpu:.1f} s" for name, (n, cpu) in sorted(
              r.get("started", {}).items())) or "none")
          for label, r in (("serial", runs[0]), ("parallel", runs[1]))),
    ])  # fmt: skip


def make_npz(path: Path, smoke: bool) -> None:
    from synib_core.data import make_dataset, save_npz

    save_npz(make_dataset("xor_pid", 0, **(SMOKE_DATA if smoke else {})), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--cpus", type=int, default=2, help="SYNIB_CPUS of the service")
    parser.add_argument("--smoke", action="store_true", help="tiny data, 2 trials, 1 epoch")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="pairs of jobs (1 trial at a time, 2 at a time), sent in alternating order",
    )
    parser.add_argument("--direct-child", metavar="NPZ", help=argparse.SUPPRESS)
    parser.add_argument("--sweep", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.direct_child:
        raw = json.loads(args.sweep)
        sweep = Sweep(raw["epochs"], tuple(raw["lambdas"]), tuple(raw["seeds"]))
        direct_child(args.direct_child, sweep)
        return 0
    exit_on_sigterm()
    sweep = Sweep(1, (1.0,), (0,)) if args.smoke else Sweep(args.epochs)
    with tempfile.TemporaryDirectory(prefix="synib_sweep_") as tmp:
        npz = Path(tmp) / "xor_pid.npz"
        make_npz(npz, args.smoke)
        direct = run_direct(npz, sweep)
        print(f"direct: {direct['wall_s']:.1f} s", file=sys.stderr)
        with run_serve(Path(tmp) / "state", cpus=args.cpus) as service:
            wait_for_log(service.log, r"ready\.", timeout_s=120)
            dataset_id = upload(service, npz)
            limit = 300 if args.smoke else 1800
            first = run_job(service, tiny_spec(dataset_id), limit)
            tiny = [run_job(service, tiny_spec(dataset_id), limit) for _ in range(FIXED_JOBS)]
            print(f"first job {first['wall_s']:.1f} s, tiny jobs "
                  f"{[round(t['wall_s'], 1) for t in tiny]} s", file=sys.stderr)  # fmt: skip
            serial = run_job(service, sweep_spec(dataset_id, sweep, 1), limit)
            print(f"service serial: {serial['wall_s']:.1f} s; worker ready again "
                  f"{serial['after']['task_returned_s']:.1f} s later", file=sys.stderr)  # fmt: skip
            parallel = run_job(service, sweep_spec(dataset_id, sweep, 2), limit)
            rounds = [(serial, parallel)]
            for r in range(1, args.rounds):  # alternately 2-then-1 and 1-then-2: drift cancels
                order = (2, 1) if r % 2 else (1, 2)
                done = {c: run_job(service, sweep_spec(dataset_id, sweep, c), limit) for c in order}
                rounds.append((done[1], done[2]))
                print(f"round {r + 1}: serial {done[1]['wall_s']:.1f} s, parallel "
                      f"{done[2]['wall_s']:.1f} s", file=sys.stderr)  # fmt: skip
        n = len(sweep.trials())
        print(f"## Sweep overhead: {n} trials x {sweep.epochs} epoch(s), {args.cpus} Ray CPUs, "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}\n")  # fmt: skip
        print(report(direct, serial, parallel, first["log"]), flush=True)
        print("\n" + fixed_report(first, tiny, direct))
        if len(rounds) > 1:
            print("\n" + rounds_report(rounds, direct))
        print("\n" + cpu_report(serial, parallel, os.cpu_count() or 1))
        print(
            "\n" + timeline(serial, "1 trial at a time") + "\n" + timeline(parallel, "2 at a time")
        )
    if not args.smoke:
        out = RESULTS_DIR / f"sweep_overhead_{sweep.epochs}ep_{datetime.now():%Y%m%d_%H%M%S}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        runs = {"serial": serial, "parallel": parallel}
        keep = {
            k: {k2: r[k2] for k2 in ("wall_s", "job", "trials", "cpu", "after")}
            for k, r in runs.items()
        }
        walls = [
            {"serial_s": a["wall_s"], "parallel_s": b["wall_s"],
             "serial_cpu": a["cpu"], "parallel_cpu": b["cpu"]}
            for a, b in rounds
        ]  # fmt: skip
        fixed = {"first_s": first["wall_s"], "tiny_s": [t["wall_s"] for t in tiny]}
        out.write_text(
            json.dumps({"direct": direct, **keep, "rounds": walls, "fixed": fixed}, indent=1)
        )
        print(f"\n(results: {out})")
    return 0


def timeline(run: dict[str, Any], label: str) -> str:
    """One line per trial: its start and end in seconds after the job started."""
    t0 = _ts(run["job"]["started_at"])
    spans = sorted(
        (_ts(t["started_at"]) - t0, _ts(t["finished_at"]) - t0, t["trial_key"])
        for t in run["trials"]
        if t["started_at"] and t["finished_at"]
    )
    lines = [f"- {start:5.1f} -> {end:5.1f} s  {key}" for start, end, key in spans]
    return f"Trials of the job ({label}), from the job's start:\n" + "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
