"""Dashboard load time in headless Chromium with 10,000 jobs in PostgreSQL.

    python benchmarks/dashboard_load.py [--jobs 10000] [--rounds 5] [--sqlite] [--smoke]

Serves the built dashboard (frontend/dist) and the API with uvicorn on loopback, seeds one user
with N jobs, then for each round opens a fresh browser context and measures, from the browser:
the page load (navigation start -> load event), sign-in -> the first page of jobs rendered,
a jump to the last page (-> rendered), and a status filter (-> rendered). Median and max over
rounds. Debian's Chromium is driven by Playwright (never a downloaded browser).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _seed import analyze, make_user, ready_dataset, seed_jobs
from _service import bench_database, markdown_table, run_api
from playwright.sync_api import Page, sync_playwright

from infra.db.session import make_engine, make_session_factory

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
DIST = Path(__file__).resolve().parents[1] / "frontend" / "dist" / "index.html"


def _seed(url: str, n_jobs: int) -> str:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            token, user_id = make_user(session, "bench-dashboard")
            dataset_id = ready_dataset(session, user_id)
            seed_jobs(session, owner_id=user_id, dataset_id=dataset_id, n=n_jobs)
        analyze(engine)
        return token
    finally:
        engine.dispose()


def _rendered_ms(page: Page, action: object, expect_text: str) -> float:
    """Run ``action`` and wait until #page-info shows ``expect_text``; milliseconds taken."""
    t0 = time.perf_counter()
    action()  # type: ignore[operator]
    page.wait_for_function(
        "t => (document.querySelector('#page-info')?.textContent || '').includes(t)",
        arg=expect_text,
    )
    return 1000 * (time.perf_counter() - t0)


def one_round(page: Page, base: str, token: str, n_jobs: int) -> dict[str, float]:
    page.goto(f"{base}/")
    page.wait_for_selector("#token")
    load_ms = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return n.loadEventEnd - n.startTime; }"
    )
    page.fill("#token", token)
    sign_in = _rendered_ms(
        page, lambda: page.click("#login-form button[type=submit]"), f"of {n_jobs:,}"
    )
    pages = -(-n_jobs // 25)
    last = _rendered_ms(
        page, lambda: page.goto(f"{base}/#/jobs?page={pages}"), f"page {pages} of {pages}"
    )
    status = _rendered_ms(page, lambda: page.goto(f"{base}/#/jobs?status=failed"), "page 1 of")
    return {"page load": float(load_ms), "sign-in -> first page": sign_in,
            "jump to the last page": last, "status filter": status}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.jobs, args.rounds = 60, 1
    if not DIST.exists():
        print("frontend/dist is missing: build it with `make frontend`", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="synib_bench_") as tmp:
        state = Path(tmp)
        with bench_database(state if args.sqlite else None) as url:
            token = _seed(url, args.jobs)
            with (
                run_api(url, state / "api", static_dir=DIST.parent) as base,
                sync_playwright() as pw,
            ):
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                samples: dict[str, list[float]] = {}
                for _ in range(args.rounds):
                    context = browser.new_context(viewport={"width": 1366, "height": 900})
                    for name, ms in one_round(context.new_page(), base, token, args.jobs).items():
                        samples.setdefault(name, []).append(ms)
                    context.close()
                browser.close()
    backend = "SQLite" if args.sqlite else "PostgreSQL"
    rows = [[name, f"{statistics.median(v):.0f}", f"{max(v):.0f}"] for name, v in samples.items()]
    print(f"## Dashboard: {args.jobs:,} jobs in {backend}, {args.rounds} fresh browser contexts\n")
    print(markdown_table(["step", "median ms", "max ms"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
