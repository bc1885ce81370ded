/**
 * A weighted combination whose members consume KV events is itself a KV-event sink (the gateway
 * and the DES feed it like the member alone); one without such members is not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashBlockChain } from '../../../src/engines/vllm/block-hash.ts';
import type { KvEventBatch } from '../../../src/engines/vllm/kv-events.ts';
import { isKvEventSink } from '../../../src/routing/cache/kv-aware.ts';
import { createStrategy } from '../../../src/routing/registry.ts';
import { ctx, ep, req, toks } from './helpers.ts';

/** One BlockStored event for `tokens` (16-token blocks, GPU tier), as vLLM would publish it. */
function stored(tokens: number[]): KvEventBatch {
  const hashes = hashBlockChain(tokens, 16);
  return { ts: 0, events: [{ type: 'BlockStored', blockHashes: hashes, parentBlockHash: null, tokenIds: tokens.slice(0, hashes.length * 16), blockSize: 16, loraId: null, medium: 'GPU', loraName: null }] };
}

test('kv-aware inside a weighted combination receives KV events and steers the choice', () => {
  const combo = createStrategy('kv-aware:3,least-request', { 'kv-aware': { speculativeTtlMs: 0 } });
  assert.ok(isKvEventSink(combo), 'the combination forwards KV events');
  const t = toks(256);
  const eps = () => [ep('a'), ep('b'), ep('c')];
  if (!isKvEventSink(combo)) return;
  combo.applyKvEvents('b', stored(t.slice(0, 240)));
  const d = combo.route(req(t), eps(), ctx(0));
  assert.equal(d.endpoint!.id, 'b', d.reason);
  // a gap forgets b: the prefix no longer decides (all equally loaded -> any; b's score advantage gone)
  combo.onKvEventGap('b');
  const scores = (combo as { score(r: unknown, e: unknown, c: unknown): number[] }).score(req(t), eps(), ctx(0));
  assert.equal(new Set(scores).size, 1, `equal scores after the gap: ${scores}`);
});

test('a combination without KV-event members is not a sink', () => {
  assert.equal(isKvEventSink(createStrategy('least-request:2,least-kv-cache', {})), false);
});

test('a combination carries its KV-event members\' block hashing; members that disagree are rejected', () => {
  const combo = createStrategy('cache-cost-kv:2,least-request', { 'cache-cost-kv': { hashSeed: '7' } });
  assert.ok(isKvEventSink(combo));
  if (!isKvEventSink(combo)) return;
  assert.deepEqual(combo.blockHashing, { blockSize: 16, hashSeed: '7' });
  assert.deepEqual((createStrategy('kv-aware') as unknown as { blockHashing: unknown }).blockHashing, { blockSize: 16, hashSeed: '0' });
  assert.throws(() => createStrategy('kv-aware:1,cache-cost-kv:1', { 'kv-aware': { hashSeed: '1' } }), /assume different block hashing/);
});
