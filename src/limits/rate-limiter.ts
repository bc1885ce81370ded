/**
 * Rate limits over a `CounterStore`: per API key requests/minute (RPM) and tokens/minute (TPM),
 * per model requests/second (RPS). Fixed windows of 60 s and 1 s (store.ts).
 *
 * Semantics (after AIBrix gateway_ratelimit.go, aibrix-gateway.md section 4, with two fixes):
 * - `checkRequest(key, {rpm, tpm}, nowMs)`, before routing:
 *   1. TPM check-before: rejected when the key's tokens in the current window are already
 *      >= tpm. Tokens are only known after the response (usage), so one request can overshoot the
 *      TPM limit; the next one is rejected.
 *   2. RPM: the request is counted atomically only if the count stays <= rpm (exact, also across
 *      gateway processes sharing Redis). AIBrix counts the request before checking TPM, so a request
 *      rejected for TPM still uses RPM; here it does not.
 * - `addTokens(key, tokens, nowMs)`, after the response: add-after of `usage.total_tokens` to the
 *   window of `nowMs` (the completion time).
 * - `acquireModelRps(model, rps, nowMs)`: counted atomically only if the count stays <= rps;
 *   `releaseModelRps` gives it back when the request could not be routed (AIBrix does the same).
 * Every result carries `retryAfterS` (whole seconds until the window ends, >= 1 when rejected; the
 * `retry-after` header), `limit` and `remaining` (after this request).
 * The clock is an argument; nothing here reads it.
 */
import type { CounterStore } from './store.ts';
import { checkAmount, windowOf } from './store.ts';

/** Window of RPM/TPM counters, ms. */
export const MINUTE_MS = 60_000;
/** Window of per-model RPS counters, ms. */
export const SECOND_MS = 1_000;

/** Which limit a result is about. */
export type LimitKind = 'rpm' | 'tpm' | 'rps';

/** Outcome of one limit check. */
export interface RateLimitResult {
  allowed: boolean;
  /** Seconds until the current window ends (ceil); 0 when allowed and no limit applies. */
  retryAfterS: number;
  /** The limit that decided (requests or tokens per window); Infinity when no limit applies. */
  limit: number;
  /** What remains of that limit in this window after this request (>= 0); Infinity when unlimited. */
  remaining: number;
  /** The deciding limit; undefined when no limit applies. */
  kind?: LimitKind;
  /** Per-limit detail of `checkRequest` (for `x-ratelimit-*` headers). */
  requests?: { limit: number; remaining: number };
  tokens?: { limit: number; remaining: number };
}

/** Limits of one API key; undefined or absent = unlimited. Positive integers. */
export interface KeyLimits {
  rpm?: number;
  tpm?: number;
}

const UNLIMITED: RateLimitResult = { allowed: true, retryAfterS: 0, limit: Infinity, remaining: Infinity };

function retryAfter(nowMs: number, windowMs: number): number {
  return Math.max(1, Math.ceil((windowOf(nowMs, windowMs).endMs - nowMs) / 1000));
}

function checkLimit(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isSafeInteger(v) && v > 0)) throw new Error(`${name} must be a positive integer, got ${v}`);
}

/** Per-key RPM/TPM and per-model RPS limits over a counter store (see the module docstring). */
export class RateLimiter {
  /**
   * @param store the counters (memory or Redis).
   * @param prefix key namespace inside the store (default ``; use one per fleet sharing a Redis).
   */
  constructor(
    readonly store: CounterStore,
    private readonly prefix = '',
  ) {}

  /**
   * Checks and counts one request of API key `key`.
   * @returns allowed, or rejected by `tpm` (checked first, counts nothing) or `rpm`.
   * @throws Error for non-positive/non-integer limits; store errors propagate.
   */
  async checkRequest(key: string, limits: KeyLimits, nowMs: number): Promise<RateLimitResult> {
    checkLimit('rpm', limits.rpm);
    checkLimit('tpm', limits.tpm);
    let tokens: { limit: number; remaining: number } | undefined;
    if (limits.tpm !== undefined) {
      const used = await this.store.get(`${this.prefix}tpm:${key}`, MINUTE_MS, nowMs);
      tokens = { limit: limits.tpm, remaining: Math.max(0, limits.tpm - used) };
      if (used >= limits.tpm) {
        return { allowed: false, retryAfterS: retryAfter(nowMs, MINUTE_MS), limit: limits.tpm, remaining: 0, kind: 'tpm', tokens };
      }
    }
    let requests: { limit: number; remaining: number } | undefined;
    if (limits.rpm !== undefined) {
      const r = await this.store.incrementIfWithin(`${this.prefix}rpm:${key}`, 1, limits.rpm, MINUTE_MS, nowMs);
      requests = { limit: limits.rpm, remaining: Math.max(0, limits.rpm - r.value) };
      if (!r.allowed) {
        return { allowed: false, retryAfterS: retryAfter(nowMs, MINUTE_MS), limit: limits.rpm, remaining: 0, kind: 'rpm', requests, ...(tokens ? { tokens } : {}) };
      }
    }
    if (!requests && !tokens) return { ...UNLIMITED };
    // Report the tighter of the two (smaller remaining fraction).
    const useTokens = tokens !== undefined && (requests === undefined || tokens.remaining / tokens.limit < requests.remaining / requests.limit);
    const d = useTokens ? tokens! : requests!;
    return {
      allowed: true,
      retryAfterS: 0,
      limit: d.limit,
      remaining: d.remaining,
      kind: useTokens ? 'tpm' : 'rpm',
      ...(requests ? { requests } : {}),
      ...(tokens ? { tokens } : {}),
    };
  }

  /**
   * Adds the tokens a finished request used (prompt + completion, from usage) to the key's TPM
   * window of `nowMs`. Returns the window's total. Zero tokens is a no-op.
   */
  async addTokens(key: string, tokens: number, nowMs: number): Promise<number> {
    checkAmount(tokens);
    if (tokens < 0) throw new Error(`tokens must be >= 0, got ${tokens}`);
    if (tokens === 0) return this.store.get(`${this.prefix}tpm:${key}`, MINUTE_MS, nowMs);
    return this.store.increment(`${this.prefix}tpm:${key}`, tokens, MINUTE_MS, nowMs);
  }

  /** Counts one request against model `model`'s requests/second limit `rps` (exact). */
  async acquireModelRps(model: string, rps: number, nowMs: number): Promise<RateLimitResult> {
    checkLimit('rps', rps);
    const r = await this.store.incrementIfWithin(`${this.prefix}rps:${model}`, 1, rps, SECOND_MS, nowMs);
    return r.allowed
      ? { allowed: true, retryAfterS: 0, limit: rps, remaining: Math.max(0, rps - r.value), kind: 'rps' }
      : { allowed: false, retryAfterS: retryAfter(nowMs, SECOND_MS), limit: rps, remaining: 0, kind: 'rps' };
  }

  /**
   * Gives back a request counted by `acquireModelRps` at `acquiredAtMs` (e.g. no endpoint could
   * serve it). Pass the acquisition time so the right window is decremented.
   */
  async releaseModelRps(model: string, acquiredAtMs: number): Promise<void> {
    await this.store.increment(`${this.prefix}rps:${model}`, -1, SECOND_MS, acquiredAtMs);
  }
}
