/**
 * The approximate prefix index: which endpoint was *sent* which prompt blocks, learned from the
 * router's own decisions (AIBrix `prefix-cache` local mode, SGLang `cache_aware`, GIE
 * `prefix-cache-scorer`; reference aibrix-gateway.md section 2.4, peers.md section 8a).
 *
 * Keys are chained block keys (`hash.ts`), so holding block i implies the router sent the whole
 * prefix 0..i. Memory is bounded two ways, both per endpoint:
 * - `maxBlocksPerEndpoint`: an LRU by last write per endpoint (AIBrix uses one global LRU of
 *   200 000 blocks; per-endpoint bounds keep one hot endpoint from evicting the others' entries
 *   and mirror the engine's own per-replica KV capacity);
 * - `ttlMs`: an entry expires `ttlMs` after its last write (AIBrix: 20 min, reads do not refresh).
 * Expired entries are never reported (checked on read) and are physically removed by a sweep of
 * the endpoint's entries on a write at most every `ttlMs / 4` (amortized O(1) per entry). When an
 * endpoint exceeds its bound, its oldest writes are evicted down to 15/16 of the bound at once. `removeEndpoint` drops an endpoint's
 * entries at once (call it from `onEndpointRemoved`).
 *
 * Pure data structure: time is passed in (`nowMs`, the routing context's clock).
 */

/** Bounds of an approximate index. */
export interface ApproxIndexOptions {
  /** Most blocks remembered per endpoint (LRU by last write). Positive integer. */
  maxBlocksPerEndpoint: number;
  /** Entry lifetime after its last write, ms. Positive. */
  ttlMs: number;
}

/** Longest cached prefix per endpoint, in blocks (only endpoints with >= 1 block appear). */
export type PrefixMatch = Map<string, number>;

export class ApproxPrefixIndex {
  /**
   * key -> holders: a slot number when one endpoint holds the block (the common case: no allocation
   * per block), else an array of slots. Write times live in `lru[slot]`.
   */
  private readonly blocks = new Map<number, number | number[]>();
  /** Per slot: key -> last write ms. */
  private readonly lru: Array<Map<number, number> | undefined> = [];
  private readonly lastSweep: number[] = [];
  private readonly slotIds: Array<string | undefined> = [];
  private readonly slots = new Map<string, number>();
  private readonly freeSlots: number[] = [];

  constructor(readonly options: ApproxIndexOptions) {
    if (!Number.isInteger(options.maxBlocksPerEndpoint) || options.maxBlocksPerEndpoint <= 0) {
      throw new RangeError(`maxBlocksPerEndpoint must be a positive integer, got ${options.maxBlocksPerEndpoint}`);
    }
    if (!(options.ttlMs > 0)) throw new RangeError(`ttlMs must be positive, got ${options.ttlMs}`);
  }

  private slotOf(endpointId: string, nowMs: number): number {
    let s = this.slots.get(endpointId);
    if (s === undefined) {
      s = this.freeSlots.pop() ?? this.slotIds.length;
      this.slots.set(endpointId, s);
      this.slotIds[s] = endpointId;
      this.lru[s] = new Map();
      this.lastSweep[s] = nowMs;
    }
    return s;
  }

  /**
   * Longest prefix of `keys` each endpoint holds (entries written within `ttlMs` of `nowMs`), in blocks.
   * The walk stops at the first block no endpoint holds (AIBrix section 2.4 step 3).
   */
  longestPrefix(keys: readonly number[], nowMs: number): PrefixMatch {
    const out: PrefixMatch = new Map();
    const minT = nowMs - this.options.ttlMs;
    let alive: number[] | null = null;
    let i = 0;
    for (; i < keys.length; i++) {
      const k = keys[i]!;
      const h = this.blocks.get(k);
      if (h === undefined) break;
      const next: number[] = [];
      if (typeof h === 'number') {
        if ((alive === null || alive.includes(h)) && this.lru[h]!.get(k)! >= minT) next.push(h);
      } else {
        for (let j = 0; j < h.length; j++) {
          const s = h[j]!;
          if ((alive === null || alive.includes(s)) && this.lru[s]!.get(k)! >= minT) next.push(s);
        }
      }
      if (next.length === 0) break;
      if (alive !== null && next.length < alive.length) for (const s of alive) if (!next.includes(s)) out.set(this.slotIds[s]!, i);
      alive = next;
    }
    if (alive !== null) for (const s of alive) out.set(this.slotIds[s]!, i);
    return out;
  }

  /** Records that `endpointId` was sent (and so will cache) the blocks `keys` at `nowMs`. */
  record(keys: readonly number[], endpointId: string, nowMs: number): void {
    const slot = this.slotOf(endpointId, nowMs);
    const lru = this.lru[slot]!;
    if (nowMs - this.lastSweep[slot]! > this.options.ttlMs / 4) {
      this.lastSweep[slot] = nowMs;
      this.expire(slot, nowMs);
    }
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const h = this.blocks.get(k);
      if (h === undefined) this.blocks.set(k, slot);
      else if (typeof h === 'number') {
        if (h !== slot) this.blocks.set(k, [h, slot]);
      } else if (!h.includes(slot)) h.push(slot);
      lru.set(k, nowMs);
    }
    const cap = this.options.maxBlocksPerEndpoint;
    if (lru.size > cap) this.evict(slot, cap - Math.floor(cap / 16));
  }

  /** Drops every entry of `endpointId` (endpoint left the fleet). Unknown ids are ignored. */
  removeEndpoint(endpointId: string): void {
    const slot = this.slots.get(endpointId);
    if (slot === undefined) return;
    for (const k of this.lru[slot]!.keys()) this.unlink(k, slot);
    this.lru[slot] = undefined;
    this.slotIds[slot] = undefined;
    this.slots.delete(endpointId);
    this.freeSlots.push(slot);
  }

  /** Removes every expired entry of every endpoint (writes also do it, at most every ttlMs / 4 per endpoint). */
  sweep(nowMs: number): void {
    for (const s of this.slots.values()) this.expire(s, nowMs);
  }

  /** Blocks currently stored for `endpointId` (expired-but-unswept entries included). */
  blocksOf(endpointId: string): number {
    const s = this.slots.get(endpointId);
    return s === undefined ? 0 : this.lru[s]!.size;
  }

  /** Distinct block keys stored (all endpoints). */
  get size(): number {
    return this.blocks.size;
  }

  /** Endpoint ids with at least one entry slot allocated. */
  endpoints(): string[] {
    return [...this.slots.keys()];
  }

  private expire(slot: number, nowMs: number): void {
    const minT = nowMs - this.options.ttlMs;
    const lru = this.lru[slot]!;
    for (const [k, t] of lru) {
      if (t >= minT) continue;
      lru.delete(k);
      this.unlink(k, slot);
    }
  }

  /**
   * Keeps the `keep` most recently written entries of `slot` (ties: later first insertion kept).
   * Evicting down to cap - cap/16 at once makes the bound's cost O(log n) amortized per write.
   */
  private evict(slot: number, keep: number): void {
    const lru = this.lru[slot]!;
    const entries = [...lru];
    entries.sort((a, b) => a[1] - b[1]); // stable: equal times keep insertion order
    const drop = entries.length - Math.max(0, keep);
    for (let i = 0; i < drop; i++) {
      const k = entries[i]![0];
      lru.delete(k);
      this.unlink(k, slot);
    }
  }

  private unlink(key: number, slot: number): void {
    const h = this.blocks.get(key);
    if (h === undefined) return;
    if (typeof h === 'number') {
      if (h === slot) this.blocks.delete(key);
      return;
    }
    const j = h.indexOf(slot);
    if (j < 0) return;
    h[j] = h[h.length - 1]!;
    h.pop();
    if (h.length === 1) this.blocks.set(key, h[0]!);
  }
}
