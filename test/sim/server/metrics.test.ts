import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePromText, sumSamples } from '../../../src/metrics/prom-text.ts';
import { toCanonical } from '../../../src/engines/metric-map.ts';
import { ITL_BUCKETS, REQUEST_LATENCY_BUCKETS, TTFT_BUCKETS, build125Buckets } from '../../../src/sim/server/metrics.ts';
import { postJson, startFast, tokenPrompt } from './helpers.ts';

async function scrape(url: string) {
  const r = await fetch(`${url}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await r.text();
  return { text, parsed: parsePromText(text) };
}

test('build_1_2_5_buckets matches vLLM (max_model_len 4096 -> 1..2000)', () => {
  assert.deepEqual(build125Buckets(4096), [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]);
  assert.deepEqual(build125Buckets(1), [1]);
});

test('/metrics: vLLM V1 names, types, labels, buckets and counts after N requests', async (t) => {
  const srv = await startFast({ servedModelName: ['m'] });
  t.after(() => srv.close());
  const N = 3;
  const M = 5;
  const P = 40;
  for (let i = 0; i < N; i++) {
    const r = await postJson(`${srv.url}/v1/completions`, { model: 'm', prompt: tokenPrompt(P, i), max_tokens: M, ignore_eos: true });
    assert.equal(r.status, 200, r.text);
  }
  const { text, parsed } = await scrape(srv.url);
  const types: Record<string, string> = {
    'vllm:num_requests_running': 'gauge',
    'vllm:num_requests_waiting': 'gauge',
    'vllm:kv_cache_usage_perc': 'gauge',
    'vllm:prefix_cache_queries_total': 'counter',
    'vllm:prefix_cache_hits_total': 'counter',
    'vllm:prompt_tokens_total': 'counter',
    'vllm:generation_tokens_total': 'counter',
    'vllm:request_success_total': 'counter',
    'vllm:num_preemptions_total': 'counter',
    'vllm:time_to_first_token_seconds': 'histogram',
    'vllm:inter_token_latency_seconds': 'histogram',
    'vllm:request_time_per_output_token_seconds': 'histogram',
    'vllm:e2e_request_latency_seconds': 'histogram',
    'vllm:request_queue_time_seconds': 'histogram',
    'vllm:request_inference_time_seconds': 'histogram',
    'vllm:request_prefill_time_seconds': 'histogram',
    'vllm:request_decode_time_seconds': 'histogram',
    'vllm:request_prompt_tokens': 'histogram',
    'vllm:request_generation_tokens': 'histogram',
    'vllm:request_params_n': 'histogram',
    'vllm:iteration_tokens_total': 'histogram',
    'vllm:cache_config_info': 'gauge',
  };
  for (const [name, type] of Object.entries(types)) {
    const f = parsed.get(name);
    assert.ok(f, `${name} is exported`);
    assert.equal(f.type, type, `${name} type`);
  }
  const L = { engine: '0', model_name: 'm' };
  const h = (name: string) => parsed.get(name)!.histograms.find((x) => x.labels.engine === '0' && x.labels.model_name === 'm')!;
  assert.deepEqual(h('vllm:time_to_first_token_seconds').buckets.map((b) => b.le), [...TTFT_BUCKETS, Infinity]);
  assert.deepEqual(h('vllm:inter_token_latency_seconds').buckets.map((b) => b.le), [...ITL_BUCKETS, Infinity]);
  assert.deepEqual(h('vllm:e2e_request_latency_seconds').buckets.map((b) => b.le), [...REQUEST_LATENCY_BUCKETS, Infinity]);
  assert.deepEqual(h('vllm:request_prompt_tokens').buckets.map((b) => b.le), [...build125Buckets(4096), Infinity]);
  assert.match(text, /vllm:time_to_first_token_seconds_bucket\{[^}]*le="1\.0"/, 'bucket bounds in Python float form');
  // vLLM's test semantics (tests/entrypoints/instrumentator/test_metrics.py)
  for (const name of ['vllm:time_to_first_token_seconds', 'vllm:e2e_request_latency_seconds', 'vllm:request_queue_time_seconds', 'vllm:request_prefill_time_seconds', 'vllm:request_decode_time_seconds', 'vllm:request_inference_time_seconds'])
    assert.equal(h(name).count, N, `${name}_count`);
  assert.equal(h('vllm:inter_token_latency_seconds').count, N * (M - 1));
  assert.equal(h('vllm:request_prompt_tokens').sum, N * P);
  assert.equal(h('vllm:request_generation_tokens').sum, N * M);
  assert.equal(sumSamples(parsed, 'vllm:prompt_tokens_total', L), N * P);
  assert.equal(sumSamples(parsed, 'vllm:generation_tokens_total', L), N * M);
  assert.equal(sumSamples(parsed, 'vllm:request_success_total', { ...L, finished_reason: 'length' }), N);
  for (const reason of ['stop', 'abort', 'error']) assert.equal(sumSamples(parsed, 'vllm:request_success_total', { ...L, finished_reason: reason }), 0, `${reason} pre-created at 0`);
  assert.equal(sumSamples(parsed, 'vllm:num_requests_running', L), 0);
  assert.equal(sumSamples(parsed, 'vllm:num_requests_waiting', L), 0);
  assert.equal(sumSamples(parsed, 'vllm:prefix_cache_queries_total', L), N * P);
  const info = parsed.get('vllm:cache_config_info')!.samples[0]!;
  assert.equal(info.labels.block_size, '16');
  assert.equal(info.labels.engine, '0');
  assert.equal(info.labels.model_name, undefined);
  assert.equal(info.labels.enable_prefix_caching, 'True');
  assert.equal(info.labels.num_gpu_blocks, String(srv.config.numGpuBlocks));
  assert.ok(!parsed.has('vllm:lora_requests_info'), 'lora info only with LoRA enabled');
  assert.ok(!parsed.has('vllm:gpu_cache_usage_perc'), 'V0 names only with the flag');
  // the dialect map reads the simulator like a real vLLM
  const s = toCanonical(null, parsed, 0).signals;
  assert.equal(s.running, 0);
  assert.equal(s.waiting, 0);
  assert.equal(typeof s.kvCacheUsage, 'number');
});

test('/metrics with LoRA and V0 names', async (t) => {
  const srv = await startFast({ enableLora: true, maxLoras: 2, loraModules: [{ name: 'sql', path: '/adapters/sql' }], v0Metrics: true });
  t.after(() => srv.close());
  const r = await postJson(`${srv.url}/v1/completions`, { model: 'sql', prompt: 'x', max_tokens: 2 });
  assert.equal(r.status, 200, r.text);
  const { parsed } = await scrape(srv.url);
  const lora = parsed.get('vllm:lora_requests_info')!;
  assert.equal(lora.type, 'gauge');
  const newest = lora.samples.reduce((a, b) => (b.value > a.value ? b : a));
  assert.deepEqual(Object.keys(newest.labels).sort(), ['max_lora', 'running_lora_adapters', 'waiting_lora_adapters']);
  assert.equal(newest.labels.max_lora, '2');
  assert.ok(newest.value > 1.6e9, 'value is a Unix timestamp');
  assert.ok(lora.samples.some((x) => x.labels.running_lora_adapters === 'sql'), 'the adapter was seen running (stamped on engine steps)');
  for (const name of ['vllm:gpu_cache_usage_perc', 'vllm:cpu_cache_usage_perc', 'vllm:num_requests_swapped', 'vllm:gpu_prefix_cache_hit_rate', 'vllm:time_per_output_token_seconds']) assert.ok(parsed.has(name), name);
  assert.equal(parsed.get('vllm:gpu_cache_usage_perc')!.type, 'gauge');
});

test('exposition lines are printed like prometheus_client: sorted labels, float bucket bounds', async () => {
  const { pythonStyleLabels } = await import('../../../src/sim/server/metrics.ts');
  assert.equal(pythonStyleLabels('vllm:x_bucket{model_name="m",engine="0",le="5"} 3'), 'vllm:x_bucket{engine="0",le="5.0",model_name="m"} 3');
  assert.equal(pythonStyleLabels('vllm:x_bucket{le="+Inf",model_name="a,\\"b"} 1'), 'vllm:x_bucket{le="+Inf",model_name="a,\\"b"} 1');
  assert.equal(pythonStyleLabels('# HELP a {b="c"}'), '# HELP a {b="c"}');
  assert.equal(pythonStyleLabels('plain 1'), 'plain 1');
});
