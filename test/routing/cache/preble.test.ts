import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PrebleStrategy } from '../../../src/routing/cache/preble.ts';
import { createStrategy } from '../../../src/routing/registry.ts';
import { ctx, ep, req, toks } from './helpers.ts';

const B = { blockSize: 4 };

test('preble: exploit when the cached prefix covers more than matchThreshold of the prompt', () => {
  const s = new PrebleStrategy(B);
  s.route(req(toks(16)), [ep('a')], ctx(0));
  // 12 of 16 tokens cached on a (75% > 50%): a, even though its window load is higher.
  const d = s.route(req([...toks(12), ...toks(4, 900)]), [ep('a'), ep('b')], ctx(1));
  assert.equal(d.endpoint!.id, 'a');
  assert.match(d.reason, /^exploit/);
});

test('preble: exactly matchThreshold is not above it -> explore by L + M + P', () => {
  const s = new PrebleStrategy(B);
  s.route(req(toks(8)), [ep('a')], ctx(0)); // a: window load = 8*0.0198 + 45*7 ms
  const d = s.route(req([...toks(8), ...toks(8, 900)]), [ep('a'), ep('b')], ctx(1));
  assert.match(d.reason, /^explore/);
  // a: L 315.16 + P 8*0.0198; b: L 0 + P 16*0.0198 -> b
  assert.equal(d.endpoint!.id, 'b');
});

test('preble: among the deepest holders, the smaller window load wins; the window slides', () => {
  const s = new PrebleStrategy({ ...B, windowSeconds: 10 });
  s.route(req(toks(16)), [ep('a')], ctx(0));
  s.route(req(toks(16)), [ep('b')], ctx(0));
  s.route(req(toks(16, 5000)), [ep('b')], ctx(0)); // b busier in the window
  assert.equal(s.route(req(toks(16)), [ep('a'), ep('b')], ctx(1)).endpoint!.id, 'a');
  // later: a's two requests still in the window (t=0 and t=1 -> until 10 s); b's expire at 10 s too
  assert.ok(s.loadOf('a', 5000) > 0);
  assert.equal(s.loadOf('a', 10_002), 0);
});

test('preble: M charges evictions when the uncached tokens do not fit the capacity', () => {
  const s = new PrebleStrategy({ ...B, capacityTokens: 16, decodeLength: 0 });
  s.route(req(toks(16, 100)), [ep('a')], ctx(0)); // a full (16 of 16 tokens)
  s.route(req(toks(4, 500)), [ep('b')], ctx(0)); // b: 4 of 16
  // a new 16-token prompt: a must evict 16 -> M = 16*0.0198; b evicts 4.
  // a: L = 16*0.0198, M 0.3168, P 0.3168 ; b: L = 4*0.0198, M = 0.0792, P 0.3168
  const d = s.route(req(toks(16, 900)), [ep('a'), ep('b')], ctx(1));
  assert.equal(d.endpoint!.id, 'b');
});

test('preble: imbalance restriction, single and no endpoint, removal, options, registry', () => {
  const s = new PrebleStrategy(B);
  s.route(req(toks(16)), [ep('a')], ctx(0));
  const d = s.route(req(toks(16)), [ep('a', { inflightRequests: 17 }), ep('b')], ctx(1));
  assert.equal(d.endpoint!.id, 'b');
  assert.match(d.reason, /imbalanced/);
  assert.equal(s.route(req(toks(16)), [], ctx(0)).endpoint, null);
  assert.equal(s.route(req(toks(16)), [ep('x')], ctx(0)).endpoint!.id, 'x');
  s.onEndpointRemoved('a');
  assert.equal(s.index.blocksOf('a'), 0);
  assert.equal(s.loadOf('a', 1), 0);
  assert.throws(() => new PrebleStrategy({ matchThreshold: 2 }), /prefix-cache-preble.*matchThreshold/);
  assert.equal(createStrategy('prefix-cache-preble').name, 'prefix-cache-preble');
});
