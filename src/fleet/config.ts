/**
 * The fleet file: the YAML document `inferplane up -c fleet.yaml` and `inferplane gateway -c fleet.yaml`
 * read. Declares the gateway's settings, API keys and limits, and the models with their endpoints in
 * one of three forms (static URLs, managed processes from a command template, the built-in simulator).
 *
 * Parsing is strict: unknown keys are rejected, and every error names the file, the line and the field
 * path (zod issue paths mapped to source positions through the `yaml` package's node ranges).
 * Nothing is half-applied: `loadFleetFile` either returns a complete `FleetConfig` or throws.
 *
 * The routing-profile fields of a model (`lockedRoutingStrategy`, `defaultProfile`, `profiles`) are the
 * routing module's schema (`src/routing/profiles.ts`, after AIBrix's `model.aibrix.ai/config`
 * annotation, `../shared/reference/aibrix-gateway.md` §5); their strategy specs are checked at load time.
 */
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import { z } from 'zod';
import { modelRoutingProfilesShape, refineModelRoutingProfiles, RoutingProfileError, validateModelRoutingProfiles, type RoutingProfile } from '../routing/profiles.ts';

const urlString = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//.test(u), 'must be an http:// or https:// URL')
  .transform((u) => u.replace(/\/+$/, ''));

const dialect = z.enum(['vllm', 'sglang']);

/** A ZeroMQ endpoint to connect to (`tcp://host:port` or `ipc://path`); wildcards are for binding only. */
const zmqConnect = z
  .string()
  .regex(/^(tcp:\/\/[^*:\s]+:\d{1,5}|ipc:\/\/\S+)$/, 'must be a ZeroMQ endpoint to connect to: tcp://host:port (no *) or ipc://path');

/**
 * An engine's KV-event publisher (vLLM `--kv-events-config '{"enable_kv_cache_events":true,
 * "publisher":"zmq","endpoint":"tcp://*:5557"}'`, reference vllm-api.md §4): the address string, or
 * `{endpoint, replay?, topic?}` where `replay` is the publisher's `replay_endpoint` ROUTER.
 */
const kvEventsAddress = z
  .union([
    zmqConnect,
    z
      .object({
        endpoint: zmqConnect,
        replay: zmqConnect.optional(),
        topic: z.string().optional(),
      })
      .strict(),
  ])
  .transform((v) => (typeof v === 'string' ? { endpoint: v } : v));

/** One static endpoint: a URL, or an object with a URL and optional role/labels/KV-event publisher. */
const staticEndpoint = z.union([
  urlString,
  z
    .object({
      url: urlString,
      id: z.string().min(1).optional(),
      role: z.string().min(1).optional(),
      labels: z.record(z.string()).optional(),
      /** The engine's KV-event publisher, for `kv-aware` / `cache-cost-kv`. */
      kvEvents: kvEventsAddress.optional(),
    })
    .strict(),
]);

const simulatorSchema = z
  .object({
    gpu: z.string().min(1).default('H100'),
    replicas: z.number().int().min(0).max(64).default(1),
    /** Simulated time runs this many times faster than wall time (1 = real time). */
    timeScale: z.number().positive().optional(),
    /**
     * Each simulated replica publishes KV events (and serves replay) on free loopback ports the
     * fleet picks; the gateway subscribes for `kv-aware` / `cache-cost-kv`.
     */
    kvEvents: z.boolean().default(false),
  })
  .passthrough();

const modelSchema = z
  .object({
    name: z.string().min(1),
    dialect: dialect.default('vllm'),
    role: z.string().min(1).optional(),
    labels: z.record(z.string()).optional(),
    /** Default routing strategy for this model (a name or weighted combination). */
    routing: z.string().min(1).optional(),
    routingOptions: z.record(z.unknown()).optional(),
    /** Routing profiles: `lockedRoutingStrategy`, `defaultProfile`, `profiles` (the routing module's schema, src/routing/profiles.ts). */
    ...modelRoutingProfilesShape,
    /** Per-model requests-per-second limit (0 or absent = none); a profile's value overrides it. */
    requestsPerSecond: z.number().nonnegative().optional(),
    /** Bearer token the gateway sends upstream (e.g. vLLM's --api-key). */
    upstreamApiKey: z.string().min(1).optional(),
    endpoints: z.array(staticEndpoint).min(1).optional(),
    command: z.string().min(1).optional(),
    replicas: z.number().int().min(0).max(256).optional(),
    env: z.record(z.string()).optional(),
    cwd: z.string().optional(),
    healthPath: z.string().startsWith('/').default('/health'),
    /** ms a managed replica has to answer its health check after start. */
    startupTimeoutMs: z.number().int().positive().default(600_000),
    simulator: simulatorSchema.optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    const kinds = [m.endpoints ? 'endpoints' : null, m.command ? 'command' : null, m.simulator ? 'simulator' : null].filter(Boolean);
    if (kinds.length !== 1) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message: kinds.length === 0 ? 'a model needs one of `endpoints`, `command` or `simulator`' : `only one of ${kinds.join(', ')} may be given`,
        path: kinds.length === 0 ? ['name'] : [String(kinds[1])],
      });
    }
    if (m.command && !m.command.includes('{port}')) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'the command template must contain {port}', path: ['command'] });
    }
    if (m.command && m.command.includes('{kvEventsReplayPort}') && !m.command.includes('{kvEventsPort}')) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: '{kvEventsReplayPort} needs {kvEventsPort} in the same template', path: ['command'] });
    }
    if (m.simulator?.kvEvents && ('kvEventsEndpoint' in m.simulator || 'kvEventsReplayEndpoint' in m.simulator)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'kvEvents: true picks the ports itself; drop kvEventsEndpoint / kvEventsReplayEndpoint', path: ['simulator', 'kvEvents'] });
    }
    if (m.replicas !== undefined && !m.command) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: '`replicas` applies to `command` models (use simulator.replicas for the simulator)', path: ['replicas'] });
    }
    refineModelRoutingProfiles(m, ctx);
    // Strategy specs are checked at load time, not per request (unknown names, bad weights or options).
    try {
      validateModelRoutingProfiles(m);
    } catch (e) {
      if (!(e instanceof RoutingProfileError)) throw e;
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: e.detail, path: e.path });
    }
  });

const apiKeySchema = z
  .object({
    name: z.string().min(1),
    key: z.string().min(8, 'API keys must be at least 8 characters'),
    /** Requests per minute (absent = unlimited). */
    rpm: z.number().int().positive().optional(),
    /** Tokens (prompt + completion, from usage) per minute (absent = unlimited). */
    tpm: z.number().int().positive().optional(),
  })
  .strict();

const gatewaySchema = z
  .object({
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8080),
    /** Fleet-wide default routing strategy. */
    routing: z.string().min(1).default('least-request'),
    /** Key that protects the admin API (`/admin/*`); absent = admin API disabled. */
    adminKey: z.string().min(8).optional(),
    /** Largest accepted request body, bytes (413 above). */
    maxBodyBytes: z.number().int().positive().default(4 * 1024 * 1024),
    /** Attempts per request over different endpoints (connection failure / 5xx before the first byte). */
    maxAttempts: z.number().int().min(1).max(10).default(3),
    /** Upstream timeout, ms, for the response headers and between body chunks (504 when hit before any byte). */
    upstreamTimeoutMs: z.number().int().positive().default(300_000),
    /** Drain grace on SIGINT/SIGTERM, ms. */
    drainGraceMs: z.number().int().min(0).default(30_000),
    /** Engine /metrics scrape period and timeout, ms. */
    scrapeIntervalMs: z.number().int().positive().default(500),
    scrapeTimeoutMs: z.number().int().positive().default(1_000),
    /** /health check period, ms. */
    healthIntervalMs: z.number().int().positive().default(1_000),
    /**
     * Scale from zero: requests held per model while a model with `scaleToZero` has no ready replica
     * (503 `cold_start_queue_full` above), and how long each may wait, ms (503 `cold_start_timeout`).
     */
    coldStartQueue: z.number().int().min(0).default(100),
    coldStartTimeoutMs: z.number().int().positive().default(120_000),
    /** Log level for pino ('silent' to disable request logs). */
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .strict();

const limitsSchema = z
  .object({
    /** Where counters live: `memory` (one process) or `redis` (shared by gateway replicas). */
    store: z.enum(['memory', 'redis']).default('memory'),
    redisUrl: z.string().optional(),
  })
  .strict()
  .superRefine((l, ctx) => {
    if (l.store === 'redis' && !l.redisUrl) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'store: redis needs redisUrl', path: ['redisUrl'] });
  });

export const fleetSchema = z
  .object({
    gateway: gatewaySchema.default({}),
    /** Directory for managed-replica logs and state (relative to the fleet file). */
    stateDir: z.string().default('.inferplane'),
    apiKeys: z.array(apiKeySchema).default([]),
    limits: limitsSchema.default({}),
    models: z.array(modelSchema).min(1),
    /** PodAutoscaler documents (validated by the autoscaler controller, src/control/resources.ts). */
    autoscalers: z.array(z.record(z.unknown())).default([]),
    /** ModelAdapter (LoRA) documents (validated by the adapter manager, src/control/resources.ts). */
    adapters: z.array(z.record(z.unknown())).default([]),
  })
  .strict()
  .superRefine((f, ctx) => {
    const seen = new Set<string>();
    f.models.forEach((m, i) => {
      if (seen.has(m.name)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `duplicate model name "${m.name}"`, path: ['models', i, 'name'] });
      seen.add(m.name);
    });
    const keys = new Set<string>();
    f.apiKeys.forEach((k, i) => {
      if (keys.has(k.key)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'duplicate API key', path: ['apiKeys', i, 'key'] });
      keys.add(k.key);
    });
  });

/** A validated fleet document (defaults applied). */
export type FleetConfig = z.infer<typeof fleetSchema>;
export type ModelConfig = FleetConfig['models'][number];
export type ApiKeyConfig = FleetConfig['apiKeys'][number];
/** One routing profile of a model (the routing module's `RoutingProfile`). */
export type ProfileConfig = RoutingProfile;
/** Input form (before defaults), for building fleets in code (demo fleet, tests). */
export type FleetInput = z.input<typeof fleetSchema>;

/** A fleet-file error: `file:line:col: path: message` lines, one per problem. */
export class FleetConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: { path: string; line?: number; col?: number; message: string }[],
  ) {
    super(problems.map((p) => `${file}${p.line ? `:${p.line}:${p.col ?? 1}` : ''}: ${p.path || '(root)'}: ${p.message}`).join('\n'));
    this.name = 'FleetConfigError';
  }
}

function locate(doc: Document, lc: LineCounter, path: (string | number)[]): { line: number; col: number } | undefined {
  // Walk up the path until a node exists (a missing field is reported at its parent).
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    if (isNode(node) && node.range) {
      const pos = lc.linePos(node.range[0]);
      return { line: pos.line, col: pos.col };
    }
  }
  return undefined;
}

/**
 * Parses and validates fleet YAML text. `file` is only used in messages.
 * @throws FleetConfigError with one entry per YAML syntax error or schema issue (file, line, field path).
 */
export function parseFleet(text: string, file = '<fleet>'): FleetConfig {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new FleetConfigError(
      file,
      doc.errors.map((e) => {
        const pos = e.linePos?.[0] ?? lc.linePos(e.pos[0]);
        return { path: '', line: pos?.line, col: pos?.col, message: e.message.split('\n')[0] };
      }),
    );
  }
  const raw = doc.toJS() ?? {};
  return validateFleet(raw, file, (p) => locate(doc, lc, p));
}

/**
 * An `invalid_union` issue (a value that may be a string or an object, e.g. an endpoint) says only
 * "Invalid input" at the union's path; report instead the issues of the branch whose type matched
 * the value (the one without an `invalid_type` at the union's own path), so the field is named.
 */
function unionBranchIssues(issue: z.ZodIssue): z.ZodIssue[] {
  if (issue.code !== z.ZodIssueCode.invalid_union) return [issue];
  const depth = issue.path.length;
  const branches = issue.unionErrors.filter((e) => !e.issues.some((i) => i.code === z.ZodIssueCode.invalid_type && i.path.length === depth));
  if (branches.length !== 1) return [issue];
  return branches[0]!.issues.flatMap(unionBranchIssues);
}

/** Validates an already-parsed fleet object (e.g. the embedded demo fleet). @throws FleetConfigError */
export function validateFleet(raw: unknown, file = '<fleet>', where?: (path: (string | number)[]) => { line: number; col: number } | undefined): FleetConfig {
  const r = fleetSchema.safeParse(raw);
  if (r.success) return r.data;
  throw new FleetConfigError(
    file,
    r.error.issues.flatMap(unionBranchIssues).map((i) => {
      const pos = where?.(i.path);
      return { path: i.path.join('.'), line: pos?.line, col: pos?.col, message: i.message };
    }),
  );
}

/** Reads and validates a fleet file. @throws FleetConfigError (also for an unreadable file). */
export function loadFleetFile(file: string): FleetConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new FleetConfigError(file, [{ path: '', message: `cannot read: ${(e as Error).message}` }]);
  }
  return parseFleet(text, file);
}
