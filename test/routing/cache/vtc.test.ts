import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenWindow, VtcBasicStrategy, VtcFairStrategy } from '../../../src/routing/cache/vtc.ts';
import { createStrategy } from '../../../src/routing/registry.ts';
import type { RoutingStrategy } from '../../../src/routing/types.ts';
import { ctx, ep, req, toks } from './helpers.ts';
import { runQueueModel } from './queue-model.ts';

test('TokenWindow: per-user sliding window with 1 s buckets', () => {
  const w = new TokenWindow(5000);
  w.add('u', 10, 0);
  w.add('u', 5, 999); // same bucket
  w.add('u', 7, 2500);
  w.add('v', 1, 100);
  assert.equal(w.total('u', 3000), 22);
  assert.equal(w.total('u', 4999), 22, 'bucket 0 (0-999 ms) still inside the 5 s window');
  assert.equal(w.total('u', 5000), 7, 'bucket 0 expired once second 5 starts');
  assert.deepEqual([...w.totals(5000)], [['u', 7]]);
  assert.equal(w.total('nobody', 0), 0);
});

test('vtc-basic: AIBrix score = |i - min(total/bucket, n-1)| + min(running/100, 1) + U(0, 0.1)', () => {
  const s = new VtcBasicStrategy();
  // charge users directly: u has 6000, v has 2000 -> bucket = max(1000, (2000+6000)/2) = 4000
  s.window.add('u', 6000, 0);
  s.window.add('v', 2000, 0);
  const eps = [ep('e0', { running: 0 }), ep('e1', { running: 0 }), ep('e2', { running: 0 }), ep('e3', { running: 0 })];
  // u: target 6000/4000 = 1.5 -> e1 and e2 tie at 0.5 (random term decides)
  const seen = new Set<string>();
  for (let seed = 1; seed <= 30; seed++) {
    const s2 = new VtcBasicStrategy();
    s2.window.add('u', 6000, 0);
    s2.window.add('v', 2000, 0);
    seen.add(s2.route(req([], { userId: 'u', promptLength: 10 }), eps, ctx(1, seed)).endpoint!.id);
  }
  assert.deepEqual([...seen].sort(), ['e1', 'e2']);
  // v: target 0.5 -> e0/e1; utilization breaks it: e0 running 60 -> +0.6
  const d = s.route(req([], { userId: 'v', promptLength: 10 }), [ep('e0', { running: 60 }), ep('e1', { running: 0 }), ep('e2'), ep('e3')], ctx(1));
  assert.equal(d.endpoint!.id, 'e1');
  // charged with the estimate: 10*1 + ceil(15)*2 = 40
  assert.equal(s.window.total('v', 1), 2040);
});

test('vtc-basic: untracked users use bucket (1000+8000)/2; index capped at n-1; ordering is by endpoint id', () => {
  const s = new VtcBasicStrategy();
  // nobody tracked: bucket 4500, user total 0 -> target index 0 -> the first endpoint by id
  const d = s.route(req([], { userId: 'new', promptLength: 100 }), [ep('zz'), ep('aa'), ep('mm')], ctx(0));
  assert.equal(d.endpoint!.id, 'aa');
  const s2 = new VtcBasicStrategy();
  s2.window.add('big', 1e9, 0);
  s2.window.add('small', 1, 0);
  assert.equal(s2.route(req([], { userId: 'big', promptLength: 1 }), [ep('a'), ep('b'), ep('c')], ctx(0)).endpoint!.id, 'c');
});

test('vtc-basic: missing running uses the gateway in-flight count; no user -> random; no endpoint -> null', () => {
  const s = new VtcBasicStrategy();
  const d = s.route(req([], { userId: 'x', promptLength: 1 }), [ep('a', { running: undefined, inflightRequests: 100 }), ep('b', { stale: true, running: 0, inflightRequests: 0 })], ctx(0));
  // target index 0 -> a (fairness 0) but a's utilization 1.0; b: fairness 1 + 0 -> b wins only if a's total > 1
  assert.equal(d.endpoint!.id, 'b');
  const seen = new Set<string>();
  for (let seed = 1; seed <= 20; seed++) seen.add(s.route(req([]), [ep('a'), ep('b')], ctx(0, seed)).endpoint!.id);
  assert.equal(seen.size, 2);
  assert.equal(s.route(req([], { userId: 'x' }), [], ctx(0)).endpoint, null);
  assert.equal(s.route(req([], { userId: 'x' }), [ep('only')], ctx(0)).endpoint!.id, 'only');
  assert.throws(() => new VtcBasicStrategy({ windowSeconds: 0 }), /vtc-basic.*windowSeconds/);
});

test('vtc-fair: users over the fair share are confined (rendezvous), light users get the least-loaded endpoint', () => {
  const s = new VtcFairStrategy();
  s.window.add('heavy', 10_000, 0);
  s.window.add('light', 1_000, 0);
  const eps = [ep('a', { inflightTokens: 50 }), ep('b', { inflightTokens: 10 }), ep('c', { inflightTokens: 20 }), ep('d', { inflightTokens: 30 })];
  // fair = 5500; heavy 10000 -> k = floor(4 * 5500 / 10000) = 2 endpoints
  const chosen = new Set<string>();
  for (let i = 0; i < 10; i++) chosen.add(s.route(req([], { userId: 'heavy', promptLength: 1 }), eps, ctx(1)).endpoint!.id);
  assert.equal(chosen.size, 1, 'deterministic confinement + least loaded inside it');
  assert.match(s.route(req([], { userId: 'heavy', promptLength: 1 }), eps, ctx(1)).reason, /confined to 2\/4/);
  assert.equal(s.route(req([], { userId: 'light', promptLength: 1 }), eps, ctx(1)).endpoint!.id, 'b');
  // an idle endpoint is open to everyone
  const withIdle = [...eps.slice(0, 3), ep('d', { inflightTokens: 0 })];
  assert.equal(s.route(req([], { userId: 'heavy', promptLength: 1 }), withIdle, ctx(1)).endpoint!.id, 'd');
});

test('vtc-fair: onRequestEnd replaces the estimate with actual tokens', () => {
  const s = new VtcFairStrategy();
  const r = req(toks(0), { userId: 'u', promptLength: 100 });
  const d = s.route(r, [ep('a')], ctx(0));
  assert.equal(s.window.total('u', 0), 100 + 150 * 2);
  s.onRequestEnd({ req: r, endpoint: d.endpoint!, promptTokens: 100, outputTokens: 10, ok: true }, ctx(10));
  assert.equal(s.window.total('u', 10), 100 + 10 * 2);
  assert.equal(createStrategy('vtc-fair').name, 'vtc-fair');
});

// ---------------------------------------------------------------- fairness in a queueing model

const USERS = [
  { user: 'light', meanGapMs: 100, tokens: 100 },
  { user: 'heavy', meanGapMs: 100, tokens: 1000 }, // 10x the tokens of the light user
];
const SERVICE: Record<string, number> = {};
function run(s: RoutingStrategy, seed: number) {
  const tokensPerMs = 11 / (0.7 * 4); // 70% utilization of 4 endpoints
  SERVICE.light = 100 / tokensPerMs;
  SERVICE.heavy = 1000 / tokensPerMs;
  return runQueueModel(s, USERS, { n: 4, tokensPerMs, durationMs: 60_000, seed });
}
/** Largest slowdown (mean latency / service time) over the users: lower is fairer. */
function maxSlowdown(m: Record<string, number>): number {
  return Math.max(...Object.entries(m).map(([u, l]) => l / SERVICE[u]!));
}

test('fairness: the light user is protected under vtc-basic compared with least-request', () => {
  for (const seed of [1, 2, 3]) {
    const lr = run(createStrategy('least-request'), seed).meanLatencyMs;
    const vb = run(createStrategy('vtc-basic'), seed).meanLatencyMs;
    assert.ok(vb.light! < 0.5 * lr.light!, `seed ${seed}: light ${vb.light} vs least-request ${lr.light}`);
  }
});

test('fairness: vtc-fair protects the light user without starving the heavy one (lowest max slowdown)', () => {
  for (const seed of [1, 2, 3]) {
    const lr = run(createStrategy('least-request'), seed).meanLatencyMs;
    const vb = run(createStrategy('vtc-basic'), seed).meanLatencyMs;
    const vf = run(createStrategy('vtc-fair'), seed).meanLatencyMs;
    assert.ok(vf.light! < 0.8 * lr.light!, `seed ${seed}: light ${vf.light} vs least-request ${lr.light}`);
    assert.ok(vf.heavy! < 0.2 * vb.heavy!, `seed ${seed}: heavy ${vf.heavy} vs vtc-basic ${vb.heavy}`);
    assert.ok(maxSlowdown(vf) < maxSlowdown(lr) && maxSlowdown(vf) < maxSlowdown(vb), `seed ${seed}: ${maxSlowdown(vf)} vs ${maxSlowdown(lr)} / ${maxSlowdown(vb)}`);
  }
});

test('fairness: AIBrix shuffle (shuffle: true) loses the protection vtc-basic gives', () => {
  const stable = run(createStrategy('vtc-basic'), 1).meanLatencyMs;
  const shuffled = run(createStrategy('vtc-basic', { shuffle: true }), 1).meanLatencyMs;
  assert.ok(shuffled.light! > 2 * stable.light!, `shuffled light ${shuffled.light} vs stable ${stable.light}`);
});
