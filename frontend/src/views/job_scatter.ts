// Scatter of one sweep knob (x) against a chosen metric (y), one point per trial, coloured
// by method. Categorical knobs are placed at integer positions and labelled by name.

import type uPlot from "uplot";
import { AXIS_STROKE, color, drawChart, GRID, logAxis, paddedLogRange } from "../charts";
import { h, metricLabel, replace } from "../dom";
import type { Trial } from "../types";

export interface ScatterState {
  knob: string;
  metric: string;
}

/** Knobs whose value differs between trials (what the sweep explored), plus seed. */
export function varyingKnobs(trials: Trial[]): string[] {
  const seen = new Map<string, Set<string>>();
  for (const t of trials) {
    for (const [k, v] of Object.entries(t.config ?? {})) {
      if (!seen.has(k)) seen.set(k, new Set());
      seen.get(k)?.add(JSON.stringify(v));
    }
  }
  const out = [...seen.entries()].filter(([, vals]) => vals.size > 1).map(([k]) => k);
  return [...out, "seed"];
}

export function metricKeys(trials: Trial[]): string[] {
  const keys = new Set<string>();
  for (const t of trials) {
    for (const [k, v] of Object.entries(t.metrics ?? {})) if (typeof v === "number") keys.add(k);
  }
  const preferred = ["test_acc", "synergy_acc", "val_acc"];
  return [...preferred.filter((k) => keys.has(k)), ...[...keys].filter((k) => !preferred.includes(k)).sort()];
}

function rawValue(t: Trial, knob: string): unknown {
  return knob === "seed" ? t.seed : t.config?.[knob];
}

/** Aligned data with x sorted; one series per method (null where a point is another method's). */
export function scatterData(all: Trial[], knob: string, metric: string, methods: string[]) {
  // Trials of methods that do not read the knob have no value for it: they are left out.
  const trials = all.filter((t) => rawValue(t, knob) !== undefined && rawValue(t, knob) !== null);
  const raw = trials.map((t) => rawValue(t, knob));
  const numeric = raw.every((v) => typeof v === "number");
  const categories = numeric ? [] : [...new Set(raw.map((v) => String(v)))].sort();
  const points = trials
    .map((t, i) => ({ t, x: numeric ? (raw[i] as number) : categories.indexOf(String(raw[i])), y: t.metrics?.[metric] }))
    .filter((p) => typeof p.y === "number" && Number.isFinite(p.y))
    .sort((a, b) => a.x - b.x);
  const xs = points.map((p) => p.x);
  const ys = methods.map((m) => points.map((p) => (p.t.method === m ? (p.y as number) : null)));
  return { data: [xs, ...ys] as uPlot.AlignedData, categories, count: points.length };
}

export function renderScatter(slot: HTMLElement, trials: Trial[], state: ScatterState, signal: AbortSignal): void {
  const knobs = varyingKnobs(trials);
  const metrics = metricKeys(trials);
  // The user's choice is kept in `state` even while the trials cannot show it yet.
  const knob = knobs.includes(state.knob) ? state.knob : (knobs[0] ?? "seed");
  const metric = metrics.includes(state.metric) ? state.metric : (metrics[0] ?? "test_acc");
  const redraw = () => renderScatter(slot, trials, state, signal);
  const select = (id: string, options: string[], value: string, set: (v: string) => void) =>
    h("select", { id, onchange: (e) => { set((e.target as HTMLSelectElement).value); redraw(); } },
      options.map((o) => h("option", { value: o, selected: o === value }, metricLabel(o))));
  const chartBox = h("div", { class: "chart", id: "scatter-chart", role: "img", "aria-label": `${metric} versus ${knob}, one point per trial` });
  replace(slot,
    h("div", { class: "toolbar" },
      h("label", { for: "scatter-knob" }, "Knob"), select("scatter-knob", knobs, knob, (v) => { state.knob = v; }),
      h("label", { for: "scatter-metric" }, "Metric"), select("scatter-metric", metrics, metric, (v) => { state.metric = v; })),
    chartBox);
  const methods = [...new Set(trials.filter((t) => rawValue(t, knob) != null).map((t) => t.method))];
  const { data, categories, count } = scatterData(trials, knob, metric, methods);
  if (count === 0) {
    chartBox.append(h("p", { class: "help" }, "No finished trials with this metric yet."));
    return;
  }
  const xs = data[0] as number[];
  const useLog = categories.length === 0 && knob === "lambda" && xs.every((x) => x > 0) && new Set(xs).size > 1;
  const linearRange = (_u: uPlot, lo: number, hi: number): uPlot.Range.MinMax =>
    lo === hi ? [lo - 1, hi + 1] : [lo - (hi - lo) * 0.05, hi + (hi - lo) * 0.05];
  drawChart(chartBox, {
    scales: { x: { time: false, distr: useLog ? 3 : 1, log: 10, range: categories.length ? [-0.5, categories.length - 0.5] : useLog ? paddedLogRange : linearRange } },
    axes: [
      categories.length
        ? { label: knob, stroke: AXIS_STROKE, grid: GRID, splits: () => categories.map((_, i) => i), values: () => categories }
        : { label: knob, stroke: AXIS_STROKE, grid: GRID, ...(useLog ? logAxis() : {}) },
      { label: metricLabel(metric), stroke: AXIS_STROKE, grid: GRID, size: 60 },
    ],
    series: [{ label: knob }, ...methods.map((m, i) => ({
      label: m, stroke: color(i), fill: color(i), paths: () => null, points: { show: true, size: 9, fill: color(i) },
    }))],
  }, data, signal, 260);
}
