/**
 * `cache-cost` (our default cache-aware strategy) and `cache-cost-kv` (the same on the precise,
 * KV-event-fed index): route each request to the endpoint with the smallest **predicted TTFT**.
 *
 * For each candidate endpoint e, with the prompt of P tokens:
 *
 *   c_e   = tokens of the longest prefix e holds (index match x block size, at most P - 1)
 *   u_e   = P - c_e                                  uncached prefill this request would add
 *   W_e   = pending prefill on e: uncached tokens of requests routed to e whose first token has
 *           not arrived (gateway-tracked through the lifecycle hooks), plus, when the engine
 *           reports more waiting requests than we routed, the surplus x mean uncached tokens.
 *           Its time is drained as FCFS work: minus the time since the engine started on the
 *           current pending set (since the first of them was routed to an idle endpoint, or since
 *           the last first token)
 *   R_e   = decoding requests on e: max(our requests past their first token, engine `running`)
 *   T_e   = W_e + u_e                                prefill tokens ahead of our first token (FCFS)
 *   S_e   = max(1, ceil(T_e / chunkTokens))          engine steps to get through them (chunked prefill)
 *   pf(u, c) = u * prefillMsPerToken + u * (c + u/2) * attnMsPerTokenPair   prefill of u new tokens
 *           after c cached ones (linear layers + causal attention over the context)
 *   TTFT_e = sum of pf over the pending requests (W_e) + pf(u_e, c_e) + S_e * (stepMs + R_e * decodeMsPerSeq) + kv_e
 *   kv_e  = kvPressureMs * max(0, usage_e - kvHighWatermark) / (1 - kvHighWatermark)
 *           (KV headroom: near a full KV cache new requests wait for blocks or preempt others)
 *
 * Warm requests (some candidate holds at least `warmMinFraction` of the prompt) go to the lowest
 *
 *   score_e = TTFT_e + recomputeWeight * (pf(u_e, c_e) - min_k pf(u_k, c_k))
 *
 * The second term is the prefill e would redo that the best-cached candidate would not: leaving the
 * prefix holder costs more than this request's own TTFT. The recomputed tokens occupy e's GPU and
 * delay the requests that queue behind them there, and the prefix is then held twice, which evicts
 * other prefixes from the cluster's KV caches sooner (a lower hit rate for later turns). So a
 * request stays on the holder unless another endpoint's predicted TTFT is better by a margin
 * proportional to what the holder's cache saves (hysteresis). The weight counts the requests
 * delayed by the extra prefill: an M/M/1 queue holds rho / (1 - rho) requests on average, 2.3 at
 * 70% and 4 at 80% utilisation; the default 3 is the middle of that range (0 = pure TTFT, the
 * model before this term). Its effect on the Mooncake conversation trace (a higher cluster hit
 * rate at an equal or lower P99 TTFT) is the `recomputeWeight 0` row of docs/benchmarks/routing.md.
 *
 * Cache misses are spread: when no candidate holds at least
 * `warmMinFraction` of the prompt, the request goes, among endpoints within `missSlackMs` of the
 * best predicted TTFT, to the one that least recently received a cold request (llm-d's
 * `no-hit-lru-scorer` idea, peers.md 2a), so new prefixes spread over the fleet instead of piling
 * onto whichever endpoint happens to be idle. Warm requests stay on the prefix holder only while
 * its queue costs less than a full prefill elsewhere (the behaviour llm-d calls
 * "sticky-until-saturated"), which is what removes hot spots.
 *
 * Sources: the step-time shape `step = b0 + b1 * prefill_tokens + b2 * decode_seqs` and its default
 * coefficients for Llama-3.1-8B on one H100 (b0 6.472 ms, b1 19.8 us/token, b2 0.3044 ms/seq) are
 * the BLIS "blackbox" fit (reference sim-latency-model.md); the attention term is the roofline count
 * 4 x layers x heads x head_dim FLOPs per (query, key) pair (BLIS T_pf_compute's attention part) for
 * Llama-3.1-8B (4 x 32 x 32 x 128 = 524 288) at 50% of the H100's 989 TFLOPS BF16 peak = 1.06e-6 ms; the cost = prefill blocks (net of
 * cached overlap) + decode load form is Dynamo's KV router (peers.md section 5); the uncached-prefill
 * and KV-utilisation signals are llm-d's scorers (peers.md 2a/2b). `chunkTokens` defaults to vLLM
 * V1's `max_num_batched_tokens` 8192 on large GPUs. The approximate index is bounded by
 * `capacityTokens` per endpoint (default 2 000 000, about 4x the KV pool of an 8B GQA model on an
 * 80 GB GPU): the index deliberately over-remembers, because a prefix the engine has partly evicted
 * still gives partial hits (its first blocks are refreshed by every turn), while forgetting a held
 * prefix loses all of them. In the DES on the Mooncake conversation trace a bound equal to the KV
 * pool (400 000) gave a 12% cluster hit rate, 2 000 000 gave 15% (docs/cache-aware-routing.md).
 *
 * The lifecycle hooks (`onFirstToken`, `onRequestEnd`) must be called by the host (the gateway and
 * the DES do); requests older than `requestTimeoutMs` are forgotten so lost hooks cannot leak.
 */
import { z } from 'zod';
import type { EndpointState } from '../../engines/state.ts';
import type { KvEventBatch } from '../../engines/vllm/kv-events.ts';
import { BASE_FILTERS, applyFilters, fmt, noEndpoint, normalize } from '../framework.ts';
import { parseOptions } from '../options.ts';
import { fresh } from '../signals.ts';
import type { RequestOutcome, RoutingContext, RoutingDecision, RoutingRequest, RoutingStrategy } from '../types.ts';
import { ApproxPrefixIndex, type PrefixMatch } from './approx-index.ts';
import { argminRandomTie } from './common.ts';
import { prefixBlockKeys } from './hash.ts';
import { KvBlockIndex } from './kv-index.ts';
import { type KvBlockHashing, type KvEventSink, VllmKeyCache, mergeMatches } from './kv-aware.ts';
import { DEFAULT_HASH_SEED } from '../../engines/vllm/block-hash.ts';

const schema = z
  .object({
    /** Tokens per block of the prefix index: default 64 for `cache-cost`; for `cache-cost-kv` the engines' block size, default 16. */
    blockSize: z.number().int().positive().optional(),
    /** Per-endpoint bound of the approximate index, tokens (blocks = capacityTokens / blockSize). */
    capacityTokens: z.number().int().positive().default(2_000_000),
    ttlMinutes: z.number().positive().default(20),
    prefillMsPerToken: z.number().nonnegative().default(0.0198),
    /** Attention cost per (new token, context token) pair, ms (quadratic part of prefill). */
    attnMsPerTokenPair: z.number().nonnegative().default(1.06e-6),
    stepMs: z.number().nonnegative().default(6.472),
    decodeMsPerSeq: z.number().nonnegative().default(0.3044),
    chunkTokens: z.number().int().positive().default(8192),
    kvHighWatermark: z.number().min(0).max(0.99).default(0.9),
    kvPressureMs: z.number().nonnegative().default(1000),
    /** A request is warm when some candidate holds at least this fraction of its prompt. */
    warmMinFraction: z.number().min(0).max(1).default(0.1),
    /** Cold requests: endpoints within this many ms of the best predicted TTFT share them (LRU). */
    missSlackMs: z.number().nonnegative().default(25),
    /**
     * Warm requests: weight of the prefill time an endpoint would redo that the best-cached
     * candidate would not (hysteresis toward the prefix holder; 0 = pure predicted TTFT).
     */
    recomputeWeight: z.number().nonnegative().default(3),
    requestTimeoutMs: z.number().positive().default(600_000),
    /** `cache-cost-kv` only: the engines' `PYTHONHASHSEED`. */
    hashSeed: z.string().default(DEFAULT_HASH_SEED),
    /** `cache-cost-kv` only: lifetime of routed-but-unreported blocks, ms. */
    speculativeTtlMs: z.number().nonnegative().default(5_000),
  })
  .strict();

export type CacheCostOptions = z.infer<typeof schema> & { blockSize: number };

interface EpLoad {
  pendingTokens: number;
  /** Predicted prefill time of the pending requests, ms. */
  pendingMs: number;
  /** Since when the endpoint has been working on its current pending prefills (ms); see `predict`. */
  busySinceMs: number;
  pendingCount: number;
  decoding: number;
  lastColdMs: number;
}

interface Tracked {
  ep: string;
  uncached: number;
  prefillMs: number;
  decoding: boolean;
  atMs: number;
}

/** One candidate's prediction, for logs and tests. */
export interface CostBreakdown {
  cachedTokens: number;
  uncachedTokens: number;
  pendingPrefillTokens: number;
  /** Predicted prefill time of this request alone on the endpoint, ms. */
  prefillMs: number;
  decoding: number;
  kvPenaltyMs: number;
  ttftMs: number;
}

export class CacheCostStrategy implements RoutingStrategy {
  readonly name: string = 'cache-cost';
  readonly opts: CacheCostOptions;
  /** The approximate index (own routing history); `cache-cost-kv` adds a precise one. */
  readonly index: ApproxPrefixIndex;
  private readonly loads = new Map<string, EpLoad>();
  private readonly tracked = new Map<string, Tracked>();
  private uncachedSum = 0;
  private uncachedN = 0;
  private readonly keyBuf: number[] = [];

  constructor(options?: Record<string, unknown>, strategyName = 'cache-cost', defaultBlockSize = 64) {
    const o = parseOptions(strategyName, schema, options);
    this.opts = { ...o, blockSize: o.blockSize ?? defaultBlockSize };
    this.index = new ApproxPrefixIndex({
      maxBlocksPerEndpoint: Math.max(1, Math.floor(this.opts.capacityTokens / this.opts.blockSize)),
      ttlMs: this.opts.ttlMinutes * 60_000,
    });
  }

  /** Block keys of the request and the longest held prefix per endpoint. */
  protected match(req: RoutingRequest, nowMs: number): { keys: number[]; match: PrefixMatch } {
    const keys = prefixBlockKeys(req.promptTokens(), this.opts.blockSize, 0, this.keyBuf);
    return { keys, match: this.index.longestPrefix(keys, nowMs) };
  }

  /** Records the routed prompt's blocks as held by `endpointId`. */
  protected record(keys: readonly number[], endpointId: string, nowMs: number): void {
    if (keys.length > 0) this.index.record(keys, endpointId, nowMs);
  }

  private load(id: string): EpLoad {
    let l = this.loads.get(id);
    if (!l) {
      l = { pendingTokens: 0, pendingMs: 0, busySinceMs: 0, pendingCount: 0, decoding: 0, lastColdMs: -Infinity };
      this.loads.set(id, l);
    }
    return l;
  }

  /** Prefill time of `u` new tokens after `c` cached ones, ms: linear part + causal attention u x (c + u/2). */
  prefillMs(u: number, c: number): number {
    return u * this.opts.prefillMsPerToken + u * (c + u / 2) * this.opts.attnMsPerTokenPair;
  }

  /** Predicted TTFT breakdown of `req` on each endpoint (`match` from `match()`). */
  predict(req: RoutingRequest, endpoints: readonly EndpointState[], match: PrefixMatch, nowMs?: number): CostBreakdown[] {
    const o = this.opts;
    const P = Math.max(1, req.promptLength);
    const meanUncached = this.uncachedN > 0 ? this.uncachedSum / this.uncachedN : P;
    return endpoints.map((ep) => {
      const l = this.loads.get(ep.id);
      const cached = Math.min(P - 1, (match.get(ep.id) ?? 0) * o.blockSize);
      const u = P - cached;
      let pending = l?.pendingTokens ?? 0;
      // FCFS drain: the engine has been prefilling its pending requests since busySinceMs.
      let pendingMs = l ? Math.max(0, l.pendingMs - (nowMs !== undefined && l.pendingCount > 0 ? Math.max(0, nowMs - l.busySinceMs) : 0)) : 0;
      const waiting = fresh(ep, ep.waiting);
      if (waiting !== undefined && waiting > (l?.pendingCount ?? 0)) {
        const extra = (waiting - (l?.pendingCount ?? 0)) * meanUncached;
        pending += extra;
        pendingMs += this.prefillMs(extra, 0);
      }
      const running = fresh(ep, ep.running);
      const decoding = Math.max(l?.decoding ?? 0, running ?? 0);
      const T = pending + u;
      const steps = Math.max(1, Math.ceil(T / o.chunkTokens));
      const usage = fresh(ep, ep.kvCacheUsage);
      const kv = usage !== undefined && usage > o.kvHighWatermark ? (o.kvPressureMs * (usage - o.kvHighWatermark)) / (1 - o.kvHighWatermark) : 0;
      const own = this.prefillMs(u, cached);
      const ttft = pendingMs + own + steps * (o.stepMs + decoding * o.decodeMsPerSeq) + kv;
      return { cachedTokens: cached, uncachedTokens: u, pendingPrefillTokens: pending, prefillMs: own, decoding, kvPenaltyMs: kv, ttftMs: ttft };
    });
  }

  route(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): RoutingDecision {
    const { candidates, emptyReason } = applyFilters(BASE_FILTERS, req, endpoints, ctx);
    if (candidates.length === 0) return noEndpoint(this.name, emptyReason!);
    this.prune(ctx.nowMs);
    const { keys, match } = this.match(req, ctx.nowMs);
    const pred = this.predict(req, candidates, match, ctx.nowMs);
    const P = Math.max(1, req.promptLength);
    let bestCached = 0;
    for (const p of pred) if (p.cachedTokens > bestCached) bestCached = p.cachedTokens;
    const warm = bestCached > 0 && bestCached >= this.opts.warmMinFraction * P;
    const ttfts = pred.map((p) => p.ttftMs);
    let i: number;
    let why: string;
    if (warm) {
      const w = this.opts.recomputeWeight;
      let minOwn = Infinity;
      for (const p of pred) if (p.prefillMs < minOwn) minOwn = p.prefillMs;
      const score = w > 0 ? pred.map((p) => p.ttftMs + w * (p.prefillMs - minOwn)) : ttfts;
      i = argminRandomTie(candidates, score, ctx);
      why = `min predicted TTFT + ${w} x recompute: ${fmt(score[i])} ms (TTFT ${fmt(ttfts[i])} ms, cached ${pred[i]!.cachedTokens}/${P} tokens, pending prefill ${Math.round(pred[i]!.pendingPrefillTokens)}, decoding ${pred[i]!.decoding})`;
    } else {
      let min = Infinity;
      for (const t of ttfts) if (t < min) min = t;
      // among near-best endpoints, the least recently given a cold request (ties random).
      const lastCold = candidates.map((c, k) => (ttfts[k]! <= min + this.opts.missSlackMs ? (this.loads.get(c.id)?.lastColdMs ?? -Infinity) : Infinity));
      i = argminRandomTie(candidates, lastCold.map((v) => (v === -Infinity ? -1e300 : v)), ctx);
      this.load(candidates[i]!.id).lastColdMs = ctx.nowMs;
      why = `cold (best cached ${bestCached}/${P} tokens): least recently cold-routed within ${this.opts.missSlackMs} ms of min predicted TTFT (${fmt(ttfts[i])} ms)`;
    }
    const chosen = candidates[i]!;
    this.start(req, chosen.id, pred[i]!.uncachedTokens, pred[i]!.prefillMs, ctx.nowMs);
    this.record(keys, chosen.id, ctx.nowMs);
    const scores: Record<string, number> = {};
    candidates.forEach((c, k) => (scores[c.id] = ttfts[k]!));
    return { endpoint: chosen, strategy: this.name, reason: why, scores };
  }

  /** Multi-strategy form: predicted TTFT min-max normalized, lower better, in [0, 1]. */
  score(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): number[] {
    const { match } = this.match(req, ctx.nowMs);
    return normalize(this.predict(req, endpoints, match, ctx.nowMs).map((p) => p.ttftMs), true);
  }

  private start(req: RoutingRequest, ep: string, uncached: number, prefillMs: number, nowMs: number): void {
    this.finish(req.id);
    const l = this.load(ep);
    if (l.pendingCount === 0) l.busySinceMs = nowMs;
    l.pendingTokens += uncached;
    l.pendingMs += prefillMs;
    l.pendingCount++;
    this.tracked.set(req.id, { ep, uncached, prefillMs, decoding: false, atMs: nowMs });
    this.uncachedSum += uncached;
    this.uncachedN++;
    if (this.uncachedN > 10_000) {
      this.uncachedSum /= 2;
      this.uncachedN /= 2;
    }
  }

  private finish(reqId: string): void {
    const t = this.tracked.get(reqId);
    if (!t) return;
    this.tracked.delete(reqId);
    const l = this.loads.get(t.ep);
    if (!l) return;
    if (t.decoding) l.decoding = Math.max(0, l.decoding - 1);
    else this.unpend(l, t);
  }

  private prune(nowMs: number): void {
    for (const [id, t] of this.tracked) {
      if (nowMs - t.atMs < this.opts.requestTimeoutMs) break; // insertion order = routing order
      this.finish(id);
    }
  }

  onFirstToken(req: RoutingRequest, _endpoint?: EndpointState, ctx?: RoutingContext): void {
    const t = this.tracked.get(req.id);
    if (!t || t.decoding) return;
    const l = this.load(t.ep);
    this.unpend(l, t);
    if (ctx) l.busySinceMs = ctx.nowMs; // the next pending request starts now
    l.decoding++;
    t.decoding = true;
  }

  private unpend(l: EpLoad, t: Tracked): void {
    l.pendingTokens = Math.max(0, l.pendingTokens - t.uncached);
    l.pendingMs = Math.max(0, l.pendingMs - t.prefillMs);
    l.pendingCount = Math.max(0, l.pendingCount - 1);
    if (l.pendingCount === 0) {
      l.pendingTokens = 0;
      l.pendingMs = 0;
    }
  }

  onRequestEnd(outcome: RequestOutcome): void {
    this.finish(outcome.req.id);
  }

  onEndpointRemoved(endpointId: string): void {
    this.index.removeEndpoint(endpointId);
    this.loads.delete(endpointId);
    for (const [id, t] of this.tracked) if (t.ep === endpointId) this.tracked.delete(id);
  }

  /** Gateway-tracked load of an endpoint (for tests and logs). */
  trackedLoad(endpointId: string): { pendingTokens: number; pendingCount: number; decoding: number } {
    const l = this.loads.get(endpointId);
    return { pendingTokens: l?.pendingTokens ?? 0, pendingCount: l?.pendingCount ?? 0, decoding: l?.decoding ?? 0 };
  }
}

/**
 * `cache-cost-kv`: `cache-cost` whose cached prefixes come from the engines' KV events (vLLM
 * sha256_cbor block hashes, `KvBlockIndex`) plus short-lived speculative entries for routed
 * requests not yet reported.
 */
export class CacheCostKvStrategy extends CacheCostStrategy implements KvEventSink {
  override readonly name: string = 'cache-cost-kv';
  readonly kvIndex = new KvBlockIndex();
  private readonly speculative: ApproxPrefixIndex | null;
  private readonly keyCache: VllmKeyCache;
  readonly blockHashing: KvBlockHashing;

  constructor(options?: Record<string, unknown>) {
    super(options, 'cache-cost-kv', 16);
    this.blockHashing = { blockSize: this.opts.blockSize, hashSeed: this.opts.hashSeed };
    this.keyCache = new VllmKeyCache(this.opts.blockSize, this.opts.hashSeed);
    this.speculative = this.opts.speculativeTtlMs > 0 ? new ApproxPrefixIndex({ maxBlocksPerEndpoint: 65_536, ttlMs: this.opts.speculativeTtlMs }) : null;
  }

  protected override match(req: RoutingRequest, nowMs: number): { keys: number[]; match: PrefixMatch } {
    const keys = this.keyCache.keys(req.promptTokens(), req.adapter);
    let match = this.kvIndex.longestPrefix(keys);
    if (this.speculative) match = mergeMatches(match, this.speculative.longestPrefix(keys, nowMs));
    return { keys, match };
  }

  protected override record(keys: readonly number[], endpointId: string, nowMs: number): void {
    if (this.speculative && keys.length > 0) this.speculative.record(keys, endpointId, nowMs);
  }

  applyKvEvents(endpointId: string, batch: KvEventBatch): void {
    this.kvIndex.applyBatch(endpointId, batch);
  }

  onKvEventGap(endpointId: string): void {
    this.kvIndex.clearEndpoint(endpointId);
  }

  override onEndpointRemoved(endpointId: string): void {
    super.onEndpointRemoved(endpointId);
    this.kvIndex.removeEndpoint(endpointId);
    this.speculative?.removeEndpoint(endpointId);
  }
}

/** Factories for the registry. @throws Error naming a bad option. */
export function createCacheCost(options?: Record<string, unknown>): RoutingStrategy {
  return new CacheCostStrategy(options);
}
export function createCacheCostKv(options?: Record<string, unknown>): RoutingStrategy {
  return new CacheCostKvStrategy(options);
}
