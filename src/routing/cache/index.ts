/**
 * Cache-aware and fairness strategies, merged by the routing registry into the named strategies:
 * - `prefix-cache` (AIBrix approximate, prefix-cache.ts), `prefix-cache-preble` (Preble E2, preble.ts),
 * - `kv-aware` (precise, KV-event-fed index, kv-aware.ts),
 * - `cache-cost` / `cache-cost-kv` (our predicted-TTFT cost model, cache-cost.ts; the default
 *   cache-aware strategy, docs/cache-aware-routing.md),
 * - `vtc-basic` (AIBrix) and `vtc-fair` (fair-share partition) fairness strategies (vtc.ts).
 * Strategies that consume KV events implement `KvEventSink` (`isKvEventSink`); the gateway wires
 * them to engines with `KvEventIngestor` (kv-ingestor.ts).
 */
import type { StrategyFactory } from '../factory.ts';
import { createCacheCost, createCacheCostKv } from './cache-cost.ts';
import { createKvAware } from './kv-aware.ts';
import { createPreble } from './preble.ts';
import { createPrefixCache } from './prefix-cache.ts';
import { createVtcBasic, createVtcFair } from './vtc.ts';

export const cacheAwareStrategies: Record<string, StrategyFactory> = {
  'prefix-cache': createPrefixCache,
  'prefix-cache-preble': createPreble,
  'kv-aware': createKvAware,
  'cache-cost': createCacheCost,
  'cache-cost-kv': createCacheCostKv,
  'vtc-basic': createVtcBasic,
  'vtc-fair': createVtcFair,
};

export { isKvEventSink, type KvBlockHashing, type KvEventSink } from './kv-aware.ts';
export { KvBlockIndex } from './kv-index.ts';
