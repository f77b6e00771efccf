// The sweep chart: test and synergy accuracy vs the swept knob (log x for lambda) for SynIB,
// with the baseline as a band (mean ± std over seeds). From the report when it exists,
// otherwise live from the finished trials.

import type uPlot from "uplot";
import { AXIS_STROKE, color, drawChart, GRID, logAxis, paddedLogRange } from "../charts";
import { fmtNum, fmtPct, h, replace } from "../dom";
import { type Job, metricValue, type Report, type Stat, type Trial } from "../types";

export interface SweepRow {
  x: number;
  test: Stat | null;
  synergy: Stat | null;
}

export function meanStd(values: number[]): Stat | null {
  if (!values.length) return null;
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  return { mean, std: Math.sqrt(variance) };
}

const numbers = (trials: Trial[], metric: string): number[] =>
  trials.map((t) => metricValue(t.metrics, metric)).filter((v): v is number => v !== null);

export function sweepKnob(job: Job, report: Report | null): string {
  return report?.sweep_knobs?.[0] ?? Object.keys(job.spec?.sweep ?? {})[0] ?? "lambda";
}

export function sweepMethod(job: Job, report: Report | null): string | null {
  const baseline = report?.baseline ?? job.spec?.baseline ?? "vanilla";
  const names = report ? Object.keys(report.methods) : (job.spec?.methods ?? []).map((m) => (typeof m === "string" ? m : m.name));
  if (names.includes("synib")) return "synib";
  return names.find((m) => m !== baseline) ?? null;
}

/** Sweep points sorted by x, from the report or grouped from succeeded trials. */
export function sweepRows(method: string, knob: string, report: Report | null, trials: Trial[]): SweepRow[] {
  const fromReport = report?.methods[method]?.sweep;
  if (fromReport?.length) {
    return fromReport
      .map((p) => ({ x: Number(p.config?.[knob]), test: (p.test_acc as Stat) ?? null, synergy: (p.synergy_acc as Stat) ?? null }))
      .filter((r) => Number.isFinite(r.x))
      .sort((a, b) => a.x - b.x);
  }
  const groups = new Map<number, Trial[]>();
  for (const t of trials) {
    const x = Number(t.config?.[knob]);
    if (t.method !== method || t.status !== "succeeded" || !Number.isFinite(x)) continue;
    groups.set(x, [...(groups.get(x) ?? []), t]);
  }
  return [...groups.entries()]
    .map(([x, ts]) => ({ x, test: meanStd(numbers(ts, "test_acc")), synergy: meanStd(numbers(ts, "synergy_acc")) }))
    .sort((a, b) => a.x - b.x);
}

export function baselineStats(baseline: string, report: Report | null, trials: Trial[]): { test: Stat | null; synergy: Stat | null } {
  const m = report?.methods[baseline]?.metrics;
  if (m) return { test: m.test_acc ?? null, synergy: m.synergy_acc ?? null };
  const done = trials.filter((t) => t.method === baseline && t.status === "succeeded");
  return { test: meanStd(numbers(done, "test_acc")), synergy: meanStd(numbers(done, "synergy_acc")) };
}

function sweepTable(rows: SweepRow[], knob: string): HTMLElement {
  return h("details", null, h("summary", null, "Show the numbers"),
    h("table", { class: "data compact", id: "sweep-table" },
      h("thead", null, h("tr", null, [knob, "test acc", "synergy acc"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", null, rows.map((r) => h("tr", null, h("td", { class: "num" }, fmtNum(r.x)),
        h("td", { class: "num" }, `${fmtPct(r.test?.mean)} ± ${fmtPct(r.test?.std)}`),
        h("td", { class: "num" }, `${fmtPct(r.synergy?.mean)} ± ${fmtPct(r.synergy?.std)}`))))));
}

function band(stat: Stat | null, n: number, sign: 1 | -1): (number | null)[] {
  const v = stat ? stat.mean + sign * (stat.std ?? 0) : null;
  return Array.from({ length: n }, () => v);
}

export function renderSweep(slot: HTMLElement, job: Job, report: Report | null, trials: Trial[], signal: AbortSignal): void {
  const method = sweepMethod(job, report);
  const knob = sweepKnob(job, report);
  const baseline = report?.baseline ?? job.spec?.baseline ?? "vanilla";
  const all = method ? sweepRows(method, knob, report, trials) : [];
  const positive = all.filter((r) => r.x > 0);
  const useLog = positive.length >= 2 && (knob === "lambda" || job.spec?.sweep?.[knob]?.type === "loguniform");
  const rows = useLog ? positive : all;
  if (!method || rows.length === 0) {
    const numeric = Object.values(job.spec?.sweep ?? {}).every((d) => d.type !== "choice" && (d.values ?? [0]).every((v) => typeof v === "number"));
    replace(slot, h("p", { class: "help", id: "sweep-empty" }, numeric
      ? "The sweep chart appears when the first swept trials finish."
      : `The sweep chart needs a numeric swept knob; ${knob} is compared in "Knobs vs metric".`));
    return;
  }
  const base = baselineStats(baseline, report, trials);
  const n = rows.length;
  const chartBox = h("div", { class: "chart", id: "sweep-chart", role: "img", "aria-describedby": "sweep-axis",
    "aria-label": `${method} test and synergy accuracy versus ${knob}, ${baseline} as a band` });
  // The canvas is opaque to screen readers (and to tests): its x ticks, in words.
  const axisText = h("p", { class: "visually-hidden", id: "sweep-axis" });
  const describeAxis = (labels: string[]) => {
    axisText.textContent = `${knob} axis${useLog ? " (log scale)" : ""}: ${labels.join(", ")}`;
  };
  const note = useLog && positive.length < all.length ? h("p", { class: "help" }, `${knob} = 0 is left off the log axis (see the numbers).`) : null;
  replace(slot, chartBox, axisText, note, sweepTable(all, knob));
  const data = [rows.map((r) => r.x), rows.map((r) => r.test?.mean ?? null), rows.map((r) => r.synergy?.mean ?? null),
    band(base.test, n, 1), band(base.test, n, -1), band(base.synergy, n, 1), band(base.synergy, n, -1)] as uPlot.AlignedData;
  const edge = (label: string, c: string) => ({ label, stroke: c, width: 1, dash: [4, 4], points: { show: false } });
  drawChart(chartBox, {
    scales: { x: { time: false, distr: useLog ? 3 : 1, log: 10, range: useLog ? paddedLogRange : undefined }, y: { range: (_u, lo, hi) => [Math.max(0, lo - 0.05), Math.min(1, hi + 0.05)] } },
    axes: [
      useLog
        ? { label: `${knob} (log)`, stroke: AXIS_STROKE, grid: GRID, ...logAxis(describeAxis) }
        : { label: knob, stroke: AXIS_STROKE, grid: GRID, values: (_u, splits) => {
          const labels = splits.map((v) => fmtNum(v));
          describeAxis(labels);
          return labels;
        } },
      { label: "accuracy", stroke: AXIS_STROKE, grid: GRID, size: 60 },
    ],
    series: [
      { label: knob },
      { label: `${method} test acc`, stroke: color(0), width: 2, points: { show: true, size: 8 } },
      { label: `${method} synergy acc`, stroke: color(1), width: 2, points: { show: true, size: 8 } },
      edge(`${baseline} test mean ± std`, color(0)), edge(`${baseline} test −std`, color(0)),
      edge(`${baseline} synergy mean ± std`, color(1)), edge(`${baseline} synergy −std`, color(1)),
    ],
    bands: [{ series: [3, 4], fill: "rgba(0,114,178,0.12)" }, { series: [5, 6], fill: "rgba(213,94,0,0.12)" }],
  }, data, signal);
}
