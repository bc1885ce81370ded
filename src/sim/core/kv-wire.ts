/**
 * The engine core's KV events in vLLM's form, for both drivers: the cores hash their prompt blocks
 * exactly as vLLM does with `--prefix-caching-hash-algo sha256_cbor` (`src/engines/vllm/block-hash.ts`),
 * and their `BlockStored` / `BlockRemoved` / `AllBlocksCleared` events are converted to the decoded
 * wire shape (`KvCacheEvent`, `src/engines/vllm/kv-events.ts`). The HTTP server publishes these over
 * ZeroMQ; the discrete-event cluster hands them straight to a routing strategy's `applyKvEvents`
 * (no msgpack/ZeroMQ round trip, which changes nothing in the content).
 */
import { hashBlockTokens, noneHash } from '../../engines/vllm/block-hash.ts';
import type { KvCacheEvent } from '../../engines/vllm/kv-events.ts';
import type { BlockHash, BlockHasher, KvEvent } from './types.ts';

/**
 * The `sha256_cbor` block hasher for `EngineCore` (`hashBlock`): BlockHash = lowercase hex of the
 * 32-byte digest (a string, so the core can use it as a map key; chained through `parent`).
 * Same hashes as vLLM `hash_block_tokens` with `PYTHONHASHSEED=hashSeed` (NONE_HASH = sha256_cbor(seed)),
 * the LoRA adapter name as the extra key.
 */
export function sha256CborBlockHasher(hashSeed: string): BlockHasher {
  const seed = noneHash(hashSeed);
  return (tokens, parent, extraKey) => {
    const p = parent === null ? seed : Buffer.from(parent as string, 'hex');
    return Buffer.from(hashBlockTokens(p, tokens, extraKey === null ? null : [extraKey])).toString('hex');
  };
}

/** The wire form of a block hash: vLLM events carry the digest's last 8 bytes as a uint64 (`bigint`). */
export function wireBlockHash(h: BlockHash): bigint {
  if (typeof h === 'string') return BigInt('0x' + h.slice(-16));
  return typeof h === 'bigint' ? h : BigInt(h);
}

/** Converts a core event (`src/sim/core/types.ts`) to the decoded wire event (`KvCacheEvent`). */
export function wireKvEvent(e: KvEvent): KvCacheEvent {
  switch (e.type) {
    case 'BlockStored':
      return {
        type: 'BlockStored',
        blockHashes: e.blockHashes.map(wireBlockHash),
        parentBlockHash: e.parentBlockHash === null ? null : wireBlockHash(e.parentBlockHash),
        tokenIds: e.tokenIds,
        blockSize: e.blockSize,
        loraId: e.loraId,
        medium: e.medium,
        loraName: e.loraName,
      };
    case 'BlockRemoved':
      return { type: 'BlockRemoved', blockHashes: e.blockHashes.map(wireBlockHash), medium: e.medium };
    case 'AllBlocksCleared':
      return { type: 'AllBlocksCleared' };
  }
}
