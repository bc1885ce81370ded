/**
 * Cache-aware and fairness strategies (prefix-cache, prefix-cache-preble, kv-aware, vtc-basic, ...).
 * The routing registry merges this map into the named strategies. Placeholder until that work lands.
 */
import type { StrategyFactory } from '../factory.ts';

export const cacheAwareStrategies: Record<string, StrategyFactory> = {};
