"""Steps the dashboard tests share: a small dataset file, signing in, the API's knob table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from playwright.sync_api import Page

if TYPE_CHECKING:
    from conftest import Service

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"


def make_npz(path: Path) -> Path:
    """A small xor_pid dataset (two modalities, groups) written with synib_core's save_npz."""
    from synib_core.data import GENERATORS, save_npz

    data = GENERATORS["xor_pid"](seed=0, n_train=240, n_val=80, n_test=200)
    save_npz(data, path)
    return path


def sign_in(page: Page, service: Service) -> None:
    page.goto(f"{service.url}/")
    page.fill("#token", service.token)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#page-info")  # the first page of jobs has loaded


def knob_table(service: Service) -> dict[str, Any]:
    """What GET /api/v1/knobs answers: {"knobs": [...], "methods": [...]}."""
    with service.client() as api:
        table: dict[str, Any] = api.get("/knobs").raise_for_status().json()
    return table


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=full_page)
    return path
