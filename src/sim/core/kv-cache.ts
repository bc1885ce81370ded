/**
 * Paged KV cache with prefix caching, as vLLM V1's `BlockPool` / `KVCacheManager`
 * (`vllm/v1/core/block_pool.py`, `kv_cache_manager.py`, `kv_cache_utils.py`):
 *
 * - a fixed number of GPU blocks, each with a reference count;
 * - full blocks carry the hash of their token chain and are indexed hash -> block;
 * - blocks whose reference count drops to 0 go to the tail of a free queue but keep their hash, so
 *   a later request can reuse them (a prefix-cache hit) until they are evicted;
 * - allocation takes the head of the free queue (least recently freed first); taking a block that
 *   still carries a hash evicts it from the prefix cache (a `BlockRemoved` event);
 * - a request's blocks are freed in reverse order so its tail blocks are evicted before its head.
 *
 * Optional CPU (DRAM) tier: hashes of evicted GPU blocks go to an LRU of `numCpuBlocks` entries;
 * a prefix lookup that runs out of GPU hits continues in the CPU tier (those blocks are copied back
 * over PCIe by the engine, which charges the transfer time).
 *
 * All state is in typed arrays and one Map; every operation is O(blocks touched).
 */
import type { BlockHash, KvEvent } from './types.ts';

/** The GPU block pool with prefix-cache index and the optional CPU tier. */
export class BlockPool {
  readonly numBlocks: number;
  readonly numCpuBlocks: number;
  private readonly refCnt: Int32Array;
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly hashOf: (BlockHash | undefined)[];
  private readonly index = new Map<BlockHash, number>();
  private readonly cpu = new Map<BlockHash, true>();
  private numFreeBlocks: number;
  /** Sentinel node id = numBlocks (head/tail of the circular free list). */
  private readonly sentinel: number;
  private readonly emit: ((e: KvEvent) => void) | undefined;
  private removedBatch: BlockHash[] | null = null;

  constructor(numBlocks: number, numCpuBlocks: number, onEvent?: (e: KvEvent) => void) {
    this.numBlocks = numBlocks;
    this.numCpuBlocks = numCpuBlocks;
    this.refCnt = new Int32Array(numBlocks);
    this.prev = new Int32Array(numBlocks + 1);
    this.next = new Int32Array(numBlocks + 1);
    this.hashOf = new Array<BlockHash | undefined>(numBlocks).fill(undefined);
    this.sentinel = numBlocks;
    this.emit = onEvent;
    // Circular doubly linked list through the sentinel: sentinel <-> 0 <-> 1 <-> ... <-> n-1 <-> sentinel.
    let last = numBlocks;
    for (let i = 0; i < numBlocks; i++) {
      this.next[last] = i;
      this.prev[i] = last;
      last = i;
    }
    this.next[last] = numBlocks;
    this.prev[numBlocks] = last;
    this.numFreeBlocks = numBlocks;
  }

  /** Blocks not referenced by any request (including cached ones that can be evicted). */
  get numFree(): number {
    return this.numFreeBlocks;
  }

  /** Blocks referenced by at least one request. */
  get numUsed(): number {
    return this.numBlocks - this.numFreeBlocks;
  }

  /** Hashes held by the CPU tier. */
  get numCpuUsed(): number {
    return this.cpu.size;
  }

  /** Number of blocks with a prefix-cache hash (referenced or not). */
  get numCached(): number {
    return this.index.size;
  }

  private unlink(b: number): void {
    const p = this.prev[b]!;
    const n = this.next[b]!;
    this.next[p] = n;
    this.prev[n] = p;
    this.numFreeBlocks--;
  }

  private appendTail(b: number): void {
    const s = this.sentinel;
    const last = this.prev[s]!;
    this.next[last] = b;
    this.prev[b] = last;
    this.next[b] = s;
    this.prev[s] = b;
    this.numFreeBlocks++;
  }

  /** GPU block holding `hash`, or -1. */
  lookup(hash: BlockHash): number {
    const b = this.index.get(hash);
    return b === undefined ? -1 : b;
  }

  /** True when the CPU tier holds `hash` (refreshes its LRU position when `touch`). */
  cpuHas(hash: BlockHash, touch: boolean): boolean {
    if (!this.cpu.has(hash)) return false;
    if (touch) {
      this.cpu.delete(hash);
      this.cpu.set(hash, true);
    }
    return true;
  }

  /** Reference count of a block (0 = free, possibly cached). */
  refCount(b: number): number {
    return this.refCnt[b]!;
  }

  /** Takes a reference on a (cached) block; removes it from the free queue if it was free. */
  touch(b: number): void {
    if (this.refCnt[b] === 0) this.unlink(b);
    this.refCnt[b]!++;
  }

  /**
   * Allocates one block from the head of the free queue (caller checked `numFree`). Evicts its
   * hash, if any: the hash moves to the CPU tier (when present) and is reported as removed.
   */
  allocate(): number {
    const b = this.next[this.sentinel]!;
    if (b === this.sentinel) throw new Error('BlockPool.allocate: no free block (caller must check numFree)');
    this.unlink(b);
    this.refCnt[b] = 1;
    const h = this.hashOf[b];
    if (h !== undefined) {
      this.hashOf[b] = undefined;
      this.index.delete(h);
      if (this.numCpuBlocks > 0) {
        this.cpu.delete(h);
        this.cpu.set(h, true);
        if (this.cpu.size > this.numCpuBlocks) {
          const oldest = this.cpu.keys().next().value as BlockHash;
          this.cpu.delete(oldest);
        }
      }
      if (this.emit) (this.removedBatch ??= []).push(h);
    }
    return b;
  }

  /** Releases one reference per block, in the given order (pass a request's blocks reversed). */
  release(blocks: readonly number[], reverse: boolean): void {
    const n = blocks.length;
    for (let k = 0; k < n; k++) {
      const b = blocks[reverse ? n - 1 - k : k]!;
      const r = --this.refCnt[b]!;
      if (r === 0) this.appendTail(b);
      else if (r < 0) throw new Error(`BlockPool.release: block ${b} released twice`);
    }
  }

  /**
   * Registers `hash` for block `b` (a newly full block). Returns false (and leaves the block
   * uncached) when another block already holds that hash, as vLLM does for duplicate computation.
   */
  cache(b: number, hash: BlockHash): boolean {
    if (this.hashOf[b] !== undefined) return this.hashOf[b] === hash;
    if (this.index.has(hash)) return false;
    this.hashOf[b] = hash;
    this.index.set(hash, b);
    return true;
  }

  /** Emits the evictions collected since the last flush as one BlockRemoved event. */
  flushEvents(): void {
    if (this.removedBatch && this.emit) {
      const hashes = this.removedBatch;
      this.removedBatch = null;
      this.emit({ type: 'BlockRemoved', blockHashes: hashes, medium: 'GPU' });
    }
  }

  /**
   * Drops every hash of unreferenced blocks (vLLM `reset_prefix_cache`, which refuses while blocks
   * are in use; here referenced blocks simply stay cached). Also clears the CPU tier.
   * Returns the number of hashes dropped.
   */
  reset(): number {
    let n = 0;
    for (const [h, b] of this.index) {
      if (this.refCnt[b] === 0) {
        this.index.delete(h);
        this.hashOf[b] = undefined;
        n++;
      }
    }
    this.cpu.clear();
    return n;
  }
}
