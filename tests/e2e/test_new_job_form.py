"""The new-job form speaks the API's vocabulary: it offers exactly the knobs and methods of
GET /api/v1/knobs, grouped as the table groups them, with their help and allowed values; it
disables the knobs no chosen method reads and leaves them out of the job; it checks values
against the table's bounds before sending, shows a rule the API enforces next to its field,
and submits a valid job whose spec holds exactly the knobs changed from their defaults.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from dashboard_testing import knob_table, screenshot, sign_in
from playwright.sync_api import Page, Request, expect

if TYPE_CHECKING:
    from conftest import Service

pytestmark = pytest.mark.browser


def open_form(page: Page, service: Service, dataset_id: str) -> None:
    sign_in(page, service)
    page.goto(f"{service.url}/#/jobs/new?dataset={dataset_id}")
    page.wait_for_selector("#job-form [data-knob]")


def offered(page: Page, expression: str) -> list[Any]:
    """``expression`` (over one field element ``e``) for every knob field, in page order."""
    return page.eval_on_selector_all("#job-form [data-knob]", f"els => els.map(e => {expression})")


def test_form_offers_exactly_the_api_knobs_and_methods(
    page: Page, page_errors: list[str], service: Service, api_dataset: str
) -> None:
    table = knob_table(service)
    open_form(page, service, api_dataset)

    assert offered(page, "e.dataset.knob") == [k["name"] for k in table["knobs"]]
    assert offered(page, "e.closest('[data-group]').dataset.group") == [
        k["group"] for k in table["knobs"]
    ]
    methods = page.eval_on_selector_all(
        "#methods input[type=checkbox]", "els => els.map(e => e.value)"
    )
    assert methods == [m["name"] for m in table["methods"]]
    for method in table["methods"]:
        expect(page.locator(f"#method-{method['name']}-help")).to_have_text(method["help"])
    for knob in table["knobs"]:
        help_text = page.text_content(f"#knob-{knob['name']}-help") or ""
        assert help_text.startswith(knob["help"]), (knob["name"], help_text)
        if knob["type"] in ("int", "float"):
            assert knob["allowed"] in help_text, (knob["name"], help_text)
        assert page.get_attribute(f"#knob-{knob['name']}", "title") == knob["allowed"]
    screenshot(page, "new-job-form.png")
    assert page_errors == []


def read_by(knob: dict[str, Any], methods: set[str]) -> bool:
    return knob["methods"] is None or bool(methods & set(knob["methods"]))


def test_knobs_follow_the_chosen_methods(
    page: Page, page_errors: list[str], service: Service, api_dataset: str
) -> None:
    knobs = knob_table(service)["knobs"]
    open_form(page, service, api_dataset)
    for chosen in ({"vanilla", "synib"}, {"vanilla"}, {"vanilla", "ogm_ge"}):
        for box in page.locator("#methods input[type=checkbox]").all():
            box.set_checked(box.get_attribute("value") in chosen)
        disabled = dict(
            zip(
                offered(page, "e.dataset.knob"),
                offered(page, "e.querySelector('input, select').disabled"),
                strict=True,
            )
        )
        assert disabled == {k["name"]: not read_by(k, chosen) for k in knobs}, chosen
    # vanilla reads no SynIB knob: lambda is off; ogm_ge reads ogm_alpha
    assert disabled["lambda"] and not disabled["ogm_alpha"]
    expect(page.locator("#knobs-mask summary")).to_contain_text("not read by the chosen methods")
    expect(page.locator("#knobs-baselines summary")).not_to_contain_text("not read")
    for group in ("synib", "baselines"):
        page.click(f"#knobs-{group} summary")
    screenshot(page, "new-job-form-vanilla-ogm_ge.png")
    assert page_errors == []


def test_bounds_are_checked_before_sending_and_rules_by_the_api(
    page: Page, page_errors: list[str], service: Service, api_dataset: str
) -> None:
    knobs = {k["name"]: k for k in knob_table(service)["knobs"]}
    posts: list[Request] = []
    page.on("request", lambda r: posts.append(r) if r.url.endswith("/api/v1/jobs") else None)
    open_form(page, service, api_dataset)
    page.click("#knobs-mask summary")
    page.fill("#knob-mask_prob", "0")  # (0, 1]: the lower bound is exclusive
    page.click("#submit-job")
    expect(page.locator("#knob-mask_prob-error")).to_have_text(
        f"must be {knobs['mask_prob']['allowed']}"
    )
    assert posts == []

    page.fill("#knob-mask_prob", "1")  # the upper bound is inclusive
    page.click("#knobs-synib summary")
    page.select_option("#knob-penalty", "anchor")  # needs unimodal heads (w_uni > 0)
    with page.expect_response(lambda r: r.url.endswith("/api/v1/jobs")) as info:
        page.click("#submit-job")
    assert info.value.status == 422
    # The baselines group was closed: the message opens it, next to w_uni.
    expect(page.locator("#knob-w_uni-error")).to_contain_text("penalty='anchor'")
    expect(page.locator("#knob-w_uni")).to_be_visible()
    assert page.text_content("#form-error") == ""
    assert page_errors == []


def test_submits_a_valid_job_with_the_changed_knobs(
    page: Page, page_errors: list[str], service: Service, api_dataset: str
) -> None:
    open_form(page, service, api_dataset)
    page.fill("#job-name", "form knobs")
    page.fill("#knob-hidden", "8")
    page.fill("#knob-epochs", "1")
    page.fill("#knob-lr", "3e-4")  # the default, written differently: not sent
    page.check("#method-ogm_ge")
    page.click("#knobs-baselines summary")
    page.fill("#knob-ogm_alpha", "0.9")
    page.uncheck("#method-ogm_ge")  # ogm_alpha is now read by no chosen method
    page.click("#knobs-synib summary")
    page.select_option("#knob-penalty", "anchor")
    page.fill("#knob-w_uni", "0.5")
    page.check("#sweep-mode-none")
    page.click("#submit-job")
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]{8,}$"))
    job_id = page.url.rsplit("/", 1)[-1]
    with service.client() as api:
        job = api.get(f"/jobs/{job_id}").raise_for_status().json()
        api.post(
            f"/jobs/{job_id}/cancel"
        ).raise_for_status()  # the form is under test, not training
    spec = job["spec"]
    assert spec["methods"] == ["vanilla", "synib"]
    assert spec["config"] == {"hidden": 8, "epochs": 1, "penalty": "anchor", "w_uni": 0.5}
    assert spec["sweep"] == {}
    assert job["trials_total"] == 2  # one per method, no sweep, one seed
    assert page_errors == []
