/** Test helpers for the cache-aware strategies: endpoints, requests, a fake clock and seeded random. */
import { newEndpointState, type EndpointState } from '../../../src/engines/state.ts';
import type { RoutingContext, RoutingRequest } from '../../../src/routing/types.ts';
import { mulberry32 } from '../../../src/common/hash32.ts';

/** Deterministic uniform [0, 1) (mulberry32). */
export const seeded = mulberry32;

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
