/**
 * In-memory `CounterStore` (the default): exact for one gateway process. Expired windows are swept
 * lazily (at most once per `sweepEveryOps` operations), using the `nowMs` of the call.
 */
import { type ConditionalIncrement, type CounterStore, checkAmount, windowOf } from './store.ts';

interface Entry {
  value: number;
  /** End of the entry's window, ms: after it the entry is garbage. */
  endMs: number;
}

/** Fixed-window counters in a Map (see store.ts for the window semantics). */
export class MemoryCounterStore implements CounterStore {
  private readonly entries = new Map<string, Entry>();
  private ops = 0;

  constructor(private readonly sweepEveryOps = 10_000) {}

  /** Number of live counters (for tests). */
  get size(): number {
    return this.entries.size;
  }

  private entry(key: string, windowMs: number, nowMs: number, create: boolean): Entry | undefined {
    const w = windowOf(nowMs, windowMs);
    if (++this.ops >= this.sweepEveryOps) this.sweep(nowMs);
    const k = `${key}\u0000${windowMs}\u0000${w.index}`;
    let e = this.entries.get(k);
    if (e === undefined && create) {
      e = { value: 0, endMs: w.endMs };
      this.entries.set(k, e);
    }
    return e;
  }

  /** Drops entries whose window ended before `nowMs`. */
  sweep(nowMs: number): void {
    this.ops = 0;
    for (const [k, e] of this.entries) if (e.endMs <= nowMs) this.entries.delete(k);
  }

  async get(key: string, windowMs: number, nowMs: number): Promise<number> {
    return this.entry(key, windowMs, nowMs, false)?.value ?? 0;
  }

  async increment(key: string, amount: number, windowMs: number, nowMs: number): Promise<number> {
    checkAmount(amount);
    const e = this.entry(key, windowMs, nowMs, true)!;
    e.value += amount;
    return e.value;
  }

  async incrementIfWithin(key: string, amount: number, limit: number, windowMs: number, nowMs: number): Promise<ConditionalIncrement> {
    checkAmount(amount);
    const e = this.entry(key, windowMs, nowMs, true)!;
    if (e.value + amount > limit) return { allowed: false, value: e.value };
    e.value += amount;
    return { allowed: true, value: e.value };
  }

  async close(): Promise<void> {
    this.entries.clear();
  }
}
