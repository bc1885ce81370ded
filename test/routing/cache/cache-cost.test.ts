import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashBlockChain } from '../../../src/engines/vllm/block-hash.ts';
import { CacheCostKvStrategy, CacheCostStrategy } from '../../../src/routing/cache/cache-cost.ts';
import { createStrategy } from '../../../src/routing/registry.ts';
import type { RequestOutcome, RoutingRequest } from '../../../src/routing/types.ts';
import type { EndpointState } from '../../../src/engines/state.ts';
import { ctx, ep, req, toks } from './helpers.ts';

function end(s: CacheCostStrategy, r: RoutingRequest, e: EndpointState): void {
  const o: RequestOutcome = { req: r, endpoint: e, promptTokens: r.promptLength, outputTokens: 1, ok: true };
  s.onRequestEnd(o);
}

test('cache-cost: predicted TTFT follows the documented formula', () => {
  const s = new CacheCostStrategy({ blockSize: 16 });
  assert.equal(new CacheCostStrategy().opts.blockSize, 64);
  assert.equal(new CacheCostKvStrategy().opts.blockSize, 16);
  const A = 1.06e-6;
  const [p] = s.predict(req(toks(1000)), [ep('a', { running: 2, waiting: 0 })], new Map());
  // 1000 uncached tokens, no cache: 1000*0.0198 + 1000*500*A, 1 step with 2 decoding sequences
  const expect1 = 19.8 + 1000 * 500 * A + (6.472 + 2 * 0.3044);
  assert.ok(Math.abs(p!.ttftMs - expect1) < 1e-9, `${p!.ttftMs} vs ${expect1}`);
  assert.equal(p!.uncachedTokens, 1000);
  const [q] = s.predict(req(toks(20000)), [ep('a', { kvCacheUsage: 0.95 })], new Map([['a', 625]]));
  // cached 625 blocks * 16 = 10000; u = 10000 after c = 10000 -> 2 steps of 8192; kv penalty 1000 * 0.05/0.1 = 500
  assert.equal(q!.cachedTokens, 10000);
  const expect2 = 10000 * 0.0198 + 10000 * (10000 + 5000) * A + 2 * 6.472 + 500;
  assert.ok(Math.abs(q!.ttftMs - expect2) < 1e-9, `${q!.ttftMs} vs ${expect2}`);
  assert.equal(s.prefillMs(100, 50), 100 * 0.0198 + 100 * 100 * A);
});

test('cache-cost: a warm request goes to the prefix holder; it leaves when the holder queue costs more than a full prefill', () => {
  const s = new CacheCostStrategy();
  const prompt = toks(4096);
  const r1 = req(prompt);
  const holder = s.route(r1, [ep('a'), ep('b')], ctx(0)).endpoint!;
  s.onFirstToken(r1);
  const other = holder.id === 'a' ? 'b' : 'a';
  const r2 = req([...prompt, ...toks(100, 90000)]);
  const d2 = s.route(r2, [ep('a'), ep('b')], ctx(10));
  assert.equal(d2.endpoint!.id, holder.id, d2.reason);
  assert.match(d2.reason, /cached 4096\/4196/);
  // a 20k-token cold request queued on the holder (its only candidate) makes it expensive.
  s.route(req(toks(20000, 500000)), [ep(holder.id)], ctx(20));
  const d3 = s.route(req([...prompt, ...toks(100, 70000)]), [ep('a'), ep('b')], ctx(30));
  assert.equal(d3.endpoint!.id, other, d3.reason);
  assert.ok(s.trackedLoad(holder.id).pendingTokens >= 20000);
});

test('cache-cost: hooks move work from pending prefill to decoding and release it at the end', () => {
  const s = new CacheCostStrategy();
  const r = req(toks(512));
  const e = s.route(r, [ep('a')], ctx(0)).endpoint!;
  assert.deepEqual(s.trackedLoad('a'), { pendingTokens: 512, pendingCount: 1, decoding: 0 });
  s.onFirstToken(r);
  assert.deepEqual(s.trackedLoad('a'), { pendingTokens: 0, pendingCount: 0, decoding: 1 });
  end(s, r, e);
  assert.deepEqual(s.trackedLoad('a'), { pendingTokens: 0, pendingCount: 0, decoding: 0 });
  // a request that never reports a first token is released by its end too
  const r2 = req(toks(100, 9000));
  s.route(r2, [ep('a')], ctx(1));
  end(s, r2, e);
  assert.deepEqual(s.trackedLoad('a'), { pendingTokens: 0, pendingCount: 0, decoding: 0 });
  // and lost hooks are forgotten after requestTimeoutMs
  const s2 = new CacheCostStrategy({ requestTimeoutMs: 1000 });
  s2.route(req(toks(100)), [ep('a')], ctx(0));
  s2.route(req(toks(100, 7000)), [ep('a')], ctx(1001));
  assert.equal(s2.trackedLoad('a').pendingCount, 1);
});

test('cache-cost: cold requests are spread over equally good endpoints (least recently cold-routed)', () => {
  for (let seed = 1; seed <= 5; seed++) {
    const s = new CacheCostStrategy();
    const eps = [ep('a'), ep('b'), ep('c'), ep('d')];
    const got = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const r = req(toks(1000, (i + 1) * 100000));
      const d = s.route(r, eps, ctx(i, seed));
      assert.match(d.reason, /^cold/);
      got.add(d.endpoint!.id);
      end(s, r, d.endpoint!); // equal loads again: only the LRU rule separates them
    }
    assert.equal(got.size, 4, `seed ${seed}`);
  }
});

test('cache-cost: KV headroom and engine-reported waiting requests (fresh only) count; stale values do not', () => {
  const s = new CacheCostStrategy();
  assert.equal(s.route(req(toks(1000)), [ep('a', { kvCacheUsage: 0.99 }), ep('b', { kvCacheUsage: 0.5 })], ctx(0)).endpoint!.id, 'b');
  const s2 = new CacheCostStrategy();
  assert.equal(s2.route(req(toks(1000)), [ep('a', { waiting: 0 }), ep('b', { waiting: 10 })], ctx(0)).endpoint!.id, 'a');
  const s3 = new CacheCostStrategy({ missSlackMs: 0 });
  const seen = new Set<string>();
  for (let seed = 1; seed <= 20; seed++) {
    seen.add(s3.route(req(toks(1000, seed * 10000)), [ep('a', { stale: true, kvCacheUsage: 0.99, waiting: 50 }), ep('b')], ctx(seed, seed)).endpoint!.id);
  }
  assert.ok(seen.has('a'), 'stale signals are ignored, so a is not avoided');
});

test('cache-cost: single endpoint, no endpoint, removal, options, registry', () => {
  const s = new CacheCostStrategy();
  assert.equal(s.route(req(toks(64)), [ep('x')], ctx(0)).endpoint!.id, 'x');
  assert.equal(s.route(req(toks(64)), [], ctx(0)).endpoint, null);
  s.onEndpointRemoved('x');
  assert.equal(s.index.blocksOf('x'), 0);
  assert.deepEqual(s.trackedLoad('x'), { pendingTokens: 0, pendingCount: 0, decoding: 0 });
  assert.throws(() => new CacheCostStrategy({ kvHighWatermark: 1.5 }), /cache-cost.*kvHighWatermark/);
  assert.equal(createStrategy('cache-cost').name, 'cache-cost');
  assert.equal(createStrategy('cache-cost-kv').name, 'cache-cost-kv');
  const sc = s.score(req(toks(64)), [ep('p'), ep('q', { kvCacheUsage: 1 })], ctx(0));
  assert.deepEqual(sc, [1, 0]);
});

test('cache-cost-kv: cached prefix comes from KV events (vLLM hashes)', () => {
  const s = new CacheCostKvStrategy({ speculativeTtlMs: 0 });
  const t = toks(2048);
  s.applyKvEvents('b', {
    ts: 0,
    events: [{ type: 'BlockStored', blockHashes: hashBlockChain(t, 16), parentBlockHash: null, tokenIds: t, blockSize: 16, loraId: null, medium: 'GPU', loraName: null }],
  });
  const d = s.route(req(t), [ep('a'), ep('b'), ep('c')], ctx(0));
  assert.equal(d.endpoint!.id, 'b');
  s.onKvEventGap('b');
  assert.match(s.route(req(t), [ep('a'), ep('b'), ep('c')], ctx(1)).reason, /^cold/);
});

test('cache-cost: pending prefill drains as FCFS work over time and restarts at each first token', () => {
  const s = new CacheCostStrategy({ missSlackMs: 0, attnMsPerTokenPair: 0 });
  const r1 = req(toks(10000, 1_000_000));
  s.route(r1, [ep('a')], ctx(0)); // 198 ms of prefill pending on a
  const at = (t: number) => s.predict(req(toks(100, 5_000_000)), [ep('a')], new Map(), t)[0]!.ttftMs;
  const own = 100 * 0.0198 + 2 * 6.472; // 10 100 tokens ahead: 2 steps of 8192
  assert.ok(Math.abs(at(0) - (198 + own)) < 1e-6);
  assert.ok(Math.abs(at(100) - (98 + own)) < 1e-6, 'drained by 100 ms');
  assert.ok(Math.abs(at(500) - own) < 1e-6, 'never below zero');
  const r2 = req(toks(5000, 2_000_000));
  s.route(r2, [ep('a')], ctx(10));
  s.onFirstToken(r1, ep('a'), ctx(150));
  // r1 done (now decoding: +0.3044 ms per step); r2's 99 ms of prefill started at 150
  assert.ok(Math.abs(s.predict(req(toks(100, 6_000_000)), [ep('a')], new Map(), 200)[0]!.ttftMs - (49 + 100 * 0.0198 + 6.472 + 0.3044)) < 1e-6);
});

test('cache-cost: recomputeWeight keeps a warm request on the holder until the margin scales with what the cache saves', () => {
  // Holder a holds an 8192-token prefix and is busy with a 10 000-token cold prefill; b is idle.
  const prefix = toks(8192, 3_000_000);
  const follow = [...prefix, ...toks(100, 4_000_000)];
  const setup = (w: number) => {
    const s = new CacheCostStrategy({ recomputeWeight: w });
    const r1 = req(prefix);
    s.route(r1, [ep('a')], ctx(0));
    s.onFirstToken(r1, ep('a'), ctx(0));
    s.route(req(toks(10_000, 5_000_000)), [ep('a')], ctx(0));
    return s;
  };
  const eps = [ep('a'), ep('b')];
  const probe = setup(0);
  const match = new Map([['a', 8192 / 64]]); // what the approximate index holds for a (64-token blocks)
  const [pa, pb] = probe.predict(req(follow), eps, match, 0);
  assert.equal(pa!.cachedTokens, 8192);
  assert.equal(pb!.cachedTokens, 0);
  // the holder's queue makes its TTFT worse than a cold prefill on b...
  assert.ok(pa!.ttftMs > pb!.ttftMs, `${pa!.ttftMs} vs ${pb!.ttftMs}`);
  // ...so pure TTFT (weight 0) leaves; the boundary weight is (TTFT_a - TTFT_b) / (pf_b - pf_a).
  const wStar = (pa!.ttftMs - pb!.ttftMs) / (pb!.prefillMs - pa!.prefillMs);
  assert.ok(wStar > 0 && wStar < 3, String(wStar));
  assert.equal(setup(0).route(req(follow), eps, ctx(0)).endpoint!.id, 'b');
  assert.equal(setup(wStar * 0.95).route(req(follow), eps, ctx(0)).endpoint!.id, 'b');
  const stay = setup(wStar * 1.05).route(req(follow), eps, ctx(0));
  assert.equal(stay.endpoint!.id, 'a', stay.reason);
  assert.match(stay.reason, /recompute/);
  // the default weight (3) stays too; the recorded scores are the predicted TTFTs
  assert.equal(new CacheCostStrategy().opts.recomputeWeight, 3);
  const d = setup(3).route(req(follow), eps, ctx(0));
  assert.equal(d.endpoint!.id, 'a');
  assert.ok(Math.abs(d.scores!.a! - pa!.ttftMs) < 1e-9 && Math.abs(d.scores!.b! - pb!.ttftMs) < 1e-9);
  // a cold request (no holder) is unaffected by the weight: both weights spread it the same way
  assert.match(setup(3).route(req(toks(500, 9_000_000)), eps, ctx(0)).reason, /^cold/);
  assert.throws(() => new CacheCostStrategy({ recomputeWeight: -1 }), /cache-cost.*recomputeWeight/);
});
