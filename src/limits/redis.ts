/**
 * Redis `CounterStore` (ioredis): one limit shared by every gateway process using the same Redis.
 *
 * Key of a counter: `<prefix><key>:<windowMs>:<windowIndex>` (fixed windows, see store.ts).
 * - `increment`: `INCRBY` + `PEXPIRE` in one MULTI transaction.
 * - `incrementIfWithin`: a Lua script (`GET`, compare, `INCRBY`, `PEXPIRE`) run by `EVALSHA`;
 *   Redis runs scripts atomically, so the check and the increment cannot interleave with another
 *   client's: the limit is exact across processes.
 * Counters expire `windowMs + expirySlackMs` after their last write (garbage collection only; the
 * window index in the key is what separates windows).
 * Redis errors propagate (the gateway answers 500/503); they never read as "allowed".
 */
import { Redis, type RedisOptions } from 'ioredis';
import { type ConditionalIncrement, type CounterStore, checkAmount, windowOf } from './store.ts';

const INCREMENT_IF_WITHIN = `
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
if v + amount > tonumber(ARGV[2]) then
  return {0, v}
end
v = redis.call('INCRBY', KEYS[1], amount)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, v}
`;

type WithScript = Redis & {
  inferplaneIncrIfWithin(key: string, amount: number, limit: number, ttlMs: number): Promise<[number, number]>;
};

/** Options of `RedisCounterStore`. */
export interface RedisCounterStoreOptions {
  /** Prefix of every key (default `inferplane:rl:`). */
  prefix?: string;
  /** Extra lifetime of a counter after its window, ms (default 5000, for clock skew between gateways). */
  expirySlackMs?: number;
}

/** Fixed-window counters in Redis. */
export class RedisCounterStore implements CounterStore {
  private readonly redis: WithScript;
  private readonly prefix: string;
  private readonly slack: number;
  private readonly owned: boolean;
  /** Last connection error of an owned client (commands fail with their own errors meanwhile). */
  lastError: Error | undefined;

  /**
   * @param redis an ioredis client (not closed by `close()`), or a URL / ioredis options to create
   *   one that this store owns and closes.
   */
  constructor(redis: Redis | string | RedisOptions, options: RedisCounterStoreOptions = {}) {
    if (redis instanceof Redis) {
      this.redis = redis as WithScript;
      this.owned = false;
    } else {
      this.redis = (typeof redis === 'string' ? new Redis(redis) : new Redis(redis)) as WithScript;
      this.owned = true;
      // Without a listener ioredis prints every reconnection error; commands still reject.
      this.redis.on('error', (e: Error) => (this.lastError = e));
    }
    if (typeof this.redis.inferplaneIncrIfWithin !== 'function') {
      this.redis.defineCommand('inferplaneIncrIfWithin', { numberOfKeys: 1, lua: INCREMENT_IF_WITHIN });
    }
    this.prefix = options.prefix ?? 'inferplane:rl:';
    this.slack = options.expirySlackMs ?? 5000;
  }

  private key(key: string, windowMs: number, nowMs: number): string {
    return `${this.prefix}${key}:${windowMs}:${windowOf(nowMs, windowMs).index}`;
  }

  async get(key: string, windowMs: number, nowMs: number): Promise<number> {
    const v = await this.redis.get(this.key(key, windowMs, nowMs));
    return v === null ? 0 : Number(v);
  }

  async increment(key: string, amount: number, windowMs: number, nowMs: number): Promise<number> {
    checkAmount(amount);
    const k = this.key(key, windowMs, nowMs);
    const res = await this.redis.multi().incrby(k, amount).pexpire(k, Math.ceil(windowMs + this.slack)).exec();
    if (res === null) throw new Error(`redis: transaction on ${k} was aborted`);
    const [err, value] = res[0]!;
    if (err) throw err;
    return Number(value);
  }

  async incrementIfWithin(key: string, amount: number, limit: number, windowMs: number, nowMs: number): Promise<ConditionalIncrement> {
    checkAmount(amount);
    if (!Number.isFinite(limit)) throw new Error(`limit must be finite, got ${limit}`);
    const k = this.key(key, windowMs, nowMs);
    const [ok, value] = await this.redis.inferplaneIncrIfWithin(k, amount, limit, Math.ceil(windowMs + this.slack));
    return { allowed: ok === 1, value: Number(value) };
  }

  async close(): Promise<void> {
    if (this.owned) await this.redis.quit();
  }
}
