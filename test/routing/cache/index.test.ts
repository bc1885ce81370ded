import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prefixBlockKeys } from '../../../src/routing/cache/hash.ts';
import { ApproxPrefixIndex } from '../../../src/routing/cache/approx-index.ts';
import { toks } from './helpers.ts';

test('prefixBlockKeys: full blocks only, chained (a key depends on every earlier token)', () => {
  const a = prefixBlockKeys(toks(50), 16);
  assert.equal(a.length, 3);
  const b = prefixBlockKeys([...toks(16), 999, ...toks(34, 17)], 16);
  assert.equal(b[0], a[0]);
  assert.notEqual(b[1], a[1]);
  assert.notEqual(b[2], a[2], 'block 2 differs because its parent differs, although its own tokens are equal');
  const c = prefixBlockKeys(toks(48), 16, 7);
  assert.notEqual(c[0], a[0], 'seed changes the key space');
  for (const k of a) assert.ok(Number.isSafeInteger(k) && k >= 0);
  assert.throws(() => prefixBlockKeys(toks(4), 0), /blockSize/);
});

test('ApproxPrefixIndex: longest prefix per endpoint stops at the first missing block', () => {
  const idx = new ApproxPrefixIndex({ maxBlocksPerEndpoint: 100, ttlMs: 1000 });
  const k = prefixBlockKeys(toks(64), 16); // 4 blocks
  idx.record(k.slice(0, 4), 'a', 0);
  idx.record(k.slice(0, 2), 'b', 0);
  const m = idx.longestPrefix(k, 10);
  assert.equal(m.get('a'), 4);
  assert.equal(m.get('b'), 2);
  assert.equal(idx.longestPrefix(prefixBlockKeys(toks(64, 1000), 16), 10).size, 0);
});

test('ApproxPrefixIndex: TTL after last write, lazily swept; rewrites refresh', () => {
  const idx = new ApproxPrefixIndex({ maxBlocksPerEndpoint: 100, ttlMs: 1000 });
  const k = prefixBlockKeys(toks(32), 16);
  idx.record(k, 'a', 0);
  assert.equal(idx.longestPrefix(k, 1000).get('a'), 2, 'alive exactly at ttl');
  assert.equal(idx.longestPrefix(k, 1001).size, 0, 'expired entries are never reported');
  idx.record(k, 'a', 1500);
  assert.equal(idx.longestPrefix(k, 2400).get('a'), 2);
  idx.record(prefixBlockKeys(toks(16, 500), 16), 'a', 5000); // write triggers the sweep
  assert.equal(idx.blocksOf('a'), 1);
  assert.equal(idx.size, 1);
});

test('ApproxPrefixIndex: per-endpoint LRU bound evicts the oldest writes only of that endpoint', () => {
  const idx = new ApproxPrefixIndex({ maxBlocksPerEndpoint: 3, ttlMs: 1e9 });
  const k = prefixBlockKeys(toks(80), 16); // 5 blocks
  idx.record(k.slice(0, 2), 'b', 0);
  idx.record(k, 'a', 1);
  assert.equal(idx.blocksOf('a'), 3);
  assert.equal(idx.blocksOf('b'), 2);
  // a kept its 3 newest writes (blocks 2..4): no longer holds block 0, so its prefix match is 0.
  const m = idx.longestPrefix(k, 2);
  assert.equal(m.get('a'), undefined);
  assert.equal(m.get('b'), 2);
});

test('ApproxPrefixIndex: removeEndpoint drops its entries and frees the slot', () => {
  const idx = new ApproxPrefixIndex({ maxBlocksPerEndpoint: 10, ttlMs: 1e9 });
  const k = prefixBlockKeys(toks(32), 16);
  idx.record(k, 'a', 0);
  idx.record(k, 'b', 0);
  idx.removeEndpoint('a');
  idx.removeEndpoint('nope');
  assert.deepEqual([...idx.longestPrefix(k, 1)], [['b', 2]]);
  assert.deepEqual(idx.endpoints(), ['b']);
  idx.removeEndpoint('b');
  assert.equal(idx.size, 0);
  idx.record(k, 'c', 2); // reuses a freed slot
  assert.deepEqual([...idx.longestPrefix(k, 3)], [['c', 2]]);
});

test('ApproxPrefixIndex: rejects bad bounds', () => {
  assert.throws(() => new ApproxPrefixIndex({ maxBlocksPerEndpoint: 0, ttlMs: 1 }), /maxBlocksPerEndpoint/);
  assert.throws(() => new ApproxPrefixIndex({ maxBlocksPerEndpoint: 1, ttlMs: 0 }), /ttlMs/);
});
