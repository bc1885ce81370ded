import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashBlockChain, hashBlockChainDigests } from '../../../src/engines/vllm/block-hash.ts';
import { decodeKvEventBatch, encodeKvEventBatch, type KvEventBatch } from '../../../src/engines/vllm/kv-events.ts';
import { KvBlockIndex, blockKey, digestKey } from '../../../src/routing/cache/kv-index.ts';
import { KvAwareStrategy, isKvEventSink, vllmBlockKeys } from '../../../src/routing/cache/kv-aware.ts';
import { createStrategy } from '../../../src/routing/registry.ts';
import { ctx, ep, req, toks } from './helpers.ts';

/** The batch an engine publishes after prefilling `tokens` (full blocks of 16), through the msgpack codec. */
function stored(tokens: number[], opts: { medium?: string | null; asBytes?: boolean } = {}): KvEventBatch {
  const hashes = opts.asBytes ? hashBlockChainDigests(tokens, 16) : hashBlockChain(tokens, 16);
  const n = hashes.length;
  const batch: KvEventBatch = {
    ts: 1,
    events: [{ type: 'BlockStored', blockHashes: hashes, parentBlockHash: null, tokenIds: tokens.slice(0, n * 16), blockSize: 16, loraId: null, medium: opts.medium === undefined ? 'GPU' : opts.medium, loraName: null }],
  };
  return decodeKvEventBatch(encodeKvEventBatch(batch));
}

test('blockKey: bigint, digest bytes and request-side digests agree', () => {
  const t = toks(48);
  const ints = hashBlockChain(t, 16);
  const ds = hashBlockChainDigests(t, 16);
  for (let i = 0; i < 3; i++) {
    assert.equal(blockKey(ints[i]!), digestKey(ds[i]!));
    assert.equal(blockKey(ds[i]!), digestKey(ds[i]!));
  }
  assert.deepEqual(vllmBlockKeys(t, 16, '0'), ds.map(digestKey));
  assert.equal(blockKey(2n ** 64n - 1n), 2 ** 52 - 1);
  assert.equal(blockKey(12345), 12345);
});

test('KvBlockIndex: BlockStored / BlockRemoved / AllBlocksCleared per endpoint', () => {
  const idx = new KvBlockIndex();
  const t = toks(64);
  const keys = vllmBlockKeys(t, 16, '0');
  idx.applyBatch('a', stored(t));
  idx.applyBatch('b', stored(t.slice(0, 32)));
  assert.deepEqual(Object.fromEntries(idx.longestPrefix(keys)), { a: 4, b: 2 });
  // evict a's block 1: a's prefix stops at block 0 (later blocks are unreachable without it).
  idx.applyBatch('a', decodeKvEventBatch(encodeKvEventBatch({ ts: 2, events: [{ type: 'BlockRemoved', blockHashes: [hashBlockChain(t, 16)[1]!], medium: 'GPU' }] })));
  assert.deepEqual(Object.fromEntries(idx.longestPrefix(keys)), { a: 1, b: 2 });
  assert.equal(idx.blocksOf('a'), 3);
  idx.applyBatch('b', { ts: 3, events: [{ type: 'AllBlocksCleared' }] });
  assert.deepEqual(Object.fromEntries(idx.longestPrefix(keys)), { a: 1 });
  assert.equal(idx.blocksOf('b'), 0);
  assert.equal(idx.stats.blocksStored, 6);
  assert.equal(idx.stats.blocksRemoved, 1);
  assert.equal(idx.stats.clears, 1);
});

test('KvBlockIndex: duplicate stores are idempotent; removing unknown blocks is harmless', () => {
  const idx = new KvBlockIndex();
  const t = toks(32);
  idx.applyBatch('a', stored(t));
  idx.applyBatch('a', stored(t));
  assert.equal(idx.blocksOf('a'), 2);
  idx.applyEvents('a', [{ type: 'BlockRemoved', blockHashes: [123n], medium: null }]);
  idx.applyEvents('z', [{ type: 'BlockRemoved', blockHashes: hashBlockChain(t, 16), medium: null }]);
  assert.equal(idx.blocksOf('a'), 2);
  assert.equal(idx.size, 2);
});

test('KvBlockIndex: raw-digest hashes (VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0) index the same keys', () => {
  const idx = new KvBlockIndex();
  const t = toks(32);
  idx.applyBatch('a', stored(t, { asBytes: true }));
  assert.equal(idx.longestPrefix(vllmBlockKeys(t, 16, '0')).get('a'), 2);
});

test('KvBlockIndex: events of other media (CPU offload) are ignored; null medium (old vLLM) counts as GPU', () => {
  const idx = new KvBlockIndex();
  idx.applyBatch('a', stored(toks(32), { medium: 'CPU' }));
  assert.equal(idx.blocksOf('a'), 0);
  assert.equal(idx.stats.ignoredOtherMedium, 1);
  idx.applyBatch('a', stored(toks(32), { medium: null }));
  assert.equal(idx.blocksOf('a'), 2);
});

test('KvBlockIndex: a gap clears the endpoint, which then rebuilds from later events; removeEndpoint', () => {
  const idx = new KvBlockIndex();
  const t1 = toks(32);
  const t2 = toks(32, 5000);
  idx.applyBatch('a', stored(t1));
  idx.applyBatch('b', stored(t1));
  idx.clearEndpoint('a'); // what onKvEventGap does
  assert.deepEqual([...idx.longestPrefix(vllmBlockKeys(t1, 16, '0')).keys()], ['b']);
  idx.applyBatch('a', stored(t2));
  assert.equal(idx.longestPrefix(vllmBlockKeys(t2, 16, '0')).get('a'), 2);
  idx.removeEndpoint('b');
  assert.equal(idx.longestPrefix(vllmBlockKeys(t1, 16, '0')).size, 0);
  assert.equal(idx.size, 2);
});

test('kv-aware: routes to the endpoint whose events show the prefix; gap -> forgets it', () => {
  const s = new KvAwareStrategy({ speculativeTtlMs: 0 });
  assert.ok(isKvEventSink(s));
  const t = toks(256);
  s.applyKvEvents('b', stored(t.slice(0, 192)));
  s.applyKvEvents('c', stored(t.slice(0, 64)));
  const eps = () => [ep('a'), ep('b'), ep('c')];
  const d = s.route(req(t), eps(), ctx(0));
  assert.equal(d.endpoint!.id, 'b');
  assert.match(d.reason, /prefix match 75%/);
  s.onKvEventGap('b');
  assert.equal(s.route(req(t), eps(), ctx(0)).endpoint!.id, 'c');
});

test('kv-aware: LoRA requests only match blocks hashed with the adapter name', () => {
  const s = new KvAwareStrategy({ speculativeTtlMs: 0 });
  const t = toks(64);
  s.applyKvEvents('a', stored(t)); // base-model blocks
  const lora = req(t, { adapter: 'sql', model: 'sql' });
  const d = s.route(lora, [ep('a', { inflightRequests: 1 }), ep('b')], ctx(0));
  assert.equal(d.endpoint!.id, 'b', 'base-model blocks are not a hit for the adapter');
});

test('kv-aware: speculative entries hold a routed prefix until the engine reports it', () => {
  const s = new KvAwareStrategy({ speculativeTtlMs: 1000 });
  const t = toks(64);
  const first = s.route(req(t), [ep('a'), ep('b')], ctx(0)).endpoint!.id;
  const other = first === 'a' ? 'b' : 'a';
  // the first request is still prefilling (no event yet); the same prefix follows it.
  const d = s.route(req(t), [ep(first, { inflightRequests: 1 }), ep(other)], ctx(500));
  assert.equal(d.endpoint!.id, first);
  // after the speculative TTL, with no BlockStored event, nothing is known.
  const late = s.route(req(t), [ep(first, { inflightRequests: 1 }), ep(other)], ctx(1600));
  assert.equal(late.endpoint!.id, other);
});

test('kv-aware: no endpoint, single endpoint, options validation, registry', () => {
  const s = new KvAwareStrategy();
  assert.equal(s.route(req(toks(32)), [], ctx(0)).endpoint, null);
  assert.equal(s.route(req(toks(32)), [ep('x')], ctx(0)).endpoint!.id, 'x');
  assert.throws(() => new KvAwareStrategy({ blockSize: -1 }), /kv-aware.*blockSize/);
  assert.throws(() => new KvAwareStrategy({ hashSeed: 0 }), /hashSeed/);
  assert.equal(createStrategy('kv-aware').name, 'kv-aware');
});

test('VllmKeyCache: memoized keys equal the full sha256_cbor chain, across shared prefixes, LoRA and clears', async () => {
  const { VllmKeyCache } = await import('../../../src/routing/cache/kv-aware.ts');
  const c = new VllmKeyCache(16, '0', 40);
  const a = toks(200);
  const b = [...toks(120), ...toks(80, 7000)];
  for (const t of [a, b, a, b.slice(0, 100), [...b, 1, 2, 3]]) {
    assert.deepEqual(c.keys(t), vllmBlockKeys(t, 16, '0'));
    assert.deepEqual(c.keys(t, 'sql'), vllmBlockKeys(t, 16, '0', 'sql'));
  }
  assert.notDeepEqual(c.keys(a, 'sql'), c.keys(a));
  const c2 = new VllmKeyCache(16, '42');
  assert.deepEqual(c2.keys(a), vllmBlockKeys(a, 16, '42'));
});
