/** Test helpers for routing: hand-built endpoint states, requests and a seeded context. */
import { newEndpointState, type EndpointState } from '../../src/engines/state.ts';
import type { RoutingContext, RoutingRequest } from '../../src/routing/types.ts';
import { mulberry32 } from '../../src/common/hash32.ts';

/** A ready endpoint of model `m` with fresh signals (scraped at t=0); override any field. */
export function ep(id: string, over: Partial<EndpointState> = {}): EndpointState {
  return newEndpointState({ id, url: `http://127.0.0.1:1/${id}`, model: 'm', ready: true, stale: false, scrapedAtMs: 0, ...over });
}

/** A request for model `m` (no adapter, no session); override any field. */
export function req(over: Partial<RoutingRequest> = {}): RoutingRequest {
  return { id: 'r1', model: 'm', baseModel: 'm', promptTokens: () => [], promptLength: 100, headers: {}, arrivalMs: 0, ...over };
}

/** A seeded PRNG returning [0, 1) (mulberry32). */
export const seeded = mulberry32;

/** A routing context at `nowMs` with a seeded random source. */
export function ctx(seed = 1, nowMs = 1000): RoutingContext {
  return { nowMs, random: seeded(seed) };
}

/** Routes `n` times and counts choices by endpoint id (null -> 'null'). */
export function histogram(n: number, f: () => string | null): Record<string, number> {
  const h: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const k = f() ?? 'null';
    h[k] = (h[k] ?? 0) + 1;
  }
  return h;
}
