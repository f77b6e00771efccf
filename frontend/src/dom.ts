// Tiny DOM helpers. Everything is built with createElement (no innerHTML of API data),
// and no element ever gets a style="" attribute: the CSP allows classes and CSSOM only.

export type Child = Node | string | number | null | undefined | false | Child[];
type Handler = (ev: Event) => void;
export type Attrs = Record<string, string | number | boolean | Handler | null | undefined>;

/** Create an element: attrs are attributes; `on<event>` keys are listeners; children are appended. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "style") throw new Error("inline styles are not allowed (CSP)");
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "value" && "value" in el) {
      (el as HTMLInputElement).value = String(value);
    } else if (key === "checked" && "checked" in el) {
      (el as HTMLInputElement).checked = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append children (nested arrays flattened, falsy skipped, primitives as text). */
export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace all children of `parent`. */
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

/** Announce a message to screen readers through the polite live region. */
export function announce(message: string): void {
  const live = document.getElementById("live");
  if (live) live.textContent = message;
}

export function fmtNum(value: unknown, digits = 3): string {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  if (value !== 0 && (Math.abs(value) >= 1e4 || Math.abs(value) < 1e-3)) {
    return value.toExponential(2);
  }
  return Number(value.toFixed(digits)).toString();
}

export function fmtPct(value: unknown, digits = 1): string {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  return `${(value * 100).toFixed(digits)}%`;
}

export function fmtSigned(value: unknown, digits = 1): string {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  const pct = (value * 100).toFixed(digits);
  return value > 0 ? `+${pct}` : pct;
}

export function fmtDate(value: unknown): string {
  if (typeof value !== "string" || !value) return "–";
  const d = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : `${value}Z`);
  if (Number.isNaN(d.getTime())) return value;
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

export function fmtBytes(value: unknown): string {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let v = value;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** A status badge: colour by class, the status word as text (not colour alone). */
export function badge(status: string): HTMLElement {
  return h("span", { class: `badge badge-${status.replace(/[^a-z_]/g, "")}` }, status);
}

/** A page section with a heading; `id` makes it addressable from tests and links. */
export function section(id: string, title: string, ...children: Child[]): HTMLElement {
  const headingId = `${id}-title`;
  return h(
    "section",
    { id, class: "card", "aria-labelledby": headingId },
    h("h2", { id: headingId }, title),
    ...children,
  );
}

export function errorBox(message: string): HTMLElement {
  return h("p", { class: "error", role: "alert" }, message);
}

/**
 * The unit of a metric that is neither a fraction (accuracies, shown in %) nor unitless:
 * the counterfactual confidence cf_conf_<m> is KL(q(. | x without m) || uniform) in nats.
 */
export function metricUnit(key: string): string | null {
  if (key.startsWith("cf_conf_")) return "nats, KL to uniform";
  if (key === "epoch_seconds") return "s";
  return null;
}

/** A metric's name with its unit, e.g. "cf_conf_audio (nats, KL to uniform)". */
export function metricLabel(key: string): string {
  const unit = metricUnit(key);
  return unit ? `${key} (${unit})` : key;
}
