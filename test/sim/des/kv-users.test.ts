/** KV events and users in the DES (issue 4): `kv-aware` fed by the simulated engines' events; `vtc-*` with users. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseExperiment, type ExperimentInput } from '../../../src/sim/des/experiment.ts';
import { runExperiment, type ExperimentResult } from '../../../src/sim/des/run.ts';
import { SimCluster } from '../../../src/sim/des/cluster.ts';
import { buildWorkload } from '../../../src/sim/des/workload.ts';
import { sha256CborBlockHasher, wireBlockHash } from '../../../src/sim/core/kv-wire.ts';
import { resolveEngineConfig } from '../../../src/sim/core/engine.ts';
import { createStrategy } from '../../../src/routing/registry.ts';
import { KvAwareStrategy } from '../../../src/routing/cache/kv-aware.ts';
import { VtcBasicStrategy } from '../../../src/routing/cache/vtc.ts';
import { blockKey, digestKey } from '../../../src/routing/cache/kv-index.ts';
import { hashBlockChainDigests } from '../../../src/engines/vllm/block-hash.ts';
import type { KvEventBatch } from '../../../src/engines/vllm/kv-events.ts';

// A KV cache small enough (2000 blocks = 32k tokens) that 24 groups x 1500-token system prompts do
// not fit on every engine: random routing thrashes, prefix-aware routing keeps each group on one engine.
const engine = { model: 'meta-llama/Llama-3.1-8B-Instruct', gpu: 'H100', maxNumSeqs: 64, maxModelLen: 4096, numGpuBlocksOverride: 2000 };
const workload = { type: 'sharedPrefix' as const, stages: [{ rate: 15, durationS: 30 }], arrival: 'poisson' as const, systemPromptTokens: 1500, questionTokens: 200, outputTokens: 50, prefixGroups: 24, promptsPerGroup: 4, questionReuse: 'unique' as const };

function exp(over: Partial<ExperimentInput>): ExperimentInput {
  return { engine, replicas: 4, router: 'random', workload, seed: 3, ...over };
}

test('the DES hasher is vLLM sha256_cbor: wire hashes are the keys kv-aware computes from the prompt', () => {
  const h = sha256CborBlockHasher('0');
  const tokens = Array.from({ length: 48 }, (_, i) => 1000 + i * 7);
  const ds = hashBlockChainDigests(tokens, 16, { hashSeed: '0' });
  let parent: string | null = null;
  for (let b = 0; b < 3; b++) {
    parent = h(tokens.slice(b * 16, b * 16 + 16), parent, null) as string;
    assert.equal(parent, Buffer.from(ds[b]!).toString('hex'));
    assert.equal(blockKey(wireBlockHash(parent)), digestKey(ds[b]!));
  }
  assert.notEqual(h(tokens.slice(0, 16), null, 'adapter-a'), h(tokens.slice(0, 16), null, null), 'the LoRA name is an extra key');
});

test('kv-aware fed by KV events beats random on cluster prefix-cache hit rate; its index received the events', () => {
  const random = runExperiment(parseExperiment(exp({ router: 'random' })));
  assert.equal(random.cluster.kvEvents, undefined, 'no KV events for a router that does not take them');
  let strategy: KvAwareStrategy | undefined;
  const kv = runExperiment(parseExperiment(exp({ router: 'kv-aware' })), { onFinished: (c) => void (strategy = c.strategy as KvAwareStrategy) });
  assert.equal(kv.overall.requests.failed, 0);
  assert.ok(kv.cluster.prefixCacheHitRate > random.cluster.prefixCacheHitRate + 0.15, `kv-aware ${kv.cluster.prefixCacheHitRate} vs random ${random.cluster.prefixCacheHitRate}`);
  const ev = kv.cluster.kvEvents!;
  assert.equal(ev.delayMs, 0);
  assert.ok(ev.batches > 0 && ev.blocksStored > 0 && ev.blocksRemoved > 0, JSON.stringify(ev));
  const st = strategy!.kvIndex.stats;
  assert.equal(st.batches, ev.batches);
  assert.equal(st.blocksStored, ev.blocksStored);
  assert.equal(st.blocksRemoved, ev.blocksRemoved);
  // Events alone (no speculative entries for routed requests): the index must match the prompts'
  // sha256_cbor keys for this to beat random.
  const evOnly = runExperiment(parseExperiment(exp({ router: 'kv-aware', routerOptions: { speculativeTtlMs: 0 } })));
  assert.ok(evOnly.cluster.prefixCacheHitRate > random.cluster.prefixCacheHitRate + 0.15, `events only ${evOnly.cluster.prefixCacheHitRate} vs random ${random.cluster.prefixCacheHitRate}`);
  // A stale event stream (3 s) costs hits when nothing else covers the gap.
  const stale = runExperiment(parseExperiment(exp({ router: 'kv-aware', routerOptions: { speculativeTtlMs: 0 }, kvEventDelayMs: 3000 })));
  assert.equal(stale.cluster.kvEvents!.delayMs, 3000);
  assert.ok(stale.cluster.prefixCacheHitRate < evOnly.cluster.prefixCacheHitRate, `stale ${stale.cluster.prefixCacheHitRate} vs fresh ${evOnly.cluster.prefixCacheHitRate}`);
  // cache-cost-kv takes events too.
  const cc = runExperiment(parseExperiment(exp({ router: 'cache-cost-kv' })));
  assert.ok(cc.cluster.kvEvents!.blocksStored > 0);
  assert.ok(cc.cluster.prefixCacheHitRate > random.cluster.prefixCacheHitRate + 0.15);
});

test('KV batches reach the sink in order per engine, at step end + delay', () => {
  const cfg = resolveEngineConfig(engine, 'engine.');
  const wl = buildWorkload(parseExperiment(exp({ workload: { ...workload, stages: [{ rate: 15, durationS: 8 }] } })).workload, { seed: 3, baseDir: '.', maxModelLen: cfg.maxModelLen, vocabSize: cfg.model.vocabSize });
  const strategy = createStrategy('kv-aware') as KvAwareStrategy;
  const seen = new Map<string, number[]>();
  let cluster: SimCluster | null = null;
  const sink = {
    applyKvEvents(id: string, b: KvEventBatch) {
      const now = cluster!.now;
      assert.ok(Math.abs(now - (b.ts * 1000 + 250)) < 1e-6, `delivered at ${now}, published at ${b.ts * 1000}`);
      const l = seen.get(id) ?? [];
      l.push(b.ts);
      seen.set(id, l);
      strategy.applyKvEvents(id, b);
    },
    onKvEventGap: () => assert.fail('no gaps in the DES'),
  };
  cluster = new SimCluster({ engine: cfg, replicas: 3, strategy, modelName: engine.model, scrapeIntervalMs: 500, seed: 1, kvEvents: { sink, hashSeed: '0', delayMs: 250 } });
  cluster.run(wl.requests, 1);
  assert.equal(seen.size, 3);
  for (const l of seen.values()) for (let i = 1; i < l.length; i++) assert.ok(l[i]! >= l[i - 1]!, 'in order');
  assert.equal([...seen.values()].reduce((a, l) => a + l.length, 0), cluster.kvEventCounts.batches);
});

test('users: vtc-basic and vtc-fair run in sim run with user ids; assignment is seeded and Zipf-skewed', () => {
  const users = { count: 6, zipf: 1.2 };
  const cfg = resolveEngineConfig(engine, 'engine.');
  const bw = (u?: typeof users) =>
    buildWorkload(parseExperiment(exp({ workload: { type: 'poisson', stages: [{ rate: 10, durationS: 20 }], inputTokens: 300, outputTokens: 30, ...(u ? { users: u } : {}) } })).workload, { seed: 3, baseDir: '.', maxModelLen: cfg.maxModelLen, vocabSize: cfg.model.vocabSize });
  const a = bw(users);
  const plain = bw();
  assert.deepEqual(a.requests.map((r) => r.arrivalMs), plain.requests.map((r) => r.arrivalMs), 'users change nothing else');
  assert.equal(plain.requests[0]!.userId, undefined);
  const counts = new Map<string, number>();
  for (const r of a.requests) counts.set(r.userId!, (counts.get(r.userId!) ?? 0) + 1);
  assert.equal(counts.size, 6);
  assert.ok(counts.get('user-1')! > 2 * counts.get('user-6')!, JSON.stringify([...counts]));
  assert.deepEqual(bw(users).requests.map((r) => r.userId), a.requests.map((r) => r.userId), 'seeded');

  for (const router of ['vtc-basic', 'vtc-fair']) {
    let totals = new Map<string, number>();
    const r: ExperimentResult = runExperiment(
      parseExperiment(exp({ router, workload: { type: 'poisson', stages: [{ rate: 10, durationS: 20 }], inputTokens: 300, outputTokens: 30, users } })),
      { onFinished: (c) => void (totals = (c.strategy as VtcBasicStrategy).window.totals(c.now)) },
    );
    assert.equal(r.router, router);
    assert.equal(r.overall.requests.failed, 0);
    assert.equal(r.overall.requests.completed, r.requestsTotal);
    assert.deepEqual([...totals.keys()].sort(), [...counts.keys()].sort(), `${router} counted tokens per user`);
  }
});

test('KV-event and users validation', () => {
  const bad = (o: unknown, re: RegExp) => assert.throws(() => runExperiment(parseExperiment(o, 'x.json')), (e: Error) => re.test(e.message), String(re));
  const withUsers = (u: unknown) => ({ ...exp({}), workload: { ...workload, users: u } });
  bad(exp({ router: 'random', kvEventDelayMs: 100 }), /^kvEventDelayMs: router 'random' does not consume KV events/);
  bad(exp({ router: 'kv-aware', kvEventDelayMs: -1 }), /^x\.json: kvEventDelayMs: /);
  bad(exp({ router: 'kv-aware', routerOptions: { blockSize: 32 } }), /^routerOptions\.blockSize: the router hashes 32-token blocks but engine\.blockSize is 16/);
  // a combination is checked through its KV-event member's hashing too
  bad(exp({ router: 'kv-aware:1,least-request', routerOptions: { 'kv-aware': { blockSize: 32 } } }), /^routerOptions\.blockSize: the router hashes 32-token blocks/);
  bad(withUsers({ count: 0 }), /^x\.json: workload\.users\.count: /);
  bad(withUsers({ count: 3, skew: 1 }), /^x\.json: workload\.users: unknown field\(s\) "skew"/);
});
