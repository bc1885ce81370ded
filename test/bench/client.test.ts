import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { startBench, type ClientOptions, type ScheduledItem } from '../../src/bench/client.ts';
import { startFakeUpstream } from '../../src/bench/fake-upstream.ts';
import { PromptFactory } from '../../src/bench/prompt.ts';
import type { RequestRecord } from '../../src/bench/record.ts';
import { randomRequests, type WorkItem } from '../../src/bench/workload.ts';

const prompts = new PromptFactory('llama', 1);

function reqItems(n: number, input = 8, output = 4): WorkItem[] {
  return randomRequests(n, input, output).map((request) => ({ kind: 'request' as const, request }));
}

async function run(schedule: ScheduledItem[], o: Partial<ClientOptions> & { baseUrl: string }) {
  const recs: RequestRecord[] = [];
  const r = startBench(schedule, { model: 'm', prompts, onRecord: (x) => recs.push(x), ...o });
  const summary = await r.done;
  return { recs, summary };
}

test('sends every request on its schedule, in order, and measures lateness', async (t) => {
  const up = await startFakeUpstream({ record: true, name: 'pod-a' });
  t.after(() => up.close());
  const items = reqItems(60);
  const schedule = items.map((item, i) => ({ atMs: i * 4, item })); // 250 req/s
  const { recs, summary } = await run(schedule, { baseUrl: up.url });
  assert.equal(summary.sent, 60);
  assert.equal(summary.ok, 60);
  assert.equal(recs.length, 60);
  assert.equal(up.bodies.length, 60);
  const byId = [...recs].sort((a, b) => a.id - b.id);
  for (let i = 0; i < 60; i++) {
    const r = byId[i]!;
    assert.equal(r.scheduledMs, i * 4, 'scheduled time kept');
    assert.ok(r.lateMs >= 0, `never sent early: ${r.lateMs}`);
    assert.equal(r.lateMs, r.sentMs - r.scheduledMs);
    if (i > 0) assert.ok(r.sentMs >= byId[i - 1]!.sentMs, 'sent in schedule order');
    assert.equal(r.endpoint, 'pod-a');
    assert.equal(r.ok, true);
    assert.equal(r.outputTokens, 4);
    assert.equal(r.outputChunks, 4);
    assert.equal(r.promptTokensSent, 8);
    assert.equal(r.spec.key, `r/${i}`);
  }
  // The server saw the exact-length prompts and the output-forcing fields.
  const b = up.bodies[0]! as { messages: Array<{ content: string }>; max_tokens: number; ignore_eos: boolean; stream: boolean; stream_options: unknown };
  assert.equal(prompts.tokenizer.encode(b.messages[0]!.content).length, 8);
  assert.equal(b.max_tokens, 4);
  assert.equal(b.ignore_eos, true);
  assert.equal(b.stream, true);
  assert.deepEqual(b.stream_options, { include_usage: true });
});

test('TTFT, ITL and E2E match the server-side timings', async (t) => {
  const up = await startFakeUpstream();
  t.after(() => up.close());
  const { recs } = await run([{ atMs: 0, item: reqItems(1, 8, 5)[0]! }], {
    baseUrl: up.url + '/v1',
    headers: { 'x-fake-ttft-ms': '120', 'x-fake-itl-ms': '40' },
  });
  const r = recs[0]!;
  assert.equal(r.ok, true, JSON.stringify(r.error));
  assert.equal(r.outputChunks, 5);
  assert.equal(r.itlMs.length, 4);
  assert.ok(r.ttftMs! >= 119, `ttft ${r.ttftMs}`);
  const itlSum = r.itlMs.reduce((a, x) => a + x, 0);
  // Four gaps of >= 40 ms each happened on the server; the client cannot see them shorter in total.
  assert.ok(itlSum >= 4 * 40 - 2, `itl sum ${itlSum}`);
  assert.ok(r.e2eMs! >= r.ttftMs! + itlSum - 0.001, 'E2E covers TTFT plus the gaps');
});

test('non-streaming and completions API', async (t) => {
  const up = await startFakeUpstream({ record: true });
  t.after(() => up.close());
  const { recs } = await run([{ atMs: 0, item: reqItems(1, 6, 3)[0]! }], { baseUrl: up.url, api: 'completions', stream: false, ignoreEos: false, apiKey: 'k1' });
  const r = recs[0]!;
  assert.equal(r.ok, true);
  assert.equal(r.ttftMs, null);
  assert.deepEqual(r.itlMs, []);
  assert.equal(r.outputTokens, 3);
  assert.ok(r.e2eMs! >= 0);
  const b = up.bodies[0]! as Record<string, unknown>;
  assert.equal(typeof b.prompt, 'string');
  assert.equal(b.ignore_eos, undefined);
  assert.equal(b.stream, false);
});

test('errors are counted by kind: HTTP 5xx, connection refused, timeout, broken stream', async (t) => {
  const up = await startFakeUpstream();
  t.after(() => up.close());
  const one = (headers: Record<string, string>, extra: Partial<ClientOptions> = {}) =>
    run([{ atMs: 0, item: reqItems(1)[0]! }], { baseUrl: up.url, headers, ...extra }).then((x) => x.recs[0]!);
  const e500 = await one({ 'x-fake-status': '503' });
  assert.equal(e500.ok, false);
  assert.equal(e500.status, 503);
  assert.equal(e500.error?.kind, 'http');
  assert.match(e500.error!.message, /503.*fake status 503/);
  const hang = await one({ 'x-fake-hang': '1' }, { timeoutMs: 150 });
  assert.equal(hang.error?.kind, 'timeout');
  assert.equal(hang.status, null);
  const broken = await one({ 'x-fake-itl-ms': '5', 'x-fake-die-after': '2' });
  assert.equal(broken.ok, false);
  assert.equal(broken.error?.kind, 'stream');
  assert.equal(broken.outputChunks, 2);
  // A port with nothing listening: take a free port and close it.
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  const { recs, summary } = await run(
    reqItems(3).map((item, i) => ({ atMs: i, item })),
    { baseUrl: `http://127.0.0.1:${port}` },
  );
  assert.equal(summary.failed, 3);
  for (const r of recs) {
    assert.equal(r.error?.kind, 'connect', JSON.stringify(r.error));
    assert.equal(r.status, null);
  }
});

test('concurrency cap: never more in flight than C; waiting counts as lateness', async (t) => {
  const up = await startFakeUpstream();
  t.after(() => up.close());
  const items = reqItems(6);
  const { recs } = await run(items.map((item) => ({ atMs: 0, item })), { baseUrl: up.url, concurrency: 2, headers: { 'x-fake-ttft-ms': '60' } });
  assert.equal(recs.length, 6);
  assert.ok(recs.every((r) => r.ok), JSON.stringify(recs.map((r) => r.error)));
  assert.ok(up.maxOpen <= 2, `max open ${up.maxOpen}`);
  const late = recs.map((r) => r.lateMs).sort((a, b) => a - b);
  // Requests 3..6 had to wait for a reply (>= 60 ms server time) before a slot freed.
  for (const l of late.slice(2)) assert.ok(l >= 59, `late ${l}`);
});

test('multi-turn sessions send growing context, one turn after another', async (t) => {
  const up = await startFakeUpstream({ record: true });
  t.after(() => up.close());
  const session = (id: string) => ({
    id,
    systemTokens: 5,
    turns: [0, 1, 2].map((k) => ({ request: { inputTokens: 4, outputTokens: 2, key: `${id}/${k}` }, thinkTimeMs: k === 0 ? 0 : 5 })),
  });
  const { recs, summary } = await run(
    [
      { atMs: 0, item: { kind: 'session', session: session('a') } },
      { atMs: 1, item: { kind: 'session', session: session('b') } },
    ],
    { baseUrl: up.url },
  );
  assert.equal(summary.sent, 6);
  for (const sid of ['a', 'b']) {
    const rs = recs.filter((r) => r.sessionId === sid).sort((x, y) => x.turn! - y.turn!);
    assert.deepEqual(rs.map((r) => r.turn), [0, 1, 2]);
    // system 5 + (4 + 2 per earlier turn) + 4
    assert.deepEqual(rs.map((r) => r.promptTokensSent), [9, 15, 21]);
    for (let k = 1; k < 3; k++) assert.ok(rs[k]!.sentMs >= rs[k - 1]!.sentMs + rs[k - 1]!.e2eMs!, 'next turn after the reply');
  }
  const lens = up.bodies.map((b) => (b.messages as unknown[]).length).sort();
  assert.deepEqual(lens, [2, 2, 4, 4, 6, 6]); // system + user, then + assistant + user per turn
});

test('stop(): no new sends, in-flight requests finish and are recorded', async (t) => {
  const up = await startFakeUpstream();
  t.after(() => up.close());
  const recs: RequestRecord[] = [];
  const r = startBench(
    reqItems(100).map((item, i) => ({ atMs: i * 10, item })),
    { baseUrl: up.url, model: 'm', prompts, onRecord: (x) => recs.push(x), headers: { 'x-fake-ttft-ms': '80' } },
  );
  await new Promise((res) => setTimeout(res, 100));
  r.stop();
  const s = await r.done;
  assert.equal(s.stopped, true);
  assert.ok(s.sent > 0 && s.sent < 100, `sent ${s.sent}`);
  assert.equal(recs.length, s.sent, 'every sent request has a record');
  assert.equal(s.notSent, 100 - s.sent);
  assert.ok(recs.every((x) => x.ok), 'in-flight ones finished within the drain timeout');
});

test('stop() with a short drain timeout aborts and records what is still in flight', async (t) => {
  const up = await startFakeUpstream();
  t.after(() => up.close());
  const recs: RequestRecord[] = [];
  const r = startBench(reqItems(3).map((item) => ({ atMs: 0, item })), {
    baseUrl: up.url,
    model: 'm',
    prompts,
    onRecord: (x) => recs.push(x),
    headers: { 'x-fake-hang': '1' },
    drainTimeoutMs: 50,
  });
  await new Promise((res) => setTimeout(res, 30));
  r.stop();
  const s = await r.done;
  assert.equal(s.sent, 3);
  assert.equal(recs.length, 3);
  assert.ok(recs.every((x) => x.error?.kind === 'aborted'));
});

test('stop() ends a session waiting in its think time (later turns are not sent)', async (t) => {
  const up = await startFakeUpstream();
  t.after(() => up.close());
  const recs: RequestRecord[] = [];
  const session = {
    id: 's',
    systemTokens: 0,
    // A 10-minute think time: if stop() did not wake the session, this test would hit the runner's timeout.
    turns: [0, 1, 2].map((k) => ({ request: { inputTokens: 4, outputTokens: 2, key: `s/${k}` }, thinkTimeMs: k === 0 ? 0 : 600_000 })),
  };
  const r = startBench([{ atMs: 0, item: { kind: 'session', session } }], { baseUrl: up.url, model: 'm', prompts, onRecord: (x) => recs.push(x) });
  while (recs.length === 0) await new Promise((res) => setTimeout(res, 10));
  r.stop();
  const s = await r.done;
  assert.equal(s.sent, 1);
  assert.equal(s.notSent, 2);
  assert.equal(recs[0]!.ok, true);
});
