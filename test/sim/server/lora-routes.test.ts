import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MODEL, postJson, startFast } from './helpers.ts';

test('runtime LoRA routes do not exist unless VLLM_ALLOW_RUNTIME_LORA_UPDATING is set', async (t) => {
  const prev = process.env.VLLM_ALLOW_RUNTIME_LORA_UPDATING;
  delete process.env.VLLM_ALLOW_RUNTIME_LORA_UPDATING;
  const srv = await startFast({ enableLora: true });
  t.after(() => srv.close());
  if (prev !== undefined) process.env.VLLM_ALLOW_RUNTIME_LORA_UPDATING = prev;
  const r = await postJson(`${srv.url}/v1/load_lora_adapter`, { lora_name: 'a', lora_path: '/p' });
  assert.equal(r.status, 404);
  assert.deepEqual(JSON.parse(r.text), { detail: 'Not Found' });
});

test('env VLLM_ALLOW_RUNTIME_LORA_UPDATING=True enables the routes', async (t) => {
  const prev = process.env.VLLM_ALLOW_RUNTIME_LORA_UPDATING;
  process.env.VLLM_ALLOW_RUNTIME_LORA_UPDATING = 'True';
  const srv = await startFast({ enableLora: true });
  t.after(() => srv.close());
  if (prev === undefined) delete process.env.VLLM_ALLOW_RUNTIME_LORA_UPDATING;
  else process.env.VLLM_ALLOW_RUNTIME_LORA_UPDATING = prev;
  const r = await postJson(`${srv.url}/v1/load_lora_adapter`, { lora_name: 'a', lora_path: '/p' });
  assert.equal(r.status, 200);
});

test('load/unload bodies, status codes and plain-text replies as vLLM', async (t) => {
  const srv = await startFast({ enableLora: true, maxLoras: 2, allowRuntimeLoraUpdating: true, servedModelName: ['base'] });
  t.after(() => srv.close());
  const load = (b: unknown, h?: Record<string, string>) => postJson(`${srv.url}/v1/load_lora_adapter`, b, h);
  const unload = (b: unknown) => postJson(`${srv.url}/v1/unload_lora_adapter`, b);

  let r = await load({ lora_name: 'sql', lora_path: '/adapters/sql' });
  assert.equal(r.status, 200);
  assert.match(r.type ?? '', /^text\/plain/);
  assert.equal(r.text, "Success: LoRA adapter 'sql' added successfully.");

  r = await load({ lora_name: 'sql', lora_path: '/adapters/sql' });
  assert.equal(r.status, 400);
  assert.equal(JSON.parse(r.text).error.type, 'InvalidUserInput');
  assert.match(JSON.parse(r.text).error.message, /already been loaded/);
  r = await load({ lora_name: 'sql', lora_path: '/adapters/sql2', load_inplace: true });
  assert.equal(r.status, 200);

  r = await load({ lora_name: 'x' });
  assert.equal(r.status, 400);
  assert.equal(JSON.parse(r.text).error.message, "Both 'lora_name' and 'lora_path' must be provided.");
  r = await load('lora_name=x', { 'content-type': 'text/plain' });
  assert.equal(r.status, 415);

  const models = (await (await fetch(`${srv.url}/v1/models`)).json()) as { data: Array<{ id: string; parent: string | null; root: string; max_model_len: number | null }> };
  assert.deepEqual(models.data.map((m) => m.id), ['base', 'sql']);
  assert.equal(models.data[0]!.parent, null);
  assert.equal(models.data[1]!.parent, 'base');
  assert.equal(models.data[1]!.root, '/adapters/sql2');
  assert.equal(models.data[1]!.max_model_len, null);

  r = await postJson(`${srv.url}/v1/completions`, { model: 'sql', prompt: 'select', max_tokens: 2 });
  assert.equal(r.status, 200, r.text);
  assert.equal(JSON.parse(r.text).model, 'sql');

  r = await unload({ lora_name: 'nope' });
  assert.equal(r.status, 404);
  assert.deepEqual(JSON.parse(r.text), { error: { message: "The lora adapter 'nope' cannot be found.", type: 'NotFoundError', param: null, code: 404 } });
  r = await unload({});
  assert.equal(r.status, 400);
  r = await unload({ lora_name: 'sql' });
  assert.equal(r.status, 200);
  assert.equal(r.text, "Success: LoRA adapter 'sql' removed successfully.");
  r = await postJson(`${srv.url}/v1/completions`, { model: 'sql', prompt: 'select', max_tokens: 2 });
  assert.equal(r.status, 404, 'unloaded adapter is an unknown model');
  void MODEL;
});

test('loading on an engine without --enable-lora is a 400', async (t) => {
  const srv = await startFast({ allowRuntimeLoraUpdating: true });
  t.after(() => srv.close());
  const r = await postJson(`${srv.url}/v1/load_lora_adapter`, { lora_name: 'a', lora_path: '/p' });
  assert.equal(r.status, 400);
  assert.equal(JSON.parse(r.text).error.type, 'BadRequestError');
});
