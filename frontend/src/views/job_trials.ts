// Trials table: sortable by any column (keyboard: the headers are buttons), with CSV/JSON
// exports fetched from the API with the token and saved as files.

import { download } from "../download";
import { badge, fmtNum, fmtPct, h, replace } from "../dom";
import { metricValue, type Trial } from "../types";

export interface SortState {
  key: string;
  dir: 1 | -1;
}

interface Col {
  key: string;
  label: string;
  value: (t: Trial) => string | number | null;
  show: (t: Trial) => string | Node;
}

const metric = (key: string, pct: boolean): Col => ({
  key,
  label: key,
  value: (t) => metricValue(t.metrics, key),
  show: (t) => (pct ? fmtPct(t.metrics?.[key]) : fmtNum(t.metrics?.[key])),
});

function columns(sweepKnobs: string[]): Col[] {
  return [
    { key: "trial_key", label: "trial", value: (t) => t.trial_key, show: (t) => t.trial_key },
    { key: "method", label: "method", value: (t) => t.method, show: (t) => t.method },
    ...sweepKnobs.map((k) => ({
      key: `config.${k}`, label: k,
      value: (t: Trial) => (t.config?.[k] as number | string | undefined) ?? null,
      show: (t: Trial) => (typeof t.config?.[k] === "number" ? fmtNum(t.config[k]) : String(t.config?.[k] ?? "–")),
    })),
    { key: "seed", label: "seed", value: (t) => t.seed, show: (t) => String(t.seed) },
    { key: "status", label: "status", value: (t) => t.status, show: (t) => badge(t.status) },
    { key: "epochs_done", label: "epochs", value: (t) => t.epochs_done, show: (t) => String(t.epochs_done) },
    { key: "best_epoch", label: "best epoch", value: (t) => t.best_epoch ?? null, show: (t) => String(t.best_epoch ?? "–") },
    metric("val_acc", true),
    metric("test_acc", true),
    metric("synergy_acc", true),
    metric("test_macro_f1", false),
    metric("test_ece", false),
  ];
}

/** Stable sort: nulls last whatever the direction; numbers numerically, text naturally. */
export function sortTrials(trials: Trial[], col: (t: Trial) => string | number | null, dir: 1 | -1): Trial[] {
  return trials
    .map((t, i) => ({ t, i, v: col(t) }))
    .sort((a, b) => {
      if (a.v === null || b.v === null) return a.v === b.v ? a.i - b.i : a.v === null ? 1 : -1;
      const c = typeof a.v === "number" && typeof b.v === "number"
        ? a.v - b.v : String(a.v).localeCompare(String(b.v), undefined, { numeric: true });
      return c === 0 ? a.i - b.i : c * dir;
    })
    .map((x) => x.t);
}

export function renderTrials(slot: HTMLElement, jobId: string, trials: Trial[], sweepKnobs: string[], sort: SortState): void {
  const cols = columns(sweepKnobs);
  const active = cols.find((c) => c.key === sort.key) ?? cols[0];
  const rows = active ? sortTrials(trials, active.value, sort.dir) : trials;
  const redraw = () => renderTrials(slot, jobId, trials, sweepKnobs, sort);
  const head = cols.map((c) => {
    const on = c.key === sort.key;
    const button = h("button", { type: "button", class: "sort" }, c.label, on ? (sort.dir === 1 ? " ▲" : " ▼") : "");
    button.addEventListener("click", () => {
      sort.dir = on ? ((-sort.dir) as 1 | -1) : 1;
      sort.key = c.key;
      redraw();
      slot.querySelector<HTMLButtonElement>(`th[data-key="${c.key}"] button`)?.focus();
    });
    return h("th", { scope: "col", "data-key": c.key, "aria-sort": on ? (sort.dir === 1 ? "ascending" : "descending") : "none" }, button);
  });
  const body = rows.map((t) => h("tr", { "data-trial-id": t.id, class: t.status === "failed" ? "failed" : null },
    cols.map((c) => h("td", { class: c.key.includes("acc") || c.key.includes("test_") ? "num" : null }, c.show(t)))));
  const failures = trials.filter((t) => t.failure_reason);
  const exportButton = (fmt: "csv" | "json") => {
    const b = h("button", { type: "button", id: `export-${fmt}` }, `Export ${fmt.toUpperCase()}`);
    b.addEventListener("click", () => void download(`/jobs/${jobId}/trials.${fmt}`, `trials-${jobId.slice(0, 8)}.${fmt}`));
    return b;
  };
  replace(slot,
    h("div", { class: "toolbar" }, exportButton("csv"), exportButton("json"), h("span", { class: "help" }, `${trials.length} trials`)),
    h("div", { class: "table-wrap tall" }, h("table", { class: "data", id: "trials-table" },
      h("thead", null, h("tr", null, head)), h("tbody", null, body))),
    failures.length ? h("details", { open: true, id: "trial-failures" }, h("summary", null, `${failures.length} failed trial(s)`),
      h("ul", null, failures.map((t) => h("li", null, h("strong", null, t.trial_key), `: ${t.failure_reason}`)))) : null);
}
