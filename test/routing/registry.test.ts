import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createStrategy, knownStrategies, parseStrategySpec, UnknownStrategyError } from '../../src/routing/registry.ts';
import { ep, req, ctx, histogram } from './helpers.ts';

test('knownStrategies lists every issue strategy', () => {
  const k = knownStrategies();
  for (const n of ['random', 'round-robin', 'least-request', 'least-kv-cache', 'least-latency', 'throughput', 'power-of-two', 'session-affinity', 'lora-affinity']) {
    assert.ok(k.includes(n), n);
  }
  assert.deepEqual(k, [...k].sort());
});

test('unknown name throws UnknownStrategyError listing known names', () => {
  assert.throws(() => createStrategy('least-gpu-memory'), (e: unknown) => {
    assert.ok(e instanceof UnknownStrategyError);
    assert.match((e as Error).message, /least-gpu-memory/);
    assert.match((e as Error).message, /least-request/);
    return true;
  });
  assert.throws(() => createStrategy('least-request,nope:2'), UnknownStrategyError);
});

test('spec parsing: defaults, weights, zero weights', () => {
  assert.deepEqual(parseStrategySpec('least-request'), [{ name: 'least-request', weight: 1 }]);
  assert.deepEqual(parseStrategySpec(' least-request:2 , least-kv-cache '), [
    { name: 'least-request', weight: 2 },
    { name: 'least-kv-cache', weight: 1 },
  ]);
  assert.deepEqual(parseStrategySpec('a:0,b:3'), [{ name: 'b', weight: 3 }]);
});

test('malformed specs throw a clear Error (not UnknownStrategyError)', () => {
  for (const bad of ['', '   ', 'a,,b', 'a:b:c', 'a:1.5', 'a:-1', 'a:x', 'a:0,b:0', 'a:1000001', ':3', 'a,a']) {
    assert.throws(
      () => parseStrategySpec(bad),
      (e: unknown) => e instanceof Error && !(e instanceof UnknownStrategyError) && /routing strategy/.test((e as Error).message),
      JSON.stringify(bad),
    );
  }
});

test('non-scoring strategies cannot be combined', () => {
  assert.throws(() => createStrategy('random,least-request'), /random cannot be combined/);
  assert.throws(() => createStrategy('least-request,power-of-two:2'), /power-of-two cannot be combined/);
  assert.throws(() => createStrategy('round-robin:1,least-kv-cache'), /round-robin cannot be combined/);
});

test('a spec that leaves one member builds it alone (even non-scoring)', () => {
  assert.equal(createStrategy('random:3').name, 'random');
  assert.equal(createStrategy('random,least-request:0').name, 'random');
});

test('bad options name the strategy and field', () => {
  assert.throws(() => createStrategy('least-request', { loadMode: 'fast' }), /strategy least-request: option 'loadMode'/);
  assert.throws(() => createStrategy('random', { bogus: 1 }), /strategy random: option '\(options\)'.*bogus/);
  assert.throws(() => createStrategy('least-request,least-kv-cache', { random: {} }), /not a member/);
  assert.throws(() => createStrategy('least-request,least-kv-cache', { 'least-request': 3 }), /must be an object/);
  assert.throws(() => createStrategy('least-request,least-kv-cache', { 'least-request': { loadMode: 'x' } }), /option 'loadMode'/);
});

test('each factory call returns a fresh instance', () => {
  const a = createStrategy('round-robin');
  const b = createStrategy('round-robin');
  assert.notEqual(a, b);
  const eps = [ep('a'), ep('b')];
  const c = ctx();
  assert.equal(a.route(req(), eps, c).endpoint?.id, 'a');
  assert.equal(a.route(req(), eps, c).endpoint?.id, 'b');
  assert.equal(b.route(req(), eps, c).endpoint?.id, 'a');
});

test('random: uniform over ready endpoints of the model (chi-square), deterministic for a seed', () => {
  const s = createStrategy('random');
  const eps = [ep('a'), ep('b'), ep('c'), ep('d'), ep('x', { ready: false }), ep('y', { model: 'other' })];
  const c = ctx(42);
  const n = 4000;
  const h = histogram(n, () => s.route(req(), eps, c).endpoint?.id ?? null);
  assert.deepEqual(Object.keys(h).sort(), ['a', 'b', 'c', 'd']);
  const expected = n / 4;
  const chi2 = Object.values(h).reduce((acc, o) => acc + (o - expected) ** 2 / expected, 0);
  assert.ok(chi2 < 16.27, `chi2=${chi2} (3 dof, p=0.001)`);
  const c1 = ctx(7);
  const c2 = ctx(7);
  const seq1 = Array.from({ length: 20 }, () => s.route(req(), eps, c1).endpoint!.id).join();
  const seq2 = Array.from({ length: 20 }, () => s.route(req(), eps, c2).endpoint!.id).join();
  assert.equal(seq1, seq2);
});

test('random/round-robin: no endpoint -> null with a reason', () => {
  for (const name of ['random', 'round-robin']) {
    const s = createStrategy(name);
    const d0 = s.route(req(), [], ctx());
    assert.equal(d0.endpoint, null);
    assert.match(d0.reason, /no endpoint for model m/);
    const d1 = s.route(req(), [ep('a', { ready: false }), ep('b', { ready: false })], ctx());
    assert.equal(d1.endpoint, null);
    assert.match(d1.reason, /filter 'ready' removed all 2/);
    const d2 = s.route(req(), [ep('a', { model: 'other' })], ctx());
    assert.equal(d2.endpoint, null);
    assert.match(d2.reason, /serves-model/);
    assert.equal(d2.strategy, name);
  }
});

test('round-robin: id order, wraps, skips not-ready, survives joins and leaves', () => {
  const s = createStrategy('round-robin');
  const c = ctx();
  const eps = [ep('c'), ep('a'), ep('b')];
  const seq = Array.from({ length: 6 }, () => s.route(req(), eps, c).endpoint!.id);
  assert.deepEqual(seq, ['a', 'b', 'c', 'a', 'b', 'c']);
  // 'b' becomes not ready: skipped
  const eps2 = [ep('a'), ep('b', { ready: false }), ep('c')];
  assert.deepEqual(Array.from({ length: 3 }, () => s.route(req(), eps2, c).endpoint!.id), ['a', 'c', 'a']);
  // last was 'a'; 'a' leaves and 'ab' joins: next after 'a' in id order is 'ab'
  const eps3 = [ep('ab'), ep('b'), ep('c')];
  assert.deepEqual(Array.from({ length: 4 }, () => s.route(req(), eps3, c).endpoint!.id), ['ab', 'b', 'c', 'ab']);
  // single endpoint
  assert.equal(s.route(req(), [ep('z')], c).endpoint!.id, 'z');
});
