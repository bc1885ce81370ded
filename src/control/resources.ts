/**
 * Controller resources: `PodAutoscaler` and `ModelAdapter`, as zod schemas with their inferred types.
 *
 * One schema per resource serves the fleet file (YAML), the admin API (JSON) and, later, Kubernetes
 * CRDs (`spec` / `status` split as in `api/autoscaling/v1alpha1/podautoscaler_types.go` and
 * `api/model/v1alpha1/modeladapter_types.go` of AIBrix; see `shared/reference/aibrix-control-plane.md`
 * sections 1.1 and 2.1). Field names are ours (camelCase, units in the name: `...S` seconds, `...Ms`
 * milliseconds). Every default is written next to its field.
 *
 * Validation errors name the field path: {@link parseResource} throws a {@link ResourceValidationError}
 * whose message lists `path: reason` for every zod issue (e.g. `autoscaler.metrics.0.target: Number
 * must be greater than 0`). Nothing is applied from a document that fails.
 */
import { z } from 'zod';

// ------------------------------------------------------------------------------------------------
// Errors

/** One problem in a document: dotted field path (array indices as numbers) and the reason. */
export interface ResourceIssue {
  path: string;
  message: string;
}

/**
 * A document failed validation. `issues` lists every problem with its field path; `message` joins
 * them as `where: path: reason; ...`. The admin API maps it to HTTP 400 with `param` = first path.
 */
export class ResourceValidationError extends Error {
  constructor(
    readonly where: string,
    readonly issues: ResourceIssue[],
  ) {
    super(`${where}: ${issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}`);
    this.name = 'ResourceValidationError';
  }
}

/**
 * Validates `doc` against `schema` and returns the parsed (defaulted) value.
 * @param where prefix for field paths, e.g. `fleet.yaml: autoscalers.0` or `body`.
 * @throws ResourceValidationError listing every issue with its path (prefixed by `where`).
 */
export function parseResource<S extends z.ZodTypeAny>(schema: S, doc: unknown, where: string): z.output<S> {
  const r = schema.safeParse(doc);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
  throw new ResourceValidationError(where, issues);
}

// ------------------------------------------------------------------------------------------------
// Shared pieces

const name = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._/:-]*$/, 'must start with a letter or digit and contain only letters, digits, . _ / : -');

/** A condition in a status, Kubernetes style. `lastTransitionMs` is wall or virtual time (ms). */
export const ConditionSchema = z.object({
  type: z.string(),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string(),
  message: z.string().default(''),
  lastTransitionMs: z.number(),
});
export type Condition = z.infer<typeof ConditionSchema>;

// ------------------------------------------------------------------------------------------------
// PodAutoscaler

/**
 * Signals an autoscaler can follow.
 * Engine signals (per replica, from `/metrics`, canonical names of `EndpointState`):
 * - `kvCacheUsage`: KV cache usage 0..1 per replica (`vllm:kv_cache_usage_perc`).
 * - `waiting`: queued requests per replica (`vllm:num_requests_waiting`).
 * - `running`: requests in the running batch per replica (`vllm:num_requests_running`).
 * Gateway signals (always current, no scrape):
 * - `tokensInFlight`: prompt + expected output tokens of unfinished requests, per replica (tokens).
 * - `inflightRequests`: unfinished requests per replica.
 * - `queueTimeMs`: mean time requests waited in the gateway before dispatch over the last second (ms);
 *   a fleet-level value, not additive across replicas.
 */
export const AutoscalingMetricSchema = z.enum(['kvCacheUsage', 'waiting', 'running', 'tokensInFlight', 'inflightRequests', 'queueTimeMs']);
export type AutoscalingMetric = z.infer<typeof AutoscalingMetricSchema>;

/** Metrics that add up across replicas (a fleet total is meaningful). `queueTimeMs` does not. */
export const ADDITIVE_METRICS: ReadonlySet<AutoscalingMetric> = new Set(['kvCacheUsage', 'waiting', 'running', 'tokensInFlight', 'inflightRequests']);

/** One metric source: follow `metric` so that its per-replica value stays near `target`. */
export const MetricSourceSchema = z
  .object({
    metric: AutoscalingMetricSchema,
    /** Desired per-replica value, > 0, in the metric's unit (0..1 for kvCacheUsage). */
    target: z.number().positive(),
  })
  .strict();
export type MetricSource = z.infer<typeof MetricSourceSchema>;

/** Scaling strategies: `hpa` (Kubernetes), `kpa` (Knative), `apa` (AIBrix), `tokenflow` (ours; see docs/controllers.md). */
export const StrategySchema = z.enum(['hpa', 'kpa', 'apa', 'tokenflow']);
export type Strategy = z.infer<typeof StrategySchema>;

const PodAutoscalerSpecBase = z
  .object({
    /** Name of the autoscaler (admin API key). Default: the model name. */
    name: name.optional(),
    /** Target: the model whose managed replicas are scaled. Required by the fleet and the admin API; the DES fills it. */
    model: name.optional(),
    /** Floor, default 1. 0 is allowed only with `scaleToZero.enabled`. */
    minReplicas: z.number().int().min(0).default(1),
    /** Ceiling, default 10. */
    maxReplicas: z.number().int().min(1).default(10),
    /** Algorithm, default `tokenflow` (ours). */
    strategy: StrategySchema.default('tokenflow'),
    /** Shorthand for a single source: `metric` + `target` (used when `metrics` is absent). */
    metric: AutoscalingMetricSchema.optional(),
    target: z.number().positive().optional(),
    /** Metric sources; the largest recommendation wins (as AIBrix and Kubernetes do). Default `[{kvCacheUsage, 0.7}]`. */
    metrics: z.array(MetricSourceSchema).min(1).optional(),
    /** Decision period in seconds, default 2 (Knative's tick). Metrics are collected every second regardless. */
    intervalS: z.number().positive().max(600).default(2),
    windows: z
      .object({
        /** Stable window in seconds, default 60 (Knative `stable-window`; AIBrix uses 180). */
        stableS: z.number().int().min(1).max(3600).default(60),
        /** Panic window in seconds, default 6 (Knative: 10% of the stable window). Must be <= stableS. */
        panicS: z.number().int().min(1).max(3600).default(6),
      })
      .strict()
      .default({}),
    tolerance: z
      .object({
        /** Scale up only when value/target > 1 + up. Default 0.1 (Kubernetes HPA, AIBrix). */
        up: z.number().min(0).max(10).default(0.1),
        /** Scale down only when value/target < 1 - down. Default 0.1. */
        down: z.number().min(0).max(1).default(0.1),
      })
      .strict()
      .default({}),
    rates: z
      .object({
        /** Max scale-up factor per decision: desired <= ceil(rate x current). Default 2.0 (AIBrix `max-scale-up-rate`; Knative uses 1000). */
        maxUp: z.number().gt(1).default(2),
        /** Max scale-down factor per decision: desired >= floor(current / rate). Default 2.0 (AIBrix and Knative). */
        maxDown: z.number().gt(1).default(2),
      })
      .strict()
      .default({}),
    /** KPA: enter panic when panic-window demand / ready replicas >= this. Default 2.0 (Knative 200%). */
    panicThreshold: z.number().gt(1).default(2),
    cooldown: z
      .object({
        /** Scale-up stabilization: take the max recommendation of the last `upS` s. Default 0 (immediate). */
        upS: z.number().min(0).max(3600).default(0),
        /** Scale-down stabilization: scale down only to the max recommendation of the last `downS` s. Default 300 (Kubernetes HPA, AIBrix). */
        downS: z.number().min(0).max(3600).default(300),
      })
      .strict()
      .default({}),
    /** A signal with no sample for this long holds the current size. Default 10 s. */
    staleAfterS: z.number().positive().max(3600).default(10),
    scaleToZero: z
      .object({
        /** Allow 0 replicas (requires minReplicas 0). Default false. */
        enabled: z.boolean().default(false),
        /** Scale to zero after this many seconds with no request arriving and none in flight. Default 30 (Knative). */
        idleS: z.number().min(0).default(30),
      })
      .strict()
      .default({}),
    /** Tokenflow (ours) settings; ignored by the other strategies. */
    forecast: z
      .object({
        /** Expected replica start-up time in seconds (time from setReplicas to ready). Default 60. Observed start-ups refine it. */
        replicaStartupS: z.number().min(0).max(3600).default(60),
        /** Window (s) over which the token arrival rate and trend are fitted (least squares). Default 120. */
        trendWindowS: z.number().int().min(2).max(600).default(120),
        /** Token arrival rate (prompt + max output tokens/s) one replica can take before requests queue; learned online when absent. */
        tokensPerReplicaS: z.number().positive().optional(),
        /** Capacity kept above the planned rate, fraction: plan for capacity / (1 + headroom). Default 0.25 (80% of capacity). */
        headroom: z.number().min(0).max(2).default(0.25),
      })
      .strict()
      .default({}),
  })
  .strict();

/**
 * A `PodAutoscaler` spec. Input accepts the shorthand `{strategy, metric, target}`; the parsed value
 * always has `metrics` (the shorthand is folded in) and all defaults applied.
 * Cross-field rules: minReplicas <= maxReplicas; minReplicas 0 requires scaleToZero.enabled;
 * windows.panicS <= windows.stableS; `metric` and `target` come together and not with `metrics`.
 */
export const PodAutoscalerSpecSchema = PodAutoscalerSpecBase.superRefine((s, ctx) => {
  if (s.minReplicas > s.maxReplicas) ctx.addIssue({ code: 'custom', path: ['minReplicas'], message: `minReplicas (${s.minReplicas}) must be <= maxReplicas (${s.maxReplicas})` });
  if (s.minReplicas === 0 && !s.scaleToZero.enabled) ctx.addIssue({ code: 'custom', path: ['minReplicas'], message: 'minReplicas 0 requires scaleToZero.enabled: true' });
  if (s.windows.panicS > s.windows.stableS) ctx.addIssue({ code: 'custom', path: ['windows', 'panicS'], message: `panicS (${s.windows.panicS}) must be <= stableS (${s.windows.stableS})` });
  if ((s.metric === undefined) !== (s.target === undefined)) ctx.addIssue({ code: 'custom', path: [s.metric === undefined ? 'metric' : 'target'], message: '`metric` and `target` must be given together' });
  if (s.metric !== undefined && s.metrics !== undefined) ctx.addIssue({ code: 'custom', path: ['metrics'], message: 'give either `metric`+`target` or `metrics`, not both' });
}).transform(({ metric, target, metrics, ...rest }) => ({
  ...rest,
  metrics: metrics ?? (metric !== undefined && target !== undefined ? [{ metric, target }] : [{ metric: 'kvCacheUsage' as const, target: 0.7 }]),
}));
export type PodAutoscalerSpec = z.output<typeof PodAutoscalerSpecSchema>;
export type PodAutoscalerSpecInput = z.input<typeof PodAutoscalerSpecSchema>;

/** One scaling decision as kept in the status (most recent last, at most {@link MAX_DECISIONS}). */
export interface ScalingDecision {
  /** Time of the decision (ms, wall or virtual). */
  atMs: number;
  from: number;
  to: number;
  /** Human-readable reason, e.g. `kpa: panic, demand 3.40 replicas over 6s`. */
  reason: string;
  /** True when the actuator accepted the change. */
  success: boolean;
  error?: string;
}
/** Status decisions kept (AIBrix keeps 5; we keep 20). */
export const MAX_DECISIONS = 20;

/** Status of a PodAutoscaler, written by the controller. */
export interface PodAutoscalerStatus {
  desiredReplicas: number;
  currentReplicas: number;
  readyReplicas: number;
  /** Last change of the desired count (ms), or null. */
  lastScaleMs: number | null;
  /** Last recommendation and its reason, even when it did not change anything. */
  lastRecommendation?: { atMs: number; desired: number; reason: string };
  decisions: ScalingDecision[];
  conditions: Condition[];
  /** Number of changes of the desired replica count since the controller started. */
  scalingEvents: number;
}

/** A PodAutoscaler: parsed spec plus status. */
export interface PodAutoscaler {
  spec: PodAutoscalerSpec & { name: string; model: string };
  status: PodAutoscalerStatus;
}

// ------------------------------------------------------------------------------------------------
// ModelAdapter

/** Artifact URL schemes accepted (fetched by `src/control/adapters/fetcher.ts`; `s3://` via the AWS SDK, `hf://` via the Hugging Face hub client, see `remote-sources.ts`). */
export const ARTIFACT_SCHEMES = ['file:', 'http:', 'https:', 's3:', 'hf:'] as const;

const artifactUrl = z.string().superRefine((v, ctx) => {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    ctx.addIssue({ code: 'custom', message: `not a URL: ${JSON.stringify(v)} (use file://, http(s)://, s3:// or hf://)` });
    return;
  }
  if (!(ARTIFACT_SCHEMES as readonly string[]).includes(u.protocol)) ctx.addIssue({ code: 'custom', message: `unsupported scheme ${u.protocol}// (use file://, http(s)://, s3:// or hf://)` });
});

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits (sha256)');

/** Per-endpoint load state of an adapter (kept in status so that backoff survives restarts). */
export const EndpointAdapterStateSchema = z.object({
  /** Failed load attempts on this endpoint since the last success. */
  attempts: z.number().int().min(0),
  /** Earliest time (ms) for the next attempt; 0 = now. */
  nextAttemptAtMs: z.number(),
  lastError: z.string().optional(),
  /** When the adapter was last loaded there (ms); a later scrape that no longer lists it means the engine lost it. */
  loadedAtMs: z.number().optional(),
});
export type EndpointAdapterState = z.infer<typeof EndpointAdapterStateSchema>;

/** Adapter phases. Pending -> Downloading -> Loading -> Ready; Failed (retrying or terminal); Deleting while unloading. */
export const AdapterPhaseSchema = z.enum(['Pending', 'Downloading', 'Loading', 'Ready', 'Failed', 'Deleting']);
export type AdapterPhase = z.infer<typeof AdapterPhaseSchema>;

/** ModelAdapter status (written by the adapter manager; accepted back on restart). */
export const ModelAdapterStatusSchema = z.object({
  phase: AdapterPhaseSchema,
  /** Endpoint ids the adapter is loaded on. */
  endpoints: z.array(z.string()),
  /** Local path of the downloaded artifact (what `lora_path` gets), once downloaded. */
  localPath: z.string().optional(),
  conditions: z.array(ConditionSchema),
  lastError: z.string().optional(),
  /** Download retry state: failed download attempts and the earliest next attempt (ms). */
  download: z.object({ attempts: z.number().int().min(0), nextAttemptAtMs: z.number() }),
  /** Per-endpoint load retry state, by endpoint id. */
  endpointStates: z.record(EndpointAdapterStateSchema),
  /** Spec generation the status reflects (bumped when the spec changes). */
  observedGeneration: z.number().int().min(0),
});
export type ModelAdapterStatus = z.infer<typeof ModelAdapterStatusSchema>;

/**
 * A `ModelAdapter` spec: a LoRA adapter served on endpoints of `baseModel`, requested by clients as
 * `model: <name>`.
 */
export const ModelAdapterSpecSchema = z
  .object({
    /** Adapter name = the model id clients use (vLLM `lora_name`). */
    name,
    /** Base model whose endpoints may load it. */
    baseModel: name,
    /** Where the weights are: `file:///abs/dir`, `http(s)://host/file` (or a URL ending in `/` for a directory of `files`), `s3://`, `hf://org/repo`. */
    artifactUrl,
    /** Expected sha256 of a single-file http(s) artifact, or per file name for a directory URL. Verified after download. */
    sha256: z.union([sha256, z.record(sha256)]).optional(),
    /** For a directory URL (ending in `/`): files to fetch. Default `adapter_config.json`, `adapter_model.safetensors`. */
    files: z.array(z.string().regex(/^[A-Za-z0-9._-]+$/, 'plain file name')).min(1).optional(),
    /**
     * Credentials: a named secret of the secret store, or an environment variable, holding a bearer token
     * (http(s), hf://; default for hf:// env `HF_TOKEN`) or S3 keys as `ACCESS_KEY_ID:SECRET_ACCESS_KEY` or JSON
     * `{accessKeyId, secretAccessKey, sessionToken?, region?}` (s3://; default env `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`). At most one.
     */
    credentials: z
      .object({ secret: z.string().min(1).optional(), env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment variable name').optional() })
      .strict()
      .refine((c) => (c.secret === undefined) !== (c.env === undefined), 'give exactly one of `secret` or `env`')
      .optional(),
    /** Endpoints to load on: a number (>= 1), or `all` endpoints of the base model. Default 1. */
    replicas: z.union([z.number().int().min(1), z.literal('all')]).default(1),
    /** Placement policy: `spread` (least load, most free slots; default), `leastAdapters` (AIBrix default), `binPack`. */
    placement: z.enum(['spread', 'leastAdapters', 'binPack']).default('spread'),
    /** Retry policy: attempts before terminal Failed (default 5), backoff base and cap in seconds (AIBrix: 5 s x 2^n, cap 300 s). */
    retry: z
      .object({
        maxAttempts: z.number().int().min(1).default(5),
        baseS: z.number().min(0).default(5),
        capS: z.number().min(0).default(300),
      })
      .strict()
      .default({}),
  })
  .strict();
export type ModelAdapterSpec = z.output<typeof ModelAdapterSpecSchema>;
export type ModelAdapterSpecInput = z.input<typeof ModelAdapterSpecSchema>;

/** A ModelAdapter: spec plus status. `generation` increases on every spec change. */
export interface ModelAdapter {
  spec: ModelAdapterSpec;
  status: ModelAdapterStatus;
  generation: number;
}

/** A fresh status (phase Pending, nothing loaded, no retries). */
export function newAdapterStatus(): ModelAdapterStatus {
  return { phase: 'Pending', endpoints: [], conditions: [], download: { attempts: 0, nextAttemptAtMs: 0 }, endpointStates: {}, observedGeneration: 0 };
}

/**
 * Sets (or replaces) a condition in a condition list, keeping `lastTransitionMs` when the status did
 * not change. Returns the same array (mutated).
 */
export function setCondition(list: Condition[], c: Omit<Condition, 'lastTransitionMs'>, nowMs: number): Condition[] {
  const i = list.findIndex((x) => x.type === c.type);
  if (i < 0) list.push({ ...c, lastTransitionMs: nowMs });
  else list[i] = { ...c, lastTransitionMs: list[i]!.status === c.status ? list[i]!.lastTransitionMs : nowMs };
  return list;
}
