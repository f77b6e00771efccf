// Entry point: hash router (the API serves one static index.html at "/"), nav, sign-in gate.

import "uplot/dist/uPlot.min.css";
import "./styles.css";
import { clearToken, getToken, setUnauthorizedHandler } from "./api";
import { h, replace } from "./dom";
import { renderDatasetPage, renderDatasets } from "./views/datasets";
import { renderJobPage } from "./views/job";
import { renderJobs } from "./views/jobs";
import { renderLogin } from "./views/login";
import { renderNewJob } from "./views/newjob";

export interface Route {
  path: string[];
  query: URLSearchParams;
}

type View = (main: HTMLElement, route: Route, signal: AbortSignal) => void | Promise<void>;

let current: AbortController | null = null;

function parseHash(): Route {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?", 2);
  return { path: (path ?? "").split("/").filter(Boolean), query: new URLSearchParams(query ?? "") };
}

function pickView(route: Route): View {
  const [first, second] = route.path;
  if (first === "login") return renderLogin;
  if (first === "datasets") return second ? renderDatasetPage : renderDatasets;
  if (first === "jobs" && second === "new") return renderNewJob;
  if (first === "jobs" && second) return renderJobPage;
  return renderJobs;
}

export function signOut(message?: string): void {
  clearToken();
  const suffix = message ? `?msg=${encodeURIComponent(message)}` : "";
  location.hash = `#/login${suffix}`;
}

function renderNav(route: Route): void {
  const nav = document.getElementById("nav");
  if (!nav) return;
  if (!getToken()) {
    replace(nav);
    return;
  }
  const link = (href: string, label: string, active: boolean) =>
    h("a", { href, "aria-current": active ? "page" : null }, label);
  const [first, second] = route.path;
  replace(
    nav,
    link("#/jobs", "Jobs", first === "jobs" && second !== "new"),
    link("#/jobs/new", "New job", first === "jobs" && second === "new"),
    link("#/datasets", "Datasets", first === "datasets"),
    h("button", { type: "button", class: "link-button", id: "sign-out", onclick: () => signOut() }, "Sign out"),
  );
}

async function route(): Promise<void> {
  current?.abort();
  current = new AbortController();
  const r = parseHash();
  if (!getToken() && r.path[0] !== "login") {
    location.hash = "#/login";
    return;
  }
  renderNav(r);
  const main = document.getElementById("main") as HTMLElement;
  replace(main);
  try {
    await pickView(r)(main, r, current.signal);
  } catch (err) {
    if (!current.signal.aborted) {
      replace(main, h("p", { class: "error", role: "alert" }, String((err as Error).message ?? err)));
    }
  }
}

// The skip link must not change the hash (the router owns it): move focus instead.
document.querySelector(".skip-link")?.addEventListener("click", (ev) => {
  ev.preventDefault();
  document.getElementById("main")?.focus();
});
setUnauthorizedHandler(() => signOut("Your token was rejected; sign in again."));
window.addEventListener("hashchange", () => void route());
void route();
