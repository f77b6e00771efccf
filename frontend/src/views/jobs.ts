// Jobs list: server-side pagination and status filter (fast with 10,000 jobs: one page at a time).

import { getJson, qs } from "../api";
import { badge, errorBox, fmtDate, fmtSigned, h, replace } from "../dom";
import type { Route } from "../main";
import type { Dataset, Job, Page } from "../types";
import { JOB_STATUSES, TERMINAL } from "../types";

const PAGE_SIZES = [25, 50, 100];
const datasetNames = new Map<string, string>();

/** Metric names as the report's verdicts use them, short. */
const METRIC_WORDS: Record<string, string> = { synergy_acc: "synergy", test_acc: "accuracy" };

/**
 * The report's headline deltas (per method against the baseline, the delta its verdict is about,
 * with the 95% CI), in accuracy points: coloured only when the CI excludes 0, grey otherwise;
 * "–" before the report exists. Never computed here from single trials.
 */
export function headlineCell(job: Job): HTMLElement {
  const entries = Object.entries(job.headline ?? {});
  if (entries.length === 0) return h("td", { class: "num headline", "data-headline": "none" }, "–");
  return h(
    "td",
    { class: "num headline" },
    entries.map(([method, d], i) => {
      const verdict = d.lo > 0 ? "better" : d.hi < 0 ? "worse" : "no-winner";
      const tone = verdict === "better" ? "good" : verdict === "worse" ? "bad" : "ns";
      return h(
        "span",
        { class: `headline-delta ${tone}`, "data-method": method, "data-verdict": verdict, "data-delta": d.delta },
        i > 0 ? h("br") : null,
        `${fmtSigned(d.delta)} pts [${fmtSigned(d.lo)}, ${fmtSigned(d.hi)}] ${METRIC_WORDS[d.metric] ?? d.metric} (${method})`,
      );
    }),
  );
}

export function methodNames(job: Job): string[] {
  return (job.spec?.methods ?? []).map((m) => (typeof m === "string" ? m : m.name));
}

async function loadDatasetNames(jobs: Job[], signal: AbortSignal): Promise<void> {
  const ids = jobs.map((j) => j.dataset_id).filter((id): id is string => Boolean(id));
  const missing = [...new Set(ids)].filter((id) => !datasetNames.has(id));
  await Promise.all(
    missing.map(async (id) => {
      try {
        const ds = await getJson<Dataset>(`/datasets/${id}`, signal);
        datasetNames.set(id, ds.name);
      } catch {
        datasetNames.set(id, id.slice(0, 8));
      }
    }),
  );
}

function jobRow(job: Job): HTMLElement {
  const pct = Math.round((job.progress ?? 0) * 100);
  return h(
    "tr",
    { "data-job-id": job.id },
    h("td", null, h("a", { href: `#/jobs/${job.id}` }, job.name || job.id.slice(0, 8))),
    h("td", null, badge(job.status)),
    h(
      "td",
      { class: "nowrap" },
      h("progress", { max: 100, value: pct, "aria-label": `progress ${pct}%` }),
      ` ${job.trials_done}/${job.trials_total}`,
    ),
    h(
      "td",
      null,
      job.dataset_id
        ? h("a", { href: `#/datasets/${job.dataset_id}` }, datasetNames.get(job.dataset_id) ?? "…")
        : "deleted",
    ),
    h("td", null, methodNames(job).join(", ")),
    h("td", { class: "nowrap" }, fmtDate(job.created_at)),
    h("td", { class: "nowrap" }, fmtDate(job.finished_at)),
    headlineCell(job),
  );
}

function filters(route: Route, status: string, limit: number): HTMLElement {
  const go = (patch: Record<string, string>) => {
    const q = new URLSearchParams(route.query);
    for (const [key, value] of Object.entries(patch)) q.set(key, value);
    q.set("page", "1");
    location.hash = `#/jobs?${q.toString()}`;
  };
  const statusSel = h(
    "select",
    { id: "status-filter", onchange: (e) => go({ status: (e.target as HTMLSelectElement).value }) },
    h("option", { value: "" }, "all"),
    JOB_STATUSES.map((s) => h("option", { value: s, selected: s === status }, s)),
  );
  const sizeSel = h(
    "select",
    { id: "page-size", onchange: (e) => go({ limit: (e.target as HTMLSelectElement).value }) },
    PAGE_SIZES.map((n) => h("option", { value: n, selected: n === limit }, String(n))),
  );
  return h(
    "div",
    { class: "toolbar" },
    h("label", { for: "status-filter" }, "Status"),
    statusSel,
    h("label", { for: "page-size" }, "Per page"),
    sizeSel,
    h("a", { class: "button primary", href: "#/jobs/new" }, "New job"),
  );
}

function pager(route: Route, page: number, limit: number, count: number): HTMLElement {
  const pages = Math.max(1, Math.ceil(count / limit));
  const to = (p: number) => {
    const q = new URLSearchParams(route.query);
    q.set("page", String(p));
    return `#/jobs?${q.toString()}`;
  };
  const first = count === 0 ? 0 : (page - 1) * limit + 1;
  const last = Math.min(count, page * limit);
  return h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    page > 1 ? h("a", { href: to(page - 1), rel: "prev" }, "‹ Previous") : null,
    h("span", { id: "page-info" }, `${first}–${last} of ${count.toLocaleString()} · page ${page} of ${pages}`),
    page < pages ? h("a", { href: to(page + 1), rel: "next" }, "Next ›") : null,
  );
}

export async function renderJobs(main: HTMLElement, route: Route, signal: AbortSignal) {
  const status = route.query.get("status") ?? "";
  const limitRaw = Number(route.query.get("limit") ?? 25);
  const limit = PAGE_SIZES.includes(limitRaw) ? limitRaw : 25;
  const page = Math.max(1, Number(route.query.get("page") ?? 1) || 1);
  const body = h("tbody");
  const table = h(
    "table",
    { id: "jobs-table", class: "data" },
    h("caption", { class: "visually-hidden" }, "Jobs"),
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        ["Job", "Status", "Progress", "Dataset", "Methods", "Created", "Finished", "Gain over baseline (95% CI)"].map(
          (c) => h("th", { scope: "col" }, c),
        ),
      ),
    ),
    body,
  );
  const pagerSlot = h("div");
  replace(main, h("h1", null, "Jobs"), filters(route, status, limit), h("div", { class: "table-wrap" }, table), pagerSlot);

  const refresh = async () => {
    const query = qs({ status, limit, offset: (page - 1) * limit });
    const res = await getJson<Page<Job>>(`/jobs${query}`, signal);
    await loadDatasetNames(res.data, signal);
    if (signal.aborted) return false;
    replace(body, res.data.length ? res.data.map(jobRow) : h("tr", null, h("td", { colspan: 8 }, "No jobs.")));
    replace(pagerSlot, pager(route, page, limit, res.count));
    return res.data.some((j) => !TERMINAL.has(j.status));
  };
  try {
    let active = await refresh();
    // Poll while a job on this page is still moving (the list has no event stream).
    while (active && !signal.aborted) {
      await new Promise((r) => window.setTimeout(r, 5000));
      if (!signal.aborted) active = await refresh();
    }
  } catch (err) {
    if (!signal.aborted) main.append(errorBox((err as Error).message));
  }
}
