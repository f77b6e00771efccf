// The new-job form's backbone rows: one per modality of the chosen dataset, with the encoder
// (the encoders that read the modality's kind, from the knob table's backbone vocabulary), the
// pretrained model (the models of that modality the workers offer, GET /api/v1/models), what
// is trained and the pooling. A row left on "encoder knob" sends nothing for its modality.

import { h, replace } from "../dom";
import type { BackboneEntry, BackboneVocabulary, Dataset, ModelInfo } from "../types";
import { field, type FieldRegistry } from "./form_fields";

/** The value of the encoder select that sends no backbone (the `encoder` knob applies). */
export const KNOB_ENCODER = "";
const PRETRAINED = "pretrained";

export interface BackboneRow {
  modality: string;
  kind: string;
  encoder: HTMLSelectElement;
  model: HTMLSelectElement;
  train: HTMLSelectElement;
  pooling: HTMLSelectElement;
}

/** Problems found, as (field key, message) pairs. */
type Errors = [string, string][];

const options = (values: string[], selected?: string) =>
  values.map((v) => h("option", { value: v, selected: v === selected }, v));

function modelSelect(id: string, kind: string, models: ModelInfo[], pretrained: boolean): HTMLSelectElement {
  const offered = models.filter((m) => m.modality === kind);
  if (offered.length === 0) {
    const why = pretrained ? `no worker offers a ${kind} model` : `no pretrained model reads ${kind} data`;
    return h("select", { id, disabled: true }, h("option", { value: "" }, why));
  }
  return h("select", { id },
    offered.map((m) => h("option", { value: m.name, title: `${m.description} · licence: ${m.licence}` },
      `${m.name} (${m.output_dim}-d, ${m.licence.split(" ")[0] ?? ""})`)));
}

function makeRow(modality: string, kind: string, vocab: BackboneVocabulary, models: ModelInfo[]): BackboneRow {
  const readers = vocab.encoders.filter((e) => e.accepts.includes(kind)).map((e) => e.name);
  const onlyPretrained = readers.every((e) => e === PRETRAINED);
  const id = `backbone-${modality}`;
  const encoder = h("select", { id: `${id}-encoder`, "data-modality": modality },
    onlyPretrained ? null : h("option", { value: KNOB_ENCODER }, "encoder knob"),
    options(readers, onlyPretrained ? PRETRAINED : undefined));
  return {
    modality,
    kind,
    encoder,
    model: modelSelect(`${id}-model`, kind, models, readers.includes(PRETRAINED)),
    train: h("select", { id: `${id}-train` }, options(vocab.train_modes)),
    pooling: h("select", { id: `${id}-pooling` }, options(vocab.poolings)),
  };
}

function syncRow(row: BackboneRow): void {
  const pretrained = row.encoder.value === PRETRAINED;
  const noModel = row.model.options.length === 1 && row.model.value === "";
  row.model.disabled = !pretrained || noModel;
  row.train.disabled = !pretrained;
  row.pooling.disabled = !pretrained;
  row.model.closest(".backbone-row")?.classList.toggle("pretrained", pretrained);
}

function rowView(reg: FieldRegistry, row: BackboneRow): HTMLElement {
  const key = `backbones.${row.modality}`;
  const error = h("p", { id: `backbone-${row.modality}-error`, class: "field-error", "aria-live": "polite" });
  const view = h("fieldset", { class: "backbone-row", "data-modality": row.modality, "data-kind": row.kind },
    h("legend", null, row.modality, " ", h("span", { class: "help" }, `(${row.kind})`)),
    h("div", { class: "row" },
      field(reg, `${key}.encoder`, "Encoder", row.encoder),
      field(reg, `${key}.model`, "Model", row.model),
      field(reg, `${key}.train`, "Train", row.train, "frozen: features cached once"),
      field(reg, `${key}.pooling`, "Pooling", row.pooling)),
    error);
  reg.add(key, view, error);
  row.encoder.addEventListener("change", () => syncRow(row));
  return view;
}

/** Rebuild `box` with one row per modality of `ds` (none while it has no summary). */
export function showBackbones(
  box: HTMLElement, reg: FieldRegistry, rows: BackboneRow[], ds: Dataset | null,
  vocab: BackboneVocabulary, models: ModelInfo[],
): void {
  reg.removePrefix("backbones.");
  const modalities = ds?.summary?.modalities ?? [];
  rows.splice(0, rows.length, ...modalities.map((m) => makeRow(m.name, m.kind ?? "vector", vocab, models)));
  if (rows.length === 0) {
    replace(box, h("p", { class: "help" }, ds ? "The dataset's modalities appear once it is validated." : "Choose a dataset."));
    return;
  }
  replace(box, rows.map((row) => rowView(reg, row)));
  rows.forEach(syncRow);
}

/** The spec's `backbones`: the rows not left on the encoder knob. */
export function readBackbones(rows: BackboneRow[], errors: Errors): Record<string, BackboneEntry> {
  const backbones: Record<string, BackboneEntry> = {};
  for (const row of rows) {
    // The options come from the API's vocabulary, which the schema's enums are generated from.
    const encoder = row.encoder.value as BackboneEntry["encoder"] | typeof KNOB_ENCODER;
    if (encoder === KNOB_ENCODER) continue;
    if (encoder !== PRETRAINED) {
      backbones[row.modality] = { encoder };
      continue;
    }
    if (!row.model.value) errors.push([`backbones.${row.modality}.model`, `no worker offers a ${row.kind} model`]);
    backbones[row.modality] = {
      encoder,
      model: row.model.value,
      train: row.train.value as BackboneEntry["train"],
      pooling: row.pooling.value as BackboneEntry["pooling"],
    };
  }
  return backbones;
}
