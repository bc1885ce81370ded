import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePromText } from '../../../src/metrics/prom-text.ts';
import { loraLoadCall, loraUnloadCall, parseLoraReply, toCanonical } from '../../../src/engines/metric-map.ts';
import { SGLANG_TTFT_BUCKETS } from '../../../src/sim/server/sglang-metrics.ts';
import { MODEL, postJson, startFast } from './helpers.ts';

test('SGLang dialect: metric names read by the sglang map, LoRA routes and replies, lora_path selection, flat errors', async (t) => {
  const srv = await startFast({ dialect: 'sglang', enableLora: true, maxLoras: 2 });
  t.after(() => srv.close());

  // LoRA through the dialect's own call shapes and reply parser
  const load = loraLoadCall('sglang', 'sql', '/adapters/sql');
  let r = await postJson(srv.url + load.path, load.body);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(JSON.parse(r.text), { success: true, error_message: null, loaded_adapters: { sql: '/adapters/sql' } });
  assert.deepEqual(parseLoraReply('sglang', r.status, r.text), { ok: true, loadedAdapters: ['sql'] });
  r = await postJson(srv.url + load.path, load.body);
  assert.equal(r.status, 400);
  assert.equal(parseLoraReply('sglang', r.status, r.text).ok, false);

  // adapter chosen by the SGLang request field lora_path (name or path)
  r = await postJson(`${srv.url}/v1/completions`, { model: MODEL, prompt: 'select', max_tokens: 2, lora_path: '/adapters/sql' });
  assert.equal(r.status, 200, r.text);
  r = await postJson(`${srv.url}/v1/completions`, { model: MODEL, prompt: 'select', max_tokens: 2, lora_path: 'nope' });
  assert.equal(r.status, 400);
  const flat = JSON.parse(r.text);
  assert.equal(flat.object, 'error');
  assert.equal(flat.param, 'lora_path');
  assert.equal(typeof flat.message, 'string');

  r = await postJson(`${srv.url}/v1/completions`, { model: MODEL, prompt: 'hello there', max_tokens: 4, ignore_eos: true });
  assert.equal(r.status, 200);
  const models = (await (await fetch(`${srv.url}/v1/models`)).json()) as { data: Array<{ owned_by: string }> };
  assert.ok(models.data.every((m) => m.owned_by === 'sglang'));
  assert.deepEqual(await (await fetch(`${srv.url}/get_model_info`)).json(), { model_path: MODEL, tokenizer_path: MODEL, is_generation: true });
  assert.equal((await fetch(`${srv.url}/v1/load_lora_adapter`, { method: 'POST' })).status, 404, 'no vLLM LoRA routes');

  const parsed = parsePromText(await (await fetch(`${srv.url}/metrics`)).text());
  for (const [name, type] of Object.entries({
    'sglang:num_running_reqs': 'gauge',
    'sglang:num_queue_reqs': 'gauge',
    'sglang:token_usage': 'gauge',
    'sglang:cache_hit_rate': 'gauge',
    'sglang:gen_throughput': 'gauge',
    'sglang:prompt_tokens_total': 'counter',
    'sglang:generation_tokens_total': 'counter',
    'sglang:num_requests_total': 'counter',
    'sglang:time_to_first_token_seconds': 'histogram',
    'sglang:inter_token_latency_seconds': 'histogram',
    'sglang:e2e_request_latency_seconds': 'histogram',
  }))
    assert.equal(parsed.get(name)?.type, type, name);
  assert.ok(![...parsed.keys()].some((k) => k.startsWith('vllm:')), 'no vLLM names');
  const ttft = parsed.get('sglang:time_to_first_token_seconds')!.histograms[0]!;
  assert.deepEqual(ttft.labels, { model_name: MODEL });
  assert.deepEqual(ttft.buckets.map((b) => b.le), [...SGLANG_TTFT_BUCKETS, Infinity]);
  assert.equal(ttft.count, 2);
  assert.equal(parsed.get('sglang:generation_tokens_total')!.samples[0]!.value, 6);
  const sig = toCanonical(null, parsed, 0, 'sglang').signals;
  assert.equal(sig.running, 0);
  assert.equal(sig.waiting, 0);
  assert.equal(typeof sig.kvCacheUsage, 'number');
  assert.equal(typeof sig.prefixCacheHitRate, 'number');

  const unload = loraUnloadCall('sglang', 'sql');
  r = await postJson(srv.url + unload.path, unload.body);
  assert.deepEqual(parseLoraReply('sglang', r.status, r.text), { ok: true, loadedAdapters: [] });
});
