// Learning curves per trial (train_loss, val_acc, ...), selectable and overlaid in one chart.
// The baseline's trials are shown by default (dashed), as the reference for the others.

import type uPlot from "uplot";
import { AXIS_STROKE, color, drawChart, GRID } from "../charts";
import { h, metricLabel, replace } from "../dom";
import type { EpochRow, Trial } from "../types";

export interface CurveState {
  metric: string;
  selected: Set<string>; // trial ids
  touched: boolean; // the user changed the selection (stop auto-selecting new trials)
}

export const newCurveState = (): CurveState => ({ metric: "val_acc", selected: new Set(), touched: false });

const MAX_DEFAULT = 8;

/** Every baseline trial, then the other trials up to MAX_DEFAULT in all. */
export function defaultSelection(trials: Trial[], baseline: string): Set<string> {
  const base = trials.filter((t) => t.method === baseline);
  const others = trials.filter((t) => t.method !== baseline).slice(0, Math.max(0, MAX_DEFAULT - base.length));
  return new Set([...base, ...others].map((t) => t.id));
}

function metricNames(history: Map<string, EpochRow[]>): string[] {
  const names = new Set<string>(["train_loss", "val_acc"]);
  for (const rows of history.values()) {
    for (const row of rows) {
      for (const [key, value] of Object.entries(row.metrics ?? {})) {
        if (typeof value === "number" && key !== "epoch") names.add(key);
      }
    }
  }
  return [...names];
}

/** Aligned data: x = epochs 1..max, one y array per selected trial (null where missing). */
export function curveData(trials: Trial[], history: Map<string, EpochRow[]>, metric: string): uPlot.AlignedData {
  let maxEpoch = 0;
  for (const t of trials) for (const row of history.get(t.id) ?? []) maxEpoch = Math.max(maxEpoch, row.epoch);
  const xs = Array.from({ length: maxEpoch }, (_, i) => i + 1);
  const ys = trials.map((t) => {
    const y: (number | null)[] = xs.map(() => null);
    for (const row of history.get(t.id) ?? []) {
      const v = row.metrics?.[metric];
      if (row.epoch >= 1 && typeof v === "number" && Number.isFinite(v)) y[row.epoch - 1] = v;
    }
    return y;
  });
  return [xs, ...ys] as uPlot.AlignedData;
}

function trialPicker(trials: Trial[], baseline: string, state: CurveState, redraw: () => void): HTMLElement {
  const boxes = trials.map((t, i) => {
    const id = `curve-trial-${i}`;
    const box = h("input", { type: "checkbox", id, value: t.id, checked: state.selected.has(t.id) });
    box.addEventListener("change", () => {
      state.touched = true;
      if (box.checked) state.selected.add(t.id);
      else state.selected.delete(t.id);
      redraw();
    });
    const tag = t.method === baseline ? h("span", { class: "tag" }, "baseline") : null;
    return h("li", { "data-method": t.method }, box, h("label", { for: id }, t.trial_key, tag));
  });
  const setAll = (on: boolean) => () => {
    state.touched = true;
    state.selected = new Set(on ? trials.map((t) => t.id) : []);
    redraw();
  };
  return h(
    "fieldset",
    { class: "trial-picker" },
    h("legend", null, "Trials"),
    h("div", { class: "toolbar" },
      h("button", { type: "button", onclick: setAll(true) }, "All"),
      h("button", { type: "button", onclick: setAll(false) }, "None")),
    h("ul", { class: "checklist" }, boxes),
  );
}

/** Render the curves section body into `slot`. */
export function renderCurves(
  slot: HTMLElement,
  trials: Trial[],
  history: Map<string, EpochRow[]>,
  baseline: string,
  state: CurveState,
  signal: AbortSignal,
): void {
  if (!state.touched) state.selected = defaultSelection(trials, baseline);
  const redraw = () => renderCurves(slot, trials, history, baseline, state, signal);
  const metricSel = h(
    "select",
    { id: "curve-metric", onchange: (e) => { state.metric = (e.target as HTMLSelectElement).value; redraw(); } },
    metricNames(history).map((m) => h("option", { value: m, selected: m === state.metric }, metricLabel(m))),
  );
  const chartBox = h("div", { class: "chart", id: "curves-chart", role: "img", "aria-label": `${state.metric} per epoch for the selected trials` });
  const shown = trials.filter((t) => state.selected.has(t.id));
  replace(
    slot,
    h("div", { class: "toolbar" }, h("label", { for: "curve-metric" }, "Metric"), metricSel),
    h("div", { class: "chart-with-side" }, chartBox, trialPicker(trials, baseline, state, redraw)),
  );
  if (!shown.length) {
    chartBox.append(h("p", { class: "help" }, "Select trials to plot."));
    return;
  }
  const data = curveData(shown, history, state.metric);
  drawChart(
    chartBox,
    {
      scales: { x: { time: false } },
      axes: [
        { label: "epoch", stroke: AXIS_STROKE, grid: GRID, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] },
        { label: metricLabel(state.metric), stroke: AXIS_STROKE, grid: GRID, size: 60 },
      ],
      series: [
        { label: "epoch" },
        ...shown.map((t, i) => ({
          label: t.method === baseline ? `${t.trial_key} (baseline)` : t.trial_key,
          stroke: color(i), width: 2, dash: t.method === baseline ? [8, 4] : undefined, spanGaps: true, points: { show: true, size: 5 },
        })),
      ],
      legend: { live: true },
    },
    data,
    signal,
  );
}
