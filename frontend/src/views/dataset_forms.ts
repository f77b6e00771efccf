// Upload an .npz dataset, or register a built-in generated one. Used on the datasets page and
// inside the new-job form; errors (422 / 413) appear next to the field that caused them.

import { ApiError, getJson, postForm, sendJson } from "../api";
import { h } from "../dom";
import type { Dataset, Generators } from "../types";

// The built-in generators and their parameters, from the API (synib_spec.builtin), once per page.
let generators: Promise<Generators> | null = null;
function loadGenerators(): Promise<Generators> {
  generators ??= getJson<Generators>("/datasets/generators");
  return generators;
}

function fieldBlock(id: string, label: string, input: HTMLElement, help?: string) {
  const error = h("p", { id: `${id}-error`, class: "field-error", role: "alert" });
  input.setAttribute("aria-describedby", `${id}-error${help ? ` ${id}-help` : ""}`);
  const block = h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    input,
    help ? h("p", { id: `${id}-help`, class: "help" }, help) : null,
    error,
  );
  return { block, error };
}

export function uploadForm(onDone: (ds: Dataset) => void, prefix = "upload"): HTMLElement {
  const file = h("input", { id: `${prefix}-file`, name: "file", type: "file", accept: ".npz", required: true });
  const name = h("input", { id: `${prefix}-name`, name: "name", type: "text", autocomplete: "off" });
  const f = fieldBlock(`${prefix}-file`, "Dataset file (.npz)", file, "y, x_<modality> arrays; optional split, group, oracle_<modality>.");
  const n = fieldBlock(`${prefix}-name`, "Name (optional)", name);
  const status = h("p", { class: "help", role: "status" });
  const button = h("button", { type: "button", id: `${prefix}-submit` }, "Upload");
  button.addEventListener("click", async () => {
    f.error.textContent = "";
    const chosen = file.files?.[0];
    if (!chosen) {
      f.error.textContent = "Choose an .npz file.";
      file.focus();
      return;
    }
    const form = new FormData();
    form.append("file", chosen);
    if (name.value.trim()) form.append("name", name.value.trim());
    button.disabled = true;
    status.textContent = "Uploading…";
    try {
      const ds = await postForm<Dataset>("/datasets", form);
      status.textContent = `Uploaded ${ds.name}.`;
      onDone(ds);
    } catch (err) {
      status.textContent = "";
      const e = err as ApiError;
      f.error.textContent = e.status === 413 ? `File too large: ${e.message}` : e.message;
      file.setAttribute("aria-invalid", "true");
      file.focus();
    } finally {
      button.disabled = false;
    }
  });
  return h("fieldset", { class: "subform", id: `${prefix}-form` }, h("legend", null, "Upload a dataset"), f.block, n.block, button, status);
}

export function builtinForm(onDone: (ds: Dataset) => void, prefix = "builtin"): HTMLElement {
  const gen = h("select", { id: `${prefix}-generator`, name: "generator" });
  const about = h("p", { id: `${prefix}-generator-help`, class: "help" });
  void loadGenerators().then((table) => {
    gen.replaceChildren(...table.data.map((g) => h("option", { value: g.name }, g.name)));
    const describe = () => {
      const chosen = table.data.find((g) => g.name === gen.value);
      about.textContent = chosen
        ? `${chosen.help}. Parameters: ${chosen.params.map((p) => `${p.name} (${p.allowed}; default ${JSON.stringify(p.default)})`).join(", ")}.`
        : "";
    };
    gen.addEventListener("change", describe);
    describe();
  });
  const seed = h("input", { id: `${prefix}-seed`, type: "number", value: 0, step: 1, min: 0 });
  const params = h("input", { id: `${prefix}-params`, type: "text", value: "{}", autocomplete: "off" });
  const g = fieldBlock(`${prefix}-generator`, "Generator", gen);
  const s = fieldBlock(`${prefix}-seed`, "Seed", seed);
  const p = fieldBlock(`${prefix}-params`, "Parameters (JSON object)", params, 'e.g. {"n": 2000}');
  const status = h("p", { class: "help", role: "status" });
  const button = h("button", { type: "button", id: `${prefix}-submit` }, "Register");
  button.addEventListener("click", async () => {
    for (const block of [g, s, p]) block.error.textContent = "";
    let parsed: unknown;
    try {
      parsed = JSON.parse(params.value || "{}");
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error();
    } catch {
      p.error.textContent = "Must be a JSON object.";
      params.focus();
      return;
    }
    if (!Number.isInteger(Number(seed.value))) {
      s.error.textContent = "Must be a whole number.";
      return;
    }
    button.disabled = true;
    try {
      const body = { generator: gen.value, params: parsed, seed: Number(seed.value) };
      const ds = await sendJson<Dataset>("POST", "/datasets/builtin", body);
      status.textContent = `Registered ${ds.name} (${ds.status}).`;
      onDone(ds);
    } catch (err) {
      const e = err as ApiError;
      const where = e.fieldErrors[0]?.loc?.[1];
      (where === "seed" ? s : where === "generator" ? g : p).error.textContent = e.message;
    } finally {
      button.disabled = false;
    }
  });
  return h(
    "fieldset",
    { class: "subform", id: `${prefix}-form` },
    h("legend", null, "Register a built-in dataset"),
    g.block,
    about,
    s.block,
    p.block,
    button,
    status,
  );
}
