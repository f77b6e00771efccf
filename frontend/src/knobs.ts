// Client-side mirror of the knob table (docs/INTERNALS.md "Knob vocabulary"): the same
// types, choices and bounds the API enforces, so most mistakes are caught before submitting.

export type KnobType = "int" | "float" | "str" | "bool";

export interface Knob {
  name: string;
  type: KnobType;
  default: number | string | boolean;
  choices?: string[];
  min?: number; // inclusive lower bound
  gt?: number; // exclusive lower bound
  lt?: number; // exclusive upper bound
  max?: number; // inclusive upper bound
  help?: string;
}

const k = (
  name: string,
  type: KnobType,
  def: Knob["default"],
  rest: Partial<Knob> = {},
): Knob => ({ name, type, default: def, ...rest });

export const KNOBS: Knob[] = [
  k("encoder", "str", "mlp", { choices: ["mlp", "gru", "transformer", "cnn", "identity"] }),
  k("hidden", "int", 128, { min: 1 }),
  k("encoder_layers", "int", 2, { min: 1 }),
  k("fusion", "str", "concat_mlp", { choices: ["concat_mlp", "transformer"] }),
  k("fusion_hidden", "int", 128, { min: 1 }),
  k("fusion_layers", "int", 1, { min: 1 }),
  k("feature_norm", "str", "layernorm", {
    choices: ["layernorm", "none"],
    help: "none only with mask_level=input",
  }),
  k("epochs", "int", 30, { min: 1 }),
  k("batch_size", "int", 64, { min: 1 }),
  k("lr", "float", 3e-4, { gt: 0 }),
  k("weight_decay", "float", 1e-5, { min: 0 }),
  k("optimizer", "str", "adam", { choices: ["adam", "adamw", "sgd"] }),
  k("lr_schedule", "str", "constant", { choices: ["constant", "cosine"] }),
  k("dropout", "float", 0.0, { min: 0, lt: 1 }),
  k("patience", "int", 0, { min: 0, help: "0 = no early stopping" }),
  k("lambda", "float", 1.0, { min: 0 }),
  k("penalty", "str", "kl_uniform", { choices: ["kl_uniform", "kl_prior", "anchor", "logit_l2"] }),
  k("mask", "str", "random", { choices: ["random", "full", "oracle", "learned"] }),
  k("mask_prob", "float", 0.5, { gt: 0, max: 1 }),
  k("mask_level", "str", "feature", { choices: ["feature", "input"] }),
  k("fill", "str", "swap", { choices: ["swap", "noise", "zeros", "ema"] }),
  k("noise_std", "float", 1.0, { gt: 0 }),
  k("mask_steps", "int", 20, { min: 1 }),
  k("mask_lr", "float", 0.1, { gt: 0 }),
  k("mask_sparsity", "float", 0.1, { min: 0 }),
  k("mask_tau", "float", 1.0, { gt: 0 }),
  k("mask_hard", "bool", false),
  k("learned_direction", "str", "keep_unimodal", {
    choices: ["keep_unimodal", "destroy_unimodal"],
  }),
  k("w_uni", "float", 0.0, { min: 0 }),
  k("uni_detach", "bool", false, { help: "unimodal heads do not train the encoders" }),
  k("warmup_epochs", "int", 0, { min: 0 }),
  k("modality_weights", "str", "", { help: 'empty (all 1) or "name=w,name=w", w >= 0' }),
  k("modality_dropout_prob", "float", 0.3, { min: 0, lt: 1 }),
  k("ogm_alpha", "float", 0.5, { min: 0 }),
  k("amp", "bool", false),
  k("device", "str", "auto", { choices: ["auto", "cpu", "cuda"] }),
];

export const KNOB_BY_NAME: Record<string, Knob> = Object.fromEntries(
  KNOBS.map((knob) => [knob.name, knob]),
);

export const METHODS = [
  "vanilla",
  "synib",
  "masking_only",
  "modality_dropout",
  "ensemble",
  "ogm_ge",
  "mmpareto",
];

export const BACKBONE_KNOBS = [
  "encoder",
  "hidden",
  "encoder_layers",
  "fusion",
  "fusion_hidden",
  "fusion_layers",
  "feature_norm",
];

export const TRAINING_KNOBS = ["batch_size", "lr", "optimizer", "lr_schedule", "weight_decay"];

/** Human-readable bound, e.g. ">= 1", "[0, 1)", "(0, 1]". */
export function describeBounds(knob: Knob): string {
  const lo = knob.min !== undefined ? `[${knob.min}` : knob.gt !== undefined ? `(${knob.gt}` : "";
  const hi = knob.max !== undefined ? `${knob.max}]` : knob.lt !== undefined ? `${knob.lt})` : "";
  if (lo && hi) return `${lo}, ${hi}`;
  if (knob.min !== undefined) return `>= ${knob.min}`;
  if (knob.gt !== undefined) return `> ${knob.gt}`;
  return "";
}

/** Parse and check one knob value; returns the typed value or an error message. */
export function checkKnob(knob: Knob, raw: unknown): { value?: unknown; error?: string } {
  if (knob.type === "bool") return { value: raw === true || raw === "true" };
  if (knob.type === "str") return checkStr(knob, String(raw ?? ""));
  const text = String(raw ?? "").trim();
  const num = typeof raw === "number" ? raw : Number(text);
  if (text === "" || !Number.isFinite(num)) return { error: "must be a number" };
  if (knob.type === "int" && !Number.isInteger(num)) return { error: "must be a whole number" };
  const bad =
    (knob.min !== undefined && num < knob.min) ||
    (knob.gt !== undefined && num <= knob.gt) ||
    (knob.max !== undefined && num > knob.max) ||
    (knob.lt !== undefined && num >= knob.lt);
  return bad ? { error: `must be ${describeBounds(knob)}` } : { value: num };
}

function checkStr(knob: Knob, value: string): { value?: unknown; error?: string } {
  if (knob.choices && !knob.choices.includes(value)) {
    return { error: `must be one of ${knob.choices.join(", ")}` };
  }
  if (knob.name === "modality_weights" && value !== "") {
    const pairs = value.split(",").map((part) => part.split("="));
    const names = pairs.map(([name]) => (name ?? "").trim());
    const ok =
      new Set(names).size === names.length &&
      pairs.every(([name, w]) => Boolean(name?.trim()) && w !== undefined && w.trim() !== "" && Number(w) >= 0);
    if (!ok) return { error: 'must be "name=w,name=w" (each name once) with w >= 0' };
  }
  return { value };
}
