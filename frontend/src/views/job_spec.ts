// Turn the new-job form's controls into a JobCreate body, checking every knob value against the
// knob table's bounds (the API's own) and the shapes of the other fields. What only the API can
// judge (rules between knobs, free-text formats, the dataset) comes back as a 422 per field.

import type { JobSpec, Knob, SweepDim } from "../types";
import { checkKnob, isDefault } from "../vocabulary";
import { type BackboneRow, readBackbones } from "./job_backbones";
import { type FieldRegistry, readControl } from "./form_fields";

export interface JobControls {
  /** The knob table by knob name (GET /api/v1/knobs). */
  table: Map<string, Knob>;
  name: HTMLInputElement;
  dataset: HTMLSelectElement;
  methods: HTMLInputElement[];
  /** One control per knob; a disabled one (no chosen method reads it) is not sent. */
  knobs: Map<string, HTMLInputElement | HTMLSelectElement>;
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
  /** One row per modality of the chosen dataset (rebuilt when the dataset changes). */
  backbones: BackboneRow[];
}

/** Problems found, as (field key, message) pairs. */
type Errors = [string, string][];

function parseIntStrict(text: string): number | null {
  return /^\s*-?\d+\s*$/.test(text) ? Number(text) : null;
}

/** The typed value of a knob, or undefined with the problem recorded under `key`. */
function knobValue(knob: Knob, raw: string | boolean, key: string, errors: Errors): unknown {
  const res = checkKnob(knob, raw);
  if (res.error) errors.push([key, res.error]);
  return res.value;
}

/** The knobs changed from their defaults (the API fills in the rest from the same table). */
function readConfig(c: JobControls, errors: Errors): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  for (const [name, control] of c.knobs) {
    const knob = c.table.get(name);
    if (!knob || control.disabled) continue;
    const value = knobValue(knob, readControl(control), `config.${name}`, errors);
    if (value !== undefined && !isDefault(knob, value)) config[name] = value;
  }
  return config;
}

function readSweep(c: JobControls, errors: Errors): Record<string, SweepDim> {
  const mode = c.sweepMode();
  const knob = c.table.get(c.sweepKnob.value);
  if (mode === "none" || !knob) return {};
  if (mode === "grid") {
    const parts = c.grid.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (parts.length === 0) errors.push(["sweep.values", "give at least one value"]);
    const values = parts.map((p) => knobValue(knob, p, "sweep.values", errors));
    return { [knob.name]: { type: "grid", values } };
  }
  if (knob.type !== "float") {
    errors.push(["sweep.knob", `a range needs a float knob: sweep ${knob.name} with a grid of values`]);
  }
  const low = knobValue(knob, c.low.value, "sweep.low", errors);
  const high = knobValue(knob, c.high.value, "sweep.high", errors);
  const log = c.log.checked;
  if (typeof low !== "number" || typeof high !== "number") return {};
  if (log && low <= 0) errors.push(["sweep.low", "must be > 0 on a log scale"]);
  if (high <= low) errors.push(["sweep.high", "must be greater than low"]);
  return { [knob.name]: { type: log ? "loguniform" : "uniform", low, high } };
}

function readTopLevel(c: JobControls, errors: Errors) {
  const methods = c.methods.filter((m) => m.checked).map((m) => m.value);
  if (methods.length === 0) errors.push(["methods", "choose at least one method"]);
  if (!c.dataset.value) errors.push(["dataset_id", "choose a dataset"]);
  const seeds = c.seeds.value.split(",").map((s) => s.trim()).filter(Boolean).map(parseIntStrict);
  if (seeds.length === 0 || seeds.some((s) => s === null || s < 0)) {
    errors.push(["seeds", "give whole numbers >= 0, separated by commas"]);
  }
  const samples = parseIntStrict(c.samples.value);
  if (c.sweepMode() === "range" && (samples === null || samples < 1)) {
    errors.push(["num_samples", "must be a whole number >= 1"]);
  }
  return { methods, seeds: seeds.filter((s): s is number => s !== null), samples: samples ?? 1 };
}

function readScheduler(c: JobControls, errors: Errors): JobSpec["scheduler"] {
  if (c.scheduler.value !== "asha") return { type: "fifo" };
  const grace = parseIntStrict(c.grace.value);
  const reduction = Number(c.reduction.value);
  if (grace === null || grace < 1) errors.push(["scheduler.grace_period", "must be a whole number >= 1"]);
  if (!(reduction > 1)) errors.push(["scheduler.reduction_factor", "must be > 1"]);
  return { type: "asha", grace_period: grace ?? 1, reduction_factor: reduction };
}

/** Build the JobCreate body; returns null (with errors shown) when a check fails. */
export function buildSpec(c: JobControls, reg: FieldRegistry): JobSpec | null {
  const errors: Errors = [];
  const top = readTopLevel(c, errors);
  const spec: JobSpec = {
    dataset_id: c.dataset.value,
    methods: top.methods,
    config: readConfig(c, errors),
    sweep: readSweep(c, errors),
    seeds: top.seeds,
    scheduler: readScheduler(c, errors),
  };
  const backbones = readBackbones(c.backbones, errors);
  if (Object.keys(backbones).length) spec.backbones = backbones;
  if (c.sweepMode() === "range") spec.num_samples = top.samples;
  if (c.name.value.trim()) spec.name = c.name.value.trim();
  for (const [key, msg] of errors) reg.setError(key, msg);
  return errors.length ? null : spec;
}
