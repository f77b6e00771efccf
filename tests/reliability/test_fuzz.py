"""Fuzz the whole API from its OpenAPI schema with Schemathesis (in-process ASGI transport),
authenticated with a valid token, on PostgreSQL and on SQLite: schema-valid (positive) and
schema-violating (negative) requests for every operation, with real ids of the user's
resources mixed into the path parameters and the job spec. Zero 5xx and every response
conforming to the schema (documented status code, content type, headers and body)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from conftest_r2 import World, seed_world
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Examples per operation and mode, and the least requests expected, per backend: SQLite is
# several times faster here, so it carries the 1,000+ requests; PostgreSQL adds ~700 more.
EXAMPLES = {"sqlite": 30, "postgresql": 15}
MIN_REQUESTS = {"sqlite": 1000, "postgresql": 500}
VALID_METHODS = ["vanilla", "synib"]


class FuzzRun:
    """Counts of requests and status codes, and every failed check (first line + repro)."""

    def __init__(self, world: World, examples: int) -> None:
        self.world = world
        self.examples = examples
        self.statuses: Counter[int] = Counter()
        self.failures: dict[tuple[str, str], str] = {}

    def use_real_ids(self, case: Any) -> None:
        """Point the case at the user's real resources (not the event stream of a job that a
        fuzzed request may have put back in the queue: that stream would never end), and give
        a job spec valid methods and knobs so that some submissions are accepted."""
        if case.path_parameters and not case.operation.path.endswith("/events"):
            ids = self.world.path_ids()
            case.path_parameters = {k: ids.get(k, v) for k, v in case.path_parameters.items()}
        if isinstance(case.body, dict) and "dataset_id" in case.body:
            real = {"dataset_id": self.world.dataset_id, "methods": VALID_METHODS}
            case.body = {**case.body, **real, "config": {}, "sweep": {}}

    def send(self, case: Any) -> None:
        label = case.operation.label
        # Authenticated always: a generated Authorization header would only meet the 401 path.
        case.headers = {**(case.headers or {}), **self.world.auth}
        try:
            response = case.call()
        except Exception as exc:  # the in-process transport re-raises server errors
            self.statuses[500] += 1
            self.failures[(label, type(exc).__name__)] = f"server raised {exc!r}"[:500]
            return
        self.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except BaseException as exc:  # schemathesis raises a (Base)ExceptionGroup of failures
            codes = [ln.strip() for ln in str(exc).splitlines() if ln.strip().startswith("- ")]
            key = (f"{label} -> {response.status_code}", " ".join(codes) or type(exc).__name__)
            self.failures.setdefault(key, str(exc)[:1500])

    def run_operation(self, operation: Any, mode: GenerationMode) -> None:
        @settings(
            max_examples=self.examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode), real=st.booleans())
        def fuzz(case: Any, real: bool) -> None:
            if real:
                self.use_real_ids(case)
            self.send(case)

        fuzz()


def _has_inputs(operation: Any) -> bool:
    return bool(operation.path_parameters or operation.query or operation.headers or operation.body)


@pytest.fixture
def world(db_session: Session, app: Any) -> World:
    return seed_world(db_session, app.state.store, "alice")


def test_fuzz_the_whole_api_from_its_schema(app: Any, world: World, db_url: str) -> None:
    backend = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    run = FuzzRun(world, EXAMPLES[backend])
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    # Deletions last, so that the other operations meet the real resources first.
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    assert len(operations) >= 25
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        for operation in operations:
            if mode == GenerationMode.NEGATIVE and not _has_inputs(operation):
                continue  # nothing to make invalid (e.g. /health)
            run.run_operation(operation, mode)
    total = sum(run.statuses.values())
    server_errors = sum(n for code, n in run.statuses.items() if code >= 500)
    print(f"\nfuzz[{backend}]: {total} requests, {server_errors} 5xx, {dict(run.statuses)}")
    assert total >= MIN_REQUESTS[backend]
    assert server_errors == 0, run.failures
    assert run.failures == {}, "\n\n".join(run.failures.values())
    assert run.statuses[200] > 0 and run.statuses[202] > 0  # real resources were reached


CREATING = {"POST /api/v1/jobs", "POST /api/v1/datasets", "POST /api/v1/datasets/builtin"}
LINKED_PARAMETERS = ("job_id", "dataset_id")


def test_the_schema_links_created_ids_to_their_operations(app: Any) -> None:
    paths = app.openapi()["paths"]
    for path, status, parameter in (
        ("/api/v1/jobs", "202", "job_id"),
        ("/api/v1/datasets", "201", "dataset_id"),
        ("/api/v1/datasets/builtin", "201", "dataset_id"),
    ):
        links = paths[path]["post"]["responses"][status]["links"]
        targets = {(p, m) for p, ops in paths.items() if f"{{{parameter}}}" in p for m in ops}
        by_path = [link for link in links.values() if "parameters" in link]
        assert len(by_path) == len(targets) >= 3, (path, sorted(links))
        for link in by_path:
            assert link["parameters"] == {parameter: "$response.body#/id"}
        if parameter == "dataset_id":  # and a job on the created dataset
            create_job = paths["/api/v1/jobs"]["post"]["operationId"]
            assert links[create_job]["requestBody"] == {"dataset_id": "$response.body#/id"}
    job_links = paths["/api/v1/jobs"]["post"]["responses"]["202"]["links"]
    read_job = paths["/api/v1/jobs/{job_id}"]["get"]["operationId"]
    assert job_links[read_job]["operationId"] == read_job


def test_stateful_fuzz_reuses_created_ids(app: Any, world: World, db_url: str) -> None:
    """Schemathesis's state machine follows the links: an id a POST created is used by the
    next operations. Zero 5xx, every response conforming, and linked calls happened."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    run = FuzzRun(world, 0)
    created: set[str] = set()
    followed: Counter[str] = Counter()

    class AuthenticatedMachine(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Any) -> None:
            case.headers = {**(case.headers or {}), **world.auth}
            if case.operation.label == "POST /api/v1/jobs":
                # A spec that is accepted, on the linked dataset, so that jobs get created and
                # their links followed (the stateless run above fuzzes the spec itself).
                linked = case.body.get("dataset_id") if isinstance(case.body, dict) else None
                if linked in created:
                    followed[f"{case.operation.label} (dataset_id)"] += 1
                dataset_id = linked if linked in created else world.dataset_id
                case.body = {"dataset_id": dataset_id, "methods": VALID_METHODS}
            ids = {case.path_parameters.get(p) for p in LINKED_PARAMETERS} - {None}
            if ids & created:
                followed[case.operation.label] += 1
            elif ids and case.method.upper() == "DELETE":
                # Deleting the seeded resources would change what later scenarios meet (and
                # Hypothesis needs the same steps to give the same outcomes): created ones only.
                case.path_parameters = {k: "missing" for k in case.path_parameters}

        def after_call(self, response: Any, case: Any) -> None:
            run.statuses[response.status_code] += 1
            if case.operation.label in CREATING and response.status_code in (201, 202):
                created.add(response.json()["id"])

        def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
            try:
                case.validate_response(response, checks=CHECKS)
            except BaseException as exc:  # a (Base)ExceptionGroup of failed checks
                key = (f"{case.operation.label} -> {response.status_code}", type(exc).__name__)
                run.failures.setdefault(key, str(exc)[:1500])

    AuthenticatedMachine.run(
        settings=settings(
            max_examples=EXAMPLES["sqlite" if db_url.startswith("sqlite") else "postgresql"],
            stateful_step_count=6,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )
    server_errors = sum(n for code, n in run.statuses.items() if code >= 500)
    print(f"\nstateful fuzz: {dict(run.statuses)}, linked calls {dict(followed)}")
    assert server_errors == 0, run.failures
    assert run.failures == {}, "\n\n".join(run.failures.values())
    assert created, "no resource was created"
    # Created datasets were used by later calls, a job among them (how far a chain goes, to a
    # created job's own operations, depends on the draws).
    assert any("{dataset_id}" in label for label in followed), followed
    assert followed["POST /api/v1/jobs (dataset_id)"] > 0, followed
