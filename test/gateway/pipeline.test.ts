/**
 * The request path end to end over loopback: proxying, headers, streaming byte for byte, usage
 * stripping, retries, client disconnect, and every error case of docs/gateway.md.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { startFakeEngine, fakeStreamEvents, type FakeEngine } from './fake-engine.ts';
import { startGateway, post, chat } from './helpers.ts';
import type { RunningFleet } from '../../src/gateway/runtime.ts';

let engines: FakeEngine[] = [];
let run: RunningFleet;

before(async () => {
  engines = [await startFakeEngine('a'), await startFakeEngine('b')];
  run = await startGateway(engines, { apiKeys: [{ name: 'alice', key: 'sk-alice-123', tpm: 1_000_000 }, { name: 'bob', key: 'sk-bob-4567' }], gateway: { maxBodyBytes: 2048, adminKey: 'admin-secret' } });
});
after(async () => {
  await run?.stop(0);
  await Promise.all(engines.map((e) => e.close()));
});

const bob = { authorization: 'Bearer sk-bob-4567' };
const alice = { authorization: 'Bearer sk-alice-123' };

test('non-streaming chat is proxied with the gateway headers', async () => {
  const r = await post(`${run.url}/v1/chat/completions`, chat(), { ...bob, 'x-request-id': 'req-42' });
  assert.equal(r.status, 200);
  const body = r.json();
  assert.match(body.choices[0].message.content, /^hello from (a|b)$/);
  const served = body.choices[0].message.content.slice('hello from '.length);
  assert.equal(r.headers.get('target-pod'), served);
  assert.equal(r.headers.get('x-request-id'), 'req-42');
  assert.equal(r.headers.get('x-routing-strategy'), 'least-request');
  const eng = engines.find((e) => e.id === served)!;
  const got = eng.received.at(-1)!;
  assert.equal(got.path, '/v1/chat/completions');
  assert.equal(got.headers['x-request-id'], 'req-42');
  assert.equal(got.headers.authorization, undefined, 'the client key is not forwarded upstream');
});

test('completions and embeddings are proxied', async () => {
  const c = await post(`${run.url}/v1/completions`, { model: 'm', prompt: 'once upon', max_tokens: 4 }, bob);
  assert.equal(c.status, 200);
  assert.equal(c.json().object, 'text_completion');
  const e = await post(`${run.url}/v1/embeddings`, { model: 'm', input: 'abc' }, bob);
  assert.equal(e.status, 200);
  assert.deepEqual(e.json().data[0].embedding, [0.1, 0.2]);
});

test('streaming passes through byte for byte', async () => {
  const r = await post(`${run.url}/v1/chat/completions`, chat({ stream: true, stream_options: { include_usage: true } }), bob);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'text/event-stream');
  const id = r.headers.get('target-pod')!;
  assert.equal(r.text, fakeStreamEvents(id, 3, true).join(''));
});

test('usage requested for a TPM-limited key is stripped from a client stream that did not ask', async () => {
  const r = await post(`${run.url}/v1/chat/completions`, chat({ stream: true }), alice);
  assert.equal(r.status, 200);
  const id = r.headers.get('target-pod')!;
  const eng = engines.find((e) => e.id === id)!;
  assert.deepEqual(eng.received.at(-1)!.body.stream_options, { include_usage: true }, 'the gateway asked the engine for usage');
  assert.equal(r.text, fakeStreamEvents(id, 3, false).join(''), 'the client gets exactly the stream without the usage chunk');
  const m = await (await fetch(`${run.url}/metrics`)).text();
  assert.match(m, /inferplane_tokens_total\{model="m",kind="completion"\} \d+/);
});

test('/v1/models lists the fleet models', async () => {
  const r = await fetch(`${run.url}/v1/models`, { headers: bob });
  assert.equal(r.status, 200);
  const b = (await r.json()) as { object: string; data: { id: string }[] };
  assert.equal(b.object, 'list');
  assert.deepEqual(b.data.map((d) => d.id), ['m']);
});

test('error cases use the OpenAI envelope with stable codes', async () => {
  const cases: [string, () => Promise<{ status: number; text: string; headers: Headers }>, number, string][] = [
    ['no key', () => post(`${run.url}/v1/chat/completions`, chat()), 401, 'invalid_api_key'],
    ['bad key', () => post(`${run.url}/v1/chat/completions`, chat(), { authorization: 'Bearer nope-nope-nope' }), 401, 'invalid_api_key'],
    ['unknown model', () => post(`${run.url}/v1/chat/completions`, chat({ model: 'nope' }), bob), 404, 'model_not_found'],
    ['malformed JSON', () => post(`${run.url}/v1/chat/completions`, '{"model":', bob), 400, 'invalid_json'],
    ['missing model', () => post(`${run.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'x' }] }, bob), 400, 'missing_model'],
    ['empty messages', () => post(`${run.url}/v1/chat/completions`, chat({ messages: [] }), bob), 400, 'invalid_request'],
    ['stream not boolean', () => post(`${run.url}/v1/chat/completions`, chat({ stream: 'yes' }), bob), 400, 'invalid_request'],
    ['unknown strategy', () => post(`${run.url}/v1/chat/completions`, chat(), { ...bob, 'routing-strategy': 'fastest-please' }), 400, 'unknown_routing_strategy'],
    ['bad weighted strategy', () => post(`${run.url}/v1/chat/completions`, chat(), { ...bob, 'routing-strategy': 'least-request:x' }), 400, 'unknown_routing_strategy'],
    ['oversized body', () => post(`${run.url}/v1/chat/completions`, chat({ messages: [{ role: 'user', content: 'x'.repeat(5000) }] }), bob), 413, 'request_too_large'],
    ['unknown path', () => post(`${run.url}/v2/whatever`, chat(), bob), 404, 'not_found'],
    ['unknown config-profile', () => post(`${run.url}/v1/chat/completions`, chat(), { ...bob, 'config-profile': 'gold' }), 400, 'unknown_config_profile'],
  ];
  for (const [name, f, status, code] of cases) {
    const r = await f();
    assert.equal(r.status, status, `${name}: status`);
    const body = JSON.parse(r.text);
    assert.equal(body.error.code, code, `${name}: code`);
    assert.equal(typeof body.error.message, 'string', `${name}: message`);
    assert.equal(typeof body.error.type, 'string', `${name}: type`);
    assert.ok('param' in body.error, `${name}: param`);
  }
});

test('upstream errors pass through with their status and body', async () => {
  const r = await post(`${run.url}/v1/bad`, chat(), bob);
  assert.equal(r.status, 400);
  assert.deepEqual(r.json(), { error: { message: 'bad thing', type: 'BadRequestError', param: 'temperature', code: 400 } });
  assert.ok(r.headers.get('target-pod'));
});

test('a 5xx before the first byte is retried on another endpoint', async () => {
  // Make least-request pick "a" first (b looks busy), and have "a" fail once.
  const b = run.fleet.get('b')!;
  b.inflightRequests += 100;
  engines[0]!.failNext = { status: 500, count: 1 };
  const bBefore = engines[1]!.received.length;
  const r = await post(`${run.url}/v1/chat/completions`, chat(), bob);
  b.inflightRequests -= 100;
  assert.equal(engines[0]!.failNext.count, 0, 'a was tried and failed');
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('target-pod'), 'b');
  assert.equal(engines[1]!.received.length, bBefore + 1);
  const m = await (await fetch(`${run.url}/metrics`)).text();
  assert.match(m, /inferplane_retries_total\{model="m"\} [1-9]/);
  assert.match(m, /inferplane_upstream_errors_total\{endpoint="a",kind="status_5xx"\} [1-9]/);
});

test('when every attempt fails with 5xx the last upstream error passes through', async () => {
  for (const e of engines) e.failNext = { status: 503, count: 5 };
  const r = await post(`${run.url}/v1/chat/completions`, chat(), bob);
  assert.equal(r.status, 503);
  assert.match(r.json().error.message, /engine (a|b) failed/);
  for (const e of engines) e.failNext = { status: 500, count: 0 };
});

test('client disconnect aborts the upstream request', async () => {
  const slow = engines.map((e) => e.chunkDelayMs);
  for (const e of engines) (e.chunkDelayMs = 200), (e.chunks = 20);
  const before = engines.reduce((s, e) => s + e.aborted, 0);
  await new Promise<void>((resolve, reject) => {
    const u = new URL(`${run.url}/v1/chat/completions`);
    const req = httpRequest({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json', ...bob } }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', () => undefined);
    req.end(JSON.stringify(chat({ stream: true })));
    setTimeout(() => reject(new Error('no first chunk')), 5000);
  });
  const deadline = Date.now() + 5000;
  while (engines.reduce((s, e) => s + e.aborted, 0) === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(engines.reduce((s, e) => s + e.aborted, 0), before + 1, 'the engine saw its request aborted');
  engines.forEach((e, i) => ((e.chunkDelayMs = slow[i]!), (e.chunks = 3)));
});

test('admin API adds a key that then works; admin needs the admin key', async () => {
  const denied = await post(`${run.url}/admin/keys`, { name: 'carol' }, bob);
  assert.equal(denied.status, 401);
  const created = await post(`${run.url}/admin/keys`, { name: 'carol', rpm: 100 }, { authorization: 'Bearer admin-secret' });
  assert.equal(created.status, 201);
  const key = created.json().key as string;
  assert.match(key, /^ik-[0-9a-f]{32}$/);
  const r = await post(`${run.url}/v1/chat/completions`, chat(), { authorization: `Bearer ${key}` });
  assert.equal(r.status, 200);
  const list = await fetch(`${run.url}/admin/keys`, { headers: { authorization: 'Bearer admin-secret' } });
  const names = ((await list.json()) as { data: { name: string }[] }).data.map((d) => d.name).sort();
  assert.deepEqual(names, ['alice', 'bob', 'carol']);
});

test('/metrics exposes the inferplane_ metrics', async () => {
  const m = await (await fetch(`${run.url}/metrics`)).text();
  for (const name of ['inferplane_requests_total', 'inferplane_ttft_seconds_bucket', 'inferplane_e2e_seconds_bucket', 'inferplane_routing_decisions_total', 'inferplane_upstream_errors_total', 'inferplane_endpoint_stale', 'inferplane_endpoint_ready'])
    assert.ok(m.includes(name), `missing ${name}`);
  assert.match(m, /inferplane_requests_total\{model="m",endpoint="(a|b)",status="200"\} [1-9]/);
  assert.match(m, /inferplane_requests_total\{model="nope",endpoint="-",status="404"\} 1/);
  assert.match(m, /inferplane_routing_decisions_total\{model="m",strategy="least-request",endpoint="(a|b)"\} [1-9]/);
});

test('unknown model names get their own requests_total label only up to a bound; later ones count as (other)', async () => {
  const n = 120;
  for (let i = 0; i < n; i++) assert.equal((await post(`${run.url}/v1/chat/completions`, chat({ model: `zz-unknown-${i}` }), bob)).status, 404);
  const m = await (await fetch(`${run.url}/metrics`)).text();
  const own = [...m.matchAll(/inferplane_requests_total\{model="zz-unknown-\d+",endpoint="-",status="404"\} (\d+)/g)];
  const other = /inferplane_requests_total\{model="\(other\)",endpoint="-",status="404"\} (\d+)/.exec(m);
  assert.ok(own.length > 0 && own.length < n, `${own.length} own labels`);
  for (const x of own) assert.equal(x[1], '1');
  assert.ok(other, 'an (other) series exists');
  assert.equal(own.length + Number(other[1]), n, 'every request is counted once');
  const distinctUnknown = new Set([...m.matchAll(/inferplane_requests_total\{model="([^"]+)",endpoint="-",status="404"\}/g)].map((x) => x[1]));
  distinctUnknown.delete('(other)');
  assert.ok(distinctUnknown.size <= 100, `${distinctUnknown.size} distinct unknown-model labels`);
});
