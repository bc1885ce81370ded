import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { SimServerHandle } from '../../../src/sim/server/server.ts';
import { MODEL, postJson, startFast } from './helpers.ts';

let srv: SimServerHandle;
before(async () => {
  srv = await startFast({ maxModelLen: 256 });
});
after(() => srv.close());

function errorOf(text: string) {
  const b = JSON.parse(text) as { error: { message: string; type: string; param: string | null; code: number } };
  assert.deepEqual(Object.keys(b.error).sort(), ['code', 'message', 'param', 'type']);
  return b.error;
}

test('unknown model: 404 NotFoundError', async () => {
  const r = await postJson(`${srv.url}/v1/chat/completions`, { model: 'gpt-4', messages: [{ role: 'user', content: 'x' }] });
  assert.equal(r.status, 404);
  const e = errorOf(r.text);
  assert.equal(e.type, 'NotFoundError');
  assert.equal(e.message, 'The model `gpt-4` does not exist.');
  assert.equal(e.code, 404);
});

test('prompt longer than max_model_len: 400 with param input_tokens', async () => {
  let r = await postJson(`${srv.url}/v1/completions`, { model: MODEL, prompt: 'word '.repeat(400) });
  assert.equal(r.status, 400);
  let e = errorOf(r.text);
  assert.equal(e.type, 'BadRequestError');
  assert.equal(e.param, 'input_tokens');
  assert.match(e.message, /maximum context length is 256 tokens/);
  r = await postJson(`${srv.url}/v1/completions`, { model: MODEL, prompt: 'hello', max_tokens: 300 });
  assert.equal(r.status, 400);
  e = errorOf(r.text);
  assert.match(e.message, /you requested 300 output tokens and your prompt contains 2 input tokens, for a total of 302 tokens/);
});

test('malformed JSON and schema errors: 400 with the field path', async () => {
  let r = await postJson(`${srv.url}/v1/completions`, '{"model": ');
  assert.equal(r.status, 400);
  assert.equal(errorOf(r.text).type, 'BadRequestError');
  r = await postJson(`${srv.url}/v1/chat/completions`, { model: MODEL, messages: [{ role: 'user', content: 5 }] });
  assert.equal(r.status, 400);
  assert.equal(errorOf(r.text).param, 'messages.0.content');
  r = await postJson(`${srv.url}/v1/completions`, { model: MODEL, prompt: 'x', n: 3 });
  assert.equal(r.status, 400);
  assert.equal(errorOf(r.text).param, 'n');
  r = await postJson(`${srv.url}/v1/completions`, { model: MODEL, prompt: ['a', 'b'] });
  assert.equal(r.status, 400);
  assert.equal(errorOf(r.text).param, 'prompt');
});

test('routes: 404 unknown path, 405 wrong method, health, version, load, tokenize/detokenize', async () => {
  let r = await fetch(`${srv.url}/nope`);
  assert.equal(r.status, 404);
  assert.deepEqual(await r.json(), { detail: 'Not Found' });
  r = await fetch(`${srv.url}/v1/completions`);
  assert.equal(r.status, 405);
  await r.arrayBuffer();
  r = await fetch(`${srv.url}/health`);
  assert.equal(r.status, 200);
  assert.equal(await r.text(), '');
  assert.match(((await (await fetch(`${srv.url}/version`)).json()) as { version: string }).version, /^\d+\.\d+\.\d+/);
  assert.deepEqual(await (await fetch(`${srv.url}/load`)).json(), { server_load: 0 });
  let t = await postJson(`${srv.url}/tokenize`, { model: MODEL, prompt: 'Hello world', return_token_strs: true });
  assert.equal(t.status, 200);
  const tok = JSON.parse(t.text) as { count: number; tokens: number[]; max_model_len: number; token_strs: string[] };
  assert.deepEqual(tok.tokens, [128000, 9906, 1917]);
  assert.equal(tok.count, 3);
  assert.equal(tok.max_model_len, 256);
  assert.deepEqual(tok.token_strs, ['<|begin_of_text|>', 'Hello', ' world']);
  t = await postJson(`${srv.url}/tokenize`, { prompt: 'Hello world', add_special_tokens: false });
  assert.deepEqual(JSON.parse(t.text).tokens, [9906, 1917]);
  t = await postJson(`${srv.url}/detokenize`, { tokens: [9906, 1917] });
  assert.deepEqual(JSON.parse(t.text), { prompt: 'Hello world' });
  t = await postJson(`${srv.url}/detokenize`, { tokens: [-1] });
  assert.equal(t.status, 400);
  t = await postJson(`${srv.url}/tokenize`, { model: 'nope', prompt: 'x' });
  assert.equal(t.status, 404);
});

test('startSimServer rejects unknown options and bad engine fields by name', async () => {
  const { startSimServer } = await import('../../../src/sim/server/server.ts');
  await assert.rejects(startSimServer({ model: MODEL, maxNumSeq: 4 } as never), /unknown simulator option "maxNumSeq"; known options: model, /);
  await assert.rejects(startSimServer({ model: 'no-such-model' }), /model: unknown model "no-such-model"; known models: /);
  await assert.rejects(startSimServer({ model: MODEL, gpu: 'TPU' }), /gpu: unknown GPU "TPU"/);
  await assert.rejects(startSimServer({ model: MODEL, timeScale: 0 }), /timeScale/);
});

test('stream_options without stream=true is a 400 (as vLLM)', async () => {
  const r = await postJson(`${srv.url}/v1/completions`, { model: MODEL, prompt: 'x', stream_options: { include_usage: true } });
  assert.equal(r.status, 400);
  assert.equal(errorOf(r.text).param, 'stream_options');
});

test('ORCA load report header on non-streaming responses when asked; dev routes absent by default', async () => {
  let r = await fetch(`${srv.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'endpoint-load-metrics-format': 'TEXT' }, body: JSON.stringify({ model: MODEL, prompt: 'x', max_tokens: 1 }) });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('endpoint-load-metrics') ?? '', /^TEXT named_metrics\.kv_cache_usage_perc=[\d.e-]+, named_metrics\.num_requests_waiting=\d+$/);
  await r.arrayBuffer();
  r = await fetch(`${srv.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'endpoint-load-metrics-format': 'JSON' }, body: JSON.stringify({ model: MODEL, prompt: 'x', max_tokens: 1 }) });
  const h = r.headers.get('endpoint-load-metrics') ?? '';
  assert.ok(h.startsWith('JSON '));
  assert.deepEqual(Object.keys(JSON.parse(h.slice(5)).named_metrics).sort(), ['kv_cache_usage_perc', 'num_requests_waiting']);
  await r.arrayBuffer();
  r = await fetch(`${srv.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, prompt: 'x', max_tokens: 1 }) });
  assert.equal(r.headers.get('endpoint-load-metrics'), null);
  await r.arrayBuffer();
  r = await fetch(`${srv.url}/reset_prefix_cache`, { method: 'POST' });
  assert.equal(r.status, 404);
  await r.arrayBuffer();
});
