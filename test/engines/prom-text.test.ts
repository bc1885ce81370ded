import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergedHistogram, parsePromText, sumSamples } from '../../src/metrics/prom-text.ts';

const TEXT = `# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 3.0
vllm:num_requests_waiting{engine="1",model_name="m"} 4.0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="m"} 120.0
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="m"} 1.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="1.0",model_name="m"} 3.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 4.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 4.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 2.5
vllm:time_to_first_token_seconds_bucket{engine="1",le="0.1",model_name="m"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="1",le="1.0",model_name="m"} 1.0
vllm:time_to_first_token_seconds_bucket{engine="1",le="+Inf",model_name="m"} 1.0
vllm:time_to_first_token_seconds_count{engine="1",model_name="m"} 1.0
vllm:time_to_first_token_seconds_sum{engine="1",model_name="m"} 0.5
# TYPE vllm:lora_requests_info gauge
vllm:lora_requests_info{max_lora="4",running_lora_adapters="a1",waiting_lora_adapters=""} 1.7e+09`;

test('labelled histograms keep labels, sum and count (works around the package defect); last line without newline kept', () => {
  const p = parsePromText(TEXT);
  const h = p.get('vllm:time_to_first_token_seconds')!;
  assert.equal(h.type, 'histogram');
  assert.equal(h.histograms.length, 2);
  const e0 = h.histograms.find((x) => x.labels.engine === '0')!;
  assert.deepEqual(e0.labels, { engine: '0', model_name: 'm' });
  assert.deepEqual(e0.buckets, [{ le: 0.1, count: 1 }, { le: 1, count: 3 }, { le: Infinity, count: 4 }]);
  assert.equal(e0.count, 4);
  assert.equal(e0.sum, 2.5);
  const m = mergedHistogram(p, 'vllm:time_to_first_token_seconds')!;
  assert.equal(m.count, 5);
  assert.deepEqual(m.buckets.map((b) => b.count), [1, 4, 5]);
  assert.equal(p.get('vllm:prompt_tokens_total')!.type, 'counter');
  assert.equal(sumSamples(p, 'vllm:num_requests_waiting'), 7);
  assert.equal(sumSamples(p, 'vllm:num_requests_waiting', { engine: '1' }), 4);
  assert.equal(sumSamples(p, 'absent'), undefined);
  assert.equal(p.get('vllm:lora_requests_info')!.samples[0]!.value, 1.7e9);
  assert.equal(p.get('vllm:num_requests_waiting')!.help, 'Number of requests waiting to be processed.');
});

test('malformed text throws', () => {
  assert.throws(() => parsePromText('# TYPE a counter extra\n'), /invalid Prometheus text/);
});
