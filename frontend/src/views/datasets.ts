// Datasets list (with upload / built-in registration) and the dataset page.

import { ApiError, getJson, qs, sendJson } from "../api";
import { badge, errorBox, fmtBytes, fmtDate, h, replace, section } from "../dom";
import type { Route } from "../main";
import type { Dataset, DatasetFeature, DatasetPid, DatasetSummary, Page, PidPair } from "../types";
import { builtinForm, uploadForm } from "./dataset_forms";

const LIMIT = 50;

function datasetRow(ds: Dataset): HTMLElement {
  const s = ds.summary ?? {};
  return h(
    "tr",
    { "data-dataset-id": ds.id },
    h("td", null, h("a", { href: `#/datasets/${ds.id}` }, ds.name)),
    h("td", null, badge(ds.status)),
    h("td", null, ds.source === "builtin" ? `builtin: ${ds.builtin_name ?? ""}` : ds.source),
    h("td", null, (s.modalities ?? []).map((m) => m.name).join(", ") || "–"),
    h("td", { class: "num" }, s.num_classes ?? "–"),
    h("td", { class: "num" }, fmtBytes(ds.size_bytes)),
    h("td", { class: "nowrap" }, fmtDate(ds.created_at)),
  );
}

export async function renderDatasets(main: HTMLElement, route: Route, signal: AbortSignal) {
  const page = Math.max(1, Number(route.query.get("page") ?? 1) || 1);
  const res = await getJson<Page<Dataset>>(`/datasets${qs({ limit: LIMIT, offset: (page - 1) * LIMIT })}`, signal);
  const goTo = (ds: Dataset) => {
    location.hash = `#/datasets/${ds.id}`;
  };
  const head = ["Name", "Status", "Source", "Modalities", "Classes", "Size", "Created"];
  const pages = Math.max(1, Math.ceil(res.count / LIMIT));
  replace(
    main,
    h("h1", null, "Datasets"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { id: "datasets-table", class: "data" },
        h("caption", { class: "visually-hidden" }, "Datasets"),
        h("thead", null, h("tr", null, head.map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", null, res.data.length ? res.data.map(datasetRow) : h("tr", null, h("td", { colspan: 7 }, "No datasets yet."))),
      ),
    ),
    h(
      "nav",
      { class: "pager", "aria-label": "Pages" },
      page > 1 ? h("a", { href: `#/datasets?page=${page - 1}` }, "‹ Previous") : null,
      h("span", null, `${res.count} datasets · page ${page} of ${pages}`),
      page < pages ? h("a", { href: `#/datasets?page=${page + 1}` }, "Next ›") : null,
    ),
    h("div", { class: "grid-2" }, uploadForm(goTo), builtinForm(goTo)),
  );
}

function kvTable(id: string, caption: string, rows: [string, number][]): HTMLElement {
  const total = rows.reduce((a, [, v]) => a + v, 0);
  const share = (v: number) => (total > 0 ? ` (${((100 * v) / total).toFixed(1)}%)` : "");
  return h(
    "table",
    { id, class: "data compact" },
    h("caption", null, caption),
    h("tbody", null, rows.map(([k, v]) => h("tr", null, h("th", { scope: "row" }, k), h("td", { class: "num", "data-count": v }, `${v}${share(v)}`)))),
  );
}

/** (label, count) rows of a summary's counts: a list by class id, or an object by name. */
function countsRows(counts: unknown, label: (key: string) => string = (k) => k): [string, number][] {
  if (!counts || typeof counts !== "object") return [];
  const entries = Array.isArray(counts) ? counts.map((v, i): [string, unknown] => [String(i), v]) : Object.entries(counts);
  return entries.filter((e): e is [string, number] => typeof e[1] === "number").map(([k, v]) => [label(k), v]);
}

const classLabel = (key: string): string => (/^\d+$/.test(key) ? `class ${key}` : key);

function summaryView(s: DatasetSummary): HTMLElement[] {
  const mods = s.modalities ?? [];
  const splits = s.split_sizes ?? {};
  const groups = countsRows(s.group_counts);
  return [
    h(
      "table",
      { id: "modalities-table", class: "data compact" },
      h("caption", null, "Modalities"),
      h("thead", null, h("tr", null, ["Modality", "Kind", "Shape"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", null, mods.map((m) => h("tr", { "data-modality": m.name },
        h("td", null, m.name),
        h("td", { "data-kind": m.kind ?? "" }, m.kind ?? "–", m.rate ? ` (${m.rate} Hz)` : ""),
        h("td", null, `(${m.shape.join(", ")})`)))),
    ),
    kvTable("split-table", "Split sizes", Object.entries(splits)),
    kvTable("class-table", `Class balance (${s.num_classes ?? "?"} classes)`, countsRows(s.class_counts, classLabel)),
    groups.length
      ? kvTable("group-table", "Group counts", groups)
      : h("p", { class: "help" }, "No group labels in this dataset."),
  ];
}

/** Bits with three decimals (a solver's 1e-10 reads as 0.000, not in exponent notation). */
export const bits = (v: number | undefined): string => (typeof v === "number" && Number.isFinite(v) ? v.toFixed(3) : "–");

/** The four PID terms of each pair of modalities, in bits (redundancy, unique a, unique b, synergy). */
export function pidTable(id: string, caption: string, pairs: PidPair[]): HTMLElement {
  const head = ["Pair", "Redundancy", "Unique (first)", "Unique (second)", "Synergy", "Total"];
  return h(
    "table",
    { id, class: "data compact" },
    h("caption", null, caption),
    h("thead", null, h("tr", null, head.map((c) => h("th", { scope: "col" }, c)))),
    h(
      "tbody",
      null,
      pairs.map((p) => {
        const [a = "", b = ""] = p.modalities;
        return h(
          "tr",
          { "data-pair": `${a}+${b}` },
          h("th", { scope: "row" }, `${a} + ${b}`),
          h("td", { class: "num", "data-term": "redundancy" }, bits(p.redundancy)),
          h("td", { class: "num", "data-term": `unique_${a}` }, `${a} ${bits(p.unique[a])}`),
          h("td", { class: "num", "data-term": `unique_${b}` }, `${b} ${bits(p.unique[b])}`),
          h("td", { class: "num", "data-term": "synergy" }, bits(p.synergy)),
          h("td", { class: "num", "data-term": "total" }, bits(p.total)),
        );
      }),
    ),
  );
}

/** The features frozen pretrained models computed for the dataset (cached, reused by every job). */
function featuresSection(features: DatasetFeature[]): HTMLElement {
  const head = ["Modality", "Model", "Pooling", "Size", "Extraction", "Computed", "Fingerprint"];
  return section(
    "dataset-features",
    "Cached pretrained features",
    features.length === 0
      ? h("p", { class: "help" }, "None yet: a job with a frozen pretrained backbone computes them once per model and pooling; every later job reuses them.")
      : h("table", { id: "features-table", class: "data compact" },
        h("thead", null, h("tr", null, head.map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", null, features.map((f) => h("tr", { "data-model": f.model },
          h("td", null, f.modality), h("td", null, f.model), h("td", null, f.pooling),
          h("td", { class: "num" }, `${f.dim}-d`), h("td", { class: "num" }, `${f.seconds.toFixed(1)} s`),
          h("td", { class: "nowrap" }, fmtDate(f.created_at)),
          h("td", { class: "mono", title: f.fingerprint }, f.fingerprint.slice(0, 12)))))),
  );
}

const pidActive = (pid: DatasetPid | null | undefined): boolean => pid?.status === "queued" || pid?.status === "running";

/** The dataset's PID: a Compute button (POST /datasets/{id}/pid), its status, the verdict and the terms. */
function pidSection(ds: Dataset, again: () => void): HTMLElement {
  const pid = ds.pid ?? null;
  const message = h("p", { class: "help", id: "pid-status" });
  const clusters = h("input", { id: "pid-clusters", type: "number", min: 2, max: 100, step: 1, placeholder: "auto" });
  const button = h("button", { type: "button", id: "pid-button", class: "button" }, pid ? "Recompute PID" : "Compute PID");
  button.disabled = ds.status !== "ready" || pidActive(pid);
  button.addEventListener("click", async () => {
    button.disabled = true;
    const k = clusters.value.trim();
    try {
      await sendJson("POST", `/datasets/${ds.id}/pid`, k ? { clusters: Number(k) } : {});
      again();
    } catch (err) {
      message.replaceChildren(errorBox(err instanceof ApiError ? err.message : String(err)));
      button.disabled = false;
    }
  });
  if (pid === null) message.textContent = "How much do the modalities say about the label redundantly, alone, and only together (synergy)? Computed by a worker.";
  else if (pidActive(pid)) message.textContent = `PID ${pid.status}…`;
  return section(
    "dataset-pid",
    "Partial information decomposition (PID)",
    message,
    h("p", null, h("label", { for: "pid-clusters" }, "Clusters per modality "), clusters, " ", button),
    pid?.status === "failed" ? errorBox(`PID failed: ${pid.error ?? "unknown error"}`) : null,
    pid?.status === "succeeded" ? h("p", { id: "pid-verdict", class: "verdict" }, pid.verdict ?? "") : null,
    pid?.status === "succeeded"
      ? pidTable("pid-table", `Bits of information about the label (${pid.clusters ?? "?"} clusters per modality)`, pid.pairs ?? [])
      : null,
  );
}

export async function renderDatasetPage(main: HTMLElement, route: Route, signal: AbortSignal) {
  const id = route.path[1] ?? "";
  for (;;) {
    const ds = await getJson<Dataset>(`/datasets/${id}`, signal);
    if (signal.aborted) return;
    replace(
      main,
      h("p", null, h("a", { href: "#/datasets" }, "‹ All datasets")),
      h("h1", null, ds.name, " ", badge(ds.status)),
      h(
        "dl",
        { class: "facts" },
        h("dt", null, "Source"),
        h("dd", null, ds.source === "builtin" ? `builtin ${ds.builtin_name ?? ""} ${JSON.stringify(ds.params ?? {})}` : ds.source),
        h("dt", null, "Size"),
        h("dd", null, fmtBytes(ds.size_bytes)),
        h("dt", null, "SHA-256"),
        h("dd", { class: "mono wrap" }, ds.sha256 ?? "–"),
        h("dt", null, "Oracle indices"),
        h("dd", null, ds.summary?.has_oracle ? "yes" : "no"),
        h("dt", null, "Created"),
        h("dd", null, fmtDate(ds.created_at)),
      ),
      ds.error ? errorBox(ds.error) : null,
      ds.summary ? section("dataset-summary", "Summary", h("div", { class: "grid-2" }, summaryView(ds.summary))) : null,
      ds.status === "ready" ? h("a", { class: "button primary", href: `#/jobs/new?dataset=${ds.id}` }, "New job on this dataset") : null,
      ds.status === "ready" ? featuresSection(ds.features ?? []) : null,
      ds.status === "ready" ? pidSection(ds, () => void renderDatasetPage(main, route, signal)) : null,
    );
    if (ds.status !== "pending" && !pidActive(ds.pid)) return;
    await new Promise((r) => window.setTimeout(r, 2000));
    if (signal.aborted) return;
  }
}
