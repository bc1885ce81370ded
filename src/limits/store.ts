/**
 * Counter stores for rate limits: fixed-window counters behind one interface, in memory (one
 * gateway process) or in Redis (several gateway processes share one limit).
 *
 * Windows are fixed and aligned to the epoch: the window of time `nowMs` for a length `windowMs`
 * is `[floor(nowMs / windowMs) * windowMs, that + windowMs)`; each window has its own counter,
 * which starts at 0. (AIBrix uses the same fixed windows, aibrix-gateway.md section 4.) Fixed
 * windows are exact within a window and allow up to twice the limit across a window boundary
 * (the price of O(1) state per key); sliding windows are not implemented.
 *
 * The clock is always an argument (`nowMs`, ms since the epoch); stores never read it. Processes
 * sharing a Redis store must have synchronized clocks (NTP), as the window is computed from theirs.
 */

/** The window containing `nowMs`: its index and its end (ms, exclusive). */
export function windowOf(nowMs: number, windowMs: number): { index: number; startMs: number; endMs: number } {
  if (!(windowMs > 0) || !Number.isFinite(windowMs)) throw new Error(`windowMs must be a positive finite number of ms, got ${windowMs}`);
  if (!Number.isFinite(nowMs)) throw new Error(`nowMs must be a finite time in ms, got ${nowMs}`);
  const index = Math.floor(nowMs / windowMs);
  return { index, startMs: index * windowMs, endMs: (index + 1) * windowMs };
}

/** Result of `CounterStore.incrementIfWithin`. */
export interface ConditionalIncrement {
  /** True when the amount was added (the new value is <= limit). */
  allowed: boolean;
  /** The counter after the call (unchanged when not allowed). */
  value: number;
}

/**
 * Fixed-window counters. Keys are free-form strings; the store appends the window index.
 * Amounts are safe integers (requests, tokens). All methods are atomic per key and window.
 */
export interface CounterStore {
  /** Current value of `key` in the window of `nowMs` (0 when absent). */
  get(key: string, windowMs: number, nowMs: number): Promise<number>;
  /** Adds `amount` (may be negative) to `key` in the window of `nowMs`; returns the new value. */
  increment(key: string, amount: number, windowMs: number, nowMs: number): Promise<number>;
  /**
   * Adds `amount` only if the result stays <= `limit`, atomically (no other increment of the same
   * counter can interleave, across processes for shared stores).
   */
  incrementIfWithin(key: string, amount: number, limit: number, windowMs: number, nowMs: number): Promise<ConditionalIncrement>;
  /** Releases connections; the store must not be used afterwards. */
  close(): Promise<void>;
}

/** Throws unless `amount` is a safe integer (counters are integers). */
export function checkAmount(amount: number): void {
  if (!Number.isSafeInteger(amount)) throw new Error(`counter amount must be a safe integer, got ${amount}`);
}
