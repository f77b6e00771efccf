"""Which files a job spec may make the CLI upload, and the same file uploaded again.

A spec file's ``dataset: {file: ...}`` must lie under the spec's folder (an absolute path, a
``..`` or a symbolic link leading out is refused naming the field, before anything is sent);
``synib submit SPEC --dataset-file PATH`` takes a file from anywhere. Uploading a file you
already uploaded says ``reused dataset ID`` and makes no second dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from api_factories import npz_bytes

from synib_client.client import Client

Run = Any  # the ``cli`` fixture (conftest.py)


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """(spec folder holding data/inside.npz, a file outside it: secret.npz)."""
    specs = tmp_path / "specs"
    (specs / "data").mkdir(parents=True)
    payload = npz_bytes()  # once: the zip's timestamps make two calls' bytes differ at times
    (specs / "data" / "inside.npz").write_bytes(payload)
    outside = tmp_path / "secret.npz"
    outside.write_bytes(payload)
    (specs / "data" / "link.npz").symlink_to(outside)
    return specs, outside


def _spec(folder: Path, file: str) -> Path:
    spec = folder / "job.yaml"
    spec.write_text(f"dataset: {{file: '{file}'}}\nmethods: [vanilla]\nseeds: [0]\n")
    return spec


@pytest.mark.parametrize(
    ("file", "problem"),
    [
        ("../secret.npz", "outside the spec's folder"),
        ("data/../../secret.npz", "outside the spec's folder"),
        ("data/link.npz", "outside the spec's folder"),
        ("ABSOLUTE", "an absolute path"),
        ("~/secret.npz", "an absolute path"),
    ],
)
def test_a_spec_file_cannot_upload_a_file_outside_its_folder(
    cli: Run,
    live_env: str,
    user_token: tuple[str, str],
    layout: tuple[Path, Path],
    file: str,
    problem: str,
) -> None:
    specs, outside = layout
    file = str(outside) if file == "ABSOLUTE" else file
    code, out, err = cli("submit", str(_spec(specs, file)))
    assert (code, out) == (2, "")
    assert err.startswith(f"synib submit: error: dataset.file: {file!r} is {problem}; "), err
    assert "--dataset-file PATH" in err
    assert Client(live_env, user_token[0]).datasets()["count"] == 0  # nothing was uploaded


def test_a_file_under_the_spec_folder_or_on_the_command_line_is_uploaded_and_reused(
    cli: Run, live_env: str, user_token: tuple[str, str], layout: tuple[Path, Path]
) -> None:
    specs, outside = layout
    code, out, err = cli("submit", str(_spec(specs, "data/inside.npz")))
    assert code == 0 and out.startswith("submitted job "), (out, err)
    assert "reused" not in err

    spec = _spec(specs, "../secret.npz")  # replaced by the command line's file
    code, out, err = cli("submit", str(spec), "--dataset-file", str(outside))
    assert code == 0 and out.startswith("submitted job "), (out, err)

    client = Client(live_env, user_token[0])
    first = client.datasets()["data"]
    assert len(first) == 1  # inside.npz and secret.npz hold the same bytes: one dataset
    dataset_id = first[0]["id"]
    assert f"reused dataset {dataset_id} (you uploaded this file before" in err

    code, out, err = cli("datasets", "upload", str(outside))
    assert code == 0 and out.startswith(f"reused dataset {dataset_id} "), out
    assert client.upload_dataset(outside)["reused"] is True
    assert client.datasets()["count"] == 1
    jobs = client.jobs()["data"]
    assert [job["dataset_id"] for job in jobs] == [dataset_id, dataset_id]
