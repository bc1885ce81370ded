/**
 * The precise KV block index: which prefix-cache blocks each endpoint actually holds, fed by the
 * engines' KV events (vLLM `BlockStored` / `BlockRemoved` / `AllBlocksCleared`; reference
 * vllm-api.md section 4.3; llm-d-kv-cache and Dynamo's KV router do the same, peers.md 2b and 5).
 *
 * One index per model (block hashes of different models never meet: each strategy instance, one
 * per model in the gateway, owns its index). Block hashes arrive as uint64 (`bigint`, vLLM's default
 * `VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=1`) or raw digests (`Uint8Array`, whose last 8 bytes are that
 * uint64). The index keys a block by the **low 52 bits** of that uint64, a plain JS number, so that
 * ingestion and lookup allocate nothing per block (collision odds ~2^-52 per pair of distinct
 * blocks; a collision can only cause one wrong cache-hit guess, never a wrong response). Holders
 * are small arrays of endpoint slots.
 *
 * Only the engine's own GPU tier is indexed: events whose `medium` is set and not `"GPU"` (offload
 * tiers written by KV connectors) are ignored. A sequence gap on an endpoint's stream means events
 * were lost: `clearEndpoint` forgets that endpoint and the index rebuilds from later events (blocks
 * stored before the gap and never touched again stay unknown: a missed hit, never a false hit).
 */
import type { ExternalBlockHash, KvCacheEvent, KvEventBatch } from '../../engines/vllm/kv-events.ts';
import type { PrefixMatch } from './approx-index.ts';

const TWO_POW_32 = 4294967296;
const LOW20 = 0xfffff;
const MASK52 = (1n << 52n) - 1n;

/** Index key of a KV-event block hash: the low 52 bits of its uint64 form, as a number. */
export function blockKey(h: ExternalBlockHash | number): number {
  if (typeof h === 'bigint') return Number(h & MASK52);
  if (typeof h === 'number') return h % 4503599627370496; // already an integer < 2^53 from a small msgpack int
  return digestKey(h);
}

/** Index key of a digest (or 8-byte hash bytes): low 52 bits of its last 8 bytes read big-endian. */
export function digestKey(d: Uint8Array): number {
  const o = d.byteOffset + d.byteLength - 8;
  const dv = new DataView(d.buffer, o, 8);
  return (dv.getUint32(0, false) & LOW20) * TWO_POW_32 + dv.getUint32(4, false);
}

/** Counters of what the index ingested. */
export interface KvIndexStats {
  batches: number;
  blocksStored: number;
  blocksRemoved: number;
  clears: number;
  /** Events ignored because their medium is not the GPU tier. */
  ignoredOtherMedium: number;
}

export class KvBlockIndex {
  private readonly blocks = new Map<number, number[]>();
  private readonly slots = new Map<string, number>();
  private readonly slotIds: Array<string | undefined> = [];
  private readonly counts: number[] = [];
  private readonly freeSlots: number[] = [];
  readonly stats: KvIndexStats = { batches: 0, blocksStored: 0, blocksRemoved: 0, clears: 0, ignoredOtherMedium: 0 };

  private slotOf(endpointId: string): number {
    let s = this.slots.get(endpointId);
    if (s === undefined) {
      s = this.freeSlots.pop() ?? this.slotIds.length;
      this.slots.set(endpointId, s);
      this.slotIds[s] = endpointId;
      this.counts[s] = 0;
    }
    return s;
  }

  /** Applies one decoded batch from `endpointId`'s stream (in sequence order). */
  applyBatch(endpointId: string, batch: KvEventBatch): void {
    this.applyEvents(endpointId, batch.events);
  }

  /** Applies events from `endpointId` in order. */
  applyEvents(endpointId: string, events: readonly KvCacheEvent[]): void {
    const slot = this.slotOf(endpointId);
    this.stats.batches++;
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      if (e.type === 'BlockStored') {
        if (e.medium !== null && e.medium !== 'GPU') {
          this.stats.ignoredOtherMedium++;
          continue;
        }
        const hs = e.blockHashes;
        for (let j = 0; j < hs.length; j++) this.add(blockKey(hs[j]!), slot);
        this.stats.blocksStored += hs.length;
      } else if (e.type === 'BlockRemoved') {
        if (e.medium !== null && e.medium !== 'GPU') {
          this.stats.ignoredOtherMedium++;
          continue;
        }
        const hs = e.blockHashes;
        for (let j = 0; j < hs.length; j++) this.remove(blockKey(hs[j]!), slot);
        this.stats.blocksRemoved += hs.length;
      } else {
        this.clearSlot(slot);
      }
    }
  }

  /** Adds one block (by key) for an endpoint; idempotent. */
  addBlock(endpointId: string, key: number): void {
    this.add(key, this.slotOf(endpointId));
  }

  private add(key: number, slot: number): void {
    const h = this.blocks.get(key);
    if (h === undefined) {
      this.blocks.set(key, [slot]);
      this.counts[slot]!++;
    } else if (!h.includes(slot)) {
      h.push(slot);
      this.counts[slot]!++;
    }
  }

  private remove(key: number, slot: number): void {
    const h = this.blocks.get(key);
    if (h === undefined) return;
    const j = h.indexOf(slot);
    if (j < 0) return;
    h[j] = h[h.length - 1]!;
    h.pop();
    this.counts[slot]!--;
    if (h.length === 0) this.blocks.delete(key);
  }

  private clearSlot(slot: number): void {
    this.stats.clears++;
    if (this.counts[slot] === 0) return;
    for (const [k, h] of this.blocks) {
      const j = h.indexOf(slot);
      if (j < 0) continue;
      h[j] = h[h.length - 1]!;
      h.pop();
      if (h.length === 0) this.blocks.delete(k);
    }
    this.counts[slot] = 0;
  }

  /**
   * Forgets everything known about `endpointId` (AllBlocksCleared, or a sequence gap on its stream:
   * the index then rebuilds from the following events). O(blocks in the index).
   */
  clearEndpoint(endpointId: string): void {
    const s = this.slots.get(endpointId);
    if (s !== undefined) this.clearSlot(s);
  }

  /** Drops the endpoint entirely (it left the fleet). */
  removeEndpoint(endpointId: string): void {
    const s = this.slots.get(endpointId);
    if (s === undefined) return;
    this.clearSlot(s);
    this.slots.delete(endpointId);
    this.slotIds[s] = undefined;
    this.freeSlots.push(s);
  }

  /** Longest prefix of `keys` (block keys, see `blockKey`/`digestKey`) held by each endpoint, in blocks. */
  longestPrefix(keys: readonly number[]): PrefixMatch {
    const out: PrefixMatch = new Map();
    let alive: number[] | null = null;
    for (let i = 0; i < keys.length; i++) {
      const h = this.blocks.get(keys[i]!);
      if (h === undefined) break;
      let next: number[];
      if (alive === null) next = h.slice();
      else {
        next = [];
        for (const s of alive) if (h.includes(s)) next.push(s);
      }
      if (next.length === 0) break;
      for (const s of next) out.set(this.slotIds[s]!, i + 1);
      alive = next;
    }
    return out;
  }

  /** True when `endpointId` holds the block with this key. */
  has(endpointId: string, key: number): boolean {
    const s = this.slots.get(endpointId);
    return s !== undefined && (this.blocks.get(key)?.includes(s) ?? false);
  }

  /** Blocks held by `endpointId` according to its events. */
  blocksOf(endpointId: string): number {
    const s = this.slots.get(endpointId);
    return s === undefined ? 0 : this.counts[s]!;
  }

  /** Distinct blocks held by any endpoint. */
  get size(): number {
    return this.blocks.size;
  }
}
