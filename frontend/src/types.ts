// View-level types. The API's own shapes come from its OpenAPI schema: src/generated/api.d.ts,
// written from /openapi.json by `make frontend` (never edited by hand, not in git; types only, so
// the bundle builds without it). What stays here is only what the views add on top of them.

import type { components, paths } from "./generated/api";

type Schemas = components["schemas"];

export type Dataset = Schemas["DatasetPublic"];
export type DatasetSummary = Schemas["DatasetSummary"];
export type DatasetPid = Schemas["DatasetPidPublic"];
export type PidPair = Schemas["PidPairPublic"];
export type Trial = Schemas["TrialPublic"];
export type Artifact = Schemas["ArtifactPublic"];
export type EpochRow = Schemas["EpochMetricsPublic"];
export type JobSpec = Schemas["JobCreate"];
export type SweepDim = Schemas["SweepSpec"];
export type JobStatus = Schemas["JobPublic"]["status"];
export type Generators = Schemas["GeneratorsPublic"];
export type DatasetFeature = Schemas["DatasetFeaturePublic"];
export type ModelInfo = Schemas["ModelPublic"];
export type BackboneEntry = Schemas["BackboneEntry"];
/** One 422 problem: FastAPI's `loc` path and `msg`, plus the dotted `field` our API adds. */
export type FieldError = Schemas["ErrorItem"];

/** A job; the API answers its `spec` as an open object: the JobCreate it accepted, normalised. */
export type Job = Omit<Schemas["JobPublic"], "spec"> & { spec: Partial<JobSpec> };
/** The answer to a submission: the job and the knob combinations that measurably hurt. */
export type JobCreated = Job & { warnings: string[] };

/** One page of a list endpoint (JobsPublic, TrialsPublic, DatasetsPublic, ...). */
export interface Page<T> {
  data: T[];
  count: number;
}

/** The vocabulary (`GET /api/v1/knobs`): every knob with its type, bounds and help, and the methods. */
export type KnobTable =
  paths["/api/v1/knobs"]["get"]["responses"][200]["content"]["application/json"];
export type Knob = KnobTable["knobs"][number];
export type MethodInfo = KnobTable["methods"][number];
/** The backbone vocabulary: encoders with the modality kinds each reads, train modes, poolings. */
export type BackboneVocabulary = KnobTable["backbones"];

// Every job status and whether a job in it has finished. The schema gives the statuses as a type
// only: `tsc` fails here when the API adds or drops one, so this list cannot drift from it.
const FINISHED: Record<JobStatus, boolean> = {
  queued: false,
  running: false,
  succeeded: true,
  failed: true,
  cancelling: false,
  cancelled: true,
};
export const JOB_STATUSES = Object.keys(FINISHED) as JobStatus[];
export const TERMINAL: ReadonlySet<string> = new Set(JOB_STATUSES.filter((s) => FINISHED[s]));

/** A metric value when it is a finite number (metrics are open JSON objects in the API). */
export function metricValue(metrics: Record<string, unknown> | null | undefined, key: string): number | null {
  const value = metrics?.[key];
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

// The job report is an open JSON object in the API (written by the worker; docs/ARCHITECTURE.md
// "Job report"). The parts of it the views read:

export interface Stat {
  mean: number;
  std?: number;
}

export interface Delta {
  delta: number;
  lo: number;
  hi: number;
}

export interface SweepPoint {
  config: Record<string, unknown>;
  [metric: string]: Stat | Record<string, unknown> | undefined;
}

/** The PID of a method's predictions for one pair of modalities, in bits, over seeds. */
export interface PredictionPid {
  redundancy: Stat;
  synergy: Stat;
  total: Stat;
  unique: Record<string, Stat>;
}

export interface MethodReport {
  best_config?: Record<string, unknown>;
  metrics?: Record<string, Stat>;
  delta_vs_baseline?: Record<string, Delta>;
  sweep?: SweepPoint[];
  best_artifact_id?: string | null;
  prediction_pid?: Record<string, PredictionPid>; // pair "a+b" -> terms (mean over seeds)
  seeds_needed?: Record<string, number>; // metric -> seeds to detect the gain
}

export interface Report {
  job_id: string;
  baseline?: string;
  selection?: string;
  seeds?: number[];
  sweep_knobs?: string[];
  methods: Record<string, MethodReport>;
  verdicts?: Record<string, string>; // per method, in words: beat the baseline or not
  data_pid?: { pairs: PidPair[]; verdict: string; clusters?: number | null }; // test labels
  pid_note?: string; // why there is no PID (no cvxpy on the workers, one modality)
  seeds_needed_for?: { gain: number; power: number; alpha?: number };
}
