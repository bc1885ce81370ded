/**
 * The experiment file of `inferplane sim run` (JSON or YAML), validated with zod. Errors name the
 * file and the field path (e.g. `exp.yaml: workload.stages.0.rate: Number must be greater than 0`).
 *
 * ```json
 * { "engine": { "model": "meta-llama/Llama-3.1-8B-Instruct", "gpu": "H100", "maxNumSeqs": 128 },
 *   "replicas": 2, "router": "least-request", "scrapeIntervalMs": 500,
 *   "workload": { "type": "sharedPrefix", "stages": [{ "rate": 8, "durationS": 600 }],
 *                 "arrival": "constant", "systemPromptTokens": 100, "questionTokens": 447,
 *                 "outputTokens": 248, "prefixGroups": 9, "promptsPerGroup": 5 },
 *   "seed": 1 }
 * ```
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { engineConfigSchema } from '../core/config.ts';
import { DesAutoscaler } from '../../control/autoscaler/des-hook.ts';

const positive = z.number().positive();
const stage = z.object({ rate: positive, durationS: positive }).strict();

/** A length distribution (tokens): a constant, or uniform / normal / exponential clipped to [min, max]. */
export const lengthDistSchema = z.union([
  z.number().int().min(1),
  z.object({ type: z.literal('uniform'), min: z.number().int().min(1), max: z.number().int().min(1) }).strict(),
  z.object({ type: z.literal('normal'), mean: positive, std: z.number().min(0), min: z.number().int().min(1).default(1), max: z.number().int().min(1).optional() }).strict(),
  z.object({ type: z.literal('exponential'), mean: positive, min: z.number().int().min(1).default(1), max: z.number().int().min(1).optional() }).strict(),
]);
export type LengthDist = z.infer<typeof lengthDistSchema>;

/**
 * Users of a workload (for fairness strategies such as `vtc-basic`): each request gets user
 * `user-K`, K in 1..count drawn with probability ∝ 1 / K^zipf (zipf 0 = uniform, default), from its own
 * seeded stream (arrivals and lengths are the same with or without users). The DES passes it as
 * `RoutingRequest.userId` and header `x-user-id`.
 */
export const usersSchema = z
  .object({
    count: z.number().int().min(1).max(1_000_000),
    zipf: z.number().min(0).max(10).default(0),
  })
  .strict();

/** inference-perf `shared_prefix`: G groups share a system prompt; each group has P distinct questions; requests cycle through the G x P prompts (or get unique questions, `questionReuse`). */
export const sharedPrefixSchema = z
  .object({
    type: z.literal('sharedPrefix'),
    stages: z.array(stage).min(1),
    arrival: z.enum(['constant', 'poisson']).default('constant'),
    systemPromptTokens: z.number().int().min(0),
    questionTokens: z.number().int().min(1),
    outputTokens: z.number().int().min(1),
    prefixGroups: z.number().int().min(1),
    promptsPerGroup: z.number().int().min(1),
    /**
     * `cycle` (default): the G x P prompts repeat in round-robin order (a prompt is re-sent every
     * G x P requests, so it can hit the prefix cache whole). `unique`: every request gets a fresh
     * question after its group's shared system prompt (only the system prompt is shared).
     */
    questionReuse: z.enum(['cycle', 'unique']).default('cycle'),
    users: usersSchema.optional(),
  })
  .strict();

/** Poisson (or constant) arrivals with random lengths, unique prompts. */
export const poissonSchema = z
  .object({
    type: z.literal('poisson'),
    stages: z.array(stage).min(1),
    arrival: z.enum(['constant', 'poisson']).default('poisson'),
    inputTokens: lengthDistSchema,
    outputTokens: lengthDistSchema,
    users: usersSchema.optional(),
  })
  .strict();

/** A replayed trace (`src/bench/traces.ts` loaders); `timeScale` multiplies inter-arrival times. */
export const traceSchema = z
  .object({
    type: z.literal('trace'),
    path: z.string().min(1),
    format: z.enum(['azure', 'mooncake']),
    timeScale: positive.default(1),
    startS: z.number().min(0).default(0),
    durationS: positive.optional(),
    maxRequests: z.number().int().positive().optional(),
    /** Clip output lengths to this many tokens (and prompts so prompt + output fit `maxModelLen`). */
    maxOutputTokens: z.number().int().positive().optional(),
    /**
     * Load amplification: each row becomes `copies` requests with the row's lengths and distinct
     * prompts, spread evenly over the gap to the next row (the trace's shape kept, its level times
     * `copies`). Default 1. Mooncake rows keep their `hash_ids` in every copy.
     */
    copies: z.number().int().min(1).max(1000).default(1),
    users: usersSchema.optional(),
  })
  .strict();

/** `replicas` with an autoscaler: bounds and start count (min/max override the autoscaler's minReplicas/maxReplicas). */
export const replicaBoundsSchema = z
  .object({
    min: z.number().int().min(0).max(4096).optional(),
    max: z.number().int().min(1).max(4096).optional(),
    initial: z.number().int().min(1).max(4096).optional(),
  })
  .strict();

export const experimentSchema = z
  .object({
    name: z.string().optional(),
    engine: engineConfigSchema,
    /**
     * Engine replicas: a count (fixed), or `{min, max, initial}` (only with `autoscaler`; initial
     * defaults to min). With an autoscaler and a plain count, min = max = the count.
     */
    replicas: z.union([z.number().int().min(1).max(4096), replicaBoundsSchema]).default(1),
    /**
     * A PodAutoscaler spec (`src/control/resources.ts`), e.g. `{"strategy": "kpa", "metric":
     * "kvCacheUsage", "target": 0.7}`, the rest defaulted; its target model is the experiment's
     * model. Runs the same controller as `inferplane up` on virtual time (`des-hook.ts`).
     */
    autoscaler: z.record(z.unknown()).optional(),
    /** Start-up delay of a replica the autoscaler adds (s of simulated time; model load, warm-up). Default 60. Only with `autoscaler`. */
    replicaStartupS: z.number().min(0).max(3600).optional(),
    /** Routing strategy spec (`random`, `round-robin`, `least-request`, weighted `a:2,b:1`...). */
    router: z.string().min(1).default('random'),
    routerOptions: z.record(z.unknown()).optional(),
    /**
     * For routers that consume KV events (`kv-aware`, `cache-cost-kv`): delay from an engine step's
     * end to its KV-event batch reaching the router (ms of simulated time, >= 0; default 0), modelling
     * the staleness of the real ZeroMQ event stream. Batches arrive in order per engine.
     */
    kvEventDelayMs: z.number().min(0).max(3_600_000).optional(),
    /**
     * How often the router's view of engine metrics refreshes, and the autoscaler ticks (ms of
     * simulated time). Default 500, or 1000 with an autoscaler (its metric buckets are 1 s).
     */
    scrapeIntervalMs: positive.optional(),
    workload: z.discriminatedUnion('type', [sharedPrefixSchema, poissonSchema, traceSchema]),
    /** Client timeout (s): requests not finished this long after arrival are aborted and counted failed. */
    requestTimeoutS: positive.optional(),
    seed: z.number().int().default(0),
  })
  .strict();

export type Experiment = z.infer<typeof experimentSchema>;
export type ExperimentInput = z.input<typeof experimentSchema>;
export type WorkloadSpec = Experiment['workload'];

/**
 * Validates an experiment object.
 * @param source file name used in error messages.
 * @throws Error `SOURCE: path.to.field: reason; ...` listing every zod issue.
 */
export function parseExperiment(input: unknown, source = '<experiment>'): Experiment {
  const r = experimentSchema.safeParse(input);
  if (!r.success) {
    const fmt = (i: z.ZodIssue): string[] => {
      if (i.code === 'invalid_union') {
        // Report the branches that matched the value's type (e.g. `replicas: 0` -> "must be >= 1"), not every branch's type error.
        const inner = i.unionErrors.flatMap((e) => e.issues).filter((u) => !(u.code === 'invalid_type' && u.path.join('.') === i.path.join('.')));
        if (inner.length) return inner.flatMap(fmt);
      }
      let m = i.message;
      if (i.code === 'unrecognized_keys') m = `unknown field(s) ${i.keys.map((k) => `"${k}"`).join(', ')}`;
      if (i.code === 'invalid_union' && i.path[0] === 'replicas') m = 'expected a number or {min, max, initial}';
      return [`${i.path.length ? i.path.join('.') : '(root)'}: ${m}`];
    };
    throw new Error(`${source}: ${[...new Set(r.error.issues.flatMap(fmt))].join('; ')}`);
  }
  const d = r.data;
  if (d.autoscaler === undefined) {
    if (typeof d.replicas === 'object') throw new Error(`${source}: replicas: {min, max, initial} needs an autoscaler section (without one, give a number)`);
    if (d.replicaStartupS !== undefined) throw new Error(`${source}: replicaStartupS: only used with an autoscaler section`);
  } else {
    if (typeof d.replicas === 'object' && d.replicas.min !== undefined && d.replicas.max !== undefined && d.replicas.min > d.replicas.max)
      throw new Error(`${source}: replicas.max: must be >= replicas.min (${d.replicas.min}), got ${d.replicas.max}`);
    const model = typeof d.engine.model === 'string' ? d.engine.model : undefined;
    const given = d.autoscaler.model;
    if (given !== undefined && model !== undefined && given !== model) throw new Error(`${source}: autoscaler.model: must be the experiment's model "${model}" (or left out), got ${JSON.stringify(given)}`);
    try {
      // Validates the spec and the bounds exactly as the run will use them (nothing is started).
      new DesAutoscaler({ spec: d.autoscaler, model: model ?? 'model', replicas: d.replicas, replicaStartupS: d.replicaStartupS });
    } catch (e) {
      throw new Error(`${source}: ${(e as Error).message}`);
    }
  }
  const w = r.data.workload;
  if (w.type === 'poisson') {
    for (const [k, d] of [['inputTokens', w.inputTokens], ['outputTokens', w.outputTokens]] as const)
      if (typeof d === 'object' && d.max !== undefined && d.max < d.min) throw new Error(`${source}: workload.${k}.max: must be >= min`);
  }
  return r.data;
}

/**
 * Reads and validates an experiment file (`.json`, `.yaml` or `.yml`).
 * @throws Error naming the file for unreadable files, syntax errors and schema errors.
 */
export function loadExperiment(path: string): Experiment {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read experiment file (${(e as Error).message})`);
  }
  let obj: unknown;
  const ext = extname(path).toLowerCase();
  try {
    obj = ext === '.yaml' || ext === '.yml' ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid ${ext === '.yaml' || ext === '.yml' ? 'YAML' : 'JSON'}: ${(e as Error).message}`);
  }
  return parseExperiment(obj, path);
}
