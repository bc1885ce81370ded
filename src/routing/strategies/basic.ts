/**
 * The load-based built-in strategies as presets of filters + scorers + a picker:
 * `random`, `round-robin`, `least-request`, `least-kv-cache`, `least-latency`, `throughput`,
 * `power-of-two`. Behaviours follow AIBrix (aibrix-gateway.md sections 2.2-2.3) except where noted:
 * a missing or stale engine signal never reads as zero and never silently degrades to random;
 * each metric strategy falls back to the gateway's own counters (documented per strategy and in
 * docs/routing.md).
 */
import { z } from 'zod';
import type { EndpointState } from '../../engines/state.ts';
import type { Filter, RoutingContext, RoutingDecision, RoutingRequest, RoutingStrategy } from '../types.ts';
import {
  BASE_FILTERS,
  type DetailedScorer,
  MetricScorer,
  PresetStrategy,
  applyFilters,
  freshFilter,
  maxScorePicker,
  noEndpoint,
  powerOfTwoPicker,
  randomPicker,
} from '../framework.ts';
import { commonOptionsShape, loadModeSchema, parseOptions } from '../options.ts';
import { type LoadMode, fresh, requestLoad } from '../signals.ts';

/** Base filters plus, when `excludeStale`, the fresh-signals filter. */
export function baseFilters(excludeStale: boolean | undefined): Filter[] {
  return excludeStale ? [...BASE_FILTERS, freshFilter] : [...BASE_FILTERS];
}

/**
 * Request-load scorer (lower is better): `requestLoad(ep, mode)`, always defined because it falls
 * back to the gateway's in-flight count (signals.ts `LoadMode`).
 */
export function requestLoadScorer(mode: LoadMode = 'max'): DetailedScorer {
  const label = mode === 'inflight' ? 'in-flight requests' : mode === 'sum' ? 'in-flight + engine running+waiting' : 'request load max(in-flight, running+waiting)';
  return new MetricScorer('request-load', label, true, (ep) => requestLoad(ep, mode));
}

/** Gateway in-flight tokens scorer (lower is better; always defined). */
export const inflightTokensScorer: DetailedScorer = new MetricScorer('inflight-tokens', 'in-flight tokens', true, (ep) => ep.inflightTokens);

const commonSchema = z.object({ ...commonOptionsShape }).strict();
const loadSchema = z.object({ ...commonOptionsShape, loadMode: loadModeSchema.optional() }).strict();

/** `random`: uniform over ready endpoints of the base model. Not combinable (no scores). */
export function createRandom(options?: Record<string, unknown>): RoutingStrategy {
  const o = parseOptions('random', commonSchema, options);
  const s = new PresetStrategy('random', baseFilters(o.excludeStale), [], randomPicker);
  return withoutScore(s);
}

/**
 * `least-request`: fewest requests, `requestLoad(ep, loadMode)` (default `max(inflightRequests,
 * running + waiting)`; engine counts ignored when stale/missing). Ties: uniform random.
 * Options: `loadMode` (`max` | `sum` | `inflight`), `excludeStale`.
 */
export function createLeastRequest(options?: Record<string, unknown>): RoutingStrategy {
  const o = parseOptions('least-request', loadSchema, options);
  return new PresetStrategy('least-request', baseFilters(o.excludeStale), [{ scorer: requestLoadScorer(o.loadMode), weight: 1 }], maxScorePicker);
}

/**
 * `least-kv-cache`: lowest KV cache usage (0..1, `kvCacheUsage`). Endpoints without a fresh
 * value are unscored (score 0, never preferred over a measured one); when no candidate has one,
 * falls back to `least-request` load. Options: `loadMode` (for the fallback), `excludeStale`.
 */
export function createLeastKvCache(options?: Record<string, unknown>): RoutingStrategy {
  const o = parseOptions('least-kv-cache', loadSchema, options);
  const scorer = new MetricScorer('kv-cache', 'KV cache usage', true, (ep) => fresh(ep, ep.kvCacheUsage), requestLoadScorer(o.loadMode));
  return new PresetStrategy('least-kv-cache', baseFilters(o.excludeStale), [{ scorer, weight: 1 }], maxScorePicker);
}

/**
 * `throughput`: lowest token load `2 * promptTokensPerS + generationTokensPerS` (tokens/s over
 * the last scrape interval; the prompt weight 2 is AIBrix throughput.go's). Endpoints without both
 * fresh values are unscored; none -> fallback to the gateway's in-flight tokens.
 */
export function createThroughput(options?: Record<string, unknown>): RoutingStrategy {
  const o = parseOptions('throughput', commonSchema, options);
  const scorer = new MetricScorer(
    'token-throughput',
    'token load 2*prompt+gen tok/s',
    true,
    (ep) => {
      const p = fresh(ep, ep.promptTokensPerS);
      const g = fresh(ep, ep.generationTokensPerS);
      return p === undefined || g === undefined ? undefined : 2 * p + g;
    },
    inflightTokensScorer,
  );
  return new PresetStrategy('throughput', baseFilters(o.excludeStale), [{ scorer, weight: 1 }], maxScorePicker);
}

const latencySchema = z
  .object({
    ...commonOptionsShape,
    /** Expected output tokens when the request gives no smaller `max_tokens` (AIBrix guesses 100). */
    outputTokens: z.number().int().positive().optional(),
  })
  .strict();

/**
 * Estimated latency of a request on an endpoint, ms (lower is better):
 *
 *   queued    = max(waiting, inflightRequests - running, 0)       (requests ahead of this one)
 *   queueMs   = queued * ttft.mean                                 (each must get its prefill first)
 *   prefillMs = ttft.mean                                          (this request's own TTFT at the current load)
 *   decodeMs  = min(max_tokens, outputTokens) * itl.mean           (outputTokens default 100)
 *   estimate  = queueMs + prefillMs + decodeMs
 *
 * `ttft.mean`/`itl.mean` are the engine's TTFT and ITL over the last scrape interval; `inflight -
 * running` counts requests this gateway sent since the scrape. Missing signals: an endpoint with
 * stale or missing `running`/`waiting` is unscored; one with fresh counts but no TTFT/ITL samples
 * (an idle or new replica) borrows the lowest TTFT/ITL observed among the candidates when it is idle
 * (running + waiting = 0), else it is unscored. No endpoint scored -> fallback to request load.
 * A heuristic (AIBrix least_latency.go sums the same three terms from Prometheus histograms).
 */
export function latencyEstimateMs(ep: EndpointState, req: RoutingRequest, outputTokens: number, borrowed?: { ttft?: number; itl?: number }): number | undefined {
  const running = fresh(ep, ep.running);
  const waiting = fresh(ep, ep.waiting);
  if (running === undefined || waiting === undefined) return undefined;
  const idle = running + waiting === 0;
  let ttft = fresh(ep, ep.ttftMs?.mean);
  let itl = fresh(ep, ep.itlMs?.mean);
  if (ttft === undefined && idle) ttft = borrowed?.ttft;
  if (itl === undefined && idle) itl = borrowed?.itl;
  if (ttft === undefined || itl === undefined) return undefined;
  const queued = Math.max(waiting, ep.inflightRequests - running, 0);
  const out = Math.min(req.maxTokens ?? Infinity, outputTokens);
  return queued * ttft + ttft + out * itl;
}

/** Scores `latencyEstimateMs` (lower is better), borrowing the best TTFT/ITL for idle replicas. */
class LatencyScorer implements DetailedScorer {
  readonly name = 'latency-estimate';
  constructor(
    private readonly outputTokens: number,
    private readonly fallback: DetailedScorer,
  ) {}

  evaluate(req: RoutingRequest, eps: readonly EndpointState[], ctx: RoutingContext) {
    let ttft: number | undefined;
    let itl: number | undefined;
    for (const ep of eps) {
      const t = fresh(ep, ep.ttftMs?.mean);
      const i = fresh(ep, ep.itlMs?.mean);
      if (t !== undefined && (ttft === undefined || t < ttft)) ttft = t;
      if (i !== undefined && (itl === undefined || i < itl)) itl = i;
    }
    const borrowed = { ttft, itl };
    const inner = new MetricScorer('latency-estimate', 'estimated latency ms', true, (ep, r) => latencyEstimateMs(ep, r, this.outputTokens, borrowed), this.fallback);
    return inner.evaluate(req, eps, ctx);
  }

  score(req: RoutingRequest, eps: readonly EndpointState[], ctx: RoutingContext): number[] {
    return this.evaluate(req, eps, ctx).scores;
  }
}

/** `least-latency`: lowest `latencyEstimateMs`. Options: `outputTokens` (default 100), `excludeStale`. */
export function createLeastLatency(options?: Record<string, unknown>): RoutingStrategy {
  const o = parseOptions('least-latency', latencySchema, options);
  const outputTokens = o.outputTokens ?? 100;
  const scorer = new LatencyScorer(outputTokens, requestLoadScorer('max'));
  return new PresetStrategy('least-latency', baseFilters(o.excludeStale), [{ scorer, weight: 1 }], maxScorePicker);
}

/**
 * `power-of-two`: two distinct candidates drawn with `ctx.random`, the one with the lower request
 * load wins (tie -> the first drawn). Load as `least-request` (`loadMode`). AIBrix shares its
 * counters through Redis; here the load is this gateway's in-flight count plus fresh engine counts.
 * Not combinable (a sampling picker has no per-endpoint scores).
 */
export function createPowerOfTwo(options?: Record<string, unknown>): RoutingStrategy {
  const o = parseOptions('power-of-two', loadSchema, options);
  const s = new PresetStrategy('power-of-two', baseFilters(o.excludeStale), [{ scorer: requestLoadScorer(o.loadMode), weight: 1 }], powerOfTwoPicker);
  return withoutScore(s);
}

/**
 * `round-robin`: endpoints in id order, each decision taking the first candidate whose id sorts
 * after the previous choice (wrapping). Robust to endpoints joining and leaving; deterministic.
 * Not combinable.
 */
export class RoundRobinStrategy implements RoutingStrategy {
  readonly name = 'round-robin';
  private last: string | undefined;
  constructor(private readonly filters: readonly Filter[]) {}

  route(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): RoutingDecision {
    const { candidates, emptyReason } = applyFilters(this.filters, req, endpoints, ctx);
    if (candidates.length === 0) return noEndpoint(this.name, emptyReason!);
    let next: EndpointState | undefined;
    let first: EndpointState | undefined;
    for (const c of candidates) {
      if (first === undefined || c.id < first.id) first = c;
      if (this.last !== undefined && c.id > this.last && (next === undefined || c.id < next.id)) next = c;
    }
    const chosen = next ?? first!;
    this.last = chosen.id;
    return { endpoint: chosen, strategy: this.name, reason: `next in id order after ${next ? 'previous choice' : 'wrap-around'} (${candidates.length} candidates)` };
  }
}

/** `round-robin` factory. Options: `excludeStale`. */
export function createRoundRobin(options?: Record<string, unknown>): RoutingStrategy {
  const o = parseOptions('round-robin', commonSchema, options);
  return new RoundRobinStrategy(baseFilters(o.excludeStale));
}

/** Hides `score` so the registry refuses the strategy in weighted combinations. */
function withoutScore(s: PresetStrategy): RoutingStrategy {
  return {
    name: s.name,
    route: (req, eps, ctx) => s.route(req, eps, ctx),
  };
}
