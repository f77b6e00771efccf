// Labelled form fields with an error slot each, and the mapping from FastAPI 422 `loc`
// paths (["body", "config", "hidden"]) to the field that shows the message.

import { h } from "../dom";
import type { FieldError, Knob } from "../types";
import { defaultText } from "../vocabulary";

export type Control = HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement | HTMLElement;

const FORM = "__form__";

interface Entry {
  control: Control;
  error: HTMLElement;
}

/** Registry of the form's fields by key ("config.hidden", "sweep.low", "seeds", ...). */
export class FieldRegistry {
  private entries = new Map<string, Entry>();
  readonly formError: HTMLElement = h("div", { class: "error", role: "alert", id: "form-error" });

  add(key: string, control: Control, error: HTMLElement): void {
    this.entries.set(key, { control, error });
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Forget the fields whose key starts with `prefix` (a part of the form that was rebuilt). */
  removePrefix(prefix: string): void {
    for (const key of [...this.entries.keys()]) if (key.startsWith(prefix)) this.entries.delete(key);
  }

  clear(): void {
    this.formError.replaceChildren();
    for (const { control, error } of this.entries.values()) {
      error.textContent = "";
      control.removeAttribute("aria-invalid");
    }
  }

  setError(key: string, message: string): void {
    const entry = this.entries.get(key);
    if (!entry) {
      this.formError.append(h("p", null, message));
      return;
    }
    entry.error.textContent = entry.error.textContent ? `${entry.error.textContent} ${message}` : message;
    entry.control.setAttribute("aria-invalid", "true");
    // A field in a collapsed group is opened, so that its message is seen.
    const group = entry.control.closest("details");
    if (group) group.open = true;
  }

  /** Move keyboard focus to the first field with an error (or the form-level message). */
  focusFirstError(): void {
    for (const { control, error } of this.entries.values()) {
      if (error.textContent) {
        (control.matches("fieldset") ? (control.querySelector("input") ?? control) : control).focus();
        return;
      }
    }
    if (this.formError.textContent) this.formError.focus();
  }

  /** Show each FastAPI validation error next to its field. */
  showApiErrors(errors: FieldError[]): void {
    for (const err of errors) {
      const { key, message } = this.locate(err);
      this.setError(key, message);
    }
  }

  /**
   * The field an API error belongs to, and its message without the "Value error, <path>: "
   * prefix. Our validators name the field in the message ("config.hidden: expected ..."),
   * or in `field`; FastAPI's own errors only in `loc`.
   */
  locate(err: FieldError): { key: string; message: string } {
    const raw = err.msg.replace(/^Value error, /, "");
    const named = /^([A-Za-z_][\w.[\]]*): (.*)$/s.exec(raw);
    const path = typeof err.field === "string" ? err.field : named?.[1];
    if (path) {
      const key = this.keyForParts(path.split(/[.[\]]+/).filter(Boolean));
      if (key !== FORM) return { key, message: named && named[1] === path ? (named[2] ?? raw) : raw };
    }
    const loc = (err.loc ?? []).map(String);
    return { key: this.keyForParts(loc[0] === "body" ? loc.slice(1) : loc), message: raw };
  }

  private keyForParts(rest: string[]): string {
    if (rest[0] === "sweep") {
      const leaf = rest.find((part) => ["low", "high", "values"].includes(part));
      return leaf ? `sweep.${leaf}` : "sweep.knob";
    }
    for (let n = rest.length; n > 0; n -= 1) {
      const key = rest.slice(0, n).join(".");
      if (this.entries.has(key)) return key;
    }
    return FORM;
  }
}

/** A labelled field: label, control, optional help and an error slot, all linked by ids. */
export function field(
  reg: FieldRegistry,
  key: string,
  label: string,
  control: Control,
  help = "",
): HTMLElement {
  const id = control.id || `f-${key.replace(/[^a-z0-9_-]/gi, "-")}`;
  control.id = id;
  const error = h("p", { id: `${id}-error`, class: "field-error", "aria-live": "polite" });
  const described = help ? `${id}-help ${id}-error` : `${id}-error`;
  control.setAttribute("aria-describedby", described);
  reg.add(key, control, error);
  const isCheckbox = control instanceof HTMLInputElement && control.type === "checkbox";
  return h(
    "div",
    { class: isCheckbox ? "field checkbox" : "field", "data-field": key },
    isCheckbox ? [control, h("label", { for: id }, label)] : [h("label", { for: id }, label), control],
    help ? h("p", { id: `${id}-help`, class: "help" }, help) : null,
    error,
  );
}

/** Input for one knob, typed from the knob table (select for choices, checkbox for bools). */
export function knobControl(knob: Knob): HTMLInputElement | HTMLSelectElement {
  const id = `knob-${knob.name}`;
  const value = defaultText(knob);
  if (knob.choices) {
    return h("select", { id, name: knob.name }, knob.choices.map((c) => h("option", { value: c, selected: c === value }, c)));
  }
  if (knob.type === "bool") return h("input", { id, name: knob.name, type: "checkbox", checked: knob.default === true });
  // type=text (+ inputmode for numbers) keeps values like 3e-4 intact and leaves checking to us.
  const inputmode = knob.type === "int" ? "numeric" : knob.type === "float" ? "decimal" : null;
  return h("input", { id, name: knob.name, type: "text", inputmode, value, autocomplete: "off" });
}

export function readControl(control: HTMLInputElement | HTMLSelectElement): string | boolean {
  if (control instanceof HTMLInputElement && control.type === "checkbox") return control.checked;
  return control.value;
}
