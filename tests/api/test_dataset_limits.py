"""Dataset size limits at the API: built-in datasets have a size budget checked at
registration (``max_builtin_dataset_mb``), and an upload whose ``.npy`` headers declare shapes
that overflow, wrap around or disagree with the bytes stored is a 422 naming the array."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from broker_testing import drain_tasks
from fastapi.testclient import TestClient

from api.main import create_app
from infra.settings import Settings

URL = "/api/v1/datasets"


def _refusal(response_json: dict) -> dict:  # type: ignore[type-arg]
    [item] = response_json["detail"]
    return item  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("generator", "params", "field", "estimate"),
    [
        ("xor_pid", {"n_train": 10**7}, "n_train", "2,872 MiB"),
        ("xor_spurious", {"dim": 10**5}, "dim", "23,347 MiB"),
    ],
)
def test_builtin_dataset_over_the_budget_is_422_naming_the_parameter(
    client: TestClient,
    auth: dict[str, str],
    api_settings: Settings,
    generator: str,
    params: dict[str, int],
    field: str,
    estimate: str,
) -> None:
    body = {"generator": generator, "params": params}
    response = client.post(f"{URL}/builtin", headers=auth, json=body)
    assert response.status_code == 422, response.text
    item = _refusal(response.json())
    assert item["loc"] == ["body", "params", field]
    assert item["msg"].startswith(f"params.{field}: ")
    assert estimate in item["msg"] and "limit of 1,024 MiB" in item["msg"]
    assert "max_builtin_dataset_mb" in item["msg"]
    assert client.get(URL, headers=auth).json()["count"] == 0
    assert drain_tasks(api_settings) == []


def test_the_budget_is_a_setting(api_settings: Settings, auth: dict[str, str]) -> None:
    """xor_spurious with its defaults makes about 16 MiB: refused under a 10 MiB budget, naming
    the largest split; a smaller one passes."""
    small = api_settings.model_copy(update={"max_builtin_dataset_mb": 10})
    with TestClient(create_app(small)) as client:
        refused = client.post(f"{URL}/builtin", headers=auth, json={"generator": "xor_spurious"})
        assert refused.status_code == 422, refused.text
        item = _refusal(refused.json())
        assert item["field"] == "params.n_test" and "limit of 10 MiB" in item["msg"]
        fits = {"generator": "xor_spurious", "params": {"n_test": 3000}}
        assert client.post(f"{URL}/builtin", headers=auth, json=fits).status_code == 201


def _header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return out.getvalue()


def _npy(arr: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, arr)
    return out.getvalue()


def _archive(**members: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for key, payload in members.items():
            archive.writestr(f"{key}.npy", payload)
    return out.getvalue()


_Y = _npy(np.arange(8) % 2)
_X = _npy(np.zeros((8, 2), dtype=np.float32))

FORGED = {
    "2^32 x 2^32": (_archive(y=_Y, x_a=_header((300, 2**32, 2**32)) + bytes(64), x_b=_X), "x_a"),
    # 8 * (2^61 + 1) wraps around to 8 values in int64: once accepted as `ready`.
    "wrapping": (_archive(y=_Y, x_a=_header((8, 2**61 + 1)) + bytes(32), x_b=_X), "x_a"),
    "empty with a 2^64 axis": (_archive(y=_header((0, 2**64), "<i8"), x_a=_X, x_b=_X), "y"),
    "negative axes": (_archive(y=_Y, x_a=_header((8, -2, -4)) + bytes(64), x_b=_X), "x_a"),
}


@pytest.mark.parametrize("case", sorted(FORGED))
def test_forged_npy_shapes_are_422_naming_the_array(
    client: TestClient, auth: dict[str, str], case: str
) -> None:
    payload, field = FORGED[case]
    response = client.post(URL, headers=auth, files={"file": ("forged.npz", payload)})
    assert response.status_code == 422, response.text
    item = _refusal(response.json())
    assert item["field"] == field and item["loc"] == ["body", "file", field]
    assert client.get(URL, headers=auth).json()["count"] == 0
