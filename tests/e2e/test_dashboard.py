"""The dashboard in headless Chromium against the real service (`synib serve`).

One flow as a person would do it: sign in, upload a dataset, submit a small job from the form,
watch it finish live, read the charts and the comparison table (checked against GET report),
download an artifact (checked against its sha256). Plus sign-in/out, 422 messages in place,
a built-in dataset and cancelling. The new-job form's vocabulary: test_new_job_form.py.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from dashboard_testing import knob_table, make_npz, screenshot, sign_in
from playwright.sync_api import Page, Request, expect

if TYPE_CHECKING:
    from conftest import Service

pytestmark = pytest.mark.browser

TERMINAL = ("succeeded", "failed", "cancelled")


def test_sign_in_rejects_a_bad_token_and_signs_out(
    page: Page, page_errors: list[str], service: Service
) -> None:
    page.goto(f"{service.url}/")
    page.fill("#token", "not-a-token")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#token-error")).to_contain_text("not accepted")
    assert page.evaluate("sessionStorage.getItem('synib.token')") is None

    sign_in(page, service)
    assert page.evaluate("sessionStorage.getItem('synib.token')") == service.token
    expect(page.locator("#page-info")).to_contain_text(" of ")

    page.click("#sign-out")
    page.wait_for_selector("#login-form")
    assert page.evaluate("sessionStorage.getItem('synib.token')") is None
    page.goto(f"{service.url}/#/jobs")  # signed out: back to the sign-in form
    page.wait_for_selector("#login-form")
    assert page_errors == []


def upload_in_browser(page: Page, service: Service, npz: Path) -> str:
    page.goto(f"{service.url}/#/datasets")
    page.wait_for_selector("#upload-form")
    page.set_input_files("#upload-file", str(npz))
    page.fill("#upload-name", "e2e xor_pid")
    page.click("#upload-submit")
    page.wait_for_selector("#modalities-table")
    match = re.search(r"#/datasets/([^/?]+)$", page.url)
    assert match, page.url
    return match.group(1)


def check_dataset_page(page: Page, service: Service, dataset_id: str) -> None:
    with service.client() as api:
        ds = api.get(f"/datasets/{dataset_id}").raise_for_status().json()
    summary = ds["summary"]
    names = page.locator("#modalities-table tbody td:first-child").all_text_contents()
    assert names == [m["name"] for m in summary["modalities"]]
    split_counts = page.locator("#split-table td[data-count]").evaluate_all(
        "cells => cells.map(c => Number(c.dataset.count))"
    )
    assert sorted(split_counts) == sorted(summary["split_sizes"].values())
    assert page.is_visible("#class-table")
    assert page.is_visible("#group-table")


def check_dataset_pid(page: Page, service: Service, dataset_id: str) -> None:
    """Compute PID (the embedded worker runs synib.dataset_pid): the verdict and the terms."""
    page.click("#pid-button")
    page.wait_for_selector("#pid-verdict", timeout=120_000)
    with service.client() as api:
        pid = api.get(f"/datasets/{dataset_id}").raise_for_status().json()["pid"]
    assert pid["status"] == "succeeded", pid
    expect(page.locator("#pid-verdict")).to_have_text(pid["verdict"])
    [pair] = pid["pairs"]
    row = page.locator('#pid-table tr[data-pair="a+b"]')
    for term in ("redundancy", "synergy", "total"):
        text = row.locator(f'td[data-term="{term}"]').text_content()
        assert float(text) == pytest.approx(pair[term], abs=1e-3)
    for m in ("a", "b"):
        text = row.locator(f'td[data-term="unique_{m}"]').text_content()
        assert text.startswith(f"{m} ") and float(text[2:]) == pytest.approx(
            pair["unique"][m], abs=1e-3
        )


def submit_small_job(page: Page) -> str:
    page.click("text=New job on this dataset")
    page.wait_for_selector("#job-form")
    page.fill("#job-name", "e2e small job")
    assert page.is_checked("#method-vanilla") and page.is_checked("#method-synib")
    page.fill("#knob-hidden", "16")
    page.fill("#knob-fusion_hidden", "16")
    page.check("#sweep-mode-grid")
    page.fill("#sweep-values", "0.01, 10")
    page.fill("#job-seeds", "0")
    page.fill("#knob-epochs", "2")
    page.click("#submit-job")
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]{8,}$"))
    return page.url.rsplit("/", 1)[-1]


def wait_terminal(page: Page, service: Service, job_id: str) -> dict:
    terminal = re.compile(f"^({'|'.join(TERMINAL)})$")
    expect(page.locator("#job-status")).to_have_text(terminal, timeout=540_000)
    with service.client() as api:
        job = api.get(f"/jobs/{job_id}").raise_for_status().json()
    assert job["status"] == "succeeded", job.get("failure_reason")
    assert page.text_content("#job-status") == "succeeded"
    return job


def check_comparison(page: Page, report: dict) -> None:
    page.wait_for_selector("#comparison-table")
    for method, entry in report["methods"].items():
        row = page.locator(f'#comparison-table tr[data-method="{method}"]')
        for key in ("test_acc", "synergy_acc"):
            stat = entry["metrics"][key]
            cell = row.locator(f'td[data-metric="{key}"]')
            assert float(cell.get_attribute("data-value")) == pytest.approx(stat["mean"])
            assert cell.text_content().startswith(f"{stat['mean'] * 100:.1f}%")
        deltas = {} if method == report["baseline"] else entry.get("delta_vs_baseline") or {}
        for key, delta in deltas.items():
            cell = page.locator(f'#delta-table tr[data-method="{method}"] td[data-delta="{key}"]')
            assert float(cell.get_attribute("data-value")) == pytest.approx(delta["delta"])
    for method, words in report["verdicts"].items():  # the report's verdict, in words
        expect(page.locator(f'#verdicts li[data-method="{method}"]')).to_have_text(words)
    # The PID: the synergy of each method's predictions, the verdict on the test labels.
    for method, entry in report["methods"].items():
        cell = page.locator(
            f'#comparison-table tr[data-method="{method}"] td[data-metric="prediction_synergy"]'
        )
        synergy = entry["prediction_pid"]["a+b"]["synergy"]["mean"]
        assert float(cell.get_attribute("data-value")) == pytest.approx(synergy)
    verdict = f"PID of the test labels: {report['data_pid']['verdict']}"
    expect(page.locator("#data-pid-verdict")).to_have_text(verdict)


def check_charts(page: Page, report: dict) -> None:
    """The lambda axis labels every decade; the curves show the baseline by default; the
    counterfactual confidences carry their unit."""
    page.wait_for_selector("#sweep-chart canvas")
    # Swept at 0.01 and 10: the log axis in between is labelled at each decade.
    expect(page.locator("#sweep-axis")).to_have_text("lambda axis (log scale): 0.01, 0.1, 1, 10")
    baseline = report["baseline"]
    baseline_boxes = page.locator(f'#curves li[data-method="{baseline}"] input')
    assert baseline_boxes.count() == 1  # one seed
    expect(baseline_boxes).to_be_checked()
    legend = page.locator("#curves-chart .u-legend .u-series .u-label").all_text_contents()
    assert any(label.endswith("(baseline)") and baseline in label for label in legend), legend
    cf_cells = page.locator('#comparison-table td[data-metric^="cf_conf_"]')
    assert cf_cells.count() == 2 * len(report["methods"])  # two modalities per method
    for text in cf_cells.all_text_contents():
        assert text.endswith(" nats"), text
    headers = page.locator("#comparison-table thead th").all_text_contents()
    assert [h for h in headers if h.startswith("cf conf")] == [
        "cf conf a (KL to uniform)",
        "cf conf b (KL to uniform)",
    ]


def check_artifact_download(page: Page, service: Service, job_id: str, tmp: Path) -> None:
    with service.client() as api:
        artifacts = api.get(f"/jobs/{job_id}/artifacts").raise_for_status().json()["data"]
    assert artifacts, "a succeeded job stores its models"
    first = page.locator("#artifacts-table tbody tr").first
    artifact_id = first.get_attribute("data-artifact-id")
    expected = next(a for a in artifacts if a["id"] == artifact_id)
    with page.expect_download() as info:
        first.locator("button.download").click()
    saved = tmp / "artifact.zip"
    info.value.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == expected["sha256"]
    expect(first.locator("[role=status]")).to_contain_text("checksum verified")


def test_upload_submit_watch_and_download(
    page: Page, page_errors: list[str], service: Service, tmp_path: Path
) -> None:
    sign_in(page, service)
    dataset_id = upload_in_browser(page, service, make_npz(tmp_path / "xor_pid.npz"))
    check_dataset_page(page, service, dataset_id)
    check_dataset_pid(page, service, dataset_id)
    screenshot(page, "dataset-page.png")

    job_id = submit_small_job(page)
    page.wait_for_selector("#job-header")
    wait_terminal(page, service, job_id)

    with service.client() as api:
        report = api.get(f"/jobs/{job_id}/report").raise_for_status().json()
        trials = api.get(f"/jobs/{job_id}/trials").raise_for_status().json()["data"]
    assert {t["method"] for t in trials} == {"vanilla", "synib"}
    assert len(trials) == 3  # vanilla ignores lambda: 1 + 2 sweep values, 1 seed
    page.wait_for_selector("#curves-chart canvas")
    check_comparison(page, report)
    check_charts(page, report)
    assert page.locator("#trials-table tbody tr").count() == len(trials)

    with page.expect_download() as info:
        page.click("#export-csv")
    csv_path = tmp_path / "trials.csv"
    info.value.save_as(csv_path)
    assert csv_path.read_text().splitlines()[0].startswith("id,trial_key")
    check_artifact_download(page, service, job_id, tmp_path)

    screenshot(page, "job-page.png")
    page.set_viewport_size({"width": 1024, "height": 768})  # a small laptop screen
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_function(  # the charts follow their container's new width
        "() => [...document.querySelectorAll('.chart')].every("
        "c => !c.querySelector('.uplot') || c.querySelector('.uplot').offsetWidth <= c.clientWidth + 2)"
    )
    screenshot(page, "job-page-1024.png")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024  # no sideways scroll
    assert page_errors == []


def test_api_422_is_shown_next_to_the_field(
    page: Page, page_errors: list[str], service: Service, api_dataset: str
) -> None:
    with service.client() as api:
        jobs_before = api.get("/jobs").raise_for_status().json()["count"]
    posts: list[Request] = []
    page.on("request", lambda r: posts.append(r) if r.url.endswith("/api/v1/jobs") else None)
    sign_in(page, service)
    page.goto(f"{service.url}/#/jobs/new?dataset={api_dataset}")
    page.wait_for_selector("#job-form")
    page.fill("#knob-hidden", "0")

    page.click("#submit-job")  # the form's check stops it, in the table's words: nothing is sent
    hidden = next(k for k in knob_table(service)["knobs"] if k["name"] == "hidden")
    expect(page.locator("#knob-hidden-error")).to_have_text(f"must be {hidden['allowed']}")
    assert posts == []

    # A free-text format only the API reads: its 422 lands next to the field.
    page.fill("#knob-hidden", "16")
    page.click("#knobs-synib summary")
    page.fill("#knob-modality_weights", "audio")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/jobs")) as info:
        page.click("#submit-job")
    assert info.value.status == 422
    detail = info.value.json()["detail"]
    expect(page.locator("#knob-modality_weights-error")).not_to_be_empty()
    shown = page.text_content("#knob-modality_weights-error")
    assert shown and any(shown in item["msg"] for item in detail), (shown, detail)
    assert page.text_content("#knob-hidden-error") == ""
    assert page.get_attribute("#knob-modality_weights", "aria-invalid") == "true"
    assert page.text_content("#form-error") == ""  # not a form-level message
    page.locator("#knob-modality_weights").scroll_into_view_if_needed()
    screenshot(page, "new-job-422.png", full_page=False)
    with service.client() as api:
        assert api.get("/jobs").raise_for_status().json()["count"] == jobs_before
    assert page_errors == []


def test_a_submission_that_breaks_a_warning_rule_shows_the_warning_on_the_job_page(
    page: Page, page_errors: list[str], service: Service, api_dataset: str
) -> None:
    sign_in(page, service)
    page.goto(f"{service.url}/#/jobs/new?dataset={api_dataset}")
    page.wait_for_selector("#job-form")
    page.uncheck("#method-vanilla")
    page.fill("#knob-hidden", "8")
    page.fill("#knob-epochs", "1")
    page.fill("#job-seeds", "0")
    page.check("#sweep-mode-grid")
    page.fill("#sweep-values", "1")
    page.select_option("#knob-feature_norm", "layernorm")
    page.click("#knobs-mask summary")
    page.select_option("#knob-mask_level", "input")
    page.click("#submit-job")
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]{8,}$"))
    warning = page.locator("#submit-warnings li")
    expect(warning).to_have_count(1)
    expect(warning).to_contain_text("config.feature_norm: mask_level='input' with")
    screenshot(page, "job-submit-warnings.png", full_page=False)
    page.reload()  # shown once, right after the submission
    page.wait_for_selector("#job-header")
    expect(page.locator("#submit-warnings")).to_have_count(0)
    assert page_errors == []


def test_register_builtin_dataset_from_the_job_form(
    page: Page, page_errors: list[str], service: Service
) -> None:
    sign_in(page, service)
    page.goto(f"{service.url}/#/jobs/new")
    page.wait_for_selector("#job-form")
    page.click("#dataset-builtin summary")
    page.select_option("#job-builtin-generator", "xor_pid")
    page.fill("#job-builtin-params", '{"n_train": 60, "n_val": 30, "n_test": 60}')
    page.click("#job-builtin-submit")
    expect(page.locator("#job-builtin-form [role=status]")).to_contain_text("Registered")
    chosen = page.eval_on_selector("#job-dataset", "s => s.value")
    with service.client() as api:
        ds = api.get(f"/datasets/{chosen}").raise_for_status().json()
    assert ds["source"] == "builtin" and ds["builtin_name"] == "xor_pid"
    assert ds["params"]["n_train"] == 60
    assert page_errors == []


def test_cancel_a_running_job_from_its_page(
    page: Page, page_errors: list[str], service: Service, api_dataset: str
) -> None:
    spec = {"dataset_id": api_dataset, "methods": ["vanilla"], "epochs": 500, "name": "to cancel"}
    with service.client() as api:
        job_id = api.post("/jobs", json=spec).raise_for_status().json()["id"]
    sign_in(page, service)
    page.goto(f"{service.url}/#/jobs/{job_id}")
    page.wait_for_selector("#job-header")
    with service.client() as api:  # cancel a trial that trains, not a job still queued
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            trials = api.get(f"/jobs/{job_id}/trials").raise_for_status().json()["data"]
            if any(t["status"] == "running" and (t["epochs_done"] or 0) >= 1 for t in trials):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"no trial of job {job_id} started training: {trials}")
    page.once("dialog", lambda d: d.accept())
    page.click("#cancel-job")
    expect(page.locator("#job-status")).to_have_text("cancelled", timeout=180_000)
    with service.client() as api:
        assert api.get(f"/jobs/{job_id}").raise_for_status().json()["status"] == "cancelled"
    expect(page.locator("#cancel-job")).to_be_disabled()
    # Its trial was cancelled, not failed: the API would refuse a rerun (409), so no button.
    expect(page.locator("#rerun-failed")).to_have_text("Rerun failed (0)")
    expect(page.locator("#rerun-failed")).to_be_disabled()
    screenshot(page, "job-cancelled.png", full_page=False)
    page.goto(f"{service.url}/#/jobs?status=cancelled")
    expect(page.locator("#jobs-table tbody tr").first).to_have_attribute("data-job-id", job_id)
    expect(page.locator("#jobs-table .badge").first).to_have_text("cancelled")
    screenshot(page, "jobs-list-cancelled.png", full_page=False)
    page.goto(f"{service.url}/#/jobs")
    expect(page.locator("#jobs-table tbody tr").first).to_have_attribute("data-job-id", job_id)
    screenshot(page, "jobs-list.png", full_page=False)
    assert page_errors == []
