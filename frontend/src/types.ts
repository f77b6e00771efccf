// Shapes of the public REST API (docs/INTERNALS.md "REST API" and "Job report").

export type Metrics = Record<string, number>;
export type Config = Record<string, unknown>;

export interface Page<T> {
  data: T[];
  count: number;
}

export interface DatasetSummary {
  modalities?: { name: string; shape: number[] }[];
  num_classes?: number;
  split_sizes?: Record<string, number>;
  class_counts?: Record<string, number> | number[];
  group_counts?: Record<string, number>;
  has_oracle?: boolean;
}

export interface Dataset {
  id: string;
  name: string;
  source: string;
  builtin_name?: string | null;
  params?: Config | null;
  status: string;
  error?: string | null;
  sha256?: string | null;
  size_bytes?: number | null;
  summary?: DatasetSummary | null;
  created_at: string;
}

export interface BestEntry {
  trial_id?: string;
  config?: Config;
  val_acc?: number;
  test_acc?: number;
  synergy_acc?: number;
}

export interface Job {
  id: string;
  name?: string | null;
  status: string;
  progress: number;
  trials_total: number;
  trials_done: number;
  dataset_id: string;
  spec: JobSpec;
  failure_reason?: string | null;
  created_at: string;
  started_at?: string | null;
  finished_at?: string | null;
  best?: Record<string, BestEntry> | null;
}

export interface SweepDim {
  type: "grid" | "choice" | "uniform" | "loguniform";
  values?: unknown[];
  low?: number;
  high?: number;
}

export interface JobSpec {
  name?: string;
  dataset_id?: string;
  methods?: (string | { name: string; config?: Config })[];
  config?: Config;
  sweep?: Record<string, SweepDim>;
  num_samples?: number;
  seeds?: number[];
  epochs?: number;
  scheduler?: { type: string; grace_period?: number; reduction_factor?: number };
  baseline?: string;
}

export interface Trial {
  id: string;
  trial_key: string;
  method: string;
  seed: number;
  config: Config;
  status: string;
  failure_reason?: string | null;
  epochs_done: number;
  best_epoch?: number | null;
  metrics?: Metrics | null;
}

export interface EpochRow {
  epoch: number;
  metrics: Metrics;
}

export interface Artifact {
  id: string;
  job_id?: string;
  trial_id?: string | null;
  kind: string;
  name: string;
  sha256: string;
  size_bytes: number;
  created_at?: string;
}

export interface Stat {
  mean: number;
  std?: number;
  values?: number[];
}

export interface Delta {
  delta: number;
  lo: number;
  hi: number;
}

export interface SweepPoint {
  config: Config;
  [metric: string]: Stat | Config | undefined;
}

export interface MethodReport {
  best_config?: Config;
  metrics?: Record<string, Stat>;
  delta_vs_baseline?: Record<string, Delta>;
  sweep?: SweepPoint[];
  trial_ids?: string[];
  best_artifact_id?: string | null;
}

export interface Report {
  job_id: string;
  baseline?: string;
  selection?: string;
  seeds?: number[];
  sweep_knobs?: string[];
  methods: Record<string, MethodReport>;
  references?: Record<string, Record<string, Metrics>>;
}

export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
export const JOB_STATUSES = ["queued", "running", "succeeded", "failed", "cancelling", "cancelled"];
