"""``GET /api/v1/knobs``: the vocabulary as ``synib_spec.knobs`` defines it, behind the same
authentication as the other routes, with its shape in the OpenAPI schema."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from synib_spec.knobs import KNOBS_LIST, METHODS, knob_table

URL = "/api/v1/knobs"


def test_knobs_answers_the_table_exactly(client: TestClient, auth: dict[str, str]) -> None:
    response = client.get(URL, headers=auth)
    assert response.status_code == 200
    body = response.json()
    # Exactly what the one definition says, types included (an int default stays an int).
    assert json.dumps(body, sort_keys=True) == json.dumps(knob_table(), sort_keys=True)
    assert [k["name"] for k in body["knobs"]] == [k.name for k in KNOBS_LIST]
    assert [m["name"] for m in body["methods"]] == list(METHODS)
    lam = next(k for k in body["knobs"] if k["name"] == "lambda")
    assert lam["methods"] is not None and "synib" in lam["methods"]


def test_knobs_needs_a_token(client: TestClient) -> None:
    assert client.get(URL).status_code == 401
    assert client.get(URL, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_knobs_is_in_the_openapi_schema_with_its_model(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    answer = schema["paths"][URL]["get"]["responses"]["200"]["content"]["application/json"]
    assert answer["schema"] == {"$ref": "#/components/schemas/KnobTable"}
    knob = schema["components"]["schemas"]["KnobPublic"]
    assert {"name", "type", "default", "min", "max", "choices", "methods"} <= set(knob["required"])
    assert knob["properties"]["type"]["enum"] == ["int", "float", "str", "bool"]
