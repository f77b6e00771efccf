"""The new-job form's backbone rows: one per modality of the chosen dataset, the encoders that
read its kind (from the API's vocabulary), the models of that modality the workers offer (GET
/api/v1/models: here the packaged sentence model the service's worker registers); the spec
preview and the stored job carry the backbones; an API 422 about them lands next to its field;
the dataset page shows the kinds and the (empty) feature cache.

The dataset is a row written into the service's database (a text modality and an older vector
one without a kind), as a validated upload would leave it: the form is under test, not training.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import pytest
from dashboard_testing import knob_table, screenshot, sign_in
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from infra.db import crud

if TYPE_CHECKING:
    from conftest import Service

pytestmark = pytest.mark.browser

TEXT_MODEL = "all-minilm-l6-v2"  # packaged (synib[signals]): every dev worker offers it


@pytest.fixture(scope="module")
def text_dataset(service: Service) -> str:
    engine = create_engine(f"sqlite:///{service.state / 'synib.db'}")
    try:
        with Session(engine) as session:
            owner = crud.get_user_by_name(session, name="admin")
            assert owner is not None
            summary = {
                "modalities": [
                    {"name": "caption", "shape": [60], "kind": "text"},
                    {"name": "v", "shape": [60, 4]},
                ],
                "num_classes": 2,
                "split_sizes": {"train": 40, "val": 10, "test": 10},
            }
            row = crud.create_dataset(
                session,
                owner_id=owner.id,
                name="captions",
                source="upload",
                status="ready",
                summary=summary,
            )
            return row.id
    finally:
        engine.dispose()


def offered_models(service: Service) -> list[dict[str, Any]]:
    """GET /api/v1/models once the service's worker has registered (within 60 s)."""
    deadline = time.monotonic() + 60
    with service.client() as api:
        while True:
            models: list[dict[str, Any]] = api.get("/models").raise_for_status().json()["data"]
            if models or time.monotonic() > deadline:
                return models
            time.sleep(0.5)


def options(page: Page, select: str) -> list[str]:
    return page.eval_on_selector_all(f"{select} option", "els => els.map(e => e.value)")


def test_backbone_rows_follow_the_dataset_and_the_registry(
    page: Page, page_errors: list[str], service: Service, text_dataset: str
) -> None:
    models = offered_models(service)
    text_models = [m["name"] for m in models if m["modality"] == "text"]
    assert TEXT_MODEL in text_models
    encoders = knob_table(service)["backbones"]["encoders"]
    sign_in(page, service)
    page.goto(f"{service.url}/#/jobs/new?dataset={text_dataset}")
    page.wait_for_selector("#backbone-caption-encoder")

    # Raw text: only a pretrained text model reads it; the vector keeps the encoder knob.
    assert options(page, "#backbone-caption-encoder") == ["pretrained"]
    assert options(page, "#backbone-caption-model") == text_models
    readers = [e["name"] for e in encoders if "vector" in e["accepts"]]
    assert options(page, "#backbone-v-encoder") == ["", *readers]
    expect(page.locator("#backbone-v-model")).to_be_disabled()
    expect(page.locator("fieldset[data-modality=caption] legend")).to_have_text("caption (text)")

    page.select_option("#backbone-caption-model", TEXT_MODEL)
    page.select_option("#backbone-caption-pooling", "cls")
    page.select_option("#backbone-v-encoder", "identity")
    page.check("#sweep-mode-none")
    page.click("#spec-preview-card summary")
    expect(page.locator("#spec-preview")).to_contain_text('"backbones"')
    expect(page.locator("#spec-preview")).to_contain_text(f'"model": "{TEXT_MODEL}"')
    screenshot(page, "new-job-backbones.png")

    # A rule only the API judges: input masks on a pretrained encoder trained in the trial.
    page.select_option("#backbone-caption-train", "full")
    page.click("#knobs-mask summary")
    page.select_option("#knob-mask_level", "input")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/jobs")) as info:
        page.click("#submit-job")
    assert info.value.status == 422
    expect(page.locator("#knob-mask_level-error")).to_contain_text("token ids or waveforms")

    page.select_option("#knob-mask_level", "feature")
    page.select_option("#backbone-caption-train", "frozen")
    page.click("#submit-job")
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]{8,}$"))
    job_id = page.url.rsplit("/", 1)[-1]
    expect(page.locator("#job-backbones")).to_have_text(
        f"caption: pretrained {TEXT_MODEL} (frozen, cls); v: identity"
    )
    with service.client() as api:
        job = api.get(f"/jobs/{job_id}").raise_for_status().json()
        api.post(f"/jobs/{job_id}/cancel")  # 409 once the worker failed it: either is fine
    assert job["spec"]["backbones"] == {
        "caption": {"encoder": "pretrained", "model": TEXT_MODEL, "train": "frozen",
                    "pooling": "cls"},
        "v": {"encoder": "identity"},
    }  # fmt: skip
    assert page_errors == []


def test_the_dataset_page_shows_kinds_and_cached_features(
    page: Page, page_errors: list[str], service: Service, text_dataset: str
) -> None:
    sign_in(page, service)
    page.goto(f"{service.url}/#/datasets/{text_dataset}")
    expect(page.locator("#modalities-table tr[data-modality=caption] td[data-kind]")).to_have_text(
        "text"
    )
    expect(page.locator("#modalities-table tr[data-modality=v] td[data-kind]")).to_have_text(
        "vector"
    )
    expect(page.locator("#dataset-features")).to_contain_text("None yet")
    screenshot(page, "dataset-kinds-features.png")
    assert page_errors == []
