/**
 * Reading canonical signals for routing, with one rule: a missing or stale engine signal is
 * `undefined`, never zero (ARCHITECTURE.md "Canonical signals"; `src/engines/state.ts`).
 *
 * Engine signals (running, waiting, KV usage, throughput, TTFT/ITL) are trusted only when the
 * endpoint is not `stale` and has been scraped at least once (`scrapedAtMs !== null`). The
 * gateway-local counters (`inflightRequests`, `inflightTokens`) are always current and are the
 * fallback of every load-based strategy.
 */
import type { EndpointState } from '../engines/state.ts';

/** True when the endpoint's engine signals may be used (scraped at least once, last scrape fresh). */
export function hasFreshSignals(ep: EndpointState): boolean {
  return !ep.stale && ep.scrapedAtMs !== null;
}

/** `value` when the endpoint is fresh and the value is a finite number, else undefined. */
export function fresh(ep: EndpointState, value: number | undefined): number | undefined {
  if (!hasFreshSignals(ep) || value === undefined || !Number.isFinite(value)) return undefined;
  return value;
}

/**
 * Engine queue: `running + waiting` requests as last scraped, or undefined when either is missing
 * or the endpoint is stale (both are needed; half a queue is not a queue).
 */
export function engineQueue(ep: EndpointState): number | undefined {
  const r = fresh(ep, ep.running);
  const w = fresh(ep, ep.waiting);
  if (r === undefined || w === undefined) return undefined;
  return r + w;
}

/**
 * How the request load of `least-request`, `power-of-two` and `lora-affinity` combines gateway
 * and engine counts:
 * - `max` (default): `max(inflightRequests, running + waiting)`. The engine's count already
 *   includes this gateway's requests (as of the last scrape), so a sum double-counts them; the
 *   max is the best lower bound on the true load, and it moves immediately as the gateway sends
 *   requests between scrapes (the in-flight count is always current).
 * - `sum`: `inflightRequests + running + waiting` (AIBrix-like when several gateways share engines
 *   and each counts only its own requests; over-counts this gateway's own requests).
 * - `inflight`: `inflightRequests` only (AIBrix `least-request`: the gateway's realtime count).
 * With missing/stale engine signals every mode falls back to `inflightRequests`.
 */
export type LoadMode = 'max' | 'sum' | 'inflight';

/** Request load of an endpoint (requests) under `mode`; always defined (see `LoadMode`). */
export function requestLoad(ep: EndpointState, mode: LoadMode = 'max'): number {
  if (mode === 'inflight') return ep.inflightRequests;
  const q = engineQueue(ep);
  if (q === undefined) return ep.inflightRequests;
  return mode === 'sum' ? ep.inflightRequests + q : Math.max(ep.inflightRequests, q);
}

/** True when the endpoint's request load includes engine counts (for reasons and tests). */
export function loadUsesEngine(ep: EndpointState, mode: LoadMode = 'max'): boolean {
  return mode !== 'inflight' && engineQueue(ep) !== undefined;
}
