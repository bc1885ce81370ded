/**
 * The request path's hooks into the controllers (Gateway.setControlHooks): scale from zero (wake,
 * bounded cold-start queue with a timeout, the queue as the autoscaler's signal) and LoRA adapters
 * (ensure when no endpoint has the adapter, lora-affinity over the endpoints that have it, touch
 * after routing). Fake hooks here; the real controllers' wiring is checked at the end with simulated
 * engines.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeEngine, type FakeEngine } from './fake-engine.ts';
import { startGateway, post, chat } from './helpers.ts';
import type { RunningFleet } from '../../src/gateway/runtime.ts';
import type { ControlHooks } from '../../src/gateway/server.ts';
import { validateFleet } from '../../src/fleet/config.ts';
import { runFleet } from '../../src/gateway/runtime.ts';

let engines: FakeEngine[] = [];
const runs: RunningFleet[] = [];

before(async () => {
  engines = [await startFakeEngine('a'), await startFakeEngine('b')];
});
after(async () => {
  for (const r of runs) await r.stop(0);
  await Promise.all(engines.map((e) => e.close()));
});

interface Calls {
  wake: string[];
  ensure: string[];
  touch: [string, string][];
}

function hooks(over: Partial<ControlHooks> = {}): { hooks: ControlHooks; calls: Calls } {
  const calls: Calls = { wake: [], ensure: [], touch: [] };
  return {
    calls,
    hooks: {
      scalesToZero: () => true,
      wake: (m) => void calls.wake.push(m),
      adapterBaseModel: () => undefined,
      adapterEndpoints: () => [],
      ensureAdapter: async (n) => {
        calls.ensure.push(n);
        throw new Error('not expected');
      },
      touchAdapter: (n, id) => void calls.touch.push([n, id]),
      ...over,
    },
  };
}

async function until(f: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 20_000;
  while (!f()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function gateway(gw: Record<string, unknown> = {}): Promise<RunningFleet> {
  const run = await startGateway(engines, { gateway: gw });
  runs.push(run);
  return run;
}

test('a request for a model at zero replicas wakes it, waits in the queue (the autoscaler signal) and is served once a replica is ready', async () => {
  const run = await gateway();
  const { hooks: h, calls } = hooks();
  run.gateway.setControlHooks(h);
  run.fleet.setReady('a', false);
  run.fleet.setReady('b', false);
  const pending = post(`${run.url}/v1/chat/completions`, chat());
  await until(() => run.gateway.queuedRequests('m') === 1, 'the request to be queued');
  assert.deepEqual(calls.wake, ['m']);
  run.fleet.setReady('b', true);
  const r = await pending;
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('target-pod'), 'b');
  assert.equal(run.gateway.queuedRequests('m'), 0);
});

test('cold-start queue full and wait timeout are 503s with OpenAI errors; a model that does not scale to zero is not held', async () => {
  const run = await gateway({ coldStartQueue: 1, coldStartTimeoutMs: 400 });
  const { hooks: h } = hooks();
  run.gateway.setControlHooks(h);
  run.fleet.setReady('a', false);
  run.fleet.setReady('b', false);
  const first = post(`${run.url}/v1/chat/completions`, chat());
  await until(() => run.gateway.queuedRequests('m') === 1, 'the first request to be queued');
  const full = await post(`${run.url}/v1/chat/completions`, chat());
  assert.equal(full.status, 503);
  assert.equal(full.json().error.code, 'cold_start_queue_full');
  assert.equal(full.json().error.type, 'service_unavailable_error');
  assert.match(full.json().error.message, /starting from zero replicas/);
  assert.ok(full.headers.get('retry-after'));
  const timedOut = await first;
  assert.equal(timedOut.status, 503);
  assert.equal(timedOut.json().error.code, 'cold_start_timeout');
  assert.match(timedOut.json().error.message, /within 400 ms/);
  assert.equal(run.gateway.queuedRequests('m'), 0);

  const { hooks: noZero, calls } = hooks({ scalesToZero: () => false });
  run.gateway.setControlHooks(noZero);
  const r = await post(`${run.url}/v1/chat/completions`, chat());
  assert.equal(r.status, 503);
  assert.equal(r.json().error.code, 'no_ready_endpoint');
  assert.deepEqual(calls.wake, []);
});

test('LoRA adapter requests: ensure when no endpoint has it, lora-affinity over the endpoints that have it, touch after routing', async () => {
  const run = await gateway();
  for (const e of engines) e.state = { running: 0, waiting: 0, loras: [] };
  await run.scraper.scrapeAll();
  // Declared, loaded nowhere: the manager loads it on 'b'; the request goes to 'b'.
  const c1 = hooks({
    adapterBaseModel: (n) => (n === 'sql-lora' ? 'm' : undefined),
    ensureAdapter: async (n) => {
      c1.calls.ensure.push(n);
      return 'b';
    },
  });
  run.gateway.setControlHooks(c1.hooks);
  for (let i = 0; i < 3; i++) {
    const r = await post(`${run.url}/v1/chat/completions`, chat({ model: 'sql-lora' }));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('target-pod'), 'b');
    assert.equal(r.headers.get('x-routing-strategy'), 'lora-affinity');
  }
  assert.deepEqual(c1.calls.ensure, ['sql-lora', 'sql-lora', 'sql-lora']);
  assert.deepEqual(c1.calls.touch, [['sql-lora', 'b'], ['sql-lora', 'b'], ['sql-lora', 'b']]);
  assert.equal(engines[1]!.received.at(-1)!.body.model, 'sql-lora');

  // The manager says it is on 'a' (being loaded there, not scraped yet): routed to 'a', no ensure.
  const c2 = hooks({ adapterBaseModel: (n) => (n === 'sql-lora' ? 'm' : undefined), adapterEndpoints: () => ['a'] });
  run.gateway.setControlHooks(c2.hooks);
  const r2 = await post(`${run.url}/v1/chat/completions`, chat({ model: 'sql-lora' }));
  assert.equal(r2.headers.get('target-pod'), 'a');
  assert.deepEqual(c2.calls.ensure, []);
  assert.deepEqual(c2.calls.touch, [['sql-lora', 'a']]);

  // Scraped on 'b' only: never routed to 'a', even though 'a' is idle and 'b' busy.
  engines[0]!.state = { running: 0, waiting: 0, loras: [] };
  engines[1]!.state = { running: 9, waiting: 3, loras: ['sql-lora'] };
  await run.scraper.scrapeAll();
  const c3 = hooks();
  run.gateway.setControlHooks(c3.hooks);
  for (let i = 0; i < 3; i++) assert.equal((await post(`${run.url}/v1/chat/completions`, chat({ model: 'sql-lora' }))).headers.get('target-pod'), 'b');
  assert.deepEqual(c3.calls.touch.map((t) => t[1]), ['b', 'b', 'b']);
  // The base model itself is not restricted.
  const base = new Set<string>();
  for (let i = 0; i < 4; i++) base.add((await post(`${run.url}/v1/chat/completions`, chat())).headers.get('target-pod')!);
  assert.ok(base.has('a'));

  // A failed load is a clear 503.
  const c4 = hooks({ adapterBaseModel: (n) => (n === 'new-lora' ? 'm' : undefined), ensureAdapter: async () => Promise.reject(new Error('artifact download failed')) });
  run.gateway.setControlHooks(c4.hooks);
  const r4 = await post(`${run.url}/v1/chat/completions`, chat({ model: 'new-lora' }));
  assert.equal(r4.status, 503);
  assert.equal(r4.json().error.code, 'adapter_unavailable');
  assert.match(r4.json().error.message, /new-lora.*artifact download failed/);
  for (const e of engines) e.state = {};
});

test('with the real controllers: a simulated model at zero replicas is woken by the autoscaler and serves the held request', async () => {
  const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';
  const cfg = validateFleet({
    gateway: { port: 0, logLevel: 'silent' },
    models: [{ name: MODEL, simulator: { gpu: 'H100', replicas: 0, timeScale: 100 } }],
    autoscalers: [{ name: 'llama', model: MODEL, minReplicas: 0, maxReplicas: 2, scaleToZero: { enabled: true, idleS: 3600 } }],
  });
  const run = await runFleet(cfg, { port: 0 });
  runs.push(run);
  assert.equal(run.fleet.readyEndpoints(MODEL).length, 0);
  const r = await post(`${run.url}/v1/chat/completions`, { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
  assert.equal(r.status, 200, r.text);
  assert.ok(run.fleet.endpointsOf(MODEL).some((e) => e.id === r.headers.get('target-pod')));
  const status = run.controllers.autoscalers.get('llama')!.status as { decisions?: { reason: string }[] };
  assert.ok(JSON.stringify(status).includes('cold start'), JSON.stringify(status));
});
