/**
 * Integration: simulated vLLM engines publish KV events over ZeroMQ; the gateway-side ingestor
 * follows them into `kv-aware` (and `cache-cost-kv`); a multi-turn conversation stays on the engine
 * that holds its prefix while a cold conversation goes elsewhere.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSimServer, type SimServerHandle } from '../../../src/sim/server/server.ts';
import { newEndpointState, type EndpointState } from '../../../src/engines/state.ts';
import { renderChat, tokenizerFor, type ChatMessage } from '../../../src/engines/tokenizer.ts';
import { KvEventIngestor } from '../../../src/routing/cache/kv-ingestor.ts';
import { KvAwareStrategy } from '../../../src/routing/cache/kv-aware.ts';
import { CacheCostKvStrategy } from '../../../src/routing/cache/cache-cost.ts';
import type { RoutingRequest } from '../../../src/routing/types.ts';
import { seeded } from './helpers.ts';

const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';
const tok = tokenizerFor(MODEL);
const servers: SimServerHandle[] = [];
const ingestor = new KvEventIngestor();
after(async () => {
  await ingestor.close();
  await Promise.all(servers.map((s) => s.close()));
});

function words(n: number, seed: number): string {
  const w = ['alpha', 'river', 'stone', 'cloud', 'market', 'signal', 'garden', 'paper', 'engine', 'forest', 'winter', 'copper'];
  const r = seeded(seed);
  return Array.from({ length: n }, () => w[Math.floor(r() * w.length)]).join(' ');
}

let n = 0;
function routingRequest(messages: ChatMessage[]): RoutingRequest {
  const ids = tok.encode(renderChat(messages));
  return { id: `i${n++}`, model: MODEL, baseModel: MODEL, promptTokens: () => ids, promptLength: ids.length, headers: {}, arrivalMs: 0 };
}

async function chat(url: string, messages: ChatMessage[]): Promise<string> {
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages, max_tokens: 4 }) });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { choices: Array<{ message: { content: string } }> };
  return body.choices[0]!.message.content;
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('KV events over ZeroMQ keep a conversation on the engine holding its prefix; a cold one goes elsewhere', async () => {
  for (let i = 0; i < 3; i++) {
    servers.push(await startSimServer({ model: MODEL, host: '127.0.0.1', port: 0, timeScale: 50, kvEventsEndpoint: 'tcp://127.0.0.1:*', seed: i }));
  }
  const kv = new KvAwareStrategy({ speculativeTtlMs: 0 }); // only KV events count
  const cost = new CacheCostKvStrategy({ speculativeTtlMs: 0 });
  const states: EndpointState[] = servers.map((s, i) => newEndpointState({ id: `engine-${i}`, url: s.url, model: MODEL, ready: true, stale: false, scrapedAtMs: 0 }));
  for (let i = 0; i < 3; i++) await ingestor.follow({ id: states[i]!.id, endpoint: servers[i]!.kvEventsEndpoint! }, [kv, cost]);
  await new Promise((r) => setTimeout(r, 200)); // ZMQ slow joiner: let SUB sockets connect
  const ctx = { nowMs: 0, random: seeded(3) };
  const urlOf = (id: string) => states.find((s) => s.id === id)!.url;

  // conversation A, turn 1: nothing cached anywhere
  const a: ChatMessage[] = [
    { role: 'system', content: words(600, 1) },
    { role: 'user', content: 'first question ' + words(20, 2) },
  ];
  const r1 = routingRequest(a);
  const d1 = kv.route(r1, states, ctx);
  assert.match(d1.reason, /no prefix match/);
  const home = d1.endpoint!.id;
  a.push({ role: 'assistant', content: await chat(urlOf(home), a) });
  // the engine's BlockStored events reach the index
  await until(() => kv.kvIndex.blocksOf(home) >= Math.floor(r1.promptLength / 16) - 1);
  assert.equal(kv.kvIndex.blocksOf(home) > 0 && states.filter((s) => s.id !== home).every((s) => kv.kvIndex.blocksOf(s.id) === 0), true);

  // turn 2 follows the prefix, under both KV-event strategies
  a.push({ role: 'user', content: 'second question ' + words(20, 3) });
  const r2 = routingRequest(a);
  const d2 = kv.route(r2, states, ctx);
  assert.equal(d2.endpoint!.id, home, d2.reason);
  assert.match(d2.reason, /prefix match (9\d|8\d)%/);
  assert.equal(cost.route(r2, states, ctx).endpoint!.id, home);
  a.push({ role: 'assistant', content: await chat(urlOf(home), a) });

  // while A's next turn is in flight on its engine, a cold conversation B goes elsewhere
  states.find((s) => s.id === home)!.inflightRequests = 1;
  const b: ChatMessage[] = [
    { role: 'system', content: words(600, 99) },
    { role: 'user', content: 'unrelated ' + words(20, 100) },
  ];
  const rb = routingRequest(b);
  const db = kv.route(rb, states, ctx);
  assert.notEqual(db.endpoint!.id, home, db.reason);
  const other = db.endpoint!.id;
  b.push({ role: 'assistant', content: await chat(urlOf(other), b) });
  await until(() => kv.kvIndex.blocksOf(other) > 0);
  states.find((s) => s.id === home)!.inflightRequests = 0;

  // B's second turn follows B; A's third turn still follows A
  b.push({ role: 'user', content: 'more ' + words(10, 101) });
  assert.equal(kv.route(routingRequest(b), states, ctx).endpoint!.id, other);
  a.push({ role: 'user', content: 'third ' + words(10, 4) });
  assert.equal(kv.route(routingRequest(a), states, ctx).endpoint!.id, home);
  const st = ingestor.stats(home)!;
  assert.ok(st.batches > 0 && st.gaps === 0, JSON.stringify(st));
});
