/**
 * `kv-aware`: precise prefix-cache routing on the blocks the engines report holding.
 *
 * Same match-then-balance selection as `prefix-cache` (AIBrix's KV-event mode keeps the local
 * mode's imbalance / threshold / fallback logic, reference aibrix-gateway.md section 2.4), but:
 * - the index (`KvBlockIndex`) is fed by the engines' KV events (`applyKvEvents`, wired by
 *   `KvEventIngestor` in the gateway or by the simulator), so evictions are seen;
 * - the request's blocks are hashed exactly as vLLM does with `--prefix-caching-hash-algo
 *   sha256_cbor` and `PYTHONHASHSEED=<hashSeed>` (`src/engines/vllm/block-hash.ts`), over the
 *   engine's block size (default 16 tokens), LoRA adapter name mixed in as vLLM's extra key, so the
 *   keys equal the hashes in the engine's `BlockStored` events (not AIBrix's re-hashing, which
 *   only chains correctly for single-block events, section 10 gotcha 13);
 * - between routing and the engine's `BlockStored` event, the routed blocks are held as
 *   *speculative* entries for `speculativeTtlMs` (AIBrix also inserts its own routed prefixes;
 *   llm-d calls this speculative indexing), so a burst of requests sharing a new prefix is not
 *   scattered before the first one is prefilled.
 */
import { z } from 'zod';
import type { EndpointState } from '../../engines/state.ts';
import { DEFAULT_HASH_SEED, hashBlockChainDigests } from '../../engines/vllm/block-hash.ts';
import type { KvEventBatch } from '../../engines/vllm/kv-events.ts';
import { BASE_FILTERS, applyFilters, noEndpoint } from '../framework.ts';
import { parseOptions } from '../options.ts';
import { requestLoad } from '../signals.ts';
import type { RoutingContext, RoutingDecision, RoutingRequest, RoutingStrategy } from '../types.ts';
import { ApproxPrefixIndex, type PrefixMatch } from './approx-index.ts';
import { KvBlockIndex, digestKey } from './kv-index.ts';
import { matchScores, selectByPrefix } from './prefix-cache.ts';
import { prefixBlockKeys } from './hash.ts';

/** The engines' vLLM block hashing (sha256_cbor) that a KV-event consumer's keys assume. */
export interface KvBlockHashing {
  /** Engine KV block size, tokens (`--block-size`). */
  readonly blockSize: number;
  /** The engines' `PYTHONHASHSEED`. */
  readonly hashSeed: string;
}

/** A strategy (or anything) that consumes KV events per endpoint. */
export interface KvEventSink {
  /** Applies one decoded batch from `endpointId`'s stream, in sequence order. */
  applyKvEvents(endpointId: string, batch: KvEventBatch): void;
  /** Events from `endpointId` were lost (sequence gap, publisher restart): forget it and rebuild. */
  onKvEventGap(endpointId: string): void;
  /**
   * The block hashing the events must use for this sink's prompt keys to match (the DES hashes its
   * simulated engines' blocks with it). Absent for relays that only forward to other sinks.
   */
  readonly blockHashing?: KvBlockHashing;
}

/** True when `x` implements `KvEventSink` (the gateway and the DES use it to wire KV events). */
export function isKvEventSink(x: unknown): x is KvEventSink {
  return typeof x === 'object' && x !== null && typeof (x as KvEventSink).applyKvEvents === 'function' && typeof (x as KvEventSink).onKvEventGap === 'function';
}

/**
 * Block keys of a prompt as the precise index stores them: vLLM sha256_cbor chain over full blocks
 * of `blockSize` tokens (`hashBlockChainDigests`), each reduced by `digestKey`.
 */
export function vllmBlockKeys(tokens: readonly number[], blockSize: number, hashSeed: string, loraName?: string): number[] {
  const ds = hashBlockChainDigests(tokens, blockSize, { hashSeed, loraName });
  const out = new Array<number>(ds.length);
  for (let i = 0; i < ds.length; i++) out[i] = digestKey(ds[i]!);
  return out;
}

/**
 * Memoizes vLLM block digests by prefix: a prompt's blocks are first keyed with the fast chain
 * hash (`prefixBlockKeys`, seeded by the hash seed and LoRA name), and SHA-256 runs only from the
 * first block whose prefix was not seen before (continuing the chain from the cached parent digest).
 * Prompts that share long prefixes (multi-turn conversations, system prompts) then cost a few
 * hashes instead of one per block. Bounded: cleared when it reaches `maxEntries`.
 */
export class VllmKeyCache {
  private readonly digests = new Map<number, Uint8Array>();
  private readonly fast: number[] = [];
  constructor(
    readonly blockSize: number,
    readonly hashSeed: string,
    readonly maxEntries = 262_144,
  ) {}

  /** Same result as `vllmBlockKeys(tokens, blockSize, hashSeed, loraName)`. */
  keys(tokens: readonly number[], loraName?: string): number[] {
    let seed = 0x2545f491;
    const tag = `${this.hashSeed}\u0000${loraName ?? ''}`;
    for (let i = 0; i < tag.length; i++) seed = Math.imul(seed ^ tag.charCodeAt(i), 0x01000193);
    const fast = prefixBlockKeys(tokens, this.blockSize, seed | 0, this.fast);
    const n = fast.length;
    const out = new Array<number>(n);
    let i = 0;
    let parent: Uint8Array | undefined;
    for (; i < n; i++) {
      const d = this.digests.get(fast[i]!);
      if (d === undefined) break;
      out[i] = digestKey(d);
      parent = d;
    }
    if (i < n) {
      const rest = hashBlockChainDigests(parent === undefined ? tokens : tokens.slice(i * this.blockSize), this.blockSize, { hashSeed: this.hashSeed, loraName, parent });
      if (this.digests.size + rest.length > this.maxEntries) this.digests.clear();
      for (let j = 0; j < rest.length; j++, i++) {
        out[i] = digestKey(rest[j]!);
        this.digests.set(fast[i]!, rest[j]!);
      }
    }
    return out;
  }
}

/** Merges two prefix matches (per endpoint, the longer). */
export function mergeMatches(a: PrefixMatch, b: PrefixMatch): PrefixMatch {
  if (b.size === 0) return a;
  if (a.size === 0) return b;
  const out = new Map(a);
  for (const [k, v] of b) if ((out.get(k) ?? 0) < v) out.set(k, v);
  return out;
}

const schema = z
  .object({
    /** Engine KV block size, tokens (vLLM default 16; must equal the engines' `--block-size`). */
    blockSize: z.number().int().positive().default(16),
    /** The engines' `PYTHONHASHSEED` (NONE_HASH = sha256_cbor(seed)). */
    hashSeed: z.string().default(DEFAULT_HASH_SEED),
    imbalanceAbsCount: z.number().nonnegative().default(16),
    stddevFactor: z.number().nonnegative().default(2),
    /** How long routed-but-not-yet-reported blocks count as held, ms (0 disables). */
    speculativeTtlMs: z.number().nonnegative().default(5_000),
    loadMode: z.enum(['max', 'sum', 'inflight']).default('inflight'),
  })
  .strict();

export type KvAwareOptions = z.infer<typeof schema>;

/** `kv-aware` (see module doc). Owns one `KvBlockIndex` (one strategy instance per model). */
export class KvAwareStrategy implements RoutingStrategy, KvEventSink {
  readonly name: string = 'kv-aware';
  readonly opts: KvAwareOptions;
  readonly kvIndex = new KvBlockIndex();
  private readonly speculative: ApproxPrefixIndex | null;
  private readonly keyCache: VllmKeyCache;
  readonly blockHashing: KvBlockHashing;

  constructor(options?: Record<string, unknown>) {
    this.opts = parseOptions('kv-aware', schema, options);
    this.blockHashing = { blockSize: this.opts.blockSize, hashSeed: this.opts.hashSeed };
    this.keyCache = new VllmKeyCache(this.opts.blockSize, this.opts.hashSeed);
    this.speculative = this.opts.speculativeTtlMs > 0 ? new ApproxPrefixIndex({ maxBlocksPerEndpoint: 65_536, ttlMs: this.opts.speculativeTtlMs }) : null;
  }

  applyKvEvents(endpointId: string, batch: KvEventBatch): void {
    this.kvIndex.applyBatch(endpointId, batch);
  }

  onKvEventGap(endpointId: string): void {
    this.kvIndex.clearEndpoint(endpointId);
  }

  /** Longest held prefix per endpoint (precise, merged with speculative entries) and the block keys. */
  match(req: RoutingRequest, nowMs: number): { keys: number[]; match: PrefixMatch } {
    const keys = this.keyCache.keys(req.promptTokens(), req.adapter);
    let match = this.kvIndex.longestPrefix(keys);
    if (this.speculative) match = mergeMatches(match, this.speculative.longestPrefix(keys, nowMs));
    return { keys, match };
  }

  route(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): RoutingDecision {
    const { candidates, emptyReason } = applyFilters(BASE_FILTERS, req, endpoints, ctx);
    if (candidates.length === 0) return noEndpoint(this.name, emptyReason!);
    const { keys, match } = this.match(req, ctx.nowMs);
    const loads = candidates.map((e) => requestLoad(e, this.opts.loadMode));
    const sel = selectByPrefix(candidates, loads, match, keys.length, this.opts, ctx);
    const chosen = candidates[sel.index]!;
    if (this.speculative && keys.length > 0) this.speculative.record(keys, chosen.id, ctx.nowMs);
    return { endpoint: chosen, strategy: this.name, reason: sel.reason, scores: matchScores(candidates, match, keys.length) };
  }

  /** Multi-strategy form: cached fraction of the prompt in [0, 1], higher better. */
  score(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): number[] {
    const { keys, match } = this.match(req, ctx.nowMs);
    return endpoints.map((e) => (keys.length > 0 ? (match.get(e.id) ?? 0) / keys.length : 0));
  }

  onEndpointRemoved(endpointId: string): void {
    this.kvIndex.removeEndpoint(endpointId);
    this.speculative?.removeEndpoint(endpointId);
  }
}

/** Factory for the registry. @throws Error naming a bad option. */
export function createKvAware(options?: Record<string, unknown>): RoutingStrategy {
  return new KvAwareStrategy(options);
}
