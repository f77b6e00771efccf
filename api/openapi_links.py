"""OpenAPI 3 ``links`` from the operations that create a job or a dataset to every operation
taking that id in its path, so that a client (or a stateful fuzzer) can chain them: the id of
the created resource is ``$response.body#/id``. Derived from the paths, so a new route taking
``{job_id}`` or ``{dataset_id}`` is linked without being listed here. A created dataset also
links to ``POST /jobs`` (its id as the body's ``dataset_id``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

JOBS_PATH = "/api/v1/jobs"
# (path, method, status) of each creating operation -> the path parameter its id fills.
CREATORS: dict[tuple[str, str, str], str] = {
    ("/api/v1/jobs", "post", "202"): "job_id",
    ("/api/v1/datasets", "post", "201"): "dataset_id",
    ("/api/v1/datasets/builtin", "post", "201"): "dataset_id",
}


def links_for(paths: dict[str, Any], parameter: str) -> dict[str, Any]:
    """One link per operation whose path holds ``{parameter}``, named by its operationId."""
    links: dict[str, Any] = {}
    for path, operations in paths.items():
        if f"{{{parameter}}}" not in path:
            continue
        for operation in operations.values():
            operation_id = operation.get("operationId") if isinstance(operation, dict) else None
            if operation_id:
                links[operation_id] = {
                    "operationId": operation_id,
                    "parameters": {parameter: "$response.body#/id"},
                }
    return links


def job_on_dataset_link(paths: dict[str, Any]) -> dict[str, Any]:
    """The link from a created dataset to ``POST /jobs`` on it (none without that route)."""
    operation_id = paths.get(JOBS_PATH, {}).get("post", {}).get("operationId")
    if not operation_id:
        return {}
    body = {"dataset_id": "$response.body#/id"}
    return {operation_id: {"operationId": operation_id, "requestBody": body}}


def add_links(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with the links of CREATORS added to their success responses (in place)."""
    paths = spec.get("paths", {})
    for (path, method, status), parameter in CREATORS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is not None:
            links = links_for(paths, parameter)
            if parameter == "dataset_id":
                links.update(job_on_dataset_link(paths))
            response["links"] = links
    return spec


def install_links(app: FastAPI) -> None:
    """Make ``app.openapi()`` (what /openapi.json serves) carry the links (FastAPI's documented
    way to extend the schema: replace ``app.openapi``)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi_with_links() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_links(build())
        return app.openapi_schema

    app.openapi = openapi_with_links  # type: ignore[method-assign]
