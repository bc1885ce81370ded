import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePromText } from '../../src/metrics/prom-text.ts';
import { histogramQuantile, loraLoadCall, loraUnloadCall, parseLoraReply, toCanonical } from '../../src/engines/metric-map.ts';

function v1(o: { run: number; wait: number; kv: number; hits: number; queries: number; prompt: number; gen: number; ttft: [number, number, number, number]; ttftSum: number }): string {
  const L = 'engine="0",model_name="m"';
  return `# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{${L}} ${o.run}
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{${L}} ${o.wait}
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{${L}} ${o.kv}
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{${L}} ${o.hits}
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{${L}} ${o.queries}
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{${L}} ${o.prompt}
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{${L}} ${o.gen}
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{${L}} 2
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="m"} ${o.ttft[0]}
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.5",model_name="m"} ${o.ttft[1]}
vllm:time_to_first_token_seconds_bucket{engine="0",le="1.0",model_name="m"} ${o.ttft[2]}
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} ${o.ttft[3]}
vllm:time_to_first_token_seconds_count{${L}} ${o.ttft[3]}
vllm:time_to_first_token_seconds_sum{${L}} ${o.ttftSum}
# TYPE vllm:lora_requests_info gauge
vllm:lora_requests_info{max_lora="4",running_lora_adapters="old",waiting_lora_adapters=""} 100
vllm:lora_requests_info{max_lora="4",running_lora_adapters="a,b",waiting_lora_adapters="c"} 200
`;
}

test('vLLM V1: gauges direct, rates and latency from deltas, LoRA from the newest info series', () => {
  const s1 = toCanonical(null, parsePromText(v1({ run: 3, wait: 1, kv: 0.25, hits: 100, queries: 400, prompt: 1000, gen: 500, ttft: [1, 1, 1, 1], ttftSum: 0.05 })), 10_000);
  assert.equal(s1.signals.running, 3);
  assert.equal(s1.signals.waiting, 1);
  assert.equal(s1.signals.kvCacheUsage, 0.25);
  assert.equal(s1.signals.preemptions, 2);
  assert.equal(s1.signals.promptTokensPerS, undefined, 'no rate on the first scrape');
  assert.equal(s1.signals.prefixCacheHitRate, undefined);
  assert.equal(s1.signals.ttftMs, undefined);
  assert.deepEqual(s1.signals.loraAdapters, ['a', 'b', 'c']);
  assert.equal(s1.signals.maxLoras, 4);
  const s2 = toCanonical(s1.memory, parsePromText(v1({ run: 2, wait: 0, kv: 0.5, hits: 400, queries: 800, prompt: 3000, gen: 1500, ttft: [1, 3, 5, 5], ttftSum: 2.05 })), 12_000);
  assert.equal(s2.signals.prefixCacheHitRate, 300 / 400);
  assert.equal(s2.signals.promptTokensPerS, 1000);
  assert.equal(s2.signals.generationTokensPerS, 500);
  // 4 new TTFT observations, sum 2.0 s -> mean 500 ms; 2 in (0.1,0.5], 2 in (0.5,1.0]
  assert.ok(Math.abs(s2.signals.ttftMs!.mean - 500) < 1e-9);
  assert.ok(Math.abs(s2.signals.ttftMs!.p50! - 500) < 1e-9);
  assert.ok(Math.abs(s2.signals.ttftMs!.p90! - 900) < 1e-9);
  // counter reset (engine restart): delta = current value
  const s3 = toCanonical(s2.memory, parsePromText(v1({ run: 0, wait: 0, kv: 0, hits: 10, queries: 20, prompt: 40, gen: 0, ttft: [0, 0, 0, 0], ttftSum: 0 })), 14_000);
  assert.equal(s3.signals.promptTokensPerS, 20);
  assert.equal(s3.signals.prefixCacheHitRate, 0.5);
});

test('vLLM V0 names are read as fallbacks; missing metrics stay undefined', () => {
  const text = `# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="m"} 0.75
# TYPE vllm:gpu_prefix_cache_hit_rate gauge
vllm:gpu_prefix_cache_hit_rate{model_name="m"} 0.3
`;
  const s = toCanonical(null, parsePromText(text), 0).signals;
  assert.equal(s.kvCacheUsage, 0.75);
  assert.equal(s.prefixCacheHitRate, 0.3);
  assert.equal(s.running, undefined);
  assert.equal(s.waiting, undefined);
  assert.equal(s.loraAdapters, undefined);
});

test('SGLang names map to the same signals', () => {
  const text = `# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="m"} 5
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="m"} 2
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="m"} 0.4
# TYPE sglang:cache_hit_rate gauge
sglang:cache_hit_rate{model_name="m"} 0.6
`;
  const s = toCanonical(null, parsePromText(text), 0, 'sglang').signals;
  assert.deepEqual([s.running, s.waiting, s.kvCacheUsage, s.prefixCacheHitRate], [5, 2, 0.4, 0.6]);
  assert.equal(toCanonical(null, parsePromText(text), 0, 'vllm').signals.running, undefined);
});

test('histogramQuantile interpolates within buckets', () => {
  const b = [{ le: 1, count: 2 }, { le: 2, count: 4 }, { le: Infinity, count: 4 }];
  assert.equal(histogramQuantile(0.5, b), 1);
  assert.equal(histogramQuantile(0.75, b), 1.5);
  assert.equal(histogramQuantile(0.5, [{ le: Infinity, count: 0 }]), undefined);
});

test('LoRA call shapes per dialect and reply parsing', () => {
  assert.deepEqual(loraLoadCall('vllm', 'a', '/p'), { method: 'POST', path: '/v1/load_lora_adapter', body: { lora_name: 'a', lora_path: '/p' } });
  assert.deepEqual(loraLoadCall('sglang', 'a', '/p', { pinned: true }), { method: 'POST', path: '/load_lora_adapter', body: { lora_name: 'a', lora_path: '/p', pinned: true } });
  assert.deepEqual(loraUnloadCall('vllm', 'a').path, '/v1/unload_lora_adapter');
  assert.deepEqual(loraUnloadCall('sglang', 'a'), { method: 'POST', path: '/unload_lora_adapter', body: { lora_name: 'a' } });
  assert.deepEqual(parseLoraReply('vllm', 200, "Success: LoRA adapter 'a' added successfully."), { ok: true });
  assert.deepEqual(parseLoraReply('vllm', 404, '{"error":{"message":"The lora adapter \'a\' cannot be found.","type":"NotFoundError","param":null,"code":404}}'), { ok: false, error: "The lora adapter 'a' cannot be found." });
  assert.deepEqual(parseLoraReply('sglang', 400, '{"success":false,"error_message":"bad","loaded_adapters":{"x":"/p"}}'), { ok: false, error: 'bad', loadedAdapters: ['x'] });
});
