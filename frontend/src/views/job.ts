// The job page, kept live by the job's event stream: header (status, progress, failure,
// cancel / rerun-failed), comparison, sweep chart, learning curves, scatter, trials, artifacts.

import { ApiError, sendJson } from "../api";
import { announce, badge, errorBox, fmtDate, h, replace, section } from "../dom";
import type { Route } from "../main";
import { followEvents } from "../sse";
import { type Job, TERMINAL } from "../types";
import { newCurveState, renderCurves } from "./job_curves";
import { ALL_PARTS, applyEvent, type JobData, loadJob, loadParts, type Part } from "./job_data";
import { renderScatter, type ScatterState } from "./job_scatter";
import { renderSweep, sweepKnob } from "./job_sweep";
import { artifactsTable, comparisonTable } from "./job_tables";
import { renderTrials, type SortState } from "./job_trials";
import { methodNames } from "./jobs";

interface Page {
  data: JobData;
  slots: Record<"header" | "comparison" | "sweep" | "curves" | "scatter" | "trials" | "artifacts", HTMLElement>;
  curves: ReturnType<typeof newCurveState>;
  scatter: ScatterState;
  sort: SortState;
  signal: AbortSignal;
  streaming: boolean;
  streamState: string;
  /** Everything was fetched after the job reached a terminal status. */
  finalLoaded: boolean;
}

/** Re-render a slot and give keyboard focus back to the element (by id) that had it. */
function keepFocus(slot: HTMLElement, render: () => void): void {
  const active = document.activeElement;
  const id = active && slot.contains(active) ? active.id : "";
  render();
  if (id) document.getElementById(id)?.focus();
}

async function act(page: Page, path: string, done: string): Promise<void> {
  try {
    await sendJson("POST", `/jobs/${page.data.job.id}/${path}`);
    announce(done);
    await refresh(page, new Set(ALL_PARTS));
    startStream(page);
  } catch (err) {
    page.slots.header.append(errorBox((err as ApiError).message));
  }
}

function sweepText(job: Job): string {
  const dims = Object.entries(job.spec?.sweep ?? {}).map(([knob, d]) =>
    d.type === "grid" || d.type === "choice"
      ? `${knob} ∈ {${(d.values ?? []).join(", ")}}`
      : `${knob} ${d.type} [${d.low}, ${d.high}], ${job.spec?.num_samples ?? 4} samples`);
  return dims.join("; ") || "none";
}

/** The spec's backbones in words ("caption: pretrained tiny-bert (frozen, mean)"). */
function backbonesText(job: Job): string {
  const parts = Object.entries(job.spec?.backbones ?? {}).map(([m, b]) =>
    b.encoder === "pretrained" ? `${m}: pretrained ${b.model ?? "?"} (${b.train ?? "frozen"}, ${b.pooling ?? "mean"})` : `${m}: ${b.encoder}`);
  return parts.join("; ") || "the encoder knob for every modality";
}

function renderHeader(page: Page): void {
  const { job, dataset, trials } = page.data;
  const pct = Math.round((job.progress ?? 0) * 100);
  const active = !TERMINAL.has(job.status);
  // What POST /jobs/{id}/rerun-failed reruns: failed trials only (not cancelled ones); it
  // answers 409 for a finished job with none unless the job itself failed.
  const failedTrials = trials.filter((t) => t.status === "failed").length;
  const cancel = h("button", { type: "button", id: "cancel-job", class: "danger", disabled: !active || job.status === "cancelling" }, "Cancel job");
  cancel.addEventListener("click", () => {
    if (window.confirm("Cancel this job? Running trials are stopped.")) void act(page, "cancel", "Cancel requested.");
  });
  const rerun = h("button", { type: "button", id: "rerun-failed", disabled: active || (failedTrials === 0 && job.status !== "failed") }, `Rerun failed (${failedTrials})`);
  rerun.addEventListener("click", () => void act(page, "rerun-failed", "Rerun of the failed trials requested."));
  keepFocus(page.slots.header, () => replace(page.slots.header,
    h("h1", null, job.name || `Job ${job.id.slice(0, 8)}`, " ", h("span", { id: "job-status" }, badge(job.status))),
    h("div", { class: "progress-row" },
      h("progress", { id: "job-progress", max: 100, value: pct, "aria-label": "job progress" }),
      h("span", null, `${pct}% · ${job.trials_done}/${job.trials_total} trials`),
      h("span", { class: "help", id: "stream-state" }, page.streamState)),
    job.failure_reason ? h("div", { class: "error", role: "alert", id: "failure-reason" }, h("strong", null, "Failure: "), job.failure_reason) : null,
    h("dl", { class: "facts" },
      h("dt", null, "Dataset"), h("dd", null, job.dataset_id ? h("a", { href: `#/datasets/${job.dataset_id}` }, dataset?.name ?? job.dataset_id) : "deleted"),
      h("dt", null, "Methods"), h("dd", null, methodNames(job).join(", ")),
      h("dt", null, "Sweep"), h("dd", null, sweepText(job)),
      h("dt", null, "Backbones"), h("dd", { id: "job-backbones" }, backbonesText(job)),
      h("dt", null, "Seeds"), h("dd", null, (job.spec?.seeds ?? [0]).join(", ")),
      h("dt", null, "Created"), h("dd", null, fmtDate(job.created_at)),
      h("dt", null, "Started"), h("dd", null, fmtDate(job.started_at)),
      h("dt", null, "Finished"), h("dd", null, fmtDate(job.finished_at)),
      h("dt", null, "Job id"), h("dd", { class: "mono" }, job.id)),
    h("div", { class: "toolbar" }, cancel, rerun)));
}

function renderParts(page: Page, parts: Set<Part>): void {
  const { data, slots, signal } = page;
  renderHeader(page);
  if (parts.has("report")) {
    replace(slots.comparison, data.report ? comparisonTable(data.report)
      : h("p", { class: "help" }, "The comparison appears when the job's report is ready."));
  }
  if (parts.has("trials") || parts.has("report")) renderSweep(slots.sweep, data.job, data.report, data.trials, signal);
  if (parts.has("trials") || parts.has("metrics")) {
    const baseline = data.report?.baseline ?? data.job.spec?.baseline ?? "vanilla";
    keepFocus(slots.curves, () => renderCurves(slots.curves, data.trials, data.history, baseline, page.curves, signal));
  }
  if (parts.has("trials")) {
    keepFocus(slots.scatter, () => renderScatter(slots.scatter, data.trials, page.scatter, signal));
    const knobs = Object.keys(data.job.spec?.sweep ?? {});
    keepFocus(slots.trials, () => renderTrials(slots.trials, data.job.id, data.trials, knobs, page.sort));
  }
  if (parts.has("artifacts") || parts.has("report")) {
    replace(slots.artifacts, artifactsTable(data.artifacts, data.trials, data.report));
  }
}

async function refresh(page: Page, parts: Set<Part>): Promise<void> {
  await loadParts(page.data, parts, page.signal);
  if (page.signal.aborted) return;
  const terminal = TERMINAL.has(page.data.job.status);
  if (terminal && !page.finalLoaded) {
    // Just finished: fetch everything once more (report, artifacts, final trial metrics).
    page.finalLoaded = true;
    announce(`Job ${page.data.job.status}.`);
    await loadParts(page.data, new Set(ALL_PARTS), page.signal);
    parts = new Set(ALL_PARTS);
  }
  if (!terminal) page.finalLoaded = false; // e.g. queued again by rerun-failed
  renderParts(page, parts);
}

function scheduler(page: Page): (parts: Part[]) => void {
  const pending = new Set<Part>();
  let timer = 0;
  return (parts) => {
    parts.forEach((p) => pending.add(p));
    if (timer) return;
    timer = window.setTimeout(async () => {
      const batch = new Set(pending);
      pending.clear();
      try {
        await refresh(page, batch);
      } catch {
        /* a failed refresh is retried by the next event */
      } finally {
        timer = 0;
      }
    }, 600);
  };
}

function startStream(page: Page): void {
  if (page.streaming || TERMINAL.has(page.data.job.status)) return;
  page.streaming = true;
  const schedule = scheduler(page);
  const setState = (s: string) => {
    page.streamState = s === "open" ? "● live" : s === "reconnecting" ? "reconnecting…" : "";
    const el = document.getElementById("stream-state");
    if (el) el.textContent = page.streamState;
  };
  void followEvents(`/jobs/${page.data.job.id}/events`, {
    onEvent: (ev) => {
      let payload: unknown = null;
      try { payload = JSON.parse(ev.data); } catch { payload = null; }
      schedule(applyEvent(page.data, ev.event, payload));
    },
    isDone: () => TERMINAL.has(page.data.job.status),
    onState: setState,
  }, page.signal).finally(() => {
    page.streaming = false;
    schedule(["job", "trials", "report", "artifacts"]);
  });
}

/** The warnings the API gave when this browser submitted the job (shown once), or null. */
function submitWarnings(jobId: string): HTMLElement | null {
  const key = `synib:warnings:${jobId}`;
  const stored = sessionStorage.getItem(key);
  if (!stored) return null;
  sessionStorage.removeItem(key);
  const lines = JSON.parse(stored) as string[];
  return h("div", { class: "card warning", id: "submit-warnings", role: "status" },
    h("strong", null, "Submitted with warnings: "),
    h("ul", null, lines.map((line) => h("li", null, line))));
}

export async function renderJobPage(main: HTMLElement, route: Route, signal: AbortSignal): Promise<void> {
  const data = await loadJob(route.path[1] ?? "", signal);
  const slot = () => h("div");
  const page: Page = {
    data, signal, streaming: false, streamState: "", finalLoaded: TERMINAL.has(data.job.status),
    slots: { header: h("div", { class: "card", id: "job-header" }), comparison: slot(), sweep: slot(), curves: slot(), scatter: slot(), trials: slot(), artifacts: slot() },
    curves: newCurveState(),
    scatter: { knob: sweepKnob(data.job, data.report), metric: "test_acc" },
    sort: { key: "trial_key", dir: 1 },
  };
  const s = page.slots;
  replace(main,
    h("p", null, h("a", { href: "#/jobs" }, "‹ All jobs")),
    submitWarnings(data.job.id),
    s.header,
    section("comparison", "Comparison with the baseline", s.comparison),
    h("div", { class: "grid-2" },
      section("sweep", "Sweep: accuracy vs the swept knob", s.sweep),
      section("scatter", "Knobs vs metric", s.scatter)),
    section("curves", "Learning curves", s.curves),
    section("trials", "Trials", s.trials),
    section("artifacts", "Artifacts", s.artifacts));
  renderParts(page, new Set(ALL_PARTS));
  startStream(page);
}
