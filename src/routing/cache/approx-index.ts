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
 * Expired entries are never reported (checked on read) and are physically removed lazily, oldest
 * first, on the next write (amortized O(1) per entry). `removeEndpoint` drops an endpoint's
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

interface Holder {
  /** Endpoint slots holding the block. */
  s: number[];
  /** Last write time (ms) per slot, parallel to `s`. */
  t: number[];
}

/** Longest cached prefix per endpoint, in blocks (only endpoints with >= 1 block appear). */
export type PrefixMatch = Map<string, number>;

export class ApproxPrefixIndex {
  private readonly blocks = new Map<number, Holder>();
  /** Per slot: key -> last write ms, in write order (oldest first). */
  private readonly lru: Array<Map<number, number> | undefined> = [];
  private readonly slotIds: Array<string | undefined> = [];
  private readonly slots = new Map<string, number>();
  private readonly freeSlots: number[] = [];

  constructor(readonly options: ApproxIndexOptions) {
    if (!Number.isInteger(options.maxBlocksPerEndpoint) || options.maxBlocksPerEndpoint <= 0) {
      throw new RangeError(`maxBlocksPerEndpoint must be a positive integer, got ${options.maxBlocksPerEndpoint}`);
    }
    if (!(options.ttlMs > 0)) throw new RangeError(`ttlMs must be positive, got ${options.ttlMs}`);
  }

  private slotOf(endpointId: string): number {
    let s = this.slots.get(endpointId);
    if (s === undefined) {
      s = this.freeSlots.pop() ?? this.slotIds.length;
      this.slots.set(endpointId, s);
      this.slotIds[s] = endpointId;
      this.lru[s] = new Map();
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
    for (let i = 0; i < keys.length; i++) {
      const h = this.blocks.get(keys[i]!);
      if (!h) break;
      const next: number[] = [];
      for (let j = 0; j < h.s.length; j++) {
        if (h.t[j]! < minT) continue;
        const s = h.s[j]!;
        if (alive === null || alive.includes(s)) next.push(s);
      }
      if (next.length === 0) break;
      for (const s of next) out.set(this.slotIds[s]!, i + 1);
      alive = next;
    }
    return out;
  }

  /** Records that `endpointId` was sent (and so will cache) the blocks `keys` at `nowMs`. */
  record(keys: readonly number[], endpointId: string, nowMs: number): void {
    const slot = this.slotOf(endpointId);
    const lru = this.lru[slot]!;
    this.expire(slot, nowMs);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      let h = this.blocks.get(k);
      if (!h) {
        h = { s: [slot], t: [nowMs] };
        this.blocks.set(k, h);
      } else {
        const j = h.s.indexOf(slot);
        if (j >= 0) h.t[j] = nowMs;
        else {
          h.s.push(slot);
          h.t.push(nowMs);
        }
      }
      lru.delete(k);
      lru.set(k, nowMs);
    }
    const cap = this.options.maxBlocksPerEndpoint;
    if (lru.size > cap) {
      let excess = lru.size - cap;
      for (const k of lru.keys()) {
        if (excess-- <= 0) break;
        lru.delete(k);
        this.unlink(k, slot);
      }
    }
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

  /** Removes every expired entry of every endpoint (the lazy path does this per endpoint on write). */
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
      if (t >= minT) break; // write order: the rest are newer
      lru.delete(k);
      this.unlink(k, slot);
    }
  }

  private unlink(key: number, slot: number): void {
    const h = this.blocks.get(key);
    if (!h) return;
    const j = h.s.indexOf(slot);
    if (j < 0) return;
    const last = h.s.length - 1;
    h.s[j] = h.s[last]!;
    h.t[j] = h.t[last]!;
    h.s.pop();
    h.t.pop();
    if (h.s.length === 0) this.blocks.delete(key);
  }
}
