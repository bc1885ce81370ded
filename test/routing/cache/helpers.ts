/** Test helpers for the cache-aware strategies: endpoints, requests, a fake clock and seeded random. */
import { newEndpointState, type EndpointState } from '../../../src/engines/state.ts';
import type { RoutingContext, RoutingRequest } from '../../../src/routing/types.ts';

/** mulberry32: deterministic uniform [0, 1). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function ctx(nowMs = 0, seed = 1): RoutingContext {
  return { nowMs, random: seeded(seed) };
}

/** A ready endpoint of model `m`, freshly scraped at t=0, with the given overrides. */
export function ep(id: string, over: Partial<EndpointState> = {}): EndpointState {
  return newEndpointState({ id, url: `http://127.0.0.1/${id}`, model: 'm', ready: true, stale: false, scrapedAtMs: 0, ...over });
}

let nextId = 0;
/** A request of model `m` with the given prompt token ids. */
export function req(tokens: readonly number[], over: Partial<RoutingRequest> = {}): RoutingRequest {
  return {
    id: `r${nextId++}`,
    model: 'm',
    baseModel: 'm',
    promptTokens: () => tokens,
    promptLength: tokens.length,
    headers: {},
    arrivalMs: 0,
    ...over,
  };
}

/** `n` token ids starting at `start` (distinct values give distinct blocks). */
export function toks(n: number, start = 0): number[] {
  return Array.from({ length: n }, (_, i) => start + i);
}
