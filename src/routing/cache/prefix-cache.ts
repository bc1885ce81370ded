/**
 * `prefix-cache`: AIBrix's approximate prefix-cache routing (`pkg/plugins/gateway/algorithms/
 * prefix_cache.go`, `utils/prefixcacheindexer/hash.go`; reference aibrix-gateway.md section 2.4).
 *
 * Per request, over the candidates (ready endpoints serving the base model):
 * 1. Cut the prompt's token ids into `blockSize`-token blocks (trailing partial block ignored) and
 *    chain-hash them (`hash.ts`).
 * 2. Load imbalance: with each candidate's running count r (the gateway's own in-flight count, as
 *    AIBrix's "realtime running"), if `max(r) - min(r) > imbalanceAbsCount` (strictly greater),
 *    only the candidates at `min(r)` may be matched.
 * 3. Match: longest chain of blocks each eligible candidate holds; match% = floor(blocks*100/total).
 * 4. If some candidate matched: sort by match% desc, then r asc (ties in a random pre-shuffle),
 *    and take the first with `r <= mean(r) + stddevFactor * sampleStdDev(r)` over **all** candidates.
 * 5. Otherwise (no match, or every match over that threshold): least-request over all candidates
 *    (random among minima).
 * 6. Record the request's blocks as held by the chosen endpoint (index bounded per endpoint by
 *    `maxBlocksPerEndpoint`, entries expire `ttlMinutes` after their last write).
 *
 * Defaults are AIBrix's Helm values (the deployed configuration): blockSize 128 (AIBrix counts
 * bytes of its character tokenizer; we count model tokens, as peers.md section 8a reads it),
 * imbalanceAbsCount 16 (code default 8), stddevFactor 2 (code default 1), 200 000 blocks and a 20 min
 * TTL. Deliberate differences from AIBrix: a single candidate is still recorded (AIBrix bypasses the
 * router, gotcha 3 of section 10), the hash seed is fixed (AIBrix: random per process unless set),
 * and the block bound is per endpoint rather than one global LRU.
 */
import { z } from 'zod';
import type { EndpointState } from '../../engines/state.ts';
import { BASE_FILTERS, applyFilters, noEndpoint, fmt } from '../framework.ts';
import { parseOptions } from '../options.ts';
import { requestLoad } from '../signals.ts';
import type { RoutingContext, RoutingDecision, RoutingRequest, RoutingStrategy } from '../types.ts';
import { ApproxPrefixIndex, type PrefixMatch } from './approx-index.ts';
import { argminRandomTie, mean, sampleStdDev, shuffled } from './common.ts';
import { prefixBlockKeys } from './hash.ts';

/** Parameters of AIBrix's match-then-balance selection (shared by `prefix-cache` and `kv-aware`). */
export interface PrefixSelectParams {
  /** Imbalance switch: `max(r) - min(r) > imbalanceAbsCount` restricts matching to the least loaded. */
  imbalanceAbsCount: number;
  /** k in the `mean + k * sampleStdDev` load gate on matched endpoints. */
  stddevFactor: number;
}

/** The outcome of `selectByPrefix`: chosen candidate index, its match %, and why. */
export interface PrefixSelection {
  index: number;
  matchPercent: number;
  reason: string;
}

/**
 * AIBrix's selection (steps 2-5 above) over already-computed matches.
 * @param candidates the candidates (length >= 1).
 * @param loads running count per candidate (requests).
 * @param match longest held prefix in blocks by endpoint id (endpoints without a match absent).
 * @param totalBlocks full blocks in the prompt (0 -> nothing can match).
 */
export function selectByPrefix(
  candidates: readonly EndpointState[],
  loads: readonly number[],
  match: PrefixMatch,
  totalBlocks: number,
  p: PrefixSelectParams,
  ctx: RoutingContext,
): PrefixSelection {
  let min = Infinity;
  let max = -Infinity;
  for (const r of loads) {
    if (r < min) min = r;
    if (r > max) max = r;
  }
  const imbalanced = max - min > p.imbalanceAbsCount;
  const threshold = mean(loads) + p.stddevFactor * sampleStdDev(loads);
  if (totalBlocks > 0 && match.size > 0) {
    const matched: Array<{ i: number; pct: number; r: number }> = [];
    for (let i = 0; i < candidates.length; i++) {
      const blocks = match.get(candidates[i]!.id);
      if (!blocks) continue;
      if (imbalanced && loads[i]! !== min) continue;
      matched.push({ i, pct: Math.floor((blocks * 100) / totalBlocks), r: loads[i]! });
    }
    // random pre-shuffle, then a stable sort: ties keep the shuffled order (AIBrix).
    const order = shuffled(matched, ctx).sort((a, b) => b.pct - a.pct || a.r - b.r);
    for (const m of order) {
      if (m.r <= threshold) {
        return {
          index: m.i,
          matchPercent: m.pct,
          reason: `prefix match ${m.pct}% with running ${m.r} <= threshold ${fmt(threshold)}${imbalanced ? ' (imbalanced: matching restricted to least loaded)' : ''}`,
        };
      }
    }
    if (order.length > 0) {
      const i = argminRandomTie(candidates, loads, ctx);
      return { index: i, matchPercent: 0, reason: `every matched endpoint over load threshold ${fmt(threshold)}; least-request (running ${loads[i]})` };
    }
  }
  const i = argminRandomTie(candidates, loads, ctx);
  return { index: i, matchPercent: 0, reason: `no prefix match${imbalanced ? ' among least loaded' : ''}; least-request (running ${loads[i]})` };
}

const schema = z
  .object({
    /** Tokens per hashed block (positive integer). */
    blockSize: z.number().int().positive().default(128),
    imbalanceAbsCount: z.number().nonnegative().default(16),
    stddevFactor: z.number().nonnegative().default(2),
    maxBlocksPerEndpoint: z.number().int().positive().default(200_000),
    ttlMinutes: z.number().positive().default(20),
    /** Chain hash seed (AIBrix `AIBRIX_PREFIX_CACHE_HASH_SEED`). */
    hashSeed: z.number().int().default(0),
    /** How running counts are read (signals.ts `LoadMode`); AIBrix uses the gateway's own count. */
    loadMode: z.enum(['max', 'sum', 'inflight']).default('inflight'),
  })
  .strict();

/** Validated `prefix-cache` options (see the module doc for meanings and defaults). */
export type PrefixCacheOptions = z.infer<typeof schema>;

/** AIBrix `prefix-cache` (see module doc). State: the approximate index. */
export class PrefixCacheStrategy implements RoutingStrategy {
  readonly name: string = 'prefix-cache';
  readonly opts: PrefixCacheOptions;
  readonly index: ApproxPrefixIndex;
  private readonly keyBuf: number[] = [];

  constructor(options?: Record<string, unknown>) {
    this.opts = parseOptions('prefix-cache', schema, options);
    this.index = new ApproxPrefixIndex({ maxBlocksPerEndpoint: this.opts.maxBlocksPerEndpoint, ttlMs: this.opts.ttlMinutes * 60_000 });
  }

  route(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): RoutingDecision {
    const { candidates, emptyReason } = applyFilters(BASE_FILTERS, req, endpoints, ctx);
    if (candidates.length === 0) return noEndpoint(this.name, emptyReason!);
    const keys = prefixBlockKeys(req.promptTokens(), this.opts.blockSize, this.opts.hashSeed, this.keyBuf);
    const loads = candidates.map((e) => requestLoad(e, this.opts.loadMode));
    const match = this.index.longestPrefix(keys, ctx.nowMs);
    const sel = selectByPrefix(candidates, loads, match, keys.length, this.opts, ctx);
    const chosen = candidates[sel.index]!;
    if (keys.length > 0) this.index.record(keys, chosen.id, ctx.nowMs);
    return { endpoint: chosen, strategy: this.name, reason: sel.reason, scores: matchScores(candidates, match, keys.length) };
  }

  /** Multi-strategy form (AIBrix): match fraction in [0, 1], higher better, no load term. */
  score(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): number[] {
    const keys = prefixBlockKeys(req.promptTokens(), this.opts.blockSize, this.opts.hashSeed, this.keyBuf);
    const match = this.index.longestPrefix(keys, ctx.nowMs);
    return endpoints.map((e) => (keys.length > 0 ? Math.floor(((match.get(e.id) ?? 0) * 100) / keys.length) / 100 : 0));
  }

  onEndpointRemoved(endpointId: string): void {
    this.index.removeEndpoint(endpointId);
  }
}

/** Match fraction (0..1) per candidate id, for decision logs. */
export function matchScores(candidates: readonly EndpointState[], match: PrefixMatch, totalBlocks: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of candidates) out[c.id] = totalBlocks > 0 ? (match.get(c.id) ?? 0) / totalBlocks : 0;
  return out;
}

/** Factory for the registry. @throws Error naming a bad option. */
export function createPrefixCache(options?: Record<string, unknown>): RoutingStrategy {
  return new PrefixCacheStrategy(options);
}
