import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createStrategy } from '../../src/routing/registry.ts';
import { latencyEstimateMs } from '../../src/routing/strategies/basic.ts';
import { normalize, maxScorePicker, weightedRandomPicker, powerOfTwoPicker } from '../../src/routing/framework.ts';
import { requestLoad } from '../../src/routing/signals.ts';
import { ep, req, ctx, histogram } from './helpers.ts';

const pick = (spec: string, eps: Parameters<ReturnType<typeof createStrategy>['route']>[1], r = req(), seed = 1, opts?: Record<string, unknown>) =>
  createStrategy(spec, opts).route(r, eps, ctx(seed));

test('normalize: min-max, reversed, all-equal -> 1, unscored/NaN/Inf -> 0', () => {
  assert.deepEqual(normalize([0, 5, 10], true), [1, 0.5, 0]);
  assert.deepEqual(normalize([0, 5, 10], false), [0, 0.5, 1]);
  assert.deepEqual(normalize([3, 3], true), [1, 1]);
  assert.deepEqual(normalize([undefined, 2, NaN, Infinity, 4], true), [0, 1, 0, 0, 0]);
  assert.deepEqual(normalize([undefined, undefined], true), [0, 0]);
});

test('pickers: max-score ties are random and use ctx.random; weighted random; power-of-two', () => {
  const eps = [ep('a'), ep('b'), ep('c')];
  const c0 = ctx(2);
  const h = histogram(3000, () => eps[maxScorePicker.pick(eps, [1, 0.2, 1], c0)]!.id);
  // ties between a and c only
  assert.equal(h['b'], undefined);
  assert.ok(h['a']! > 1200 && h['c']! > 1200, JSON.stringify(h));
  const c = ctx(3);
  const w = histogram(4000, () => eps[weightedRandomPicker.pick(eps, [3, 1, 0], c)]!.id);
  assert.equal(w['c'], undefined);
  assert.ok(w['a']! > 2700 && w['a']! < 3300, JSON.stringify(w));
  // power-of-two never picks the worst of three (it always loses its pair)
  const p = histogram(3000, () => eps[powerOfTwoPicker.pick(eps, [1, 0.5, 0], c)]!.id);
  assert.equal(p['c'], undefined);
  assert.ok(p['a']! > p['b']!);
});

test('least-request: fewest requests by max(in-flight, running+waiting)', () => {
  const eps = [
    ep('a', { inflightRequests: 1, running: 5, waiting: 2 }), // load 7
    ep('b', { inflightRequests: 4, running: 1, waiting: 0 }), // load 4 (in-flight newer than scrape)
    ep('c', { inflightRequests: 0, running: 3, waiting: 3 }), // load 6
  ];
  const d = pick('least-request', eps);
  assert.equal(d.endpoint!.id, 'b');
  assert.equal(d.strategy, 'least-request');
  assert.match(d.reason, /request load/);
  assert.equal(d.scores!['b'], 1);
  assert.equal(d.scores!['a'], 0);
  // loadMode sum: a=8, b=5, c=6 -> b; loadMode inflight: c (0)
  assert.equal(pick('least-request', eps, req(), 1, { loadMode: 'sum' }).endpoint!.id, 'b');
  assert.equal(pick('least-request', eps, req(), 1, { loadMode: 'inflight' }).endpoint!.id, 'c');
});

test('least-request: stale or missing engine counts fall back to in-flight, never zero', () => {
  const stale = ep('s', { stale: true, running: 0, waiting: 0, inflightRequests: 5 });
  assert.equal(requestLoad(stale), 5);
  const half = ep('h', { running: 0, inflightRequests: 2 }); // waiting never observed
  assert.equal(requestLoad(half), 2);
  const never = ep('n', { scrapedAtMs: null, stale: true, inflightRequests: 3 });
  assert.equal(requestLoad(never), 3);
  // a stale endpoint that last reported an empty queue does not attract traffic when it has more in-flight
  const eps = [stale, ep('b', { running: 2, waiting: 1, inflightRequests: 1 })];
  assert.equal(pick('least-request', eps).endpoint!.id, 'b');
  // excludeStale drops it entirely
  const only = pick('least-request', [stale], req(), 1, { excludeStale: true });
  assert.equal(only.endpoint, null);
  assert.match(only.reason, /fresh-signals/);
});

test('least-request: ties are broken at random among the minima only', () => {
  const eps = [ep('a', { inflightRequests: 1 }), ep('b', { inflightRequests: 0 }), ep('c', { inflightRequests: 0 })];
  const s = createStrategy('least-request');
  const c = ctx(9);
  const h = histogram(2000, () => s.route(req(), eps, c).endpoint!.id);
  assert.equal(h['a'], undefined);
  assert.ok(h['b']! > 850 && h['c']! > 850, JSON.stringify(h));
});

test('single endpoint is returned without scoring; not-ready single -> null', () => {
  for (const name of ['least-request', 'least-kv-cache', 'least-latency', 'throughput', 'power-of-two', 'lora-affinity', 'session-affinity', 'least-request:2,least-kv-cache']) {
    const d = pick(name, [ep('only')]);
    assert.equal(d.endpoint!.id, 'only', name);
    const n = pick(name, [ep('only', { ready: false })]);
    assert.equal(n.endpoint, null, name);
    assert.match(n.reason, /ready/, name);
    const z = pick(name, []);
    assert.equal(z.endpoint, null, name);
    assert.match(z.reason, /no endpoint/, name);
  }
});

test('least-kv-cache: lowest fresh KV usage; missing/stale are never preferred; none -> request load', () => {
  const eps = [ep('a', { kvCacheUsage: 0.5 }), ep('b', { kvCacheUsage: 0.2 }), ep('c', { kvCacheUsage: 0.9 })];
  const d = pick('least-kv-cache', eps);
  assert.equal(d.endpoint!.id, 'b');
  assert.match(d.reason, /KV cache usage 0\.2/);
  // an endpoint with no KV signal (or a stale one that last read 0) is not treated as empty
  const eps2 = [ep('a', { kvCacheUsage: 0.7 }), ep('n'), ep('s', { kvCacheUsage: 0, stale: true })];
  for (let seed = 1; seed < 20; seed++) assert.equal(pick('least-kv-cache', eps2, req(), seed).endpoint!.id, 'a');
  // no candidate has a fresh KV signal: least-request load decides, and the reason says so
  const eps3 = [ep('a', { inflightRequests: 3 }), ep('b', { inflightRequests: 1, kvCacheUsage: 0.1, stale: true })];
  const d3 = pick('least-kv-cache', eps3);
  assert.equal(d3.endpoint!.id, 'b');
  assert.match(d3.reason, /no candidate has a fresh KV cache usage; fell back to request load/);
});

test('least-kv-cache ties: random among equal minima', () => {
  const eps = [ep('a', { kvCacheUsage: 0.3 }), ep('b', { kvCacheUsage: 0.3 }), ep('c', { kvCacheUsage: 0.4 })];
  const s = createStrategy('least-kv-cache');
  const c = ctx(5);
  const h = histogram(1000, () => s.route(req(), eps, c).endpoint!.id);
  assert.equal(h['c'], undefined);
  assert.ok(h['a']! > 400 && h['b']! > 400);
});

test('throughput: lowest 2*prompt+gen tok/s; missing -> in-flight tokens fallback', () => {
  const eps = [
    ep('a', { promptTokensPerS: 1000, generationTokensPerS: 100 }), // 2100
    ep('b', { promptTokensPerS: 400, generationTokensPerS: 1000 }), // 1800
    ep('c', { promptTokensPerS: 100 }), // gen missing -> unscored
  ];
  assert.equal(pick('throughput', eps).endpoint!.id, 'b');
  const eps2 = [ep('a', { inflightTokens: 5000 }), ep('b', { inflightTokens: 200, stale: true, promptTokensPerS: 0, generationTokensPerS: 0 })];
  const d = pick('throughput', eps2);
  assert.equal(d.endpoint!.id, 'b');
  assert.match(d.reason, /fell back to in-flight tokens/);
});

test('least-latency: formula queue + prefill + decode', () => {
  const e = ep('a', { running: 4, waiting: 2, inflightRequests: 1, ttftMs: { mean: 100 }, itlMs: { mean: 20 } });
  // queued = max(2, 1-4, 0) = 2; 2*100 + 100 + min(50,100)*20 = 1300
  assert.equal(latencyEstimateMs(e, req({ maxTokens: 50 }), 100), 1300);
  // no max_tokens -> outputTokens 100: 300 + 2000
  assert.equal(latencyEstimateMs(e, req(), 100), 2300);
  // in-flight sent since the scrape exceed running: queued = 9 - 4 = 5
  const e2 = ep('b', { running: 4, waiting: 0, inflightRequests: 9, ttftMs: { mean: 100 }, itlMs: { mean: 20 } });
  assert.equal(latencyEstimateMs(e2, req({ maxTokens: 10 }), 100), 5 * 100 + 100 + 200);
  assert.equal(latencyEstimateMs(ep('s', { ...e, stale: true }), req(), 100), undefined);
});

test('least-latency: picks lowest estimate; idle replica without samples borrows best; busy one without samples is unscored', () => {
  const busy = ep('busy', { running: 10, waiting: 5, ttftMs: { mean: 200 }, itlMs: { mean: 30 } });
  const fast = ep('fast', { running: 2, waiting: 0, ttftMs: { mean: 80 }, itlMs: { mean: 15 } });
  assert.equal(pick('least-latency', [busy, fast]).endpoint!.id, 'fast');
  // a new idle replica (no TTFT/ITL yet) is not starved: estimate uses 80/15 with queue 0 -> 80+1500 < fast's
  const idle = ep('idle', { running: 0, waiting: 0 });
  assert.equal(pick('least-latency', [busy, fast, idle]).endpoint!.id, 'idle');
  // a loaded replica with no samples is unscored (never preferred)
  const unknown = ep('unk', { running: 3, waiting: 0 });
  for (let seed = 1; seed < 10; seed++) assert.notEqual(pick('least-latency', [busy, unknown], req(), seed).endpoint!.id, 'unk');
  // nothing measurable: request-load fallback
  const d = pick('least-latency', [ep('x', { inflightRequests: 4 }), ep('y', { inflightRequests: 1, stale: true })]);
  assert.equal(d.endpoint!.id, 'y');
  assert.match(d.reason, /fell back to request load/);
  assert.throws(() => createStrategy('least-latency', { outputTokens: 0 }), /outputTokens/);
});

test('power-of-two: never picks the most loaded of three; deterministic per seed', () => {
  const eps = [ep('a', { inflightRequests: 0 }), ep('b', { inflightRequests: 5 }), ep('c', { inflightRequests: 9 })];
  const s = createStrategy('power-of-two');
  const c = ctx(11);
  const h = histogram(3000, () => s.route(req(), eps, c).endpoint!.id);
  assert.equal(h['c'], undefined);
  // a wins both pairs it is in: P(a) = 2/3
  assert.ok(h['a']! > 1800 && h['a']! < 2200, JSON.stringify(h));
  assert.equal(typeof (s as { score?: unknown }).score, 'undefined');
});

test('lora-affinity: loaded > free slot > unknown > full; least loaded within a tier', () => {
  const r = req({ model: 'ad1', adapter: 'ad1' });
  const loadedBusy = ep('loaded', { loraAdapters: ['ad1'], maxLoras: 2, inflightRequests: 20 });
  const free = ep('free', { loraAdapters: ['x'], maxLoras: 2, inflightRequests: 0 });
  const full = ep('full', { loraAdapters: ['x', 'y'], maxLoras: 2, inflightRequests: 0 });
  const unknown = ep('unknown', { inflightRequests: 0 });
  assert.equal(pick('lora-affinity', [full, free, loadedBusy, unknown], r).endpoint!.id, 'loaded');
  assert.equal(pick('lora-affinity', [full, free, unknown], r).endpoint!.id, 'free');
  assert.equal(pick('lora-affinity', [full, unknown], r).endpoint!.id, 'unknown');
  // stale LoRA info reads as unknown, not as "loaded"
  const staleLoaded = ep('stale', { loraAdapters: ['ad1'], maxLoras: 2, stale: true, inflightRequests: 5 });
  assert.equal(pick('lora-affinity', [staleLoaded, free], r).endpoint!.id, 'free');
  // within the loaded tier: least loaded
  const loaded2 = ep('loaded2', { loraAdapters: ['ad1', 'x'], maxLoras: 2, inflightRequests: 3 });
  const d = pick('lora-affinity', [loadedBusy, loaded2, free], r);
  assert.equal(d.endpoint!.id, 'loaded2');
  assert.match(d.reason, /LoRA tier for ad1 1/);
  // full ones only: still routed (vLLM swaps adapters), least loaded
  const full2 = ep('full2', { loraAdapters: ['x', 'y'], maxLoras: 2, inflightRequests: 4 });
  assert.equal(pick('lora-affinity', [full2, full], r).endpoint!.id, 'full');
  // no adapter requested: request load only
  assert.equal(pick('lora-affinity', [loadedBusy, full]).endpoint!.id, 'full');
  // base model filter: adapter endpoints must serve the base model
  const other = ep('o', { model: 'other', loraAdapters: ['ad1'], maxLoras: 4 });
  assert.equal(pick('lora-affinity', [other, full], r).endpoint!.id, 'full');
});

test('weighted combination: least-request:2,least-kv-cache', () => {
  const eps = [
    ep('a', { inflightRequests: 0, kvCacheUsage: 0.9 }), // lr 1, kv 0
    ep('b', { inflightRequests: 4, kvCacheUsage: 0.1 }), // lr 0, kv 1
    ep('c', { inflightRequests: 2, kvCacheUsage: 0.5 }), // lr 0.5, kv 0.5
  ];
  const d = pick('least-request:2,least-kv-cache', eps);
  // totals: a = 2/3, b = 1/3, c = 0.5
  assert.equal(d.endpoint!.id, 'a');
  assert.equal(d.strategy, 'least-request:2,least-kv-cache');
  assert.ok(Math.abs(d.scores!['a']! - 2 / 3) < 1e-12);
  assert.ok(Math.abs(d.scores!['b']! - 1 / 3) < 1e-12);
  assert.ok(Math.abs(d.scores!['c']! - 0.5) < 1e-12);
  assert.match(d.reason, /least-request=1x2, least-kv-cache=0x1/);
  // weights flipped: b
  assert.equal(pick('least-request,least-kv-cache:2', eps).endpoint!.id, 'b');
  // member options keyed by name
  const e2 = [ep('a', { inflightRequests: 3, running: 0, waiting: 0 }), ep('b', { inflightRequests: 0, running: 9, waiting: 0 })];
  assert.equal(pick('least-request,least-kv-cache', e2, req(), 1, { 'least-request': { loadMode: 'inflight' } }).endpoint!.id, 'b');
  assert.equal(pick('least-request,least-kv-cache', e2).endpoint!.id, 'a');
});

test('weighted combination applies member filters (excludeStale) and the base filters', () => {
  const eps = [ep('s', { stale: true, inflightRequests: 0 }), ep('f', { inflightRequests: 5, kvCacheUsage: 0.5 }), ep('x', { ready: false })];
  assert.equal(pick('least-request:2,least-kv-cache', eps).endpoint!.id, 's'); // s: 2/3, f: 1/3
  assert.equal(pick('least-request:2,least-kv-cache', eps, req(), 1, { 'least-request': { excludeStale: true } }).endpoint!.id, 'f');
  const none = pick('least-request,least-kv-cache', [eps[0]!], req(), 1, { 'least-kv-cache': { excludeStale: true } });
  assert.equal(none.endpoint, null);
  assert.match(none.reason, /fresh-signals/);
});
