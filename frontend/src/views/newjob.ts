// New job form: dataset (pick, upload or register a built-in), backbone, methods, sweep,
// seeds, epochs, scheduler. Client checks mirror the API; the API's 422s land next to fields.

import { ApiError, getJson, qs, sendJson } from "../api";
import { announce, h, replace } from "../dom";
import { BACKBONE_KNOBS, describeBounds, KNOB_BY_NAME, KNOBS, METHODS, TRAINING_KNOBS } from "../knobs";
import type { Route } from "../main";
import type { Dataset, Job, Page } from "../types";
import { builtinForm, uploadForm } from "./dataset_forms";
import { field, FieldRegistry, knobControl } from "./form_fields";
import { buildSpec, type JobControls } from "./job_spec";

const SWEEPABLE = KNOBS.filter((k) => k.type === "float" || k.type === "int").map((k) => k.name);

function datasetOption(ds: Dataset, selected: boolean): HTMLOptionElement {
  return h("option", { value: ds.id, selected }, `${ds.name} (${ds.status})`);
}

function knobGroup(reg: FieldRegistry, c: JobControls, names: string[]): HTMLElement[] {
  return names.map((name) => {
    const knob = KNOB_BY_NAME[name];
    if (!knob) throw new Error(`unknown knob ${name}`);
    const control = knobControl(knob);
    c.knobs.set(name, control);
    const help = [describeBounds(knob), knob.help ?? ""].filter(Boolean).join(" · ");
    return field(reg, `config.${name}`, name, control, help);
  });
}

function makeControls(datasets: Dataset[], chosen: string | null): JobControls {
  const num = (id: string, value: string | number) =>
    h("input", { id, type: "text", inputmode: "decimal", value, autocomplete: "off" });
  return {
    name: h("input", { id: "job-name", type: "text", autocomplete: "off" }),
    dataset: h(
      "select",
      { id: "job-dataset", required: true },
      h("option", { value: "" }, "— choose a dataset —"),
      datasets.map((ds) => datasetOption(ds, ds.id === chosen)),
    ),
    methods: METHODS.map((m) =>
      h("input", { type: "checkbox", id: `method-${m}`, value: m, checked: m === "vanilla" || m === "synib" }),
    ),
    knobs: new Map(),
    optionalKnobs: new Set(),
    epochs: num("job-epochs", 30),
    sweepKnob: h("select", { id: "sweep-knob" }, SWEEPABLE.map((k) => h("option", { value: k, selected: k === "lambda" }, k))),
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
  };
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
    h("div", { class: "row" }, field(reg, "sweep.knob", "Knob", c.sweepKnob, "methods that ignore it run once per seed"), modeGroup),
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
      field(reg, "epochs", "Epochs", c.epochs, ">= 1"), field(reg, "scheduler.type", "Scheduler", c.scheduler)),
    ashaBox);
}

function datasetSection(reg: FieldRegistry, c: JobControls): HTMLElement {
  const pickNew = (ds: Dataset) => {
    c.dataset.append(datasetOption(ds, true));
    c.dataset.value = ds.id;
    announce(`Dataset ${ds.name} selected.`);
  };
  return h("fieldset", { class: "card" }, h("legend", null, "Dataset"),
    field(reg, "dataset_id", "Dataset", c.dataset),
    h("details", { id: "dataset-upload" }, h("summary", null, "Upload a new dataset"), uploadForm(pickNew, "job-upload")),
    h("details", { id: "dataset-builtin" }, h("summary", null, "Register a built-in dataset"), builtinForm(pickNew, "job-builtin")));
}

function methodsSection(reg: FieldRegistry, c: JobControls): HTMLElement {
  const group = h("fieldset", { class: "inline", id: "methods" }, h("legend", null, "Methods"),
    c.methods.map((box) => h("span", { class: "radio" }, box, h("label", { for: box.id }, box.value))));
  const error = h("p", { id: "methods-error", class: "field-error", "aria-live": "polite" });
  group.setAttribute("aria-describedby", "methods-error");
  reg.add("methods", group, error);
  return h("div", { class: "field" }, group, h("p", { class: "help" }, "vanilla is the baseline every method is compared with."), error);
}

export async function renderNewJob(main: HTMLElement, route: Route, signal: AbortSignal) {
  const res = await getJson<Page<Dataset>>(`/datasets${qs({ limit: 200 })}`, signal);
  const c = makeControls(res.data.filter((d) => d.status !== "failed"), route.query.get("dataset"));
  const reg = new FieldRegistry();
  const advanced = KNOBS.map((k) => k.name).filter((n) => !BACKBONE_KNOBS.includes(n) && !TRAINING_KNOBS.includes(n) && n !== "epochs");
  advanced.forEach((n) => c.optionalKnobs.add(n));
  const submit = h("button", { type: "submit", class: "primary", id: "submit-job" }, "Submit job");
  const form = h("form", { id: "job-form", novalidate: true, "aria-labelledby": "new-job-title" },
    h("h1", { id: "new-job-title" }, "New job"),
    h("fieldset", { class: "card" }, h("legend", null, "Job"), field(reg, "name", "Name (optional)", c.name)),
    datasetSection(reg, c),
    h("fieldset", { class: "card" }, h("legend", null, "Backbone"), h("div", { class: "row" }, knobGroup(reg, c, BACKBONE_KNOBS))),
    h("fieldset", { class: "card" }, h("legend", null, "Methods and training"), methodsSection(reg, c),
      h("div", { class: "row" }, knobGroup(reg, c, TRAINING_KNOBS))),
    sweepSection(reg, c),
    schedulerSection(reg, c),
    h("details", { class: "card", id: "advanced" }, h("summary", null, "Advanced knobs (SynIB, masks, baselines)"),
      h("div", { class: "row" }, knobGroup(reg, c, advanced))),
    reg.formError,
    submit);
  reg.formError.tabIndex = -1;
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void submitJob(form, c, reg, submit);
  });
  replace(main, form);
}

async function submitJob(form: HTMLFormElement, c: JobControls, reg: FieldRegistry, button: HTMLButtonElement) {
  reg.clear();
  // data-skip-client-validation="1" sends the raw values so the server's 422 can be seen.
  const spec = buildSpec(c, reg, form.dataset.skipClientValidation !== "1");
  if (!spec) {
    reg.focusFirstError();
    announce("The form has errors.");
    return;
  }
  button.disabled = true;
  try {
    const job = await sendJson<Job>("POST", "/jobs", spec);
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
