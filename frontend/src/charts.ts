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

/** The leading digit of a positive number (1 for 0.1, 2 for 200). */
const leadingDigit = (v: number): number => Math.round(Number(v.toExponential(6).split("e")[0]));

const tickText = (v: number): string => {
  const exp = Math.round(Math.log10(v));
  return Math.abs(exp) >= 4 ? v.toExponential(0).replace("+", "") : String(Number(v.toPrecision(3)));
};

/**
 * A log10 axis whose every decade in view is labelled (0.01, 0.1, 1, 10), with 2x and 5x a
 * decade labelled too when fewer than two decades are in view, and grid lines at 2..9 x each
 * decade. The ticks are exact powers of ten built from text (10 ** -2 is not 0.01 in floating
 * point, and uPlot's own log filter drops a tick whose mantissa is off). `onLabels` receives
 * the labels drawn, for the chart's text description.
 */
export function logAxis(onLabels?: (labels: string[]) => void): Pick<uPlot.Axis, "splits" | "filter" | "values"> {
  return {
    splits: (_u, _axis, min, max) => {
      const ticks: number[] = [];
      for (let exp = Math.floor(Math.log10(min)); exp <= Math.ceil(Math.log10(max)); exp += 1) {
        for (let digit = 1; digit <= 9; digit += 1) {
          const v = Number(`${digit}e${exp}`);
          if (v >= min && v <= max) ticks.push(v);
        }
      }
      return ticks;
    },
    filter: (_u, splits) => splits,
    values: (u, splits) => {
      const decades = splits.filter((v) => leadingDigit(v) === 1).length;
      // Leave out every other decade where labels would touch (about 45 px each).
      const every = Math.max(1, Math.ceil((decades * 45) / Math.max(1, u.width)));
      const labels = splits.map((v) => {
        const digit = leadingDigit(v);
        const decade = digit === 1 && Math.round(Math.log10(v)) % every === 0;
        return decade || (decades < 2 && (digit === 2 || digit === 5)) ? tickText(v) : "";
      });
      onLabels?.(labels.filter(Boolean));
      return labels;
    },
  };
}

export const AXIS_STROKE = "#333";
export const GRID = { stroke: "#e3e3e3", width: 1 };

/** A log x range padded on both sides, so points at the ends are not cut by the frame. */
export function paddedLogRange(_u: uPlot, lo: number, hi: number): uPlot.Range.MinMax {
  return [lo / 1.6, hi * 1.6];
}
