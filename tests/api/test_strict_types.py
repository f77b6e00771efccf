"""Request bodies are strictly typed (issue #21 item 11): no ``true`` or ``"5"`` where a number
is expected, no number where a string or a boolean is; an integer is fine where a float is.
Each refusal is a 422 naming the field. The OpenAPI schema says the same: a value of the wrong
JSON type is refused by the schema and by the server alike."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from infra.db.models import Dataset

JOBS = "/api/v1/jobs"
BUILTIN = "/api/v1/datasets/builtin"


def _fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    return [item["field"] for item in response.json()["detail"]]


def _only_error(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    [item] = response.json()["detail"]
    return dict(item)


def _job(dataset: Dataset, **change: Any) -> dict[str, Any]:
    return {"dataset_id": dataset.id, "methods": ["vanilla", "synib"], "sweep": {}, **change}


# One knob of each type: int, float, bool, choice, free text; and values of other JSON types.
KNOB_CASES = [
    ("epochs", True, "true"),
    ("epochs", "5", '"5"'),
    ("epochs", 5.0, "5.0"),
    ("lr", True, "true"),
    ("lr", "0.1", '"0.1"'),
    ("amp", 1, "1"),
    ("amp", "true", '"true"'),
    ("mask", 1, "1"),
    ("mask", False, "false"),
    ("modality_weights", 1, "1"),
]


@pytest.mark.parametrize(("knob", "value", "shown"), KNOB_CASES)
def test_a_knob_of_the_wrong_type_is_a_422_naming_it_in_config_sweep_and_method_config(
    client: TestClient, auth: dict[str, str], dataset: Dataset, knob: str, value: Any, shown: str
) -> None:
    bodies = {
        f"config.{knob}": _job(dataset, config={knob: value}),
        f"methods[1].config.{knob}": _job(
            dataset, methods=["vanilla", {"name": "synib", "config": {knob: value}}]
        ),
        f"sweep.{knob}.values[1]": _job(
            dataset, sweep={knob: {"type": "grid", "values": [KNOB_GOOD[knob], value]}}
        ),
    }
    for field, body in bodies.items():
        response = client.post(JOBS, headers=auth, json=body)
        item = _only_error(response)
        assert item["field"] == field, item
        assert item["msg"].startswith(f"{field}: expected ") and f"got {shown}" in item["msg"]


KNOB_GOOD = {"epochs": 2, "lr": 0.01, "amp": True, "mask": "full", "modality_weights": ""}


def test_random_sweep_bounds_take_numbers_only(
    client: TestClient, auth: dict[str, str], dataset: Dataset
) -> None:
    for bad in (True, "0.001"):
        sweep = {"lr": {"type": "loguniform", "low": bad, "high": 0.1}}
        response = client.post(JOBS, headers=auth, json=_job(dataset, sweep=sweep))
        assert _fields(response) == ["sweep.lr.low"]
    sweep = {"lr": {"type": "loguniform", "low": 1, "high": 2}}  # integers where floats go: fine
    response = client.post(JOBS, headers=auth, json=_job(dataset, sweep=sweep, num_samples=1))
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("change", "field", "shown"),
    [
        ({"epochs": True}, "epochs", "true"),
        ({"epochs": "5"}, "epochs", '"5"'),
        ({"seeds": [0, False]}, "seeds[1]", "false"),
        ({"num_samples": "4"}, "num_samples", '"4"'),
        ({"scheduler": {"grace_period": True}}, "scheduler.grace_period", "true"),
        ({"resources": {"cpus_per_trial": "1"}}, "resources.cpus_per_trial", '"1"'),
        ({"name": 5}, "name", "5"),
    ],
)
def test_a_job_field_of_the_wrong_type_is_a_422_naming_it(
    client: TestClient,
    auth: dict[str, str],
    dataset: Dataset,
    change: dict[str, Any],
    field: str,
    shown: str,
) -> None:
    response = client.post(JOBS, headers=auth, json=_job(dataset, **change))
    item = _only_error(response)
    assert item["field"] == field and item["msg"].startswith(f"{field}: "), item
    assert item["msg"].endswith(f"got {shown}"), item


def test_integers_are_numbers_and_integral_floats_are_not_integers(
    client: TestClient, auth: dict[str, str], dataset: Dataset
) -> None:
    good = _job(dataset, config={"lr": 1, "dropout": 0}, resources={"cpus_per_trial": 1})
    assert client.post(JOBS, headers=auth, json=good).status_code == 202
    bad = _job(dataset, epochs=3.0)
    assert _fields(client.post(JOBS, headers=auth, json=bad)) == ["epochs"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"seed": False}, "seed"),
        ({"seed": "3"}, "seed"),
        ({"name": 7}, "name"),
        ({"params": {"n_train": True}}, "params.n_train"),
        ({"params": {"n_train": "300"}}, "params.n_train"),
        ({"params": {"n_train": 300.0}}, "params.n_train"),
        ({"params": {"alpha": True}}, "params.alpha"),
        ({"params": {"alpha": "0.5"}}, "params.alpha"),
    ],
)
def test_a_builtin_dataset_field_of_the_wrong_type_is_a_422_naming_it(
    client: TestClient, auth: dict[str, str], change: dict[str, Any], field: str
) -> None:
    body = {"generator": "xor_spurious", **change}
    assert _fields(client.post(BUILTIN, headers=auth, json=body)) == [field]


def test_builtin_parameters_of_their_json_type_are_accepted(
    client: TestClient, auth: dict[str, str]
) -> None:
    spurious = {"generator": "xor_spurious", "params": {"alpha": 1, "n_train": 300}, "seed": 3}
    assert client.post(BUILTIN, headers=auth, json=spurious).status_code == 201
    pid = {"generator": "xor_pid", "params": {"p": [0.4, 0, 0.5, 0.1]}}
    assert client.post(BUILTIN, headers=auth, json=pid).status_code == 201
    as_text = {"generator": "xor_pid", "params": {"p": "0.4,0,0.5,0.1"}}
    assert _fields(client.post(BUILTIN, headers=auth, json=as_text)) == ["params.p"]


def test_pid_clusters_must_be_an_integer(
    client: TestClient, auth: dict[str, str], dataset: Dataset
) -> None:
    url = f"/api/v1/datasets/{dataset.id}/pid"
    for bad in (True, "4", 4.0):
        assert _fields(client.post(url, headers=auth, json={"clusters": bad})) == ["clusters"]


# --- the OpenAPI schema and the server agree on types -------------------------------------------

PROBES: list[Any] = [True, "", 5, 0.5, None]
"""One value of each JSON type (an integer, a fraction); the empty string keeps free-text checks
(``modality_weights``' "name=w") out of a comparison of types."""


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """The object schema behind ``$ref`` / ``anyOf`` (None's branch left out), or ``schema``."""
    if "$ref" in schema:
        return _resolve(components[schema["$ref"].rsplit("/", 1)[1]], components)
    for branch in schema.get("anyOf", []):
        if branch.get("type") == "object" or "$ref" in branch:
            return _resolve(branch, components)
    return schema


def _leaves(schema: dict[str, Any], components: dict[str, Any], path: str = "") -> list[Any]:
    """(dotted field, its schema) for every property, nested objects' properties included."""
    found = []
    for name, sub in _resolve(schema, components).get("properties", {}).items():
        field = f"{path}.{name}" if path else name
        found.append((field, sub))
        if _resolve(sub, components).get("properties"):
            found += _leaves(sub, components, field)
    return found


def _with(body: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    """``body`` with the dotted ``field`` set to ``value`` (nested objects created)."""
    copy = {**body}
    head, _, rest = field.partition(".")
    copy[head] = _with(dict(copy.get(head) or {}), rest, value) if rest else value
    return copy


def _disagreements(
    client: TestClient, headers: dict[str, str], url: str, model: str, base: dict[str, Any]
) -> list[str]:
    spec = client.get("/openapi.json").json()
    components = spec["components"]["schemas"]
    found = []
    for field, schema in _leaves(components[model], components):
        validator = jsonschema.Draft202012Validator({**schema, "components": spec["components"]})
        for value in PROBES:
            schema_ok = validator.is_valid(value)
            response = client.post(url, headers=headers, json=_with(base, field, value))
            assert response.status_code < 500, response.text
            refused = response.status_code == 422 and any(
                f["field"] == field or f["field"].startswith((f"{field}.", f"{field}["))
                for f in response.json()["detail"]
            )
            if schema_ok == refused:
                found.append(f"{field}={value!r}: schema {schema_ok}, server {not refused}")
    return found


def test_the_schema_refuses_what_the_server_refuses_in_a_job(
    client: TestClient, auth: dict[str, str], dataset: Dataset
) -> None:
    base = {"dataset_id": dataset.id, "methods": ["vanilla"], "sweep": {}}
    assert _disagreements(client, auth, JOBS, "JobCreate", base) == []


def test_the_schema_refuses_what_the_server_refuses_in_dataset_requests(
    client: TestClient, auth: dict[str, str], dataset: Dataset
) -> None:
    base = {"generator": "xor_spurious"}
    assert _disagreements(client, auth, BUILTIN, "BuiltinDatasetCreate", base) == []
    pid = f"/api/v1/datasets/{dataset.id}/pid"
    assert _disagreements(client, auth, pid, "DatasetPidRequest", {}) == []
