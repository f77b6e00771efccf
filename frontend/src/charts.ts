// uPlot wrappers: responsive width, cleanup on navigation, a colour-blind-safe palette.

import uPlot from "uplot";

/** Okabe–Ito colours (distinguishable with common colour-vision deficiencies). */
export const PALETTE = [
  "#0072B2",
  "#D55E00",
  "#009E73",
  "#CC79A7",
  "#E69F00",
  "#56B4E9",
  "#000000",
  "#999933",
];

export const color = (i: number): string => PALETTE[i % PALETTE.length] ?? "#000";

const charts = new WeakMap<HTMLElement, { plot: uPlot; observer: ResizeObserver }>();

function widthOf(el: HTMLElement): number {
  return Math.max(280, Math.floor(el.clientWidth || el.parentElement?.clientWidth || 640));
}

/** Destroy the chart previously drawn into `container`, if any. */
export function destroyChart(container: HTMLElement): void {
  const old = charts.get(container);
  if (!old) return;
  old.observer.disconnect();
  old.plot.destroy();
  charts.delete(container);
}

/**
 * Draw a uPlot chart into `container` (replacing any previous one), sized to its width and
 * resized with it. `data` is uPlot's aligned data: [xs, ys1, ys2, ...], nulls for gaps.
 */
export function drawChart(
  container: HTMLElement,
  opts: Omit<uPlot.Options, "width" | "height">,
  data: uPlot.AlignedData,
  signal: AbortSignal,
  height = 300,
): uPlot {
  destroyChart(container);
  const plot = new uPlot({ ...opts, width: widthOf(container), height }, data, container);
  const observer = new ResizeObserver(() => {
    const w = widthOf(container);
    if (Math.abs(w - plot.width) > 2) plot.setSize({ width: w, height });
  });
  observer.observe(container);
  charts.set(container, { plot, observer });
  signal.addEventListener("abort", () => destroyChart(container), { once: true });
  return plot;
}

/** Format axis ticks of a log10 axis compactly (0.001, 0.01, ..., 1, 10, 1e3). */
export function logTicks(_u: uPlot, splits: number[]): string[] {
  return splits.map((v) => {
    if (v == null) return "";
    const exp = Math.log10(v);
    if (!Number.isInteger(Math.round(exp * 1e6) / 1e6)) return "";
    return Math.abs(exp) >= 4 ? `1e${Math.round(exp)}` : String(Number(v.toPrecision(3)));
  });
}

export const AXIS_STROKE = "#333";
export const GRID = { stroke: "#e3e3e3", width: 1 };

/** A log x range padded on both sides, so points at the ends are not cut by the frame. */
export function paddedLogRange(_u: uPlot, lo: number, hi: number): uPlot.Range.MinMax {
  return [lo / 1.6, hi * 1.6];
}
