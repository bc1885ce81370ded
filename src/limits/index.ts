/** Rate limits and their counter stores (in-memory default, Redis shared). */
export { type CounterStore, type ConditionalIncrement, windowOf } from './store.ts';
export { MemoryCounterStore } from './memory.ts';
export { RedisCounterStore, type RedisCounterStoreOptions } from './redis.ts';
export { RateLimiter, type RateLimitResult, type KeyLimits, type LimitKind, MINUTE_MS, SECOND_MS } from './rate-limiter.ts';
