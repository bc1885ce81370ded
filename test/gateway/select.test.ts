/** The gateway's strategy selection: the routing module's order and errors mapped to the gateway's 400s. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateFleet } from '../../src/fleet/config.ts';
import { MAX_SPECS_PER_MODEL, StrategySelector } from '../../src/gateway/select.ts';
import { ApiError } from '../../src/openai/errors.ts';

const cfg = validateFleet({
  models: [
    {
      name: 'm',
      endpoints: ['http://127.0.0.1:1'],
      routing: 'least-kv-cache',
      requestsPerSecond: 7,
      defaultProfile: 'chat',
      profiles: {
        chat: { routingStrategy: 'least-request', strategyOptions: { loadMode: 'sum' } },
        long: { routingStrategy: 'round-robin', routingConfig: { promptTokensGte: 100 }, requestsPerSecond: 3 },
        bare: {},
      },
    },
    { name: 'locked', endpoints: ['http://127.0.0.1:2'], lockedRoutingStrategy: 'random', profiles: { p: { routingStrategy: 'least-request' } } },
    { name: 'plain', endpoints: ['http://127.0.0.1:3'] },
  ],
});
const [m, locked, plain] = cfg.models as [(typeof cfg.models)[0], (typeof cfg.models)[0], (typeof cfg.models)[0]];

test('order: header > profile > model > fleet; locked beats the header', () => {
  const s = new StrategySelector('power-of-two');
  assert.deepEqual(pick(s.select(m, 'random', undefined, 1, undefined)), ['random', 'header', 'chat', 7]);
  assert.deepEqual(pick(s.select(m, '  ', undefined, 1, undefined)), ['least-request', 'profile', 'chat', 7], 'an empty header counts as absent');
  assert.deepEqual(pick(s.select(m, undefined, 'auto', 500, undefined)), ['round-robin', 'profile', 'long', 3]);
  assert.deepEqual(pick(s.select(m, undefined, 'bare', 1, undefined)), ['least-kv-cache', 'model', 'bare', 7]);
  assert.deepEqual(pick(s.select(plain, undefined, undefined, 1, undefined)), ['power-of-two', 'fleet', undefined, undefined]);
  assert.deepEqual(pick(s.select(locked, 'least-request', 'p', 1, undefined)), ['random', 'locked', 'p', undefined]);
});

test('strategy instances are cached per model and spec; a profile with options gets its own instance', () => {
  const s = new StrategySelector('least-request');
  const a = s.select(m, undefined, undefined, 1, undefined).strategy; // chat profile, loadMode: sum
  assert.equal(s.select(m, undefined, 'chat', 1, undefined).strategy, a);
  const b = s.select(m, 'least-request', undefined, 1, undefined).strategy; // header: the model's routingOptions
  assert.notEqual(a, b);
  assert.equal(s.select(m, 'least-request', undefined, 1, undefined).strategy, b);
  assert.notEqual(s.select(plain, 'least-request', undefined, 1, undefined).strategy, b, 'per model');
});

test('unknown profile and unknown or malformed strategy are 400 ApiErrors with stable codes', () => {
  const s = new StrategySelector('least-request');
  const err = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof ApiError);
      return [e.status, e.code, e.param];
    }
    assert.fail('expected an ApiError');
  };
  assert.deepEqual(err(() => s.select(m, undefined, 'gold', 1, undefined)), [400, 'unknown_config_profile', 'config-profile']);
  assert.deepEqual(err(() => s.select(m, 'least-requests', undefined, 1, undefined)), [400, 'unknown_routing_strategy', 'routing-strategy']);
  assert.deepEqual(err(() => s.select(m, 'least-requests', undefined, 1, undefined)), [400, 'unknown_routing_strategy', 'routing-strategy'], 'cached failure');
  assert.deepEqual(err(() => s.select(m, 'a:b:c', undefined, 1, undefined)), [400, 'unknown_routing_strategy', 'routing-strategy']);
});

function pick(x: { spec: string; source: string; profile?: string; requestsPerSecond?: number }): unknown[] {
  return [x.spec, x.source, x.profile, x.requestsPerSecond];
}

test('distinct header specs per model are bounded: past MAX_SPECS_PER_MODEL a new spec is a 400, known ones still work', () => {
  const s = new StrategySelector('random');
  for (let i = 1; i <= MAX_SPECS_PER_MODEL; i++) s.select(plain, `least-request:${i},least-kv-cache`, undefined, 1, undefined);
  assert.equal(s.instances().length, MAX_SPECS_PER_MODEL);
  assert.throws(
    () => s.select(plain, `least-request:${MAX_SPECS_PER_MODEL + 1},least-kv-cache`, undefined, 1, undefined),
    (e: unknown) => e instanceof ApiError && e.status === 400 && e.code === 'unknown_routing_strategy' && /distinct strategy specs/.test(e.message),
  );
  assert.equal(s.instances().length, MAX_SPECS_PER_MODEL, 'nothing was built for the refused spec');
  assert.equal(s.select(plain, 'least-request:1,least-kv-cache', undefined, 1, undefined).spec, 'least-request:1,least-kv-cache');
  // another model has its own bound
  assert.equal(s.select(m, `least-request:${MAX_SPECS_PER_MODEL + 1},least-kv-cache`, undefined, 1, undefined).source, 'header');
});
