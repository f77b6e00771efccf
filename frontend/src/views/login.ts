// Sign-in with an API token (kept in sessionStorage only, for this tab).

import { ApiError, API, clearToken, setToken } from "../api";
import { h, replace } from "../dom";
import type { Route } from "../main";

async function checkToken(token: string): Promise<string> {
  const resp = await fetch(`${API}/me`, { headers: { Authorization: `Bearer ${token}` } });
  if (resp.status === 401 || resp.status === 403) {
    throw new ApiError(resp.status, "This token was not accepted.");
  }
  if (!resp.ok) throw new ApiError(resp.status, `The service answered ${resp.status}.`);
  const me = (await resp.json()) as { name?: string };
  return me.name ?? "";
}

export function renderLogin(main: HTMLElement, route: Route): void {
  clearToken();
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    required: true,
    "aria-describedby": "token-help token-error",
  });
  const error = h("p", { id: "token-error", class: "field-error", role: "alert" });
  const reason = route.query.get("msg");
  if (reason) error.textContent = reason;
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    { class: "card narrow", id: "login-form", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Sign in"),
    h("label", { for: "token" }, "API token"),
    input,
    h(
      "p",
      { id: "token-help", class: "help" },
      "Paste your API token: `synib serve` writes one to credentials.json in its config folder ",
      "(~/.config/synib by default). It is kept for this browser tab only.",
    ),
    error,
    button,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    button.disabled = true;
    try {
      await checkToken(input.value.trim());
      setToken(input.value.trim());
      location.hash = "#/jobs";
    } catch (err) {
      error.textContent = (err as Error).message;
      input.setAttribute("aria-invalid", "true");
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  replace(main, form);
  input.focus();
}
