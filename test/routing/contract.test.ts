import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createStrategy, knownStrategies } from '../../src/routing/registry.ts';
import { freshFilter, loraFilter, readyFilter, servesModelFilter, applyFilters } from '../../src/routing/framework.ts';
import type { EndpointState } from '../../src/engines/state.ts';
import { ep, req, ctx } from './helpers.ts';

/** Deep copy for checking that strategies do not mutate endpoint states. */
const snapshot = (eps: EndpointState[]) => JSON.stringify(eps);

test('every registered strategy: builds without options, null with a reason for no candidate, the only candidate, no mutation', () => {
  for (const name of knownStrategies()) {
    const s = createStrategy(name);
    assert.equal(s.name, name);
    const none = s.route(req(), [], ctx());
    assert.equal(none.endpoint, null, name);
    assert.ok(none.reason.length > 0, name);
    const notReady = s.route(req(), [ep('a', { ready: false })], ctx());
    assert.equal(notReady.endpoint, null, name);
    const eps = [ep('a', { inflightRequests: 1, running: 1, waiting: 0, kvCacheUsage: 0.3 }), ep('b', { stale: true }), ep('c', { model: 'other' })];
    const before = snapshot(eps);
    const d = s.route(req({ promptTokens: () => [1, 2, 3, 4], userId: 'u' }), eps, ctx());
    assert.ok(d.endpoint === eps[0] || d.endpoint === eps[1], name);
    assert.ok(d.reason.length > 0, name);
    assert.equal(snapshot(eps), before, `${name} mutated endpoint states`);
  }
});

test('filters: ready, serves-model, fresh-signals, lora-capable', () => {
  const c = ctx();
  const eps = [
    ep('a', { loraAdapters: ['x'], maxLoras: 1 }), // full for other adapters, has x
    ep('b', { loraAdapters: ['y'], maxLoras: 1 }), // full
    ep('c', { loraAdapters: [], maxLoras: 1 }), // free slot
    ep('d', { stale: true }), // unknown LoRA state, stale
    ep('e', { ready: false, model: 'other' }),
  ];
  assert.deepEqual(readyFilter.filter(req(), eps, c).map((e) => e.id), ['a', 'b', 'c', 'd']);
  assert.deepEqual(servesModelFilter.filter(req(), eps, c).map((e) => e.id), ['a', 'b', 'c', 'd']);
  assert.deepEqual(freshFilter.filter(req(), eps, c).map((e) => e.id), ['a', 'b', 'c', 'e']);
  assert.deepEqual(loraFilter.filter(req({ adapter: 'x' }), eps, c).map((e) => e.id), ['a', 'c', 'd', 'e']);
  assert.deepEqual(loraFilter.filter(req({ adapter: 'z' }), eps.slice(0, 2), c).map((e) => e.id), ['a', 'b']); // all full: keep all
  assert.equal(loraFilter.filter(req(), eps, c).length, 5);
  const r = applyFilters([readyFilter, freshFilter], req(), [ep('s', { stale: true })], c);
  assert.equal(r.candidates.length, 0);
  assert.match(r.emptyReason!, /filter 'fresh-signals' removed all 1 endpoint/);
});

test('decisions: reason and scores are readable, serializable and writable', () => {
  const d = createStrategy('least-request').route(req(), [ep('a', { inflightRequests: 2 }), ep('b')], ctx());
  assert.equal(d.endpoint!.id, 'b');
  const j = JSON.parse(JSON.stringify(d));
  assert.equal(j.strategy, 'least-request');
  assert.match(j.reason, /request load/);
  assert.deepEqual(j.scores, { a: 0, b: 1 });
  assert.deepEqual({ ...d.scores }, { a: 0, b: 1 });
  d.reason = 'overridden';
  assert.equal(d.reason, 'overridden');
});
