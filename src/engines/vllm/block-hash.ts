/**
 * vLLM prefix-cache block hashing, `--prefix-caching-hash-algo sha256_cbor` variant, reproduced
 * bit-for-bit so that KV events from real vLLM and from the simulator can be matched by a TS
 * consumer (`vllm/v1/core/kv_cache_utils.py` `hash_block_tokens` / `init_none_hash`,
 * `vllm/utils/hashing.py` `sha256_cbor`; see reference vllm-api.md §4.4):
 *
 * - Only **full** blocks are hashed (a trailing partial block gets no hash).
 * - Chain: `h_i = sha256(cbor_canonical([h_{i-1} ?? NONE_HASH, [tok...], extra_keys_i ?? null]))`,
 *   where `h_{i-1}` is the 32-byte digest (CBOR byte string), the tokens a CBOR array of ints and
 *   `extra_keys` a CBOR array (Python tuple) or null.
 * - `NONE_HASH` (the chain seed): with `PYTHONHASHSEED=<s>` set, `sha256_cbor(s)` = sha256 of the
 *   CBOR text string `s`; unset, vLLM uses 32 random bytes per process (not reproducible). Our
 *   default is the seed string `"0"`, i.e. vLLM started with `PYTHONHASHSEED=0`.
 * - `extra_keys`: `lora_extra_keys + mm_extra_keys + cache_salt_keys + prompt_embeds_keys`
 *   (`generate_block_hash_extra_keys`): the LoRA adapter **name** on every block (newest vLLM; older
 *   versions used the int id), the `cache_salt` on the first block only. Empty -> null.
 *
 * Token ids must be integers in [0, 2^32) (every real vocabulary is): cbor-x writes larger JS numbers
 * as floats where cbor2 would write a uint64.
 *
 * Representation: hashing chains full 32-byte digests (`Uint8Array`); KV events carry, by default
 * (`VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=1`), the **lower 64 bits of the digest read big-endian**
 * (= its last 8 bytes) as an unsigned 64-bit int (`maybe_convert_block_hash`). `hashBlockChain`
 * returns those `bigint`s; `hashBlockChainDigests` returns the digests.
 */
import { createHash, hash as oneShotHash } from 'node:crypto';
import { Encoder } from 'cbor-x';

/** Default `PYTHONHASHSEED` value assumed for `NONE_HASH` (vLLM run with `PYTHONHASHSEED=0`). */
export const DEFAULT_HASH_SEED = '0';

// Plain CBOR: definite lengths, shortest ints (RFC 8949 preferred serialization, what
// `cbor2.dumps(canonical=True)` produces for arrays/ints/bytes/text/null), no records/tags.
const cbor = new Encoder({ useRecords: false, mapsAsObjects: false, tagUint8Array: false, variableMapSize: true } as ConstructorParameters<typeof Encoder>[0]);

/** Canonical CBOR bytes of a value made of arrays, ints, byte strings, text strings and null. */
export function cborCanonical(value: unknown): Uint8Array {
  return cbor.encode(value);
}

/** `sha256_cbor(x)`: SHA-256 over the canonical CBOR encoding of `x` (vllm/utils/hashing.py). 32 bytes. */
export function sha256Cbor(value: unknown): Uint8Array {
  const bytes = cborCanonical(value);
  // one-shot crypto.hash (Node >= 20.12) is ~1.5x faster than createHash for block-sized inputs
  return typeof oneShotHash === 'function' ? oneShotHash('sha256', bytes, 'buffer') : createHash('sha256').update(bytes).digest();
}

/** Options of the block-hash chain. */
export interface BlockHashOptions {
  /** `PYTHONHASHSEED` value the engine runs with (NONE_HASH = sha256_cbor(seed)); default "0". */
  hashSeed?: string;
  /** LoRA adapter name of the request (mixed into every block as an extra key); undefined = none. */
  loraName?: string;
  /** `cache_salt` of the request (mixed into the first block only). */
  cacheSalt?: string;
  /** Digest of the block before `tokenIds[0]` (continue a chain); default: start a new chain at NONE_HASH. */
  parent?: Uint8Array;
}

const noneHashCache = new Map<string, Uint8Array>();

/** `NONE_HASH` for a `PYTHONHASHSEED` value: `sha256_cbor(seed)` (32 bytes, cached). */
export function noneHash(seed: string = DEFAULT_HASH_SEED): Uint8Array {
  let h = noneHashCache.get(seed);
  if (!h) {
    h = sha256Cbor(seed);
    noneHashCache.set(seed, h);
  }
  return h;
}

/** Lower 64 bits of a digest read big-endian (its last 8 bytes) as an unsigned bigint: the KV-event hash form. */
export function digestToU64(digest: Uint8Array): bigint {
  const dv = new DataView(digest.buffer, digest.byteOffset + digest.byteLength - 8, 8);
  return dv.getBigUint64(0, false);
}

/** One block hash: `sha256_cbor([parent, tokens, extraKeys])` (32-byte digest). */
export function hashBlockTokens(parent: Uint8Array, tokens: readonly number[], extraKeys: readonly unknown[] | null): Uint8Array {
  return sha256Cbor([parent, tokens, extraKeys]);
}

/**
 * Digests of every full block of `tokenIds` (length = floor(len / blockSize)), chained from
 * `opts.parent` or NONE_HASH.
 * @throws RangeError when blockSize is not a positive integer.
 */
export function hashBlockChainDigests(tokenIds: readonly number[], blockSize: number, opts: BlockHashOptions = {}): Uint8Array[] {
  if (!Number.isInteger(blockSize) || blockSize <= 0) throw new RangeError(`blockSize must be a positive integer, got ${blockSize}`);
  const n = Math.floor(tokenIds.length / blockSize);
  const out: Uint8Array[] = new Array(n);
  let parent = opts.parent ?? noneHash(opts.hashSeed);
  for (let i = 0; i < n; i++) {
    const keys: unknown[] = [];
    if (opts.loraName !== undefined) keys.push(opts.loraName);
    if (i === 0 && opts.parent === undefined && opts.cacheSalt) keys.push(opts.cacheSalt);
    const h = hashBlockTokens(parent, tokenIds.slice(i * blockSize, (i + 1) * blockSize), keys.length > 0 ? keys : null);
    out[i] = h;
    parent = h;
  }
  return out;
}

/**
 * Block hashes of every full block of `tokenIds` in the form vLLM's KV events carry by default:
 * unsigned 64-bit ints (`bigint`, may exceed 2^63), the last 8 bytes of each sha256_cbor digest.
 * @throws RangeError when blockSize is not a positive integer.
 */
export function hashBlockChain(tokenIds: readonly number[], blockSize: number, opts: BlockHashOptions = {}): bigint[] {
  return hashBlockChainDigests(tokenIds, blockSize, opts).map(digestToU64);
}

/**
 * An incremental hasher for a growing token sequence (a request whose prompt and output grow):
 * `extend(tokens)` returns the digests of the blocks that became full.
 */
export class BlockHashChain {
  private pending: number[] = [];
  private last: Uint8Array | null = null;
  private count = 0;
  constructor(
    readonly blockSize: number,
    private readonly opts: BlockHashOptions = {},
  ) {
    if (!Number.isInteger(blockSize) || blockSize <= 0) throw new RangeError(`blockSize must be a positive integer, got ${blockSize}`);
  }

  /** Number of full blocks hashed so far. */
  get blocks(): number {
    return this.count;
  }

  /** Appends tokens; returns the digests of newly completed blocks (possibly none). */
  extend(tokens: readonly number[]): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const t of tokens) {
      this.pending.push(t);
      if (this.pending.length === this.blockSize) {
        const keys: unknown[] = [];
        if (this.opts.loraName !== undefined) keys.push(this.opts.loraName);
        if (this.count === 0 && this.opts.parent === undefined && this.opts.cacheSalt) keys.push(this.opts.cacheSalt);
        const parent = this.last ?? this.opts.parent ?? noneHash(this.opts.hashSeed);
        const h = hashBlockTokens(parent, this.pending, keys.length > 0 ? keys : null);
        out.push(h);
        this.last = h;
        this.count++;
        this.pending = [];
      }
    }
    return out;
  }
}
