"""The ``synib`` CLI's service commands (synib_client/cli.py, and the server's token actions it
composes) against the real API app.

Exit codes: 0 on success, 1 when a watched job failed or was cancelled, 2 (one line on stderr)
for any user error. Rows a worker would write are inserted through crud.
"""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from api_factories import add_job, npz_bytes
from live_server import add_model_artifact, run_trial, sample_report, serve_app
from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.models import Dataset, utcnow
from infra.settings import Settings
from synib_client.cli_format import format_job, format_report
from synib_client.client import Client
from synib_client.errors import ApiError

Run = Any  # Callable[..., tuple[int, str, str]]: the ``cli`` fixture (conftest.py)


def test_report_table_is_hand_checked() -> None:
    expected = (
        "job j1  baseline vanilla  selection val_acc  seeds 0,1\n"
        "method   best config  test_acc        synergy_acc     delta test_acc [95% CI]  "
        "delta synergy_acc [95% CI]\n"
        "vanilla  -            0.900 +- 0.000  0.500 +- 0.020  baseline                 baseline\n"
        "synib    lambda=10    0.950 +- 0.010  0.875 +- 0.025  +0.050 [+0.030, +0.070]  "
        "+0.375 [+0.300, +0.450]\n"
        "synib vs vanilla: synergy_acc +0.375 [+0.300, +0.450]; the 95% CI is above 0: synib beat "
        "vanilla on the synergy subset."
    )
    assert format_report(sample_report("j1", "a1")) == expected


def test_job_view_shows_only_the_swept_knobs_of_the_best_trials() -> None:
    job = {
        "id": "j1",
        "status": "succeeded",
        "trials_done": 3,
        "trials_total": 3,
        "progress": 1.0,
        "spec": {"sweep": {"lambda": {"type": "grid", "values": [1.0, 10.0]}}},
        "best": {
            "synib": {
                "config": {"lambda": 10.0, "lr": 0.001},
                "val_acc": 0.9,
                "test_acc": 0.875,
                "synergy_acc": 0.5,
            },
            "vanilla": {
                "config": {"lr": 0.001},
                "val_acc": 0.8,
                "test_acc": 0.75,
                "synergy_acc": None,
            },
        },
    }
    lines = format_job(job).splitlines()
    assert lines[0] == "id             j1" and "trials         3/3" in lines
    assert "progress       100%" in lines
    assert lines[-3:] == [
        "method   config     val_acc  test_acc  synergy_acc",
        "synib    lambda=10  0.900    0.875     0.500",
        "vanilla  -          0.800    0.750     -",
    ]


def test_datasets_and_submit_and_jobs(
    cli: Run, live_env: str, dataset: Dataset, tmp_path: Path
) -> None:
    path = tmp_path / "pair.npz"
    path.write_bytes(npz_bytes())
    code, out, _ = cli("datasets", "upload", str(path), "--name", "pair")
    assert code == 0 and out.startswith("uploaded dataset ") and "ready" in out
    code, out, _ = cli("datasets", "builtin", "xor_pid", "--set", "n_train=100", "--seed", "2")
    assert code == 0 and "xor_pid" in out
    code, out, _ = cli("datasets", "list")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].split() == [
        "id",
        "name",
        "source",
        "status",
        "classes",
        "train/val/test",
    ]
    assert len(lines) == 4 and "28/6/6" in out  # the upload's split sizes

    spec = tmp_path / "job.yaml"
    spec.write_text(f"dataset_id: {dataset.id}\nmethods: [vanilla, synib]\nseeds: [0, 1]\n")
    code, out, err = cli("submit", str(spec))
    assert code == 0 and "queued" in out and "14 trials" in out  # 2 seeds x (vanilla + 6 lambdas)
    assert err == ""  # the defaults break no rule
    job_id = out.split()[2]
    risky = tmp_path / "risky.yaml"
    risky.write_text(spec.read_text() + "config: {mask_level: input, feature_norm: layernorm}\n")
    code, out, err = cli("submit", str(risky))
    assert code == 0 and "queued" in out
    assert err.startswith("warning: config.feature_norm: mask_level='input' with ")
    code, out, _ = cli("jobs", "list", "--status", "queued")
    assert code == 0 and job_id in out and "0/14" in out
    code, out, _ = cli("jobs", "show", job_id)
    assert code == 0 and "status         queued" in out
    code, out, _ = cli("jobs", "cancel", job_id)
    assert code == 0
    code, out, _ = cli("jobs", "show", job_id, "--json")
    assert code == 0 and '"status": "cancelled"' in out


def test_watch_exit_codes(
    cli: Run, live_env: str, db_session: Session, dataset: Dataset, user_token: tuple[str, str]
) -> None:
    good = add_job(db_session, user_token[1], dataset.id, status="running")
    run_trial(db_session, good, "vanilla|seed=0", [0.5, 0.625])
    crud.set_job_status(db_session, job_id=good.id, status="succeeded")
    code, out, err = cli("watch", good.id)
    assert code == 0 and f"job {good.id} succeeded" in out
    assert "vanilla|seed=0" in err and "val_acc=0.625" in err
    bad = add_job(db_session, user_token[1], dataset.id, status="running")
    crud.set_job_status(db_session, job_id=bad.id, status="failed", failure_reason="OOM")
    code, _, err = cli("watch", bad.id)
    assert code == 1 and err.strip().endswith(f"job {bad.id} failed: OOM")


def test_report_and_download(
    cli: Run,
    live_env: str,
    db_session: Session,
    dataset: Dataset,
    user_token: tuple[str, str],
    api_settings: Settings,
    tmp_path: Path,
) -> None:
    job = add_job(db_session, user_token[1], dataset.id, status="running")
    artifact = add_model_artifact(db_session, api_settings.artifact_root, job, "synib-best")
    crud.set_job_report(db_session, job_id=job.id, report=sample_report(job.id, artifact))
    crud.set_job_status(db_session, job_id=job.id, status="succeeded")
    code, out, _ = cli("report", job.id)
    assert code == 0 and out.strip() == format_report(sample_report(job.id, artifact))
    code, out, _ = cli("report", job.id, "--json")
    assert code == 0 and f'"best_artifact_id": "{artifact}"' in out
    target = tmp_path / "dl" / "model"
    code, out, _ = cli("download", job.id, "--best", "synib", "--out", str(target))
    assert code == 0 and str(target) in out and "sha256 verified" in out
    assert (target / "weights.bin").stat().st_size == 10240
    bad = add_model_artifact(db_session, api_settings.artifact_root, job, "bad", "cd" * 32)
    report = sample_report(job.id, bad)
    crud.set_job_report(db_session, job_id=job.id, report=report)
    code, _, err = cli("download", job.id, "--best", "synib", "--out", str(tmp_path / "dl" / "b"))
    assert code == 2 and "checksum" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["model"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("jobs", "show", "no-such-job"), "HTTP 404: job not found"),
        (("report", "no-such-job"), "HTTP 404"),
        (("datasets", "upload", "/no/such/file.npz"), "file: no such file"),
        (("datasets", "builtin", "xor_pid", "--set", "n_train"), "expected KEY=VALUE"),
        (("submit", "/no/such/job.yaml"), "spec: no such file"),
        (("jobs", "list", "--url", "http://127.0.0.1:9"), "cannot reach the synib API"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    cli: Run, live_env: str, argv: tuple[str, ...], needle: str
) -> None:
    code, out, err = cli(*argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err
    assert err.startswith(f"synib {argv[0]}: error: ")


def test_422_details_fit_on_one_line(cli: Run, live_env: str, tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("dataset_id: x\nmethods: [nope]\nconfig: {lr: -1}\n")
    code, _, err = cli("submit", str(spec))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "HTTP 422: methods[0]: unknown method 'nope'" in err
    assert "; config.lr: expected a number > 0, got -1" in err


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("name: 2026-01-15", 'name: a date (2026-01-15) is not allowed; quote it: "2026-01-15"'),
        (
            "resources: {cpus_per_trial: .inf}",
            "resources.cpus_per_trial: infinity/NaN (inf) is not allowed; give a number",
        ),
    ],
)
def test_submit_refuses_what_json_cannot_carry_before_uploading(
    cli: Run, live_env: str, user_token: tuple[str, str], tmp_path: Path, line: str, message: str
) -> None:
    (tmp_path / "pair.npz").write_bytes(npz_bytes())
    spec = tmp_path / "job.yaml"
    spec.write_text(f"dataset: {{file: pair.npz}}\nmethods: [vanilla]\n{line}\n")
    code, out, err = cli("submit", str(spec))
    assert (code, out, err) == (2, "", f"synib submit: error: {message}\n")
    client = Client(live_env, user_token[0])
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        client.submit(spec)
    as_dict = {"dataset": {"file": str(tmp_path / "pair.npz")}, "methods": ["vanilla"]}
    as_dict["seeds"] = [0, float("nan")]
    with pytest.raises(ValueError, match=r"^seeds\[1\]: infinity/NaN \(nan\) is not allowed"):
        client.submit(as_dict)
    assert client.datasets()["count"] == 0 and client.jobs()["count"] == 0  # nothing uploaded


def test_datasets_builtin_refuses_a_date_parameter(
    cli: Run, live_env: str, user_token: tuple[str, str]
) -> None:
    code, out, err = cli("datasets", "builtin", "xor_pid", "--set", "start=2026-01-15")
    assert (code, out) == (2, "")
    assert err == (
        'synib datasets: error: --set start: a date (2026-01-15) is not allowed; quote it: "2026-01-15"\n'
    )
    client = Client(live_env, user_token[0])
    with pytest.raises(ValueError, match=r"^params\.start: a date \(2026-01-15\)"):
        client.register_builtin("xor_pid", {"start": datetime.date(2026, 1, 15)})
    assert client.datasets()["count"] == 0


def test_token_create_list_revoke(
    cli: Run, live_env: str, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNIB_DATABASE_URL", db_url)
    code, out, _ = cli(
        "token", "create", "--name", "laptop", "--user", "bob", "--expires-days", "7"
    )
    token = out.splitlines()[0]
    assert code == 0 and token.startswith("synib_") and "for user bob" in out
    assert Client(live_env, token).jobs()["count"] == 0  # bob sees none of alice's jobs
    code, out, _ = cli("token", "list", "--user", "bob")
    token_id = out.splitlines()[1].split()[0]
    assert code == 0 and "laptop" in out and token not in out  # only the prefix is shown
    code, out, _ = cli("token", "revoke", token_id)
    assert code == 0 and f"revoked token {token_id} (" in out and "within 5 s" in out
    revoked_at = time.monotonic()
    # The server verified the token a moment ago: it refuses it once its token cache (5 s by
    # default) has forgotten it, not later.
    while True:
        try:
            Client(live_env, token).jobs()
        except ApiError as exc:
            assert exc.status == 401 and "token revoked" in str(exc)
            break
        assert time.monotonic() - revoked_at < 5.0 + 2.0, "the revoked token still works"
        time.sleep(0.2)
    code, _, err = cli("token", "revoke", token_id)
    assert code == 2 and "no active token" in err
    code, _, err = cli("token", "list", "--user", "nobody")
    assert code == 2 and "no user named 'nobody'" in err


@pytest.fixture
def token_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``synib token`` on the test database, with no SYNIB_TOKEN_TTL_DAYS unless a test sets it."""
    monkeypatch.setenv("SYNIB_DATABASE_URL", db_url)
    monkeypatch.delenv("SYNIB_TOKEN_TTL_DAYS", raising=False)
    return db_url


@pytest.mark.parametrize("days", ["3000000", "36501", "0", "-1"])
def test_token_create_refuses_a_bad_lifetime_and_creates_no_user(
    cli: Run, token_env: str, db_session: Session, days: str
) -> None:
    code, out, err = cli("token", "create", "--name", "x", "--user", "bob", "--expires-days", days)
    assert (code, out) == (2, "")
    assert err == (
        "synib token: error: --expires-days: expected a whole number of days from 1 to 36500 "
        f"(100 years), got {days}\n"
    )
    assert crud.get_user_by_name(db_session, name="bob") is None


def test_token_create_checks_the_names_before_creating_the_user(
    cli: Run, token_env: str, db_session: Session
) -> None:
    code, out, err = cli("token", "create", "--name", "n" * 101, "--user", "bob", "--admin")
    assert (code, out) == (2, "")
    assert err == "synib token: error: --name: at most 100 characters, got 101\n"
    code, _, err = cli("token", "create", "--name", "x", "--user", "b\x00b")
    assert code == 2 and err == "synib token: error: --user: must not contain a NUL character\n"
    assert crud.get_user_by_name(db_session, name="bob") is None  # not created, not an admin


def test_token_create_defaults_to_synib_token_ttl_days(
    cli: Run, token_env: str, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNIB_TOKEN_TTL_DAYS", "30")
    code, out, _ = cli("token", "create", "--name", "ci", "--user", "erin")
    assert code == 0 and "after SYNIB_TOKEN_TTL_DAYS=30 days" in out
    code, out, _ = cli(
        "token", "create", "--name", "laptop", "--user", "erin", "--expires-days", "7"
    )
    assert code == 0 and "SYNIB_TOKEN_TTL_DAYS" not in out
    monkeypatch.delenv("SYNIB_TOKEN_TTL_DAYS")
    code, out, _ = cli("token", "create", "--name", "forever", "--user", "erin")
    assert code == 0 and "(expires never)" in out
    user = crud.get_user_by_name(db_session, name="erin")
    assert user is not None
    tokens = {t.name: t.expires_at for t in crud.list_tokens(db_session, user_id=user.id)}
    now = utcnow()
    for name, days in (("ci", 30), ("laptop", 7)):
        expires = tokens[name]
        assert expires is not None
        assert (
            datetime.timedelta(days=days, minutes=-5)
            < expires - now
            <= datetime.timedelta(days=days)
        ), name
    assert tokens["forever"] is None
    monkeypatch.setenv("SYNIB_TOKEN_TTL_DAYS", "3000000")  # refused when the settings load
    code, out, err = cli("token", "create", "--name", "x", "--user", "frank")
    assert (code, out) == (2, "") and len(err.strip().splitlines()) == 1
    assert "token_ttl_days" in err and "36500" in err
    assert crud.get_user_by_name(db_session, name="frank") is None


def test_token_create_into_a_closed_pipe_ends_quietly(token_env: str, db_session: Session) -> None:
    """``synib token create --name ci | head -1`` where the reader is already gone: the token is
    made, the script ends with exit code 0 and no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    synib = str(Path(sys.executable).parent / "synib")
    try:
        done = subprocess.run(
            [synib, "token", "create", "--name", "ci", "--user", "gina"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")
    user = crud.get_user_by_name(db_session, name="gina")
    assert user is not None
    assert [t.name for t in crud.list_tokens(db_session, user_id=user.id)] == ["ci"]


def test_console_script_exit_codes(
    live_env: str, db_session: Session, dataset: Dataset, user_token: tuple[str, str]
) -> None:
    """The installed ``synib`` script (synib_client.main composing the parts) in a subprocess."""
    synib = str(Path(sys.executable).parent / "synib")
    failed = add_job(db_session, user_token[1], dataset.id, status="running")
    crud.set_job_status(db_session, job_id=failed.id, status="cancelled")
    env = {**os.environ, "SYNIB_URL": live_env, "SYNIB_TOKEN": user_token[0]}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [synib, *argv], capture_output=True, text=True, env=env, timeout=60, check=False
        )

    listed = run("jobs", "list")
    assert listed.returncode == 0 and failed.id in listed.stdout and "cancelled" in listed.stdout
    watched = run("watch", failed.id)
    assert watched.returncode == 1 and watched.stderr.strip().endswith("cancelled")
    missing = run("jobs", "show", "no-such-job")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr == "synib jobs: error: HTTP 404: job not found\n"


def test_a_new_user_is_committed_only_with_its_token(
    db_session: Session, monkeypatch: pytest.MonkeyPatch, api_settings: Settings
) -> None:
    """The token's write fails (a database error the user cannot cause; simulated): the user
    made for it is rolled back with it, not left behind without a token."""
    from infra.tokens import admin_session, issue_token

    def failing_create_token(session: Session, **_: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(crud, "create_token", failing_create_token)
    with pytest.raises(RuntimeError), admin_session(api_settings) as session:
        issue_token(session, user_name="frank", token_name="t")
    db_session.expire_all()
    assert crud.get_user_by_name(db_session, name="frank") is None


def _fresh_app(api_settings: Settings) -> Any:
    from api.main import create_app

    app = create_app(api_settings)
    app.state.event_hub.poll_s = 0.05
    return app


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # the backend plays no part
def test_watch_outlasts_an_api_restart_on_the_same_port(
    api_settings: Settings,
    db_session: Session,
    dataset: Dataset,
    user_token: tuple[str, str],
    tmp_path: Path,
) -> None:
    """The API stops while ``synib watch`` follows a job and starts again on the same port
    6.5 s later (longer than the 5 one-second tries the watcher used to give it): the watcher
    says once that it is reconnecting and once that it is back, misses no epoch, and ends with
    the job's final status. The job finishes while the API is down."""
    import time

    from live_server import WatchProcess

    job = add_job(db_session, user_token[1], dataset.id, status="running")
    with serve_app(_fresh_app(api_settings)) as url:
        watcher = WatchProcess(url, user_token[0], tmp_path / "config", job.id)
        watcher.wait_for_line(f"job {job.id}: running")
    # stopped: the open event stream was cut within 2 s
    run_trial(db_session, job, "vanilla|seed=0", [0.5, 0.625])
    crud.set_job_status(db_session, job_id=job.id, status="succeeded")
    time.sleep(6.5)
    port = int(url.rsplit(":", 1)[1])
    with serve_app(_fresh_app(api_settings), port=port):
        code, out = watcher.finish()
    assert (code, out) == (0, f"job {job.id} succeeded; see `synib report {job.id}`\n"), (
        watcher.lines
    )
    notes = watcher.notes()
    assert len(notes) == 2, watcher.lines
    assert notes[0].startswith(f"synib watch: the API at {url} is unavailable (")
    assert notes[0].endswith("); reconnecting for up to 120 s")
    assert re.fullmatch(r"synib watch: reconnected to the API after \d+ s", notes[1])
    bars = "".join(watcher.lines)  # both epochs sent while it was away moved the bar
    assert "vanilla|seed=0: 100%" in bars and "2/2" in bars and "test_acc=0.625" in bars


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the backend plays no part
def test_watch_gives_up_after_retry_for_in_one_line(
    api_settings: Settings,
    db_session: Session,
    dataset: Dataset,
    user_token: tuple[str, str],
    tmp_path: Path,
) -> None:
    """The API stops for good: after ``--retry-for`` seconds the watcher gives up with exit
    code 2 and one line saying for how long the API was unavailable and the last reason."""
    import time

    from live_server import WatchProcess

    job = add_job(db_session, user_token[1], dataset.id, status="running")
    with serve_app(_fresh_app(api_settings)) as url:
        argv = (job.id, "--retry-for", "1.5")
        watcher = WatchProcess(url, user_token[0], tmp_path / "config", *argv)
        watcher.wait_for_line(f"job {job.id}: running")
    stopped = time.monotonic()
    code, out = watcher.finish()
    assert (code, out) == (2, "")
    assert time.monotonic() - stopped < 10
    notes = watcher.notes()
    assert len(notes) == 2, watcher.lines
    assert notes[0].startswith(f"synib watch: the API at {url} is unavailable (")
    assert notes[0].endswith("); reconnecting for up to 1.5 s")
    assert re.fullmatch(
        rf"synib watch: error: cannot reach the synib API at {re.escape(url)}: "
        r"unavailable for \d+ s; last error: .*Connection refused",
        notes[1],
    ), watcher.lines


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf"])
def test_watch_retry_for_must_be_seconds(cli: Run, live_env: str, value: str) -> None:
    code, out, err = cli("watch", "some-job", "--retry-for", value)
    assert (code, out) == (2, "")
    assert err == (
        f"synib watch: error: --retry-for: expected a number of seconds >= 0, got {value}\n"
    )


def test_saved_token_is_not_sent_to_another_url(
    cli: Run,
    live_env: str,
    user_token: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """credentials.json holds the token of the server at its URL. ``--url`` naming another
    server (here the same one under another name, which would accept the token) needs the
    token given explicitly; the error names the saved URL."""
    import json

    monkeypatch.delenv("SYNIB_TOKEN")
    monkeypatch.delenv("SYNIB_URL")
    saved = tmp_path / "config" / "credentials.json"
    saved.parent.mkdir(parents=True)
    saved.write_text(json.dumps({"url": live_env, "token": user_token[0]}))
    assert cli("jobs", "list")[0] == 0
    assert cli("jobs", "list", "--url", live_env + "/")[0] == 0  # the same URL, written otherwise
    other = live_env.replace("127.0.0.1", "localhost")
    code, out, err = cli("jobs", "list", "--url", other)
    assert (code, out) == (2, "")
    assert err == (
        f"synib jobs: error: token: the token saved in {saved} is for {live_env}, not {other}; "
        "give --token or set SYNIB_TOKEN for that server\n"
    )
    assert cli("jobs", "list", "--url", other, "--token", user_token[0])[0] == 0
    monkeypatch.setenv("SYNIB_URL", other)
    code, _, err = cli("watch", "some-job")
    assert code == 2 and f"is for {live_env}, not {other}" in err


def test_jobs_list_into_a_pipe_closed_early_exits_quietly_with_0(
    live_env: str, db_session: Session, dataset: Dataset, user_token: tuple[str, str]
) -> None:
    """``synib jobs list | head -1`` where the reader has already gone: the script stops quietly
    with exit code 0 (Python's docs, "Note on SIGPIPE"), whatever it had left to print."""
    add_job(db_session, user_token[1], dataset.id)
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env.update(SYNIB_URL=live_env, SYNIB_TOKEN=user_token[0])
    synib = str(Path(sys.executable).parent / "synib")
    try:
        done = subprocess.run(
            [synib, "jobs", "list"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")
