/**
 * `prefix-cache-preble`: Preble's E2 scheduling (Srivatsa et al., "Preble: Efficient Distributed
 * Prompt Scheduling for LLM Serving", ICLR 2025) as AIBrix implements it
 * (`prefix_cache_preble.go`; reference aibrix-gateway.md section 2.5):
 *
 * 0. Load-imbalance restriction as `prefix-cache`: if max - min running > `imbalanceAbsCount`,
 *    only the least-loaded candidates are considered.
 * 1. Exploit: if the longest cached prefix covers more than `matchThreshold` (0.5) of the prompt,
 *    pick among the endpoints holding that deepest prefix the one with the smallest window load L.
 * 2. Explore: otherwise pick the endpoint with the least cost L + M + P over the sliding window
 *    (`windowSeconds`, 180 s = AIBrix `AIBRIX_ROUTER_PREBLE_SLIDING_WINDOW_PERIOD` 3 min):
 *    - L (load): sum over requests routed to e within the window of their prefill time (uncached
 *      tokens x `prefillMsPerToken`) plus decode time (`decodeLength` x `tpotMs`);
 *    - M (eviction): tokens e would have to evict to fit this request's uncached tokens (index
 *      occupancy vs `capacityTokens`), times `prefillMsPerToken` (the recompute cost Preble charges);
 *    - P (prefill): this request's uncached tokens on e x `prefillMsPerToken`.
 * 3. Record the prompt's blocks for the chosen endpoint.
 *
 * Differences from AIBrix, all documented defaults: a block-chain index (`blockSize` tokens, like
 * `prefix-cache`) instead of a radix tree over tiktoken ids; the prefill model is linear with the
 * Llama-3.1-8B/H100 coefficient used by `cache-cost` (AIBrix hard-codes a Mistral-7B V100/A6000
 * table); `decodeLength` 45 as AIBrix, with `tpotMs` 7 ms (about one decode step of an 8B model on
 * an H100) rather than AIBrix's unitless 0.15.
 */
import { z } from 'zod';
import type { EndpointState } from '../../engines/state.ts';
import { BASE_FILTERS, applyFilters, fmt, noEndpoint } from '../framework.ts';
import { parseOptions } from '../options.ts';
import { requestLoad } from '../signals.ts';
import type { RoutingContext, RoutingDecision, RoutingRequest, RoutingStrategy } from '../types.ts';
import { ApproxPrefixIndex } from './approx-index.ts';
import { argminRandomTie } from './common.ts';
import { prefixBlockKeys } from './hash.ts';
import { matchScores } from './prefix-cache.ts';

const schema = z
  .object({
    blockSize: z.number().int().positive().default(64),
    matchThreshold: z.number().min(0).max(1).default(0.5),
    windowSeconds: z.number().positive().default(180),
    prefillMsPerToken: z.number().nonnegative().default(0.0198),
    decodeLength: z.number().nonnegative().default(45),
    tpotMs: z.number().nonnegative().default(7),
    capacityTokens: z.number().int().positive().default(400_000),
    ttlMinutes: z.number().positive().default(20),
    imbalanceAbsCount: z.number().nonnegative().default(16),
    loadMode: z.enum(['max', 'sum', 'inflight']).default('inflight'),
  })
  .strict();

export type PrebleOptions = z.infer<typeof schema>;

export class PrebleStrategy implements RoutingStrategy {
  readonly name: string = 'prefix-cache-preble';
  readonly opts: PrebleOptions;
  readonly index: ApproxPrefixIndex;
  /** Per endpoint: [routedAtMs, costMs] of requests within the window, oldest first. */
  private readonly windows = new Map<string, Array<[number, number]>>();
  private readonly windowLoad = new Map<string, number>();
  private readonly keyBuf: number[] = [];

  constructor(options?: Record<string, unknown>) {
    this.opts = parseOptions('prefix-cache-preble', schema, options);
    this.index = new ApproxPrefixIndex({
      maxBlocksPerEndpoint: Math.max(1, Math.floor(this.opts.capacityTokens / this.opts.blockSize)),
      ttlMs: this.opts.ttlMinutes * 60_000,
    });
  }

  /** Window load L of `endpointId` at `nowMs`, ms of compute. */
  loadOf(endpointId: string, nowMs: number): number {
    const w = this.windows.get(endpointId);
    if (!w) return 0;
    const minT = nowMs - this.opts.windowSeconds * 1000;
    let l = this.windowLoad.get(endpointId) ?? 0;
    let k = 0;
    while (k < w.length && w[k]![0] < minT) l -= w[k++]![1];
    if (k > 0) {
      w.splice(0, k);
      l = w.length === 0 ? 0 : Math.max(0, l);
      this.windowLoad.set(endpointId, l);
    }
    return l;
  }

  route(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): RoutingDecision {
    const { candidates: all, emptyReason } = applyFilters(BASE_FILTERS, req, endpoints, ctx);
    if (all.length === 0) return noEndpoint(this.name, emptyReason!);
    const o = this.opts;
    const running = all.map((e) => requestLoad(e, o.loadMode));
    const minR = Math.min(...running);
    const imbalanced = Math.max(...running) - minR > o.imbalanceAbsCount;
    const cands = imbalanced ? all.filter((_, i) => running[i] === minR) : all;
    const keys = prefixBlockKeys(req.promptTokens(), o.blockSize, 0, this.keyBuf);
    const match = this.index.longestPrefix(keys, ctx.nowMs);
    const P = Math.max(1, req.promptLength);
    const cached = cands.map((c) => Math.min(P, (match.get(c.id) ?? 0) * o.blockSize));
    const best = Math.max(...cached);
    const L = cands.map((c) => this.loadOf(c.id, ctx.nowMs));
    let i: number;
    let why: string;
    if (best / P > o.matchThreshold) {
      const costs = cands.map((_, k) => (cached[k] === best ? L[k]! : Infinity));
      i = argminRandomTie(cands, costs, ctx);
      why = `exploit: cached ${best}/${P} tokens > ${o.matchThreshold}; least window load ${fmt(L[i])} ms among holders`;
    } else {
      const costs = cands.map((c, k) => {
        const u = P - cached[k]!;
        const free = o.capacityTokens - this.index.blocksOf(c.id) * o.blockSize;
        const M = Math.max(0, u - free) * o.prefillMsPerToken;
        return L[k]! + M + u * o.prefillMsPerToken;
      });
      i = argminRandomTie(cands, costs, ctx);
      why = `explore: cached ${best}/${P} tokens <= ${o.matchThreshold}; min L+M+P ${fmt(costs[i])} ms`;
    }
    if (imbalanced) why += ' (imbalanced: restricted to least loaded)';
    const chosen = cands[i]!;
    const cost = (P - cached[i]!) * o.prefillMsPerToken + o.decodeLength * o.tpotMs;
    let w = this.windows.get(chosen.id);
    if (!w) this.windows.set(chosen.id, (w = []));
    w.push([ctx.nowMs, cost]);
    this.windowLoad.set(chosen.id, (this.windowLoad.get(chosen.id) ?? 0) + cost);
    if (keys.length > 0) this.index.record(keys, chosen.id, ctx.nowMs);
    return { endpoint: chosen, strategy: this.name, reason: why, scores: matchScores(cands, match, keys.length) };
  }

  onEndpointRemoved(endpointId: string): void {
    this.index.removeEndpoint(endpointId);
    this.windows.delete(endpointId);
    this.windowLoad.delete(endpointId);
  }
}

export function createPreble(options?: Record<string, unknown>): RoutingStrategy {
  return new PrebleStrategy(options);
}
