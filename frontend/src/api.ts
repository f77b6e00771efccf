// The only door to the service: the public REST API under /api/v1 (same origin, Bearer token).

import type { FieldError } from "./types";

const TOKEN_KEY = "synib.token";
export const API = "/api/v1";

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** A non-2xx answer; `fieldErrors` holds FastAPI 422 `detail[]` items when present. */
export class ApiError extends Error {
  readonly status: number;
  readonly fieldErrors: FieldError[];

  constructor(status: number, message: string, fieldErrors: FieldError[] = []) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.fieldErrors = fieldErrors;
  }
}

let onUnauthorized: () => void = () => undefined;

/** Called when any request answers 401 (the token is wrong, expired or revoked). */
export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

export function authHeaders(extra: Record<string, string> = {}): Record<string, string> {
  const token = getToken();
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

async function errorFrom(resp: Response): Promise<ApiError> {
  let detail: unknown = null;
  try {
    detail = ((await resp.json()) as { detail?: unknown }).detail;
  } catch {
    detail = null;
  }
  if (Array.isArray(detail)) {
    const items = detail.filter(
      (d): d is FieldError => typeof d === "object" && d !== null && "msg" in d,
    );
    const text = items.map((d) => `${(d.loc ?? []).slice(1).join(".")}: ${d.msg}`).join("; ");
    return new ApiError(resp.status, text || resp.statusText, items);
  }
  if (detail && typeof detail === "object" && "msg" in detail) {
    const d = detail as FieldError;
    return new ApiError(resp.status, d.msg, [d]);
  }
  const message = typeof detail === "string" ? detail : `${resp.status} ${resp.statusText}`;
  return new ApiError(resp.status, message);
}

/** Fetch with the token; throws ApiError on non-2xx. Returns the raw Response. */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = authHeaders((init.headers as Record<string, string>) ?? {});
  const resp = await fetch(`${API}${path}`, { ...init, headers });
  if (!resp.ok) {
    if (resp.status === 401) onUnauthorized();
    throw await errorFrom(resp);
  }
  return resp;
}

export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  const resp = await request(path, { signal });
  return (await resp.json()) as T;
}

export async function sendJson<T>(method: string, path: string, body?: unknown): Promise<T> {
  const resp = await request(path, {
    method,
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (resp.status === 204) return undefined as T;
  const text = await resp.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export async function postForm<T>(path: string, form: FormData): Promise<T> {
  const resp = await request(path, { method: "POST", body: form });
  return (await resp.json()) as T;
}

/** Query string from defined, non-empty values. */
export function qs(params: Record<string, string | number | undefined | null>): string {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.length ? `?${parts.join("&")}` : "";
}
