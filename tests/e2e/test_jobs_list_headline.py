"""The jobs list shows the report's headline delta with its 95% CI (issue: it showed "+16.0 pts
(synib)" in green, from single trials of different lambdas and seeds, for a job whose report
said synergy -2.6 [-11.8, +6.3]). Coloured only when the CI excludes 0; "–" without a report.

The finished jobs are written into the service's database as its worker would write them (a
report with chosen numbers), so the page is checked against known values."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from dashboard_testing import screenshot, sign_in
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from infra.db import crud

if TYPE_CHECKING:
    from conftest import Service

pytestmark = pytest.mark.browser

NO_WINNER = {"delta": -0.026, "lo": -0.118, "hi": 0.063}  # the job
WINNER = {"delta": 0.05, "lo": 0.02, "hi": 0.08}
MUTED, GOOD = "rgb(77, 85, 96)", "rgb(20, 108, 46)"  # styles.css --muted, --good


def add_finished_job(
    service: Service, dataset_id: str, name: str, synergy: dict[str, float] | None
) -> str:
    """A job of the admin (the service's token) that ended with a report whose synergy delta of
    synib vs vanilla is ``synergy`` (no report when None: a failed job)."""
    engine = create_engine(f"sqlite:///{service.state / 'synib.db'}")
    try:
        with Session(engine) as session:
            owner = crud.get_user_by_name(session, name="admin")
            assert owner is not None
            job = crud.new_job(
                owner_id=owner.id,
                dataset_id=dataset_id,
                name=name,
                spec={"methods": ["vanilla", "synib"], "baseline": "vanilla"},
                trials_total=2,
            )
            job.status = "failed" if synergy is None else "succeeded"
            job.finished_at = job.created_at
            session.add(job)
            session.commit()
            if synergy is not None:
                crud.set_job_report(session, job_id=job.id, report=report(synergy))
            return job.id
    finally:
        engine.dispose()


def report(synergy: dict[str, float]) -> dict[str, Any]:
    deltas = {"test_acc": {"delta": 0.3, "lo": 0.25, "hi": 0.35}, "synergy_acc": synergy}
    return {
        "baseline": "vanilla",
        "methods": {"vanilla": {"delta_vs_baseline": {}}, "synib": {"delta_vs_baseline": deltas}},
        "headline": {"synib": {"metric": "synergy_acc", **synergy}},
    }


def test_the_list_shows_the_reports_delta_grey_when_its_ci_includes_0(
    page: Page, page_errors: list[str], service: Service, api_dataset: str
) -> None:
    no_winner = add_finished_job(service, api_dataset, "e2e no winner", NO_WINNER)
    winner = add_finished_job(service, api_dataset, "e2e winner", WINNER)
    failed = add_finished_job(service, api_dataset, "e2e no report", None)
    sign_in(page, service)

    cell = page.locator(f'tr[data-job-id="{no_winner}"] td.headline')
    expect(cell).to_have_text("-2.6 pts [-11.8, +6.3] synergy (synib)")
    delta = cell.locator(".headline-delta")
    assert delta.get_attribute("data-verdict") == "no-winner"
    assert delta.evaluate("e => getComputedStyle(e).color") == MUTED

    cell = page.locator(f'tr[data-job-id="{winner}"] td.headline')
    expect(cell).to_have_text("+5.0 pts [+2.0, +8.0] synergy (synib)")
    assert cell.locator(".headline-delta").evaluate("e => getComputedStyle(e).color") == GOOD

    expect(page.locator(f'tr[data-job-id="{failed}"] td.headline')).to_have_text("–")
    shot = screenshot(page, "jobs-list-headline.png")
    shutil.copy(shot, Path("/tmp") / shot.name)
    assert page_errors == []
