import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { SseParser } from '../../../src/openai/sse.ts';
import { parsePromText, sumSamples } from '../../../src/metrics/prom-text.ts';
import { MODEL, startFast } from './helpers.ts';

/** Streams one completion over a raw keep-alive agent; resolves with the SSE data payloads. */
function streamOne(agent: http.Agent, url: URL, body: string): Promise<{ status: number; events: string[] }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const p = new SseParser();
      const events: string[] = [];
      res.on('data', (c: Buffer) => events.push(...p.push(c).map((e) => e.data)));
      res.on('end', () => {
        events.push(...p.end().map((e) => e.data));
        resolve({ status: res.statusCode ?? 0, events });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('1,000 concurrent streaming requests on one process: none lost, each complete', async (t) => {
  // real time: every request lasts >= M decode steps of the modelled GPU, so the 1,000 streams overlap
  const srv = await startFast({ timeScale: 1 });
  t.after(() => srv.close());
  let peak = 0;
  const poll = setInterval(() => {
    const s = srv.core.snapshot();
    peak = Math.max(peak, s.running + s.waiting);
  }, 5);
  t.after(() => clearInterval(poll));
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  t.after(() => agent.destroy());
  const N = 1000;
  const M = 16;
  const url = new URL(`${srv.url}/v1/completions`);
  const results = await Promise.all(
    Array.from({ length: N }, (_, i) =>
      streamOne(agent, url, JSON.stringify({ model: MODEL, prompt: `Request number ${i}: write something.`, max_tokens: M, ignore_eos: true, stream: true, stream_options: { include_usage: true } })),
    ),
  );
  const ids = new Set<string>();
  for (const [i, r] of results.entries()) {
    assert.equal(r.status, 200, `request ${i}`);
    assert.equal(r.events[r.events.length - 1], '[DONE]', `request ${i} ends with [DONE]`);
    const chunks = r.events.slice(0, -1).map((e) => JSON.parse(e) as { id: string; choices: Array<{ text: string; finish_reason: string | null }>; usage?: { completion_tokens: number } });
    const content = chunks.filter((c) => c.choices.length > 0);
    assert.equal(content.length, M, `request ${i} got ${M} token chunks`);
    assert.equal(content[M - 1]!.choices[0]!.finish_reason, 'length');
    assert.equal(chunks[chunks.length - 1]!.usage!.completion_tokens, M);
    ids.add(chunks[0]!.id);
  }
  assert.equal(ids.size, N, 'distinct response ids');
  const parsed = parsePromText(await (await fetch(`${srv.url}/metrics`)).text());
  assert.equal(sumSamples(parsed, 'vllm:request_success_total', { finished_reason: 'length' }), N);
  assert.equal(sumSamples(parsed, 'vllm:generation_tokens_total'), N * M);
  assert.equal(sumSamples(parsed, 'vllm:num_requests_running'), 0);
  clearInterval(poll);
  t.diagnostic(`peak requests in the engine at once: ${peak}`);
  assert.ok(peak > 1, 'requests overlapped in the engine');
});

test('a client that disconnects mid-stream aborts its request in the engine', async (t) => {
  const srv = await startFast({ timeScale: 1 });
  t.after(() => srv.close());
  const ac = new AbortController();
  const r = await fetch(`${srv.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, prompt: 'long answer please', max_tokens: 3000, ignore_eos: true, stream: true }),
    signal: ac.signal,
  });
  const reader = r.body!.getReader();
  await reader.read(); // at least the first bytes arrived: the request is running
  assert.equal(srv.core.snapshot().running + srv.core.snapshot().waiting, 1);
  ac.abort();
  await reader.read().catch(() => undefined);
  for (let i = 0; i < 300; i++) {
    const s = srv.core.snapshot();
    if (s.running === 0 && s.waiting === 0 && !srv.core.hasWork()) break;
    await new Promise((res) => setTimeout(res, 10));
  }
  const s = srv.core.snapshot();
  assert.equal(s.running, 0);
  assert.equal(s.waiting, 0);
  const parsed = parsePromText(await (await fetch(`${srv.url}/metrics`)).text());
  assert.equal(sumSamples(parsed, 'vllm:request_success_total', { finished_reason: 'abort' }), 1);
  assert.equal(sumSamples(parsed, 'vllm:kv_cache_usage_perc'), 0);
});
