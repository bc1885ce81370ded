import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvEventSubscriber, type BlockStored, type KvEventBatch } from '../../../src/engines/vllm/kv-events.ts';
import { hashBlockChain } from '../../../src/engines/vllm/block-hash.ts';
import { MODEL, postJson, startFast, tokenPrompt } from './helpers.ts';

test('a ZMQ subscriber decodes the server KV events; BlockStored hashes equal hashBlockChain of the prompt', async (t) => {
  const srv = await startFast({ kvEventsEndpoint: 'tcp://127.0.0.1:*', kvEventsTopic: 'kv', enableLora: true, loraModules: [{ name: 'ad', path: '/a' }], hashSeed: '0', devMode: true });
  t.after(() => srv.close());
  assert.match(srv.kvEventsEndpoint!, /^tcp:\/\/127\.0\.0\.1:\d+$/);
  const batches: Array<{ batch: KvEventBatch; seq: bigint; topic: string }> = [];
  const sub = new KvEventSubscriber({ endpoint: srv.kvEventsEndpoint!, topic: 'kv', onBatch: (batch, seq, topic) => batches.push({ batch, seq, topic }) });
  t.after(() => sub.close());
  // slow joiner: send distinct requests until the subscription delivers something
  for (let i = 0; batches.length === 0; i++) {
    assert.ok(i < 200, 'subscriber never received a batch');
    await postJson(`${srv.url}/v1/completions`, { model: MODEL, prompt: tokenPrompt(16, 1000 + i), max_tokens: 1 });
    await new Promise((r) => setTimeout(r, 10));
  }
  const stored = (): BlockStored[] => batches.flatMap((b) => b.batch.events.filter((e): e is BlockStored => e.type === 'BlockStored'));

  const prompt = tokenPrompt(64 + 5, 1); // 4 full blocks + a partial one
  const r = await postJson(`${srv.url}/v1/completions`, { model: MODEL, prompt, max_tokens: 2, ignore_eos: true });
  assert.equal(r.status, 200, r.text);
  const expected = hashBlockChain(prompt, 16, { hashSeed: '0' });
  for (let i = 0; i < 200 && !stored().some((e) => e.blockHashes.includes(expected[3]!)); i++) await new Promise((res) => setTimeout(res, 10));
  const got = stored().flatMap((e) => e.blockHashes);
  for (const h of expected) assert.ok(got.includes(h), `block hash ${h} published`);
  const first = stored().find((e) => e.blockHashes.includes(expected[0]!))!;
  assert.equal(first.parentBlockHash, null);
  assert.equal(first.blockSize, 16);
  assert.equal(first.medium, 'GPU');
  assert.equal(first.loraName, null);
  assert.deepEqual(first.tokenIds.slice(0, 16), prompt.slice(0, 16));
  assert.equal(first.tokenIds.length, first.blockHashes.length * 16);
  assert.ok(batches.every((b) => b.topic === 'kv'));
  const seqs = batches.map((b) => b.seq);
  assert.ok(seqs.every((s, i) => i === 0 || s === seqs[i - 1]! + 1n), 'consecutive sequence numbers');

  // an adapter request mixes the LoRA name into every block hash
  const lp = tokenPrompt(32, 2);
  const r2 = await postJson(`${srv.url}/v1/completions`, { model: 'ad', prompt: lp, max_tokens: 1 });
  assert.equal(r2.status, 200, r2.text);
  const le = hashBlockChain(lp, 16, { hashSeed: '0', loraName: 'ad' });
  for (let i = 0; i < 200 && !stored().some((e) => e.blockHashes.includes(le[1]!)); i++) await new Promise((res) => setTimeout(res, 10));
  const ev = stored().find((e) => e.blockHashes.includes(le[0]!));
  assert.ok(ev, 'LoRA block stored with the LoRA-keyed hash');
  assert.equal(ev.loraName, 'ad');
  assert.ok(!stored().some((e) => e.blockHashes.includes(hashBlockChain(lp, 16, { hashSeed: '0' })[0]!)), 'no base-model hash for the adapter request');

  // dev route: a prefix-cache reset is published as AllBlocksCleared
  const reset = await fetch(`${srv.url}/reset_prefix_cache`, { method: 'POST' });
  assert.equal(reset.status, 200);
  for (let i = 0; i < 200 && !batches.some((b) => b.batch.events.some((e) => e.type === 'AllBlocksCleared')); i++) await new Promise((res) => setTimeout(res, 10));
  assert.ok(batches.some((b) => b.batch.events.some((e) => e.type === 'AllBlocksCleared')), 'AllBlocksCleared published');
});
