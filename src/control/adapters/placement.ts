/**
 * LoRA adapter placement: which endpoints of the base model get an adapter, and which adapter to
 * evict when an endpoint's adapter slots are full. Pure functions (no clock, no I/O).
 *
 * Policies:
 * - `spread` (default): endpoints with a free adapter slot first, then the least loaded (gateway
 *   in-flight requests, then running + waiting), then the fewest adapters, then the id.
 * - `leastAdapters`: the fewest adapters loaded (AIBrix's default scheduler, reference 1.1).
 * - `binPack`: the fewest free slots that still has one (AIBrix `binPack`, with the engine's real
 *   `max_loras` instead of a hard-coded 10), then the id.
 * Slots: `maxLoras` of the endpoint (vLLM `--max-loras`, from `vllm:lora_requests_info`); undefined =
 * unknown, treated as unlimited.
 */

/** An endpoint as placement sees it. */
export interface PlacementEndpoint {
  id: string;
  /** In-flight requests (gateway) plus queued requests (engine), a load proxy. */
  load: number;
  /** Adapters loaded on it (names). */
  adapters: readonly string[];
  /** Adapter slots; undefined = unlimited. */
  maxLoras?: number;
}

/** Placement policy names (see module docs). */
export type PlacementPolicy = 'spread' | 'leastAdapters' | 'binPack';

/** Free adapter slots (Infinity when unknown). */
export function freeSlots(e: PlacementEndpoint): number {
  return e.maxLoras === undefined ? Infinity : Math.max(0, e.maxLoras - e.adapters.length);
}

/**
 * Orders candidate endpoints by policy, best first. Does not filter full endpoints: callers evict on
 * a full endpoint when nothing better exists.
 */
export function rankEndpoints(candidates: readonly PlacementEndpoint[], policy: PlacementPolicy): PlacementEndpoint[] {
  const byId = (a: PlacementEndpoint, b: PlacementEndpoint) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  const hasRoom = (e: PlacementEndpoint) => (freeSlots(e) > 0 ? 0 : 1);
  const list = [...candidates];
  switch (policy) {
    case 'spread':
      return list.sort((a, b) => hasRoom(a) - hasRoom(b) || a.load - b.load || a.adapters.length - b.adapters.length || byId(a, b));
    case 'leastAdapters':
      return list.sort((a, b) => a.adapters.length - b.adapters.length || byId(a, b));
    case 'binPack':
      return list.sort((a, b) => hasRoom(a) - hasRoom(b) || freeSlots(a) - freeSlots(b) || byId(a, b));
  }
}

/**
 * Picks up to `count` endpoints (ids) for an adapter from `candidates` (which must exclude endpoints
 * that already have it), best first by `policy`.
 */
export function chooseEndpoints(candidates: readonly PlacementEndpoint[], count: number, policy: PlacementPolicy): string[] {
  return rankEndpoints(candidates, policy)
    .slice(0, Math.max(0, count))
    .map((e) => e.id);
}

/**
 * The least recently used adapter on an endpoint, among `evictable` (adapters loaded there that may
 * go), or undefined. `lastUsedMs` maps adapter name to its last request time (ms) on this endpoint;
 * never used = oldest. Ties break by name.
 */
export function lruVictim(evictable: readonly string[], lastUsedMs: ReadonlyMap<string, number>): string | undefined {
  let best: string | undefined;
  let bestT = Infinity;
  for (const a of evictable) {
    const t = lastUsedMs.get(a) ?? -Infinity;
    if (t < bestT || (t === bestT && best !== undefined && a < best)) {
      best = a;
      bestT = t;
    }
  }
  return best;
}
