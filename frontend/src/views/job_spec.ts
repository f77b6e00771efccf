// Turn the new-job form's controls into a JobCreate body, checking every value with the same
// bounds as the API (knob table). With `check` false the raw values go out unchecked, so the
// API's own 422 messages can be seen (used by tests and by anyone who wants the server's word).

import { checkKnob, KNOB_BY_NAME } from "../knobs";
import type { JobSpec, SweepDim } from "../types";
import { type FieldRegistry, readControl } from "./form_fields";

export interface JobControls {
  name: HTMLInputElement;
  dataset: HTMLSelectElement;
  methods: HTMLInputElement[];
  knobs: Map<string, HTMLInputElement | HTMLSelectElement>;
  /** Knobs sent only when changed from their default (the advanced section). */
  optionalKnobs: Set<string>;
  epochs: HTMLInputElement;
  sweepKnob: HTMLSelectElement;
  sweepMode: () => "none" | "range" | "grid";
  low: HTMLInputElement;
  high: HTMLInputElement;
  log: HTMLInputElement;
  samples: HTMLInputElement;
  grid: HTMLInputElement;
  seeds: HTMLInputElement;
  scheduler: HTMLSelectElement;
  grace: HTMLInputElement;
  reduction: HTMLInputElement;
}

type Errors = [string, string][];

function parseIntStrict(text: string): number | null {
  return /^\s*-?\d+\s*$/.test(text) ? Number(text) : null;
}

/** Value of a knob: typed when `check`, otherwise a best-effort number or the raw text. */
function knobValue(name: string, raw: unknown, check: boolean, key: string, errors: Errors): unknown {
  const knob = KNOB_BY_NAME[name];
  if (!knob) return raw;
  if (!check) {
    if (typeof raw === "boolean" || knob.type === "str") return raw;
    const num = Number(raw);
    return String(raw).trim() !== "" && Number.isFinite(num) ? num : raw;
  }
  const res = checkKnob(knob, raw);
  if (res.error) errors.push([key, res.error]);
  return res.value;
}

function readConfig(c: JobControls, check: boolean, errors: Errors): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  for (const [name, control] of c.knobs) {
    const raw = readControl(control);
    if (c.optionalKnobs.has(name) && String(raw) === String(KNOB_BY_NAME[name]?.default)) continue;
    config[name] = knobValue(name, raw, check, `config.${name}`, errors);
  }
  return config;
}

function readSweep(c: JobControls, check: boolean, errors: Errors): Record<string, SweepDim> {
  const mode = c.sweepMode();
  const knob = c.sweepKnob.value;
  if (mode === "none") return {};
  if (mode === "grid") {
    const parts = c.grid.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (check && parts.length === 0) errors.push(["sweep.values", "give at least one value"]);
    const values = parts.map((p) => knobValue(knob, p, check, "sweep.values", errors));
    return { [knob]: { type: "grid", values } };
  }
  const low = knobValue(knob, c.low.value, check, "sweep.low", errors) as number;
  const high = knobValue(knob, c.high.value, check, "sweep.high", errors) as number;
  const log = c.log.checked;
  if (check && typeof low === "number" && typeof high === "number") {
    if (log && low <= 0) errors.push(["sweep.low", "must be > 0 on a log scale"]);
    if (high <= low) errors.push(["sweep.high", "must be greater than low"]);
  }
  return { [knob]: { type: log ? "loguniform" : "uniform", low, high } };
}

function readTopLevel(c: JobControls, check: boolean, errors: Errors) {
  const methods = c.methods.filter((m) => m.checked).map((m) => m.value);
  if (check && methods.length === 0) errors.push(["methods", "choose at least one method"]);
  if (check && !c.dataset.value) errors.push(["dataset_id", "choose a dataset"]);
  const seedParts = c.seeds.value.split(",").map((s) => s.trim()).filter(Boolean);
  const seeds = seedParts.map((s) => parseIntStrict(s) ?? (s as unknown as number));
  if (check && (seeds.length === 0 || seedParts.some((s) => (parseIntStrict(s) ?? -1) < 0))) {
    errors.push(["seeds", "give whole numbers >= 0, separated by commas"]);
  }
  const epochs = knobValue("epochs", c.epochs.value, check, "epochs", errors);
  const samples = parseIntStrict(c.samples.value);
  if (check && c.sweepMode() === "range" && (samples === null || samples < 1)) {
    errors.push(["num_samples", "must be a whole number >= 1"]);
  }
  return { methods, seeds, epochs, samples: samples ?? c.samples.value };
}

function readScheduler(c: JobControls, check: boolean, errors: Errors): JobSpec["scheduler"] {
  if (c.scheduler.value !== "asha") return { type: "fifo" };
  const grace = parseIntStrict(c.grace.value);
  const reduction = Number(c.reduction.value);
  if (check && (grace === null || grace < 1)) errors.push(["scheduler.grace_period", "must be a whole number >= 1"]);
  if (check && !(reduction > 1)) errors.push(["scheduler.reduction_factor", "must be > 1"]);
  return { type: "asha", grace_period: grace ?? Number(c.grace.value), reduction_factor: reduction };
}

/** Build the JobCreate body; returns null (with errors shown) when a client check fails. */
export function buildSpec(c: JobControls, reg: FieldRegistry, check: boolean): JobSpec | null {
  const errors: Errors = [];
  const top = readTopLevel(c, check, errors);
  const spec: JobSpec = {
    dataset_id: c.dataset.value,
    methods: top.methods,
    config: readConfig(c, check, errors),
    sweep: readSweep(c, check, errors),
    seeds: top.seeds,
    epochs: top.epochs as number,
    scheduler: readScheduler(c, check, errors),
  };
  if (c.sweepMode() === "range") spec.num_samples = top.samples as number;
  if (c.name.value.trim()) spec.name = c.name.value.trim();
  for (const [key, msg] of errors) reg.setError(key, msg);
  return errors.length ? null : spec;
}
