/**
 * The gateway's `LimitsGate` on the rate limiter and counter stores of `src/limits`
 * (in-memory by default; Redis when `limits.store: redis`, so several gateway processes sharing one
 * Redis enforce one limit).
 *
 * Order per request: the key's TPM (tokens already used this minute >= tpm rejects) and RPM
 * (counted only if it stays <= rpm), then the model's RPS (counted only if it stays <= rps).
 * Counters are keyed by the API key's name, never by the secret. A store failure is a 500 (no
 * silent fail-open): the limit cannot be enforced, so the request is not served.
 */
import { ApiError } from '../openai/errors.ts';
import type { FleetConfig } from '../fleet/config.ts';
import { MemoryCounterStore, RateLimiter, RedisCounterStore, type CounterStore, type RateLimitResult } from '../limits/index.ts';
import { rateLimited } from './errors.ts';
import type { ApiKeyInfo } from './keys.ts';
import type { LimitsGate } from './limits.ts';

function reject(r: RateLimitResult, who: string): ApiError {
  const what = r.kind === 'rps' ? `model ${who} is over its limit of ${r.limit} requests per second` : `API key ${who} is over its ${r.kind === 'tpm' ? 'tokens' : 'requests'} per minute limit (${r.limit})`;
  return rateLimited(what, r.retryAfterS, r.kind ?? 'unknown');
}

async function guarded<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw new ApiError(500, `rate-limit store unavailable: ${(e as Error).message}`, 'api_error', 'limits_store_error');
  }
}

/** A `LimitsGate` over a `RateLimiter`. */
export class StoreLimitsGate implements LimitsGate {
  readonly limiter: RateLimiter;
  constructor(private readonly store: CounterStore, prefix = '') {
    this.limiter = new RateLimiter(store, prefix);
  }

  async admit(key: ApiKeyInfo | undefined, model: string, modelRps: number | undefined, nowMs: number): Promise<void> {
    if (key && (key.rpm !== undefined || key.tpm !== undefined)) {
      const r = await guarded(() => this.limiter.checkRequest(key.name, { rpm: key.rpm, tpm: key.tpm }, nowMs));
      if (!r.allowed) throw reject(r, key.name);
    }
    if (modelRps) {
      const r = await guarded(() => this.limiter.acquireModelRps(model, modelRps, nowMs));
      if (!r.allowed) throw reject(r, model);
    }
  }

  async release(model: string, acquiredAtMs: number): Promise<void> {
    await this.limiter.releaseModelRps(model, acquiredAtMs);
  }

  async addTokens(key: ApiKeyInfo, tokens: number, nowMs: number): Promise<void> {
    if (tokens > 0) await this.limiter.addTokens(key.name, tokens, nowMs);
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}

/** Builds the gate for the fleet's `limits` block. */
export async function createLimitsGate(cfg: FleetConfig['limits']): Promise<LimitsGate> {
  const store: CounterStore = cfg.store === 'redis' ? new RedisCounterStore(cfg.redisUrl!) : new MemoryCounterStore();
  return new StoreLimitsGate(store);
}
