/**
 * Fast, non-cryptographic prefix-block keys for the *approximate* prefix indexes (`prefix-cache`,
 * `prefix-cache-preble`, `cache-cost` with `index: approx`).
 *
 * AIBrix (`utils/prefixcacheindexer/hash.go`, reference aibrix-gateway.md section 2.4) cuts the
 * prompt into fixed-size blocks, drops the trailing partial block and chains
 * `h_i = xxhash64(seed; h_{i-1} || block_i)`. We keep that structure but hash **token ids**
 * (the model's tokenizer, `src/engines/tokenizer.ts`) instead of bytes, with a 2 x 32-bit
 * multiply-xorshift mix (MurmurHash3's `fmix32` finalizer, Appleby 2011) so that keys are plain
 * JS numbers (53 bits) and Map lookups allocate nothing. The chain property is kept: the key of
 * block i depends on every token of blocks 0..i, so equal keys mean equal prefixes (up to a
 * ~2^-53 collision probability per pair). These keys are only ever compared with keys built by this
 * module; the *precise* index (`kv-index.ts`) uses vLLM's sha256_cbor hashes instead.
 */

import { fmix32 } from '../../common/hash32.ts';

const TWO_POW_21 = 2097152;

/**
 * Chained block keys of the full blocks of `tokens`.
 * @param tokens prompt token ids (non-negative integers).
 * @param blockSize tokens per block (positive integer); the trailing partial block is ignored.
 * @param seed chain seed (32-bit integer); different seeds give unrelated key spaces.
 * @param out optional array to fill (reused to avoid allocation); it is truncated to the block count.
 * @returns one key per full block, each an integer in [0, 2^53).
 * @throws RangeError when blockSize is not a positive integer.
 */
export function prefixBlockKeys(tokens: readonly number[], blockSize: number, seed = 0, out: number[] = []): number[] {
  if (!Number.isInteger(blockSize) || blockSize <= 0) throw new RangeError(`blockSize must be a positive integer, got ${blockSize}`);
  const n = Math.floor(tokens.length / blockSize);
  out.length = n;
  let a = (seed ^ 0x9e3779b9) >>> 0;
  let b = (Math.imul(seed, 0x27d4eb2f) ^ 0x165667b1) >>> 0;
  let t = 0;
  for (let i = 0; i < n; i++) {
    // parent chaining: the running state (a, b) carries all earlier blocks.
    for (let j = 0; j < blockSize; j++, t++) {
      const v = tokens[t]! | 0;
      a = Math.imul(a ^ v, 0x01000193) >>> 0; // FNV-1a style step, lane 1
      a = ((a << 13) | (a >>> 19)) >>> 0;
      b = (Math.imul(b + v, 0x5bd1e995) ^ (b >>> 15)) >>> 0; // murmur2 style step, lane 2
    }
    a = fmix32(a ^ Math.imul(i + 1, 0x9e3779b1));
    b = fmix32(b ^ a);
    out[i] = a * TWO_POW_21 + (b >>> 11);
  }
  return out;
}
