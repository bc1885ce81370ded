/**
 * `session-affinity`: requests of one session go to one endpoint while it stays healthy.
 *
 * Order (for candidates = ready endpoints serving the base model):
 * 1. Minted id: ids this strategy issues have the form `<base64url(endpointId)>.<16 hex>`; if the
 *    `x-session-id` decodes to a candidate's id, route there. Stateless, so any gateway replica
 *    honours it (AIBrix encodes `ip:port` in base64 the same way, aibrix-gateway.md section 2.6).
 * 2. Binding: a client-chosen `x-session-id` bound earlier (by this strategy instance) to an
 *    endpoint that is still a candidate and whose binding has not expired -> that endpoint.
 * 3. Consistent hash: rendezvous (highest-random-weight) hashing of the session key over candidate
 *    ids; the key is the `x-session-id`, else the `x-session-key` (or AIBrix's
 *    `x-aibrix-session-key`) header (<= 256 bytes, never echoed). Stateless and order-independent; ties -> lexicographically smaller id.
 * 4. No session information at all: the `least-request` choice.
 * After choosing, a client-chosen id is (re)bound to the chosen endpoint; when the client sent no
 * id (or a minted id whose endpoint is gone) a new id pointing at the chosen endpoint is minted
 * (`mintSessionIds`, default true). The decision carries `x-session-id` in `headers`.
 *
 * The binding map is bounded: at most `maxSessions` entries (least recently used evicted first),
 * entries older than `sessionTtlMs` since last use are ignored and dropped, and all bindings to an
 * endpoint are dropped by `onEndpointRemoved`.
 * Combinable: `score` gives 1 to the session's endpoint (steps 1-3) and 0 to the others, or 1 to all
 * when the request carries no session information.
 */
import { z } from 'zod';
import type { EndpointState } from '../../engines/state.ts';
import type { Filter, RoutingContext, RoutingDecision, RoutingRequest, RoutingStrategy } from '../types.ts';
import { applyFilters, noEndpoint } from '../framework.ts';
import { commonOptionsShape, loadModeSchema, parseOptions } from '../options.ts';
import { baseFilters, createLeastRequest } from './basic.ts';

/** Header carrying the session id (request and response). */
export const SESSION_ID_HEADER = 'x-session-id';
/** Header carrying an opaque session key used only for hashing (never echoed). */
export const SESSION_KEY_HEADER = 'x-session-key';
/** AIBrix's name for the same header, accepted too. */
export const AIBRIX_SESSION_KEY_HEADER = 'x-aibrix-session-key';
/** Longest session key hashed, bytes (AIBrix ignores longer `x-aibrix-session-key` values). */
export const MAX_SESSION_KEY_BYTES = 256;

const schema = z
  .object({
    ...commonOptionsShape,
    /** Most bindings kept (default 100 000). */
    maxSessions: z.number().int().positive().optional(),
    /** A binding unused for this long is ignored and dropped, ms (default 30 min). */
    sessionTtlMs: z.number().positive().optional(),
    /** Mint an `x-session-id` for requests without one (default true). */
    mintSessionIds: z.boolean().optional(),
    /** Load mode of the `least-request` fallback. */
    loadMode: loadModeSchema.optional(),
  })
  .strict();

/**
 * 53-bit string hash (cyrb53, public domain, by bryc): two 32-bit multiply-xorshift lanes.
 * Used for rendezvous hashing; returns an integer in [0, 2^53).
 */
export function hash53(str: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < str.length; i++) {
    const ch = str.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/**
 * Rendezvous hashing: index of the candidate maximizing `hash53(key + '\0' + id)`; ties -> smaller id.
 * Removing a candidate only moves the keys that were on it. Returns -1 for no candidates.
 */
export function rendezvousIndex(key: string, candidates: readonly EndpointState[]): number {
  let best = -1;
  let bestHash = -1;
  for (let i = 0; i < candidates.length; i++) {
    const h = hash53(`${key}\u0000${candidates[i]!.id}`);
    if (h > bestHash || (h === bestHash && candidates[i]!.id < candidates[best]!.id)) {
      best = i;
      bestHash = h;
    }
  }
  return best;
}

/** Mints a session id naming `endpointId`: `<base64url(id)>.<16 hex from ctx.random>`. */
export function mintSessionId(endpointId: string, ctx: RoutingContext): string {
  let hex = '';
  for (let i = 0; i < 4; i++) hex += Math.floor(ctx.random() * 0x10000).toString(16).padStart(4, '0');
  return `${Buffer.from(endpointId, 'utf8').toString('base64url')}.${hex}`;
}

/** The endpoint id encoded in a minted session id, or undefined when `sid` is not of that form. */
export function decodeSessionId(sid: string): string | undefined {
  const m = /^([A-Za-z0-9_-]+)\.[0-9a-f]{16}$/.exec(sid);
  if (!m) return undefined;
  return Buffer.from(m[1]!, 'base64url').toString('utf8');
}

interface Binding {
  endpointId: string;
  lastUsedMs: number;
}

type Target = { index: number; how: string };

/** The `session-affinity` strategy (see the module docstring). */
export class SessionAffinityStrategy implements RoutingStrategy {
  readonly name = 'session-affinity';
  private readonly bindings = new Map<string, Binding>();
  private readonly fallback: RoutingStrategy;
  /** Filters applied before choosing (exposed so weighted combinations apply them too). */
  readonly filters: readonly Filter[];
  private readonly maxSessions: number;
  private readonly ttlMs: number;
  private readonly mint: boolean;

  constructor(options?: Record<string, unknown>) {
    const o = parseOptions('session-affinity', schema, options);
    this.filters = baseFilters(o.excludeStale);
    this.maxSessions = o.maxSessions ?? 100_000;
    this.ttlMs = o.sessionTtlMs ?? 30 * 60_000;
    this.mint = o.mintSessionIds ?? true;
    this.fallback = createLeastRequest(o.loadMode ? { loadMode: o.loadMode } : undefined);
  }

  /** Number of bindings held (for tests and metrics). */
  get size(): number {
    return this.bindings.size;
  }

  private sessionId(req: RoutingRequest): string | undefined {
    const sid = req.sessionId ?? req.headers[SESSION_ID_HEADER];
    return sid && sid.length > 0 ? sid : undefined;
  }

  private sessionKey(req: RoutingRequest): string | undefined {
    const k = req.headers[SESSION_KEY_HEADER] ?? req.headers[AIBRIX_SESSION_KEY_HEADER];
    if (!k || Buffer.byteLength(k, 'utf8') > MAX_SESSION_KEY_BYTES) return undefined;
    return k;
  }

  private target(req: RoutingRequest, cands: readonly EndpointState[], ctx: RoutingContext): Target | undefined {
    const sid = this.sessionId(req);
    if (sid !== undefined) {
      const encoded = decodeSessionId(sid);
      if (encoded !== undefined) {
        const i = cands.findIndex((c) => c.id === encoded);
        if (i >= 0) return { index: i, how: `session id names ${encoded}` };
      }
      const b = this.bindings.get(sid);
      if (b !== undefined) {
        if (ctx.nowMs - b.lastUsedMs > this.ttlMs) this.bindings.delete(sid);
        else {
          const i = cands.findIndex((c) => c.id === b.endpointId);
          if (i >= 0) return { index: i, how: `session bound to ${b.endpointId}` };
        }
      }
      if (encoded === undefined) return { index: rendezvousIndex(sid, cands), how: 'consistent hash of x-session-id' };
    }
    const key = this.sessionKey(req);
    if (key !== undefined) return { index: rendezvousIndex(key, cands), how: 'consistent hash of x-session-key' };
    return undefined;
  }

  route(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): RoutingDecision {
    const { candidates, emptyReason } = applyFilters(this.filters, req, endpoints, ctx);
    if (candidates.length === 0) return noEndpoint(this.name, emptyReason!);
    const t = this.target(req, candidates, ctx);
    let chosen: EndpointState;
    let reason: string;
    let scores: Record<string, number> | undefined;
    if (t !== undefined) {
      chosen = candidates[t.index]!;
      reason = t.how;
      scores = {};
      for (const c of candidates) scores[c.id] = c === chosen ? 1 : 0;
    } else {
      const d = this.fallback.route(req, candidates, ctx);
      chosen = d.endpoint!;
      reason = `no session information; least-request: ${d.reason}`;
      scores = d.scores;
    }
    const headers = this.onRouted(req, chosen, ctx);
    return { endpoint: chosen, strategy: this.name, reason, scores, headers };
  }

  score(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): number[] {
    const t = this.target(req, endpoints, ctx);
    if (t === undefined) return endpoints.map(() => 1);
    return endpoints.map((_, i) => (i === t.index ? 1 : 0));
  }

  /** Binds the session to `endpoint` (or mints an id naming it); returns the `x-session-id` header. */
  onRouted(req: RoutingRequest, endpoint: EndpointState, ctx: RoutingContext): Record<string, string> | undefined {
    const sid = this.sessionId(req);
    if (sid !== undefined && decodeSessionId(sid) === undefined) {
      this.bindings.delete(sid); // re-insert at the end: LRU order
      this.bindings.set(sid, { endpointId: endpoint.id, lastUsedMs: ctx.nowMs });
      while (this.bindings.size > this.maxSessions) this.bindings.delete(this.bindings.keys().next().value as string);
      return { [SESSION_ID_HEADER]: sid };
    }
    if (sid !== undefined && decodeSessionId(sid) === endpoint.id) return { [SESSION_ID_HEADER]: sid };
    if (!this.mint) return undefined;
    return { [SESSION_ID_HEADER]: mintSessionId(endpoint.id, ctx) };
  }

  onEndpointRemoved(endpointId: string): void {
    for (const [sid, b] of this.bindings) if (b.endpointId === endpointId) this.bindings.delete(sid);
  }
}

/** `session-affinity` factory. Options: `maxSessions`, `sessionTtlMs`, `mintSessionIds`, `loadMode`, `excludeStale`. */
export function createSessionAffinity(options?: Record<string, unknown>): RoutingStrategy {
  return new SessionAffinityStrategy(options);
}
