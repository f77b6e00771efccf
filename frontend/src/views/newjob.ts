// New job form: dataset (pick, upload or register a built-in), a backbone per modality, methods,
// the knobs, sweep, seeds, scheduler. The methods and the knobs come from the API's knob table
// (GET /api/v1/knobs), one card per knob group; a knob none of the chosen methods reads is
// disabled and not sent. Values are checked against the table's bounds before sending; the
// API's 422s land next to the fields. A preview shows the spec the form would send.

import { ApiError, getJson, qs, sendJson } from "../api";
import { announce, h, replace } from "../dom";
import type { Route } from "../main";
import type { BackboneVocabulary, Dataset, JobCreated, Knob, MethodInfo, ModelInfo, Page } from "../types";
import { isNumeric, loadVocabulary, readByAny, readers } from "../vocabulary";
import { builtinForm, uploadForm } from "./dataset_forms";
import { field, FieldRegistry, knobControl } from "./form_fields";
import { showBackbones } from "./job_backbones";
import { buildSpec, type JobControls } from "./job_spec";

const DEFAULT_METHODS = ["vanilla", "synib"];
const DEFAULT_SWEEP_KNOB = "lambda";

function datasetOption(ds: Dataset, selected: boolean): HTMLOptionElement {
  return h("option", { value: ds.id, selected }, `${ds.name} (${ds.status})`);
}

function makeControls(datasets: Dataset[], chosen: string | null, knobs: Knob[], methods: MethodInfo[]): JobControls {
  const num = (id: string, value: string | number) =>
    h("input", { id, type: "text", inputmode: "decimal", value, autocomplete: "off" });
  const swept = knobs.some((k) => k.name === DEFAULT_SWEEP_KNOB) ? DEFAULT_SWEEP_KNOB : "";
  return {
    table: new Map(knobs.map((k) => [k.name, k])),
    name: h("input", { id: "job-name", type: "text", autocomplete: "off" }),
    dataset: h(
      "select",
      { id: "job-dataset", required: true },
      h("option", { value: "" }, "— choose a dataset —"),
      datasets.map((ds) => datasetOption(ds, ds.id === chosen)),
    ),
    methods: methods.map((m) =>
      h("input", { type: "checkbox", id: `method-${m.name}`, value: m.name, checked: DEFAULT_METHODS.includes(m.name) }),
    ),
    knobs: new Map(),
    sweepKnob: h("select", { id: "sweep-knob" },
      knobs.filter(isNumeric).map((k) => h("option", { value: k.name, selected: k.name === swept, title: k.help }, k.name))),
    sweepMode: () => "range",
    low: num("sweep-low", 0.01),
    high: num("sweep-high", 10),
    log: h("input", { type: "checkbox", id: "sweep-log", checked: true }),
    samples: num("num-samples", 4),
    grid: h("input", { id: "sweep-values", type: "text", value: "0.1, 1, 10", autocomplete: "off" }),
    seeds: h("input", { id: "job-seeds", type: "text", value: "0", autocomplete: "off" }),
    scheduler: h("select", { id: "scheduler" }, h("option", { value: "fifo" }, "FIFO (run every trial)"), h("option", { value: "asha" }, "ASHA (early stopping)")),
    grace: num("grace-period", 1),
    reduction: num("reduction-factor", 2),
    backbones: [],
  };
}

/** Help under a knob: what it does, its bounds (numbers), and who reads it when not everyone. */
function knobHelp(knob: Knob): string {
  const parts = [knob.help];
  if (isNumeric(knob)) parts.push(knob.allowed);
  const only = readers(knob);
  if (only !== null) parts.push(`read by ${only.join(", ")}`);
  return parts.join(" · ");
}

function knobField(reg: FieldRegistry, c: JobControls, knob: Knob): HTMLElement {
  const control = knobControl(knob);
  control.title = knob.allowed;
  c.knobs.set(knob.name, control);
  const wrapper = field(reg, `config.${knob.name}`, knob.name, control, knobHelp(knob));
  wrapper.dataset.knob = knob.name;
  return wrapper;
}

/** One card per knob group, in the table's order; open when the group holds a knob every method reads. */
function knobGroups(reg: FieldRegistry, c: JobControls, knobs: Knob[]): HTMLElement[] {
  const groups = new Map<string, Knob[]>();
  for (const knob of knobs) groups.set(knob.group, [...(groups.get(knob.group) ?? []), knob]);
  return [...groups].map(([group, members]) =>
    h("details", { class: "card knob-group", id: `knobs-${group}`, "data-group": group, open: members.some((k) => readers(k) === null) },
      h("summary", null, `${group.charAt(0).toUpperCase()}${group.slice(1)} knobs`,
        h("span", { class: "help" }, ` (${members.length})`), h("span", { class: "help group-note" })),
      h("div", { class: "knob-grid" }, members.map((k) => knobField(reg, c, k)))));
}

/** Disable the knobs none of the chosen methods reads (they are then not sent). */
function syncKnobs(c: JobControls): void {
  const chosen = c.methods.filter((m) => m.checked).map((m) => m.value);
  for (const [name, control] of c.knobs) {
    const knob = c.table.get(name);
    const unused = knob !== undefined && !readByAny(knob, chosen);
    control.disabled = unused;
    control.closest(".field")?.classList.toggle("unused", unused);
  }
  for (const group of c.name.closest("form")?.querySelectorAll<HTMLElement>(".knob-group") ?? []) {
    const idle = group.querySelector(".field:not(.unused)") === null;
    const note = group.querySelector(".group-note");
    if (note) note.textContent = idle ? " · not read by the chosen methods" : "";
  }
}

function sweepSection(reg: FieldRegistry, c: JobControls): HTMLElement {
  const modes = ["range", "grid", "none"] as const;
  const radios = modes.map((m) => h("input", { type: "radio", name: "sweep-mode", id: `sweep-mode-${m}`, value: m, checked: m === "range" }));
  const rangeBox = h("div", { class: "row", id: "sweep-range" },
    field(reg, "sweep.low", "Low", c.low), field(reg, "sweep.high", "High", c.high),
    field(reg, "sweep.log", "Log scale", c.log), field(reg, "num_samples", "Samples", c.samples, "random draws"));
  const gridBox = h("div", { class: "row", id: "sweep-grid" },
    field(reg, "sweep.values", "Values", c.grid, "comma-separated, e.g. 0.1, 1, 10"));
  c.sweepMode = () => radios.find((r) => r.checked)?.value as "range" | "grid" | "none";
  const sync = () => {
    rangeBox.hidden = c.sweepMode() !== "range";
    gridBox.hidden = c.sweepMode() !== "grid";
  };
  radios.forEach((r) => r.addEventListener("change", sync));
  sync();
  const modeGroup = h("fieldset", { class: "inline", id: "sweep-mode" }, h("legend", null, "Sweep type"),
    modes.map((m, i) => h("span", { class: "radio" }, radios[i], h("label", { for: `sweep-mode-${m}` }, m))));
  return h("fieldset", { class: "card" }, h("legend", null, "Sweep"),
    h("div", { class: "row" }, field(reg, "sweep.knob", "Knob", c.sweepKnob, "methods that do not read it run once per seed"), modeGroup),
    rangeBox, gridBox);
}

function schedulerSection(reg: FieldRegistry, c: JobControls): HTMLElement {
  const ashaBox = h("div", { class: "row" }, field(reg, "scheduler.grace_period", "Grace period (epochs)", c.grace),
    field(reg, "scheduler.reduction_factor", "Reduction factor", c.reduction));
  const sync = () => {
    ashaBox.hidden = c.scheduler.value !== "asha";
  };
  c.scheduler.addEventListener("change", sync);
  sync();
  return h("fieldset", { class: "card" }, h("legend", null, "Runs"),
    h("div", { class: "row" }, field(reg, "seeds", "Seeds", c.seeds, "comma-separated, e.g. 0, 1, 2"),
      field(reg, "scheduler.type", "Scheduler", c.scheduler)),
    ashaBox);
}

function datasetSection(reg: FieldRegistry, c: JobControls): HTMLElement {
  const pickNew = (ds: Dataset) => {
    c.dataset.append(datasetOption(ds, true));
    c.dataset.value = ds.id;
    c.dataset.dispatchEvent(new Event("change", { bubbles: true }));
    announce(`Dataset ${ds.name} selected.`);
  };
  return h("fieldset", { class: "card" }, h("legend", null, "Dataset"),
    field(reg, "dataset_id", "Dataset", c.dataset),
    h("details", { id: "dataset-upload" }, h("summary", null, "Upload a new dataset"), uploadForm(pickNew, "job-upload")),
    h("details", { id: "dataset-builtin" }, h("summary", null, "Register a built-in dataset"), builtinForm(pickNew, "job-builtin")));
}

/** One backbone row per modality of the chosen dataset, rebuilt when the dataset changes. */
function backboneSection(reg: FieldRegistry, c: JobControls, vocab: BackboneVocabulary, models: ModelInfo[],
  changed: () => void, signal: AbortSignal): HTMLElement {
  const box = h("div", { id: "backbone-rows" });
  const load = async () => {
    const id = c.dataset.value;
    const ds = id ? await getJson<Dataset>(`/datasets/${id}`, signal) : null;
    if (signal.aborted || id !== c.dataset.value) return;
    showBackbones(box, reg, c.backbones, ds, vocab, models);
    changed();
  };
  const reload = () => void load().catch((err: unknown) => reg.setError("__form__", (err as Error).message));
  c.dataset.addEventListener("change", reload);
  reload();
  return h("fieldset", { class: "card", id: "backbones" }, h("legend", null, "Backbones"),
    h("p", { class: "help" }, "The encoder of each modality. Pretrained models are the ones the workers offer; ",
      "raw text and audio are read only by a pretrained model of their kind."),
    box);
}

/** The JSON the form would send (POST /api/v1/jobs), kept up to date as the form changes. */
function specPreview(c: JobControls): { view: HTMLElement; update: () => void } {
  const pre = h("pre", { id: "spec-preview", class: "mono" });
  const update = () => {
    const spec = buildSpec(c, new FieldRegistry());
    pre.textContent = spec ? JSON.stringify(spec, null, 2) : "The form has errors: submit to see them.";
  };
  const view = h("details", { class: "card", id: "spec-preview-card" },
    h("summary", null, "Spec preview (what Submit sends to POST /api/v1/jobs)"), pre);
  return { view, update };
}

function methodsSection(reg: FieldRegistry, c: JobControls, methods: MethodInfo[]): HTMLElement {
  const items = c.methods.map((box, i) => {
    const help = h("span", { class: "help", id: `${box.id}-help` }, methods[i]?.help ?? "");
    box.setAttribute("aria-describedby", help.id);
    box.addEventListener("change", () => syncKnobs(c));
    return h("li", null, box, h("label", { for: box.id }, box.value), " ", help);
  });
  const group = h("fieldset", { class: "methods", id: "methods" }, h("legend", null, "Methods"), h("ul", { class: "checklist" }, items));
  const error = h("p", { id: "methods-error", class: "field-error", "aria-live": "polite" });
  group.setAttribute("aria-describedby", "methods-error");
  reg.add("methods", group, error);
  return h("div", { class: "card" }, group,
    h("p", { class: "help" }, "The baseline (vanilla) is the method every other one is compared with."), error);
}

export async function renderNewJob(main: HTMLElement, route: Route, signal: AbortSignal) {
  const [res, vocabulary, models] = await Promise.all([
    getJson<Page<Dataset>>(`/datasets${qs({ limit: 200 })}`, signal),
    loadVocabulary(),
    getJson<Page<ModelInfo>>("/models", signal),
  ]);
  if (signal.aborted) return;
  const datasets = res.data.filter((d) => d.status !== "failed");
  const c = makeControls(datasets, route.query.get("dataset"), vocabulary.knobs, vocabulary.methods);
  const reg = new FieldRegistry();
  const submit = h("button", { type: "submit", class: "primary", id: "submit-job" }, "Submit job");
  const preview = specPreview(c);
  const form = h("form", { id: "job-form", novalidate: true, "aria-labelledby": "new-job-title" },
    h("h1", { id: "new-job-title" }, "New job"),
    h("fieldset", { class: "card" }, h("legend", null, "Job"), field(reg, "name", "Name (optional)", c.name)),
    datasetSection(reg, c),
    backboneSection(reg, c, vocabulary.backbones, models.data, preview.update, signal),
    methodsSection(reg, c, vocabulary.methods),
    knobGroups(reg, c, vocabulary.knobs),
    sweepSection(reg, c),
    schedulerSection(reg, c),
    preview.view,
    reg.formError,
    submit);
  reg.formError.tabIndex = -1;
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void submitJob(c, reg, submit);
  });
  form.addEventListener("input", preview.update);
  form.addEventListener("change", preview.update);
  replace(main, form);
  syncKnobs(c);
  preview.update();
}

async function submitJob(c: JobControls, reg: FieldRegistry, button: HTMLButtonElement) {
  reg.clear();
  const spec = buildSpec(c, reg);
  if (!spec) {
    reg.focusFirstError();
    announce("The form has errors.");
    return;
  }
  button.disabled = true;
  try {
    const job = await sendJson<JobCreated>("POST", "/jobs", spec);
    // The job page shows them once (a combination that runs but measurably hurts).
    if (job.warnings.length) sessionStorage.setItem(`synib:warnings:${job.id}`, JSON.stringify(job.warnings));
    location.hash = `#/jobs/${job.id}`;
  } catch (err) {
    const e = err as ApiError;
    if (e.fieldErrors?.length) reg.showApiErrors(e.fieldErrors);
    else reg.setError("__form__", e.message);
    reg.focusFirstError();
    announce("The service rejected the job.");
  } finally {
    button.disabled = false;
  }
}
