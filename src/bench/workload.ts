/**
 * Workload generators: what each request asks for (lengths, prefix structure, sessions), separate
 * from when it is sent (`arrivals.ts`) and from its text (`prompt.ts`). Every generator is pure given
 * its seeded {@link Rng}, so the discrete-event simulator and the routing benchmark reuse them and
 * get the same workload the load client sends.
 *
 * Token counts are prompt *content* tokens (see `prompt.ts` for the chat template's extra tokens).
 */
import type { Rng } from './rng.ts';
import type { TraceRequest } from './traces.ts';
import { MOONCAKE_BLOCK_TOKENS } from './traces.ts';

/** One request's shape. */
export interface RequestSpec {
  /** Prompt content length in tokens (for literal `text`, its token count). */
  inputTokens: number;
  /** Output tokens to ask for (`max_tokens`; with `ignore_eos` the exact output length). */
  outputTokens: number;
  /** The request starts with the first `tokens` tokens of shared prefix `id` (same id = same text). */
  prefix?: { id: number; tokens: number };
  /** Mooncake-style prompt: one reusable 512-token block per id (last one partial). */
  hashIds?: number[];
  /** Seeds the request's unique text; equal keys give equal text. */
  key: string;
  /** Literal prompt text (ShareGPT, dataset files); used verbatim when present. */
  text?: string;
}

/** A multi-turn session: each turn is sent after the previous reply plus a think time. */
export interface SessionSpec {
  id: string;
  /** Shared system prompt length in tokens (0 for none); its text is shared by every session. */
  systemTokens: number;
  /** Turns in order; each `request.inputTokens` is the new user message only (context grows). */
  turns: Array<{ request: RequestSpec; thinkTimeMs: number }>;
}

/** One unit a workload is made of: a single request or a whole session. */
export type WorkItem = { kind: 'request'; request: RequestSpec } | { kind: 'session'; session: SessionSpec };

/** A normal distribution, clipped to `[min, max]` and rounded to an integer by the users. */
export interface Dist {
  mean: number;
  std: number;
}

function draw(rng: Rng, d: Dist | number, min: number, max = Infinity): number {
  const v = typeof d === 'number' ? d : d.mean + d.std * rng.normal();
  return Math.min(max, Math.max(min, v));
}

/** Fixed-length random prompts (vLLM's `random` dataset with range 0). Keys `r/<i>`. */
export function randomRequests(count: number, inputTokens: number, outputTokens: number): RequestSpec[] {
  if (!(Number.isInteger(inputTokens) && inputTokens >= 1)) throw new Error(`input-tokens must be an integer >= 1, got ${inputTokens}`);
  if (!(Number.isInteger(outputTokens) && outputTokens >= 1)) throw new Error(`output-tokens must be an integer >= 1, got ${outputTokens}`);
  return Array.from({ length: count }, (_, i) => ({ inputTokens, outputTokens, key: `r/${i}` }));
}

/** Shared-prefix workload parameters (AIBrix `synthetic_prefix_sharing_dataset.py` semantics). */
export interface SharedPrefixConfig {
  /** Distinct shared prefixes (N). */
  numPrefixes: number;
  /** Requests per prefix (M). */
  samplesPerPrefix: number;
  /** Total prompt length in tokens. */
  totalTokens: Dist;
  /** Shared fraction of the prompt, 0..1 (drawn once per prefix). */
  sharedFraction: Dist;
  /** Output length in tokens (fixed, or a distribution). */
  outputTokens: Dist | number;
  /** Shuffle requests across prefixes (default true); otherwise all of prefix 0 first, ... */
  shuffle?: boolean;
}

/**
 * Application profiles of the Preble paper (Srivatsa et al., "Preble: Efficient Distributed Prompt
 * Scheduling for LLM Serving", ICLR 2025, arXiv 2407.00023, Table 1), as AIBrix's benchmark README
 * copies them (reference `aibrix-bench-tests-issues.md` A1.1): prompt length mean +- std and shared
 * fraction mean +- std; 10 prefixes x 200 samples is the typical size. Output lengths are not in the
 * reference: they default to the command line's `--output-tokens`.
 */
export const PREBLE_PRESETS = {
  'tool-use': { totalTokens: { mean: 1835, std: 742 }, sharedFraction: { mean: 0.85, std: 0.13 } }, // Toolbench
  agents: { totalTokens: { mean: 2285, std: 471 }, sharedFraction: { mean: 0.97, std: 0.14 } }, // Embodied agent (ALFWorld)
  programming: { totalTokens: { mean: 3871, std: 1656 }, sharedFraction: { mean: 0.97, std: 0.074 } }, // APPS
  'video-qa': { totalTokens: { mean: 9865, std: 5976 }, sharedFraction: { mean: 0.88, std: 0.32 } }, // NExT-QA
  loogle: { totalTokens: { mean: 23474, std: 6105 }, sharedFraction: { mean: 0.91, std: 0.24 } }, // LooGLE
} as const satisfies Record<string, Pick<SharedPrefixConfig, 'totalTokens' | 'sharedFraction'>>;

/** Names of the built-in Preble presets. */
export type PreblePreset = keyof typeof PREBLE_PRESETS;

/**
 * Generates N prefixes x M requests. Per prefix g: a length `T_g ~ totalTokens` and a fraction
 * `f_g ~ sharedFraction` (clipped to 0..1) give the shared length `round(T_g * f_g)`. Per request:
 * `T ~ totalTokens`, the unique suffix is `max(1, round(T * (1 - f_g)))` tokens. So totals follow
 * `totalTokens` and the shared fraction follows `sharedFraction`. Keys `sp/<g>/<j>`.
 * @throws Error for non-positive counts.
 */
export function sharedPrefixRequests(cfg: SharedPrefixConfig, rng: Rng): RequestSpec[] {
  if (!(Number.isInteger(cfg.numPrefixes) && cfg.numPrefixes >= 1)) throw new Error(`numPrefixes must be an integer >= 1, got ${cfg.numPrefixes}`);
  if (!(Number.isInteger(cfg.samplesPerPrefix) && cfg.samplesPerPrefix >= 1)) throw new Error(`samplesPerPrefix must be an integer >= 1, got ${cfg.samplesPerPrefix}`);
  const out: RequestSpec[] = [];
  for (let g = 0; g < cfg.numPrefixes; g++) {
    const tg = draw(rng, cfg.totalTokens, 2);
    const fg = draw(rng, cfg.sharedFraction, 0, 1);
    const shared = Math.round(tg * fg);
    for (let j = 0; j < cfg.samplesPerPrefix; j++) {
      const t = draw(rng, cfg.totalTokens, 2);
      const suffix = Math.max(1, Math.round(t * (1 - fg)));
      const req: RequestSpec = {
        inputTokens: shared + suffix,
        outputTokens: Math.max(1, Math.round(draw(rng, cfg.outputTokens, 1))),
        key: `sp/${g}/${j}`,
      };
      if (shared > 0) req.prefix = { id: g, tokens: shared };
      out.push(req);
    }
  }
  return cfg.shuffle === false ? out : rng.shuffle(out);
}

/** Multi-turn session parameters (AIBrix `multiturn_prefix_sharing_dataset.py` semantics). */
export interface MultiTurnConfig {
  sessions: number;
  /** Turns per session (clipped to >= 1). */
  turns: Dist | number;
  /** New user tokens per turn (clipped to >= 1). */
  promptTokens: Dist | number;
  /** Output tokens per turn (clipped to >= 1). */
  outputTokens: Dist | number;
  /** Mean think time between a reply and the next turn, seconds (exponential; 0 = none). */
  thinkTimeS: number;
  /** Shared system prompt tokens (default 0). */
  systemTokens?: number;
}

/**
 * Generates sessions; turn k of session s is keyed `mt/<s>/<k>`. The context a turn sends grows:
 * system prompt + every earlier user message and reply + the new message
 * (see {@link sessionContextTokens}).
 */
export function multiTurnSessions(cfg: MultiTurnConfig, rng: Rng): SessionSpec[] {
  if (!(Number.isInteger(cfg.sessions) && cfg.sessions >= 1)) throw new Error(`sessions must be an integer >= 1, got ${cfg.sessions}`);
  if (!(cfg.thinkTimeS >= 0)) throw new Error(`thinkTimeS must be >= 0, got ${cfg.thinkTimeS}`);
  const out: SessionSpec[] = [];
  for (let s = 0; s < cfg.sessions; s++) {
    const nTurns = Math.max(1, Math.round(draw(rng, cfg.turns, 1)));
    const turns: SessionSpec['turns'] = [];
    for (let k = 0; k < nTurns; k++) {
      turns.push({
        request: {
          inputTokens: Math.max(1, Math.round(draw(rng, cfg.promptTokens, 1))),
          outputTokens: Math.max(1, Math.round(draw(rng, cfg.outputTokens, 1))),
          key: `mt/${s}/${k}`,
        },
        thinkTimeMs: k === 0 || cfg.thinkTimeS === 0 ? 0 : rng.exponential(1 / (cfg.thinkTimeS * 1000)),
      });
    }
    out.push({ id: `s${s}`, systemTokens: cfg.systemTokens ?? 0, turns });
  }
  return out;
}

/**
 * Prompt tokens turn `k` (0-based) of `session` sends, assuming each earlier reply had its planned
 * `outputTokens`: system + sum over j < k of (input_j + output_j) + input_k.
 */
export function sessionContextTokens(session: SessionSpec, k: number): number {
  let n = session.systemTokens;
  for (let j = 0; j < k; j++) n += session.turns[j]!.request.inputTokens + session.turns[j]!.request.outputTokens;
  return n + session.turns[k]!.request.inputTokens;
}

/** Trace rows to request specs (keys `t/<i>`), keeping Mooncake hash ids. */
export function traceRequests(rows: readonly TraceRequest[]): RequestSpec[] {
  return rows.map((r, i) => {
    const spec: RequestSpec = { inputTokens: r.inputTokens, outputTokens: Math.max(1, r.outputTokens), key: `t/${i}` };
    if (r.hashIds) spec.hashIds = r.hashIds;
    return spec;
  });
}

/**
 * Mooncake block reuse as a shared prefix: the number of leading tokens of each request whose
 * blocks appeared in an earlier request (an infinite prefix cache's hits), for analysis and the DES.
 */
export function hashIdPrefixHits(rows: readonly { inputTokens: number; hashIds?: readonly number[] }[]): number[] {
  const seen = new Set<number>();
  return rows.map((r) => {
    let hit = 0;
    let run = true;
    const ids = r.hashIds ?? [];
    for (let b = 0; b < ids.length; b++) {
      if (run && seen.has(ids[b]!)) hit += Math.min(MOONCAKE_BLOCK_TOKENS, r.inputTokens - b * MOONCAKE_BLOCK_TOKENS);
      else run = false;
    }
    for (const id of ids) seen.add(id);
    return hit;
  });
}
