// The comparison table (from the job report) and the artifacts list with checksummed downloads.

import { download } from "../download";
import { fmtBytes, fmtNum, fmtPct, fmtSigned, h, metricLabel, metricUnit } from "../dom";
import type { Artifact, Delta, PredictionPid, Report, Stat, Trial } from "../types";
import { bits, pidTable } from "./datasets";

interface Column {
  key: string;
  label: string;
  kind: "stat" | "delta";
}

function columnsFor(report: Report): Column[] {
  const metricKeys = new Set<string>();
  const deltaKeys = new Set<string>();
  for (const m of Object.values(report.methods)) {
    Object.keys(m.metrics ?? {}).forEach((k) => metricKeys.add(k));
    Object.keys(m.delta_vs_baseline ?? {}).forEach((k) => deltaKeys.add(k));
  }
  const sorted = [...metricKeys].sort();
  const groups = sorted.filter((k) => /^group_.+_acc$/.test(k));
  const cf = sorted.filter((k) => k.startsWith("cf_conf_"));
  const main = ["test_acc", "synergy_acc"].filter((k) => metricKeys.has(k));
  const label = (k: string) =>
    k === "test_acc" ? "overall acc" : k === "synergy_acc" ? "synergy acc"
      : k.startsWith("group_") ? `group ${k.slice(6, -4)} acc` : k.startsWith("cf_conf_") ? `cf conf ${k.slice(8)} (KL to uniform)` : k;
  const deltas = ["test_acc", "synergy_acc", ...[...deltaKeys].filter((k) => k !== "test_acc" && k !== "synergy_acc").sort()]
    .filter((k) => deltaKeys.has(k));
  return [
    ...[...main, ...groups, ...cf].map((key) => ({ key, label: label(key), kind: "stat" as const })),
    ...deltas.map((key) => ({ key, label: `Δ ${label(key)}`, kind: "delta" as const })),
  ];
}

function statCell(key: string, stat: Stat | undefined): HTMLElement {
  if (!stat) return h("td", { class: "num" }, "–");
  const isAcc = key.endsWith("_acc");
  const show = (v: number | undefined) => (isAcc ? fmtPct(v) : fmtNum(v));
  const unit = key.startsWith("cf_conf_") ? "nats" : metricUnit(key);
  return h(
    "td",
    { class: "num", "data-metric": key, "data-value": stat.mean, title: metricLabel(key) },
    show(stat.mean),
    stat.std !== undefined ? h("span", { class: "std" }, ` ± ${show(stat.std)}`) : null,
    unit ? h("span", { class: "unit" }, ` ${unit}`) : null,
  );
}

function deltaCell(key: string, d: Delta | undefined): HTMLElement {
  if (!d) return h("td", { class: "num" }, "–");
  const significant = d.lo > 0 || d.hi < 0;
  return h(
    "td",
    { class: `num ${significant ? (d.delta > 0 ? "good" : "bad") : ""}`, "data-delta": key, "data-value": d.delta },
    `${fmtSigned(d.delta)} pts`,
    h("span", { class: "ci" }, ` [${fmtSigned(d.lo)}, ${fmtSigned(d.hi)}]`),
  );
}

const configText = (c: Record<string, unknown> | undefined) =>
  Object.entries(c ?? {}).map(([k, v]) => `${k}=${typeof v === "number" ? fmtNum(v) : String(v)}`).join(", ") || "–";

function methodOrder(report: Report): string[] {
  const baseline = report.baseline ?? "vanilla";
  return Object.keys(report.methods).sort((a, b) => Number(b === baseline) - Number(a === baseline));
}

function table(id: string, caption: string, head: string[], rows: HTMLElement[]): HTMLElement {
  return h("div", { class: "table-wrap" }, h("table", { class: "data", id },
    h("caption", null, caption),
    h("thead", null, h("tr", null, head.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", null, rows)));
}

/** A method's synergy of its predictions in bits (PID, mean ± std over seeds), per pair. */
function pidSynergyCell(pid: Record<string, PredictionPid> | undefined): HTMLElement {
  const pairs = Object.entries(pid ?? {});
  if (!pairs.length) return h("td", { class: "num", "data-metric": "prediction_synergy" }, "–");
  return h("td", { class: "num", "data-metric": "prediction_synergy", "data-value": pairs[0]?.[1].synergy.mean ?? "" },
    pairs.map(([pair, v], i) => [
      i ? "; " : "",
      pairs.length > 1 ? `${pair} ` : "",
      bits(v.synergy.mean),
      v.synergy.std !== undefined ? h("span", { class: "std" }, ` ± ${bits(v.synergy.std)}`) : null,
    ]),
    h("span", { class: "unit" }, " bits"));
}

/** The PID of the test labels (verdict and terms), or why there is none, and the seeds needed. */
function pidAndPower(report: Report): HTMLElement[] {
  const out: HTMLElement[] = [];
  const data = report.data_pid;
  if (data) {
    out.push(h("p", { id: "data-pid-verdict", class: "verdict" }, `PID of the test labels: ${data.verdict}`));
    out.push(pidTable("data-pid-table", `PID of the test labels, bits (${data.clusters ?? "?"} clusters per modality)`, data.pairs));
  } else if (report.pid_note) {
    out.push(h("p", { id: "pid-note", class: "help" }, report.pid_note));
  }
  const needed = Object.entries(report.methods)
    .filter(([, r]) => Object.keys(r.seeds_needed ?? {}).length)
    .map(([m, r]) => `${m}: ${Object.entries(r.seeds_needed ?? {}).map(([k, n]) => `${k} ${n}`).join(", ")}`);
  if (needed.length) {
    const power = report.seeds_needed_for ?? { gain: 0.05, power: 0.8 };
    out.push(h("p", { id: "seeds-needed", class: "help" },
      `Seeds needed to detect +${fmtNum(100 * power.gain)} points with ${fmtNum(100 * power.power)}% power ` +
      `(vs ${report.baseline ?? "vanilla"}, from the per-seed deltas): ${needed.join("; ")}`));
  }
  return out;
}

/** Two tables: per-method metrics (mean ± std over seeds), then the gains vs the baseline. */
export function comparisonTable(report: Report): HTMLElement {
  const cols = columnsFor(report);
  const stats = cols.filter((c) => c.kind === "stat");
  // The synergy of each method's predictions (PID, bits) goes right after synergy acc.
  const hasPid = Object.values(report.methods).some((m) => Object.keys(m.prediction_pid ?? {}).length);
  const pidAt = hasPid ? stats.findIndex((c) => c.key === "synergy_acc") + 1 || stats.length : -1;
  const deltas = cols.filter((c) => c.kind === "delta");
  const baseline = report.baseline ?? "vanilla";
  const methods = methodOrder(report);
  const seeds = report.seeds?.length ?? 0;
  const nameCell = (m: string) =>
    h("th", { scope: "row" }, m, m === baseline ? h("span", { class: "tag" }, "baseline") : null);
  const statRows = methods.map((m) => {
    const r = report.methods[m] ?? {};
    const cells = stats.map((c) => statCell(c.key, r.metrics?.[c.key]));
    if (pidAt >= 0) cells.splice(pidAt, 0, pidSynergyCell(r.prediction_pid));
    return h("tr", { "data-method": m }, nameCell(m), h("td", null, configText(r.best_config)), cells);
  });
  const statHead = stats.map((c) => c.label);
  if (pidAt >= 0) statHead.splice(pidAt, 0, "prediction synergy (PID)");
  const deltaRows = methods.filter((m) => m !== baseline).map((m) => {
    const r = report.methods[m] ?? {};
    return h("tr", { "data-method": m }, nameCell(m), deltas.map((c) => deltaCell(c.key, r.delta_vs_baseline?.[c.key])));
  });
  return h("div", null,
    table("comparison-table",
      `Best configuration per method by ${report.selection ?? "val_acc"}; test metrics, mean ± std over ${seeds} seed(s).`,
      ["method", "best config", ...statHead], statRows),
    deltas.length && deltaRows.length
      ? table("delta-table", `Gain over ${baseline} in accuracy points, with a paired bootstrap 95% CI (bold: the CI excludes 0).`,
        ["method", ...deltas.map((c) => c.label)], deltaRows)
      : null,
    Object.keys(report.verdicts ?? {}).length
      ? h("ul", { id: "verdicts", class: "verdicts" },
        Object.entries(report.verdicts ?? {}).map(([m, text]) => h("li", { "data-method": m }, text)))
      : null,
    pidAndPower(report));
}

function artifactRow(a: Artifact, trialKeys: Map<string, string>, bestIds: Set<string>): HTMLElement {
  const status = h("span", { class: "help", role: "status" });
  const button = h("button", { type: "button", class: "download", "data-artifact-id": a.id }, "Download");
  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = "Downloading…";
    try {
      const got = await download(`/artifacts/${a.id}`, `${a.name}.zip`, true);
      const ok = got.sha256 === null ? null : got.sha256 === a.sha256;
      status.textContent = ok === null ? "Saved." : ok ? "Saved · checksum verified ✓" : "Saved · CHECKSUM MISMATCH";
      status.className = ok === false ? "field-error" : "help";
    } catch (err) {
      status.textContent = (err as Error).message;
      status.className = "field-error";
    } finally {
      button.disabled = false;
    }
  });
  return h("tr", { "data-artifact-id": a.id },
    h("td", null, a.name, bestIds.has(a.id) ? h("span", { class: "tag" }, "best") : null),
    h("td", null, a.kind),
    h("td", null, a.trial_id ? (trialKeys.get(a.trial_id) ?? a.trial_id.slice(0, 8)) : "–"),
    h("td", { class: "num" }, fmtBytes(a.size_bytes)),
    h("td", null, h("code", { class: "sha", title: a.sha256 }, a.sha256)),
    h("td", null, button, " ", status));
}

export function artifactsTable(artifacts: Artifact[], trials: Trial[], report: Report | null): HTMLElement {
  if (!artifacts.length) return h("p", { class: "help" }, "No artifacts yet: models are stored when the job finishes.");
  const trialKeys = new Map(trials.map((t) => [t.id, t.trial_key]));
  const bestIds = new Set(Object.values(report?.methods ?? {}).map((m) => m.best_artifact_id).filter((x): x is string => !!x));
  const sorted = [...artifacts].sort((a, b) => Number(bestIds.has(b.id)) - Number(bestIds.has(a.id)));
  return h("div", { class: "table-wrap" }, h("table", { class: "data", id: "artifacts-table" },
    h("thead", null, h("tr", null, ["name", "kind", "trial", "size", "sha256", ""].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", null, sorted.map((a) => artifactRow(a, trialKeys, bestIds)))));
}
