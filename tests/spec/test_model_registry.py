"""The worker's model registry: the packaged models that are installed, the folders under
SYNIB_MODEL_DIR (a real tiny BERT built here), every bad folder skipped with its reason, and
discovery cheap enough for the presence thread (JSON only: no torch)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from model_testing import HIDDEN, tiny_bert, write_manifest

from infra.settings import Settings
from synib_spec.backbones import PACKAGED_MODELS
from synib_spec.model_registry import (
    discover_models,
    folder_fingerprint,
    scan_model_dir,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    tiny_bert(root / "tiny-bert")
    (root / "no-manifest").mkdir()
    (root / "no-manifest" / "config.json").write_text('{"hidden_size": 8}')
    write_manifest(root / "bad-json")
    (root / "bad-json" / "synib-model.json").write_text('{"modality": "text",')
    write_manifest(root / "smell", modality="smell")
    (root / "smell" / "config.json").write_text('{"hidden_size": 8}')
    write_manifest(root / "no-config")
    write_manifest(root / "Upper_Case")
    (root / ".cache").mkdir()  # hidden folders are not models and not worth a warning
    return root


def test_the_installed_packaged_models_appear_with_their_package_fingerprint() -> None:
    found = {m.name: m for m in discover_models(None)}
    assert sorted(found) == sorted(info.name for info, _ in PACKAGED_MODELS)
    for info, _module in PACKAGED_MODELS:
        expected = f"{info.source}=={version(info.source)}"
        assert found[info.name].fingerprint == hashlib.sha256(expected.encode()).hexdigest()
        assert found[info.name].output_dim == info.output_dim


def test_a_model_folder_is_offered_and_every_bad_folder_is_skipped_with_its_reason(
    model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="synib_spec.model_registry"):
        found = {m.name: m for m in discover_models(model_dir)}
    assert set(found) == {"tiny-bert", *(info.name for info, _ in PACKAGED_MODELS)}
    tiny = found["tiny-bert"]
    assert (tiny.modality, tiny.output_dim, tiny.loader, tiny.licence) == (
        "text",
        HIDDEN,
        "transformers",
        "MIT",
    )
    assert tiny.source == str((model_dir / "tiny-bert").resolve())
    assert tiny.description == "a 1-layer BERT for tests"
    _, skipped = scan_model_dir(model_dir)
    reasons = dict(skipped)
    assert reasons["no-manifest"] == "no synib-model.json"
    assert reasons["bad-json"].startswith("synib-model.json is not valid JSON")
    assert "modality 'smell' is not one of text, image, audio" in reasons["smell"]
    assert reasons["no-config"] == "no config.json (a Hugging Face model folder)"
    assert "not a model name" in reasons["Upper_Case"]
    assert set(reasons) == {"no-manifest", "bad-json", "smell", "no-config", "Upper_Case"}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for name in reasons:
        assert f"model folder {name} skipped" in logged


def test_a_sentence_transformers_folder_reports_its_pooled_or_dense_size(tmp_path: Path) -> None:
    folder = write_manifest(tmp_path / "st", loader="sentence-transformers")
    (folder / "config.json").write_text('{"hidden_size": 48}')
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text('{"word_embedding_dimension": 48}')
    assert [m.output_dim for m in scan_model_dir(tmp_path)[0]] == [48]
    modules.append({"idx": 2, "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "2_Dense").mkdir()
    (folder / "2_Dense" / "config.json").write_text('{"in_features": 48, "out_features": 16}')
    assert [m.output_dim for m in scan_model_dir(tmp_path)[0]] == [16]


def test_the_fingerprint_follows_the_files_and_the_config(tmp_path: Path) -> None:
    folder = write_manifest(tmp_path / "m")
    (folder / "config.json").write_text('{"hidden_size": 8}')
    (folder / "model.safetensors").write_bytes(b"\0" * 100)
    first = folder_fingerprint(folder)
    assert folder_fingerprint(folder) == first
    (folder / "model.safetensors").write_bytes(b"\0" * 101)
    second = folder_fingerprint(folder)
    assert second != first
    (folder / "config.json").write_text('{"hidden_size": 9}')
    assert folder_fingerprint(folder) not in (first, second)


def test_a_folder_may_not_shadow_a_packaged_model(tmp_path: Path) -> None:
    packaged = PACKAGED_MODELS[0][0]
    folder = write_manifest(tmp_path / packaged.name)
    (folder / "config.json").write_text('{"hidden_size": 8}')
    found = [m for m in discover_models(tmp_path) if m.name == packaged.name]
    assert [m.source for m in found] == [packaged.source]


def test_discovery_reads_json_only_and_never_loads_torch(model_dir: Path) -> None:
    probe = (
        "import sys; from pathlib import Path; from synib_spec.model_registry import discover_models;"
        f"names = sorted(m.name for m in discover_models(Path({str(model_dir)!r})));"
        "print(names, sorted(m for m in ('torch', 'transformers', 'sentence_transformers') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "'tiny-bert'" in out
    assert out.strip().endswith("[]"), out


def test_the_model_dir_setting_is_empty_unless_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNIB_MODEL_DIR", "")
    assert Settings().model_dir is None
    monkeypatch.setenv("SYNIB_MODEL_DIR", str(tmp_path))
    assert Settings().model_dir == tmp_path
    assert scan_model_dir(tmp_path / "missing") == (
        [],
        [(str(tmp_path / "missing"), "SYNIB_MODEL_DIR is not a folder")],
    )


def _synib_models(model_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    synib = Path(sys.executable).parent / "synib"
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "SYNIB_MODEL_DIR": str(model_dir)}
    return subprocess.run(
        [str(synib), "models", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_synib_models_lists_the_models_and_the_skipped_folders(
    model_dir: Path, tmp_path: Path
) -> None:
    done = _synib_models(model_dir)
    assert done.returncode == 1, done.stderr
    assert re.search(r"^tiny-bert +text +32  transformers  /", done.stdout, re.M), done.stdout
    assert "skipped smell: synib-model.json: modality 'smell' is not one of" in done.stdout
    listed = json.loads(_synib_models(model_dir, "--json").stdout)
    assert "tiny-bert" in [m["name"] for m in listed["models"]]
    assert ["no-config", "no config.json (a Hugging Face model folder)"] in listed["skipped"]
    good = write_manifest(tmp_path / "only-good")
    (good / "config.json").write_text('{"hidden_size": 8}')
    done = _synib_models(tmp_path)
    assert done.returncode == 0 and "only-good" in done.stdout, done.stdout + done.stderr
