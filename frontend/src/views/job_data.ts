// Loading a job's pieces from the REST API, and merging live events into them.

import { ApiError, getJson, qs } from "../api";
import { type Artifact, type Dataset, type EpochRow, type Job, JOB_STATUSES, type Page, type Report, TERMINAL, type Trial } from "../types";

export interface JobData {
  job: Job;
  dataset: Dataset | null;
  trials: Trial[];
  history: Map<string, EpochRow[]>;
  report: Report | null;
  artifacts: Artifact[];
}

export type Part = "job" | "trials" | "metrics" | "report" | "artifacts";
export const ALL_PARTS: Part[] = ["job", "trials", "metrics", "report", "artifacts"];

/** Every row of a paginated {data, count} endpoint. */
export async function fetchAll<T>(path: string, signal: AbortSignal, pageSize = 500): Promise<T[]> {
  const out: T[] = [];
  for (;;) {
    const page = await getJson<Page<T>>(`${path}${qs({ limit: pageSize, offset: out.length })}`, signal);
    out.push(...page.data);
    if (page.data.length === 0 || out.length >= page.count) return out;
  }
}

async function orNull<T>(promise: Promise<T>): Promise<T | null> {
  try {
    return await promise;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

function toHistory(raw: unknown): Map<string, EpochRow[]> {
  const obj = (raw && typeof raw === "object" && "data" in raw && !Array.isArray((raw as { data: unknown }).data)
    ? (raw as { data: unknown }).data
    : raw) as Record<string, EpochRow[]>;
  const map = new Map<string, EpochRow[]>();
  for (const [trialId, rows] of Object.entries(obj ?? {})) {
    if (Array.isArray(rows)) map.set(trialId, [...rows].sort((a, b) => a.epoch - b.epoch));
  }
  return map;
}

/** Fetch the requested parts of a job into `data` (in place). */
export async function loadParts(data: JobData, parts: Set<Part>, signal: AbortSignal): Promise<void> {
  const id = data.job.id;
  const tasks: Promise<void>[] = [];
  if (parts.has("job")) tasks.push(getJson<Job>(`/jobs/${id}`, signal).then((j) => { data.job = j; }));
  if (parts.has("trials")) tasks.push(fetchAll<Trial>(`/jobs/${id}/trials`, signal).then((t) => { data.trials = t; }));
  if (parts.has("metrics")) tasks.push(getJson<unknown>(`/jobs/${id}/metrics`, signal).then((m) => { data.history = toHistory(m); }));
  // The worker writes the report as the job finishes: no need to ask (and get 404) before.
  if (parts.has("report") && TERMINAL.has(data.job.status)) {
    tasks.push(orNull(getJson<Report>(`/jobs/${id}/report`, signal)).then((r) => { data.report = r; }));
  }
  if (parts.has("artifacts")) tasks.push(fetchAll<Artifact>(`/jobs/${id}/artifacts`, signal).then((a) => { data.artifacts = a; }));
  await Promise.all(tasks);
}

export async function loadJob(id: string, signal: AbortSignal): Promise<JobData> {
  const job = await getJson<Job>(`/jobs/${id}`, signal);
  const data: JobData = { job, dataset: null, trials: [], history: new Map(), report: null, artifacts: [] };
  await Promise.all([
    loadParts(data, new Set(["trials", "metrics", "report", "artifacts"]), signal),
    job.dataset_id ? orNull(getJson<Dataset>(`/datasets/${job.dataset_id}`, signal)).then((d) => { data.dataset = d; }) : null,
  ]);
  return data;
}

/**
 * Apply one SSE event. Returns the parts that must be re-fetched; an epoch event carrying
 * {trial_id, epoch, metrics} is merged directly (no fetch), anything else triggers a fetch.
 */
export function applyEvent(data: JobData, type: string, payload: unknown): Part[] {
  const p = (payload && typeof payload === "object" ? payload : {}) as Record<string, unknown>;
  if (type === "epoch") {
    const trialId = p.trial_id;
    const epoch = p.epoch;
    if (typeof trialId === "string" && typeof epoch === "number" && p.metrics && typeof p.metrics === "object") {
      const rows = (data.history.get(trialId) ?? []).filter((r) => r.epoch !== epoch);
      rows.push({ epoch, metrics: p.metrics as EpochRow["metrics"] });
      rows.sort((a, b) => a.epoch - b.epoch);
      data.history.set(trialId, rows);
      return ["trials"];
    }
    return ["metrics", "trials"];
  }
  if (type === "status") {
    const status = JOB_STATUSES.find((s) => s === p.status);
    if (status) data.job = { ...data.job, status };
    return ["job", "trials"];
  }
  if (type === "trial") return ["trials", "job"];
  if (type === "report") return ["report", "artifacts", "job"];
  return ["job"];
}
