// The vocabulary as the API serves it (GET /api/v1/knobs): every knob with its type, default,
// bounds, help and the methods that read it, and the methods. The new-job form is built from
// it and checks values against the same bounds before a job is sent; the API checks them again.

import { getJson } from "./api";
import type { Knob, KnobTable } from "./types";

let table: Promise<KnobTable> | null = null;

/** The knob table, fetched once per page load (a failed fetch is retried next time). */
export function loadVocabulary(): Promise<KnobTable> {
  table ??= getJson<KnobTable>("/knobs").catch((err: unknown) => {
    table = null;
    throw err;
  });
  return table;
}

/** The methods that read `knob`; null when every method does. */
export const readers = (knob: Knob): string[] | null => knob.methods ?? null;

/** Whether any of `methods` reads `knob`. */
export function readByAny(knob: Knob, methods: string[]): boolean {
  const only = readers(knob);
  return only === null || only.some((m) => methods.includes(m));
}

export const isNumeric = (knob: Knob): boolean => knob.type === "int" || knob.type === "float";

/** The knob's default as the text its form control shows. */
export function defaultText(knob: Knob): string {
  return typeof knob.default === "boolean" ? String(knob.default) : String(knob.default ?? "");
}

export interface Checked {
  value?: unknown;
  error?: string;
}

function inBounds(knob: Knob, num: number): boolean {
  const min = knob.min ?? null;
  const max = knob.max ?? null;
  if (min !== null && (num < min || (knob.min_exclusive && num === min))) return false;
  if (max !== null && (num > max || (knob.max_exclusive && num === max))) return false;
  return true;
}

/**
 * The typed value of `raw` (a control's text, or a checkbox's boolean) for `knob`, or why it
 * is refused in the table's own words (`allowed`). Rules between knobs and free-text formats
 * (modality_weights) are the API's to check: its 422 lands next to the field.
 */
export function checkKnob(knob: Knob, raw: string | boolean): Checked {
  if (knob.type === "bool") return { value: raw === true || raw === "true" };
  const text = String(raw).trim();
  if (knob.type === "str") {
    return knob.choices && !knob.choices.includes(text) ? { error: `must be ${knob.allowed}` } : { value: text };
  }
  const num = Number(text);
  const typed = text !== "" && Number.isFinite(num) && (knob.type !== "int" || Number.isInteger(num));
  return typed && inBounds(knob, num) ? { value: num } : { error: `must be ${knob.allowed}` };
}

/** Whether a typed value is the knob's default (then the form leaves it to the API). */
export function isDefault(knob: Knob, value: unknown): boolean {
  return value === knob.default || (isNumeric(knob) && Number(value) === Number(knob.default));
}
