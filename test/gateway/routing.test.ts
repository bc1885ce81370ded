/**
 * Each strategy's choice through the gateway, on hand-set engine states (served by fake engines'
 * /metrics and scraped, or set on the registry's EndpointState for signals the fake does not export).
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeEngine, type FakeEngine } from './fake-engine.ts';
import { startGateway, post, chat } from './helpers.ts';
import type { RunningFleet } from '../../src/gateway/runtime.ts';

let engines: FakeEngine[] = [];
let run: RunningFleet;

before(async () => {
  engines = [await startFakeEngine('a'), await startFakeEngine('b'), await startFakeEngine('c')];
  run = await startGateway(engines, {}, {
    routing: 'least-request',
    defaultProfile: 'default',
    profiles: {
      default: { routingStrategy: 'least-kv-cache' },
      long: { routingStrategy: 'round-robin', routingConfig: { promptTokensGte: 100 } },
      pinned: { routingStrategy: 'random' },
    },
  });
});
after(async () => {
  await run?.stop(0);
  await Promise.all(engines.map((e) => e.close()));
});

/** Sets each engine's /metrics state and scrapes once. */
async function setStates(states: Record<string, FakeEngine['state']>): Promise<void> {
  for (const e of engines) e.state = states[e.id] ?? {};
  await run.scraper.scrapeAll();
  for (const e of run.fleet.list()) assert.equal(e.stale, false, `${e.id} scraped`);
}

async function pick(strategy: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<{ pod: string; headers: Headers }> {
  const r = await post(`${run.url}/v1/chat/completions`, chat(extra), { 'routing-strategy': strategy, ...headers });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('x-routing-strategy'), strategy);
  return { pod: r.headers.get('target-pod')!, headers: r.headers };
}

test('scraped engine state lands in the registry (vLLM names -> canonical)', async () => {
  await setStates({ a: { running: 2, waiting: 1, kvCacheUsage: 0.25 } });
  const a = run.fleet.get('a')!;
  assert.equal(a.running, 2);
  assert.equal(a.waiting, 1);
  assert.equal(a.kvCacheUsage, 0.25);
  assert.notEqual(a.scrapedAtMs, null);
});

test('least-request picks the lowest running+waiting', async () => {
  await setStates({ a: { running: 5, waiting: 0 }, b: { running: 0, waiting: 0 }, c: { running: 3, waiting: 1 } });
  for (let i = 0; i < 5; i++) assert.equal((await pick('least-request')).pod, 'b');
});

test('least-kv-cache picks the lowest KV usage', async () => {
  await setStates({ a: { running: 0, waiting: 0, kvCacheUsage: 0.9 }, b: { running: 0, waiting: 0, kvCacheUsage: 0.5 }, c: { running: 4, waiting: 0, kvCacheUsage: 0.1 } });
  for (let i = 0; i < 5; i++) assert.equal((await pick('least-kv-cache')).pod, 'c');
});

test('least-latency picks the lowest queue+prefill+decode estimate', async () => {
  await setStates({ a: { running: 0, waiting: 0 }, b: { running: 0, waiting: 0 }, c: { running: 0, waiting: 0 } });
  const set = (id: string, ttft: number, itl: number) => Object.assign(run.fleet.get(id)!, { ttftMs: { mean: ttft }, itlMs: { mean: itl } });
  // max_tokens 8: a = 100 + 8*50 = 500, b = 20 + 8*10 = 100, c = 30 + 8*5 = 70
  set('a', 100, 50);
  set('b', 20, 10);
  set('c', 30, 5);
  for (let i = 0; i < 5; i++) assert.equal((await pick('least-latency')).pod, 'c');
});

test('throughput picks the lowest 2*prompt+generation tokens/s', async () => {
  const set = (id: string, p: number, g: number) => Object.assign(run.fleet.get(id)!, { promptTokensPerS: p, generationTokensPerS: g });
  set('a', 100, 50); // 250
  set('b', 10, 10); // 30
  set('c', 50, 0); // 100
  for (let i = 0; i < 5; i++) assert.equal((await pick('throughput')).pod, 'b');
});

test('round-robin cycles through the endpoints in id order', async () => {
  const seq: string[] = [];
  for (let i = 0; i < 6; i++) seq.push((await pick('round-robin')).pod);
  const start = seq.indexOf('a');
  assert.ok(start >= 0 && start < 3);
  assert.deepEqual(seq.slice(start, start + 3), ['a', 'b', 'c']);
  assert.deepEqual(seq.slice(0, 3), seq.slice(3, 6));
});

test('random reaches every endpoint', async () => {
  const seen = new Set<string>();
  for (let i = 0; i < 60 && seen.size < 3; i++) seen.add((await pick('random')).pod);
  assert.deepEqual([...seen].sort(), ['a', 'b', 'c']);
});

test('power-of-two never picks the most loaded endpoint', async () => {
  await setStates({ a: { running: 0, waiting: 0 }, b: { running: 5, waiting: 0 }, c: { running: 9, waiting: 0 } });
  const seen = new Map<string, number>();
  for (let i = 0; i < 30; i++) {
    const p = (await pick('power-of-two')).pod;
    seen.set(p, (seen.get(p) ?? 0) + 1);
  }
  assert.equal(seen.get('c') ?? 0, 0);
  assert.ok((seen.get('a') ?? 0) > 0);
});

test('session-affinity keeps a session on one endpoint and returns x-session-id', async () => {
  await setStates({ a: { running: 0, waiting: 0 }, b: { running: 0, waiting: 0 }, c: { running: 0, waiting: 0 } });
  const first = await pick('session-affinity');
  const sid = first.headers.get('x-session-id');
  assert.ok(sid, 'a session id is issued');
  // Make the first endpoint the most loaded: affinity must still win.
  const busy: Record<string, FakeEngine['state']> = { a: { running: 0, waiting: 0 }, b: { running: 0, waiting: 0 }, c: { running: 0, waiting: 0 } };
  busy[first.pod] = { running: 50, waiting: 10 };
  await setStates(busy);
  for (let i = 0; i < 5; i++) {
    const r = await pick('session-affinity', {}, { 'x-session-id': sid! });
    assert.equal(r.pod, first.pod);
    assert.equal(r.headers.get('x-session-id'), sid);
  }
  // A session key hashes consistently.
  const k1 = await pick('session-affinity', {}, { 'x-session-key': 'user-17' });
  for (let i = 0; i < 3; i++) assert.equal((await pick('session-affinity', {}, { 'x-session-key': 'user-17' })).pod, k1.pod);
});

test('lora-affinity prefers the endpoint with the adapter loaded; /v1/models lists adapters', async () => {
  await setStates({ a: { running: 0, waiting: 0, loras: [] }, b: { running: 3, waiting: 0, loras: ['sql-lora'] }, c: { running: 0, waiting: 0, loras: [] } });
  const models = (await (await fetch(`${run.url}/v1/models`)).json()) as { data: { id: string; parent: string | null }[] };
  assert.deepEqual(models.data.map((d) => [d.id, d.parent]), [['m', null], ['sql-lora', 'm']]);
  for (let i = 0; i < 3; i++) assert.equal((await pick('lora-affinity', { model: 'sql-lora' })).pod, 'b');
  assert.equal(engines[1]!.received.at(-1)!.body.model, 'sql-lora', 'the adapter name is sent upstream as the model');
});

test('a weighted combination is accepted and scores both strategies', async () => {
  // least-request (lower better): a=0, b=1, c=4 -> 1, .75, 0; least-kv-cache: a=.9, b=0, c=.5 -> 0, 1, .44
  // combined (2*lr + kv)/3: a=.67, b=.83, c=.15 -> b
  await setStates({ a: { running: 0, waiting: 0, kvCacheUsage: 0.9 }, b: { running: 1, waiting: 0, kvCacheUsage: 0 }, c: { running: 4, waiting: 0, kvCacheUsage: 0.5 } });
  for (let i = 0; i < 3; i++) assert.equal((await pick('least-request:2,least-kv-cache')).pod, 'b');
});

test('selection order: header > profile (config-profile, auto, default) > model > fleet', async () => {
  await setStates({ a: { running: 0, waiting: 0, kvCacheUsage: 0.9 }, b: { running: 0, waiting: 0, kvCacheUsage: 0.5 }, c: { running: 0, waiting: 0, kvCacheUsage: 0.1 } });
  // No header: the model's default profile (least-kv-cache) beats the model's `routing`.
  let r = await post(`${run.url}/v1/chat/completions`, chat());
  assert.equal(r.headers.get('x-routing-strategy'), 'least-kv-cache');
  assert.equal(r.headers.get('x-config-profile'), 'default');
  assert.equal(r.headers.get('target-pod'), 'c');
  // Named profile.
  r = await post(`${run.url}/v1/chat/completions`, chat(), { 'config-profile': 'pinned' });
  assert.equal(r.headers.get('x-routing-strategy'), 'random');
  // auto: a long prompt matches `long` (promptTokensGte 100), a short one falls back to the default.
  r = await post(`${run.url}/v1/chat/completions`, chat({ messages: [{ role: 'user', content: 'word '.repeat(200) }] }), { 'config-profile': 'auto' });
  assert.equal(r.headers.get('x-config-profile'), 'long');
  assert.equal(r.headers.get('x-routing-strategy'), 'round-robin');
  r = await post(`${run.url}/v1/chat/completions`, chat(), { 'config-profile': 'auto' });
  assert.equal(r.headers.get('x-config-profile'), 'default');
  // The header beats the profile.
  r = await post(`${run.url}/v1/chat/completions`, chat(), { 'config-profile': 'pinned', 'routing-strategy': 'least-request' });
  assert.equal(r.headers.get('x-routing-strategy'), 'least-request');
});

test('every decision is counted by strategy', async () => {
  const m = await (await fetch(`${run.url}/metrics`)).text();
  for (const s of ['least-request', 'least-kv-cache', 'least-latency', 'throughput', 'round-robin', 'random', 'power-of-two', 'session-affinity', 'lora-affinity'])
    assert.match(m, new RegExp(`inferplane_routing_decisions_total\\{model="m",strategy="${s}",endpoint="[abc]"\\} [1-9]`), s);
});
