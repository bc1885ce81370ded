import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PrefixCacheStrategy } from '../../../src/routing/cache/prefix-cache.ts';
import { createStrategy } from '../../../src/routing/registry.ts';
import { ctx, ep, req, toks } from './helpers.ts';

const B = { blockSize: 4 };

/** Routes `tokens` once with all endpoints idle and returns the chosen id (the prefix is then recorded there). */
function warm(s: PrefixCacheStrategy, tokens: number[], ids: string[], seed = 1): string {
  const d = s.route(req(tokens), ids.map((id) => ep(id)), ctx(0, seed));
  return d.endpoint!.id;
}

test('prefix-cache: a request sharing a prefix follows the endpoint that received it', () => {
  const s = new PrefixCacheStrategy(B);
  const ids = ['a', 'b', 'c', 'd'];
  const holder = warm(s, toks(32), ids);
  for (let seed = 1; seed <= 10; seed++) {
    const d = s.route(req([...toks(24), ...toks(8, 900)]), ids.map((id) => ep(id)), ctx(10, seed));
    assert.equal(d.endpoint!.id, holder);
    // first time 6 of 8 blocks match; afterwards the whole prompt was recorded there too.
    assert.match(d.reason, seed === 1 ? /prefix match 75%/ : /prefix match 100%/);
  }
});

test('prefix-cache: longer match wins over shorter match', () => {
  const s = new PrefixCacheStrategy(B);
  const eps = () => [ep('a'), ep('b')];
  s.route(req(toks(8)), [ep('a')], ctx(0)); // a holds 2 blocks
  s.route(req(toks(16)), [ep('b')], ctx(0)); // b holds 4 blocks
  const d = s.route(req(toks(16)), eps(), ctx(1));
  assert.equal(d.endpoint!.id, 'b');
  assert.equal(d.scores!.a, 0.5);
  assert.equal(d.scores!.b, 1);
});

test('prefix-cache: imbalance exactly at imbalanceAbsCount is not imbalanced; one more is', () => {
  for (const [load, expectHolder] of [
    [16, true],
    [17, false],
  ] as const) {
    const s = new PrefixCacheStrategy(B); // imbalanceAbsCount 16, stddevFactor 2 (Helm defaults)
    s.route(req(toks(16)), [ep('a')], ctx(0));
    const d = s.route(req(toks(16)), [ep('a', { inflightRequests: load }), ep('b'), ep('c')], ctx(1));
    assert.equal(d.endpoint!.id === 'a', expectHolder, `load ${load}: ${d.reason}`);
    if (!expectHolder) assert.match(d.reason, /no prefix match among least loaded/);
  }
});

test('prefix-cache: mean + k*stddev gate over all candidates, then least-request fallback', () => {
  // loads [5, 0, 0]: mean 1.667, sample stddev 2.887 -> k=1: 4.55 (5 is over), k=2: 7.44 (5 passes)
  for (const [k, expectHolder] of [
    [0, false],
    [1, false],
    [2, true],
  ] as const) {
    const s = new PrefixCacheStrategy({ ...B, stddevFactor: k });
    s.route(req(toks(16)), [ep('a')], ctx(0));
    const d = s.route(req(toks(16)), [ep('a', { inflightRequests: 5 }), ep('b', { inflightRequests: 1 }), ep('c')], ctx(1));
    if (expectHolder) assert.equal(d.endpoint!.id, 'a');
    else {
      assert.equal(d.endpoint!.id, 'c', 'least-request over all candidates');
      assert.match(d.reason, /over load threshold/);
    }
  }
});

test('prefix-cache: ties (same match, same load) are broken at random with ctx.random', () => {
  const seen = new Set<string>();
  for (let seed = 1; seed <= 40; seed++) {
    const s = new PrefixCacheStrategy(B);
    s.route(req(toks(16)), [ep('a')], ctx(0));
    s.route(req(toks(16)), [ep('b')], ctx(0));
    seen.add(s.route(req(toks(16)), [ep('a'), ep('b'), ep('c')], ctx(1, seed)).endpoint!.id);
  }
  assert.deepEqual([...seen].sort(), ['a', 'b']);
});

test('prefix-cache: no match -> least-request (random among minima)', () => {
  const s = new PrefixCacheStrategy(B);
  const seen = new Set<string>();
  for (let seed = 1; seed <= 30; seed++) {
    const d = s.route(req(toks(16, seed * 1000)), [ep('a', { inflightRequests: 2 }), ep('b'), ep('c')], ctx(0, seed));
    assert.match(d.reason, /no prefix match/);
    seen.add(d.endpoint!.id);
  }
  assert.deepEqual([...seen].sort(), ['b', 'c']);
});

test('prefix-cache: missing or stale engine metrics are not read (AIBrix counts the gateway in-flight)', () => {
  const s = new PrefixCacheStrategy(B);
  s.route(req(toks(16)), [ep('a')], ctx(0));
  // engine says 100 running on a, but the default loadMode is the gateway's own count (0).
  const d = s.route(req(toks(16)), [ep('a', { running: 100, waiting: 0 }), ep('b', { running: undefined }), ep('c', { stale: true })], ctx(1));
  assert.equal(d.endpoint!.id, 'a');
  // with loadMode max, a fresh engine count is used and makes a imbalanced.
  const s2 = new PrefixCacheStrategy({ ...B, loadMode: 'max' });
  s2.route(req(toks(16)), [ep('a')], ctx(0));
  const d2 = s2.route(req(toks(16)), [ep('a', { running: 100, waiting: 0 }), ep('b', { running: undefined }), ep('c', { stale: true, running: 500, waiting: 0 })], ctx(1));
  assert.notEqual(d2.endpoint!.id, 'a');
});

test('prefix-cache: single endpoint is chosen and still recorded; no endpoint -> null with a reason', () => {
  const s = new PrefixCacheStrategy(B);
  assert.equal(s.route(req(toks(16)), [ep('only')], ctx(0)).endpoint!.id, 'only');
  assert.equal(s.index.blocksOf('only'), 4);
  const none = s.route(req(toks(16)), [], ctx(0));
  assert.equal(none.endpoint, null);
  assert.match(none.reason, /no endpoint/);
  const notReady = s.route(req(toks(16)), [ep('x', { ready: false })], ctx(0));
  assert.equal(notReady.endpoint, null);
  assert.match(notReady.reason, /ready/);
});

test('prefix-cache: prompt shorter than a block never matches (trailing partial block ignored)', () => {
  const s = new PrefixCacheStrategy(B);
  s.route(req(toks(3)), [ep('a')], ctx(0));
  assert.equal(s.index.size, 0);
  const d = s.route(req(toks(3)), [ep('a', { inflightRequests: 1 }), ep('b')], ctx(1));
  assert.equal(d.endpoint!.id, 'b');
});

test('prefix-cache: onEndpointRemoved forgets its prefixes; entries expire after ttlMinutes', () => {
  const s = new PrefixCacheStrategy({ ...B, ttlMinutes: 1 });
  s.route(req(toks(16)), [ep('a')], ctx(0));
  s.onEndpointRemoved('a');
  assert.equal(s.index.size, 0);
  s.route(req(toks(16)), [ep('b')], ctx(0));
  assert.equal(s.score(req(toks(16)), [ep('b')], ctx(60_000))[0], 1, 'alive exactly at the TTL');
  assert.equal(s.route(req(toks(16)), [ep('b', { inflightRequests: 1 }), ep('c')], ctx(60_001)).endpoint!.id, 'c');
});

test('prefix-cache: options are validated with the field named; registry builds it', () => {
  assert.throws(() => new PrefixCacheStrategy({ blockSize: 0 }), /prefix-cache.*blockSize/);
  assert.throws(() => new PrefixCacheStrategy({ stddevFactor: 'x' }), /stddevFactor/);
  assert.throws(() => new PrefixCacheStrategy({ bogus: 1 }), /bogus/);
  const s = createStrategy('prefix-cache');
  assert.equal(s.name, 'prefix-cache');
});

test('prefix-cache: score() is the match fraction (multi-strategy form)', () => {
  const s = new PrefixCacheStrategy(B);
  s.route(req(toks(8)), [ep('a')], ctx(0));
  assert.deepEqual(s.score(req(toks(16)), [ep('a'), ep('b')], ctx(1)), [0.5, 0]);
});
