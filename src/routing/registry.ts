/**
 * The strategy registry: builds a `RoutingStrategy` from a spec string.
 *
 * A spec is a strategy name (`least-request`) or a weighted combination
 * `name[:weight],name[:weight],...` (AIBrix "batch soft scoring", aibrix-gateway.md section 2.1):
 * weights are integers 0..1 000 000 (default 1, 0 drops the entry); every member must implement
 * `score` (normalized [0, 1], higher better); the combined score is sum(w * s) / sum(w) and the
 * highest wins, ties broken uniformly with `ctx.random`. Invalid forms (empty items, `a:b:c`,
 * floats, negatives, all weights zero, duplicates) throw `Error`; unknown names throw
 * `UnknownStrategyError` (the gateway answers both with 400).
 *
 * Names: the built-ins below plus `cacheAwareStrategies` from `src/routing/cache/index.ts`.
 */
import type { EndpointState } from '../engines/state.ts';
import type { StrategyFactory } from './factory.ts';
import type { Filter, RoutingContext, RoutingDecision, RoutingRequest, RequestOutcome, RoutingStrategy } from './types.ts';
import { cacheAwareStrategies, isKvEventSink, type KvBlockHashing, type KvEventSink } from './cache/index.ts';
import { BASE_FILTERS, applyFilters, combine, fmt, lazyDecision, maxScorePicker, noEndpoint, scoresById } from './framework.ts';
import {
  createLeastKvCache,
  createLeastLatency,
  createLeastRequest,
  createPowerOfTwo,
  createRandom,
  createRoundRobin,
  createThroughput,
} from './strategies/basic.ts';
import { createLoraAffinity } from './strategies/lora-affinity.ts';
import { createSessionAffinity } from './strategies/session-affinity.ts';

/** Built-in strategies of this module (the cache-aware ones are merged in `factories()`). */
export const builtinStrategies: Readonly<Record<string, StrategyFactory>> = {
  random: createRandom,
  'round-robin': createRoundRobin,
  'least-request': createLeastRequest,
  'least-kv-cache': createLeastKvCache,
  'least-latency': createLeastLatency,
  throughput: createThroughput,
  'power-of-two': createPowerOfTwo,
  'session-affinity': createSessionAffinity,
  'lora-affinity': createLoraAffinity,
};

/** Largest weight accepted in a combination (AIBrix router.go). */
export const MAX_WEIGHT = 1_000_000;

/** Thrown for a strategy name that is not registered; the message lists the known names. */
export class UnknownStrategyError extends Error {
  constructor(readonly strategy: string) {
    super(`unknown routing strategy '${strategy}'; known strategies: ${knownStrategies().join(', ')}`);
    this.name = 'UnknownStrategyError';
  }
}

function factories(): Record<string, StrategyFactory> {
  // Read on every call: the cache-aware map is a mutable export that its owner fills.
  return { ...builtinStrategies, ...cacheAwareStrategies };
}

/** Every registered strategy name, sorted. */
export function knownStrategies(): string[] {
  return Object.keys(factories()).sort();
}

/** One entry of a parsed spec. */
export interface SpecItem {
  name: string;
  weight: number;
}

/**
 * Parses a spec string into items (weight 0 entries dropped). Surrounding whitespace of items is
 * ignored. Does not check names.
 * @throws Error for empty specs/items, `a:b:c`, non-integer/negative/too-large weights, duplicates
 *   or all-zero weights.
 */
export function parseStrategySpec(spec: string): SpecItem[] {
  if (typeof spec !== 'string' || spec.trim() === '') throw new Error('routing strategy is empty');
  const items: SpecItem[] = [];
  const seen = new Set<string>();
  for (const rawItem of spec.split(',')) {
    const item = rawItem.trim();
    if (item === '') throw new Error(`routing strategy '${spec}': empty item`);
    const parts = item.split(':');
    if (parts.length > 2) throw new Error(`routing strategy '${spec}': item '${item}' must be name or name:weight`);
    const name = parts[0]!.trim();
    if (name === '') throw new Error(`routing strategy '${spec}': item '${item}' has no name`);
    let weight = 1;
    if (parts.length === 2) {
      const w = parts[1]!.trim();
      if (!/^\d+$/.test(w)) throw new Error(`routing strategy '${spec}': weight '${w}' of ${name} must be an integer 0..${MAX_WEIGHT}`);
      weight = Number(w);
      if (weight > MAX_WEIGHT) throw new Error(`routing strategy '${spec}': weight ${w} of ${name} exceeds ${MAX_WEIGHT}`);
    }
    if (seen.has(name)) throw new Error(`routing strategy '${spec}': ${name} appears twice`);
    seen.add(name);
    if (weight === 0) continue;
    items.push({ name, weight });
  }
  if (items.length === 0) throw new Error(`routing strategy '${spec}': all weights are zero`);
  return items;
}

/**
 * Builds a fresh strategy instance from a spec.
 * @param spec a name (`least-request`) or weighted combination (`least-request:2,least-kv-cache`).
 *   A spec that leaves one member (`least-request:3`, `random,least-request:0`) builds that strategy alone.
 * @param options for a single strategy: its options (validated by its factory). For a combination:
 *   an object keyed by member name whose values are that member's options
 *   (e.g. `{ 'least-request': { loadMode: 'inflight' } }`); other keys are rejected.
 * @throws UnknownStrategyError for an unknown name; Error for a malformed spec, bad options, or a
 *   combination member that cannot score.
 */
export function createStrategy(spec: string, options?: Record<string, unknown>): RoutingStrategy {
  const items = parseStrategySpec(spec);
  const all = factories();
  for (const it of items) if (!Object.hasOwn(all, it.name)) throw new UnknownStrategyError(it.name);
  if (items.length === 1) {
    return all[items[0]!.name]!(options);
  }
  if (options !== undefined) {
    for (const k of Object.keys(options)) {
      if (!items.some((it) => it.name === k)) throw new Error(`routing strategy '${spec}': options key '${k}' is not a member of the combination`);
      const v = options[k];
      if (v !== undefined && (typeof v !== 'object' || v === null || Array.isArray(v))) {
        throw new Error(`routing strategy '${spec}': options.${k} must be an object of ${k}'s options`);
      }
    }
  }
  const members = items.map((it) => {
    const s = all[it.name]!(options?.[it.name] as Record<string, unknown> | undefined);
    if (typeof s.score !== 'function') {
      throw new Error(`routing strategy '${spec}': ${it.name} cannot be combined (it does not score endpoints)`);
    }
    return { strategy: s, weight: it.weight };
  });
  return new CombinedStrategy(spec.trim(), members);
}

/**
 * A weighted combination of scoring strategies: base filters (ready, serving the base model) plus
 * the members' exposed filters (so a member's `excludeStale` applies to the combination),
 * the members' scores combined with their weights, max-score picker (ties random). Lifecycle hooks
 * are forwarded to every member; `onRouted` of each member runs after the choice, and their headers
 * are merged into the decision. When members consume KV events (`kv-aware`, `cache-cost-kv`), the
 * combination is itself a `KvEventSink` that forwards each batch and gap to them, so the gateway
 * and the DES feed a combination such as `cache-cost-kv:2,least-request` as they feed the member
 * alone (without such members it has no KV-event methods and nothing subscribes for it).
 */
export class CombinedStrategy implements RoutingStrategy {
  /** Base filters plus the filters members expose (`filters` property, e.g. `excludeStale`), each once by name. */
  readonly filters: readonly Filter[];
  /** Present only when a member consumes KV events: forwards to those members. */
  readonly applyKvEvents?: KvEventSink['applyKvEvents'];
  /** Present only when a member consumes KV events: forwards to those members. */
  readonly onKvEventGap?: KvEventSink['onKvEventGap'];
  /** The block hashing those members assume (they must agree: the engines hash one way). */
  readonly blockHashing?: KvBlockHashing;

  constructor(
    readonly name: string,
    readonly members: readonly { strategy: RoutingStrategy; weight: number }[],
  ) {
    const filters: Filter[] = [...BASE_FILTERS];
    for (const m of members) {
      const own = (m.strategy as { filters?: unknown }).filters;
      if (!Array.isArray(own)) continue;
      for (const f of own as Filter[]) if (!filters.some((g) => g.name === f.name)) filters.push(f);
    }
    this.filters = filters;
    const sinks = members.map((m) => m.strategy).filter((s): s is RoutingStrategy & KvEventSink => isKvEventSink(s));
    if (sinks.length) {
      const hs = sinks.flatMap((s) => (s.blockHashing ? [s.blockHashing] : []));
      const h = hs[0];
      if (h && hs.some((x) => x.blockSize !== h.blockSize || x.hashSeed !== h.hashSeed))
        throw new Error(`${name}: its KV-event members assume different block hashing (${hs.map((x) => `blockSize ${x.blockSize}, hashSeed "${x.hashSeed}"`).join(' vs ')}); the engines hash one way`);
      if (h) this.blockHashing = h;
      this.applyKvEvents = (endpointId, batch) => {
        for (const s of sinks) s.applyKvEvents(endpointId, batch);
      };
      this.onKvEventGap = (endpointId) => {
        for (const s of sinks) s.onKvEventGap(endpointId);
      };
    }
  }

  route(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): RoutingDecision {
    const { candidates, emptyReason } = applyFilters(this.filters, req, endpoints, ctx);
    if (candidates.length === 0) return noEndpoint(this.name, emptyReason!);
    const vectors = this.members.map((m) => m.strategy.score!(req, candidates, ctx));
    const total = combine(vectors, this.members.map((m) => m.weight));
    const i = candidates.length === 1 ? 0 : maxScorePicker.pick(candidates, total, ctx);
    const chosen = candidates[i]!;
    let headers: Record<string, string> | undefined;
    for (const m of this.members) {
      const h = m.strategy.onRouted?.(req, chosen, ctx);
      if (h) headers = { ...headers, ...h };
    }
    return lazyDecision(
      chosen,
      this.name,
      () => {
        const parts = this.members.map((m, k) => `${m.strategy.name}=${fmt(vectors[k]![i])}x${m.weight}`);
        return `weighted score ${fmt(total[i])} over ${candidates.length} candidates (${parts.join(', ')})`;
      },
      () => scoresById(candidates, total),
      headers,
    );
  }

  score(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): number[] {
    return combine(
      this.members.map((m) => m.strategy.score!(req, endpoints, ctx)),
      this.members.map((m) => m.weight),
    );
  }

  onRequestStart(req: RoutingRequest, endpoint: EndpointState, ctx: RoutingContext): void {
    for (const m of this.members) m.strategy.onRequestStart?.(req, endpoint, ctx);
  }

  onFirstToken(req: RoutingRequest, endpoint: EndpointState, ctx: RoutingContext): void {
    for (const m of this.members) m.strategy.onFirstToken?.(req, endpoint, ctx);
  }

  onRequestEnd(outcome: RequestOutcome, ctx: RoutingContext): void {
    for (const m of this.members) m.strategy.onRequestEnd?.(outcome, ctx);
  }

  onEndpointRemoved(endpointId: string): void {
    for (const m of this.members) m.strategy.onEndpointRemoved?.(endpointId);
  }
}
