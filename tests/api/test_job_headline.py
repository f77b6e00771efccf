"""The job summary carries the report's headline delta (issue: the jobs list showed "+16.0 pts"
from two single trials of different lambdas and seeds while the report said -2.6 [-11.8, +6.3]).
The list and GET /jobs/{id} answer the report's own numbers, and nothing before the report."""

from __future__ import annotations

from typing import Any

from api_factories import add_job
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from infra.db import crud
from infra.db.models import Dataset

URL = "/api/v1/jobs"
# The job: no winner (the CI includes 0), in accuracy units.
SYNERGY = {"delta": -0.026, "lo": -0.118, "hi": 0.063}


def report_with_headline() -> dict[str, Any]:
    """A report as worker/job_report.py writes it, cut to what matters here."""
    return {
        "baseline": "vanilla",
        "methods": {
            "synib": {
                "delta_vs_baseline": {
                    "test_acc": {"delta": 0.01, "lo": -0.02, "hi": 0.04},
                    "synergy_acc": SYNERGY,
                },
            },
            "vanilla": {"delta_vs_baseline": {}},
        },
        "headline": {"synib": {"metric": "synergy_acc", **SYNERGY}},
    }


def test_list_and_get_carry_the_reports_headline_and_nothing_before_it(
    client: TestClient,
    auth: dict[str, str],
    db_session: Session,
    dataset: Dataset,
    user_token: tuple[str, str],
) -> None:
    job = add_job(db_session, user_token[1], dataset.id, status="running")
    listed = client.get(URL, headers=auth).json()["data"]
    assert [j["headline"] for j in listed] == [{}]
    assert client.get(f"{URL}/{job.id}", headers=auth).json()["headline"] == {}

    crud.set_job_report(db_session, job_id=job.id, report=report_with_headline())
    expected = {"synib": {"metric": "synergy_acc", **SYNERGY}}
    listed = client.get(URL, headers=auth).json()["data"]
    assert [j["headline"] for j in listed] == [expected]
    assert client.get(f"{URL}/{job.id}", headers=auth).json()["headline"] == expected
