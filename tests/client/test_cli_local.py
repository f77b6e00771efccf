"""The client commands that need no server: ``synib knobs`` (the vocabulary of synib_spec.knobs)
and ``synib token show`` (where the client finds its server and token)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synib_client.main import main
from synib_spec.knobs import KNOBS_LIST, METHODS, knob_table, markdown_table

TOKEN = "synib_AbC1" + "s" * 39


@pytest.fixture(autouse=True)
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SYNIB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("SYNIB_URL", raising=False)
    monkeypatch.delenv("SYNIB_TOKEN", raising=False)
    return tmp_path / "config" / "credentials.json"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_knobs_json_is_the_table_the_api_serves(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "knobs", "--json")
    assert code == 0 and json.loads(out) == knob_table()


def test_knobs_markdown_is_the_docs_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "knobs", "--markdown")
    assert code == 0 and out == markdown_table()


def test_knobs_text_has_a_row_per_knob_and_method(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "knobs")
    rows = [line.split()[0] for line in out.splitlines() if line.strip()]
    names = [k.name for k in KNOBS_LIST]
    assert code == 0 and rows == ["knob", *names, "method", *METHODS]
    lam = next(line for line in out.splitlines() if line.startswith("lambda "))
    assert lam.split()[:3] == ["lambda", "float", "1.0"] and "synib,masking_only" in lam


def test_token_show_prints_the_saved_url_and_only_the_token_prefix(
    capsys: pytest.CaptureFixture[str], credentials: Path
) -> None:
    credentials.parent.mkdir(parents=True)
    credentials.write_text(json.dumps({"url": "http://127.0.0.1:8123", "token": TOKEN}))
    code, out, _ = _run(capsys, "token", "show")
    assert code == 0 and TOKEN not in out
    assert out.splitlines() == [
        f"url    http://127.0.0.1:8123  ({credentials})",
        f"token  synib_AbC1...  ({credentials})",
    ]


def test_token_show_reveal_prints_the_saved_url_and_the_whole_token(
    capsys: pytest.CaptureFixture[str], credentials: Path
) -> None:
    """What a new user runs when ``synib serve``'s admin token scrolled out of sight."""
    credentials.parent.mkdir(parents=True)
    credentials.write_text(json.dumps({"url": "http://127.0.0.1:8123", "token": TOKEN}))
    code, out, _ = _run(capsys, "token", "show", "--reveal")
    assert code == 0
    assert out.splitlines() == [
        f"url    http://127.0.0.1:8123  ({credentials})",
        f"token  {TOKEN}  ({credentials})",
    ]


def test_token_show_names_the_environment_and_the_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = _run(capsys, "token", "show")
    assert (code, out.splitlines()) == (
        0,
        [
            "url    http://127.0.0.1:8000  (default)",
            "token  none  (set SYNIB_TOKEN, or give --token)",
        ],
    )
    monkeypatch.setenv("SYNIB_URL", "https://synib.example.org/")
    monkeypatch.setenv("SYNIB_TOKEN", TOKEN)
    code, out, _ = _run(capsys, "token", "show")
    assert out.splitlines() == [
        "url    https://synib.example.org  (SYNIB_URL)",
        "token  synib_AbC1...  (SYNIB_TOKEN)",
    ]


def test_token_show_refuses_the_saved_token_for_another_url(
    capsys: pytest.CaptureFixture[str], credentials: Path
) -> None:
    credentials.parent.mkdir(parents=True)
    credentials.write_text(json.dumps({"url": "http://127.0.0.1:8000", "token": TOKEN}))
    code, out, err = _run(capsys, "token", "show", "--url", "http://localhost:8000")
    assert (code, out) == (2, "")
    assert err == (
        f"synib token: error: token: the token saved in {credentials} is for "
        "http://127.0.0.1:8000, not http://localhost:8000; give --token or set SYNIB_TOKEN for "
        "that server\n"
    )


@pytest.mark.parametrize("argv", [["knobs"], ["token", "show"]])
def test_output_into_a_closed_pipe_ends_quietly(argv: list[str], tmp_path: Path) -> None:
    """``synib knobs | head -1``: the reader is gone before the output is written. Output is
    block-buffered as in a shell pipe (no PYTHONUNBUFFERED), so the write may fail only when
    the buffer is flushed."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    synib = str(Path(sys.executable).parent / "synib")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    try:
        done = subprocess.run(
            [synib, *argv], stdout=write_end, stderr=subprocess.PIPE, text=True, env=env, timeout=60
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")
