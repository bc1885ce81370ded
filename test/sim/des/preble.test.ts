import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseExperiment, type ExperimentInput } from '../../../src/sim/des/experiment.ts';
import { runExperiment } from '../../../src/sim/des/run.ts';
import { buildWorkload } from '../../../src/sim/des/workload.ts';
import { PREBLE_PRESETS } from '../../../src/bench/workload.ts';

const engine = { model: 'meta-llama/Llama-3.1-8B-Instruct', gpu: 'H100', maxModelLen: 16384 };

function exp(workload: Record<string, unknown>, over: Partial<ExperimentInput> = {}): ExperimentInput {
  return { engine, replicas: 2, router: 'round-robin', workload: { type: 'preble', rate: 20, ...workload } as ExperimentInput['workload'], seed: 3, ...over };
}

test('preble workload: defaults, sizes and prefix sharing follow the presets', () => {
  const e = parseExperiment(exp({}));
  assert.equal(e.workload.type, 'preble');
  if (e.workload.type !== 'preble') return;
  assert.deepEqual(e.workload.presets, ['tool-use', 'agents', 'programming']);
  assert.equal(e.workload.prefixes, 10);
  assert.equal(e.workload.requestsPerPrefix, 100);
  assert.deepEqual(e.workload.outputTokens, { mean: 128, std: 32 });

  const small = parseExperiment(exp({ presets: ['agents', 'programming'], prefixes: 3, requestsPerPrefix: 20, arrival: 'constant', outputTokens: 16 }));
  const w = buildWorkload(small.workload, { seed: 3, baseDir: '.', maxModelLen: 16384, vocabSize: 128256 });
  assert.equal(w.requests.length, 2 * 3 * 20);
  assert.equal(w.stages.length, 1);
  assert.equal(w.stages[0]!.rate, 20);
  // constant arrivals at 20 req/s: 50 ms apart, in order
  w.requests.forEach((r, i) => assert.ok(Math.abs(r.arrivalMs - i * 50) < 1e-9));
  assert.ok(w.requests.every((r) => r.outputTokens === 16));
  // mean prompt length between the two presets' means (agents 2285, programming 3871 tokens)
  const meanLen = w.requests.reduce((a, r) => a + r.promptLen, 0) / w.requests.length;
  assert.ok(meanLen > PREBLE_PRESETS.agents.totalTokens.mean * 0.8 && meanLen < PREBLE_PRESETS.programming.totalTokens.mean * 1.2, String(meanLen));
  // 6 distinct prefixes: requests group by their first 256 token ids into exactly 6 groups of 20,
  // and two requests of one group share at least 80% of the shorter prompt (shared fractions ~0.97).
  const groups = new Map<string, number[]>();
  w.requests.forEach((r, i) => {
    const k = Array.from(r.tokens()).slice(0, 256).join(',');
    groups.set(k, [...(groups.get(k) ?? []), i]);
  });
  assert.equal(groups.size, 6);
  for (const g of groups.values()) assert.equal(g.length, 20);
  // builds are deterministic for a seed and differ across seeds
  const again = buildWorkload(small.workload, { seed: 3, baseDir: '.', maxModelLen: 16384, vocabSize: 128256 });
  assert.deepEqual(Array.from(again.requests[5]!.tokens()), Array.from(w.requests[5]!.tokens()));
  const other = buildWorkload(small.workload, { seed: 4, baseDir: '.', maxModelLen: 16384, vocabSize: 128256 });
  assert.notDeepEqual(other.requests.map((r) => r.promptLen), w.requests.map((r) => r.promptLen));
});

test('preble workload: bad input is rejected with the field path', () => {
  const bad = (w: Record<string, unknown>, re: RegExp) => assert.throws(() => parseExperiment(exp(w), 'p.json'), (e: Error) => re.test(e.message), String(re));
  bad({ presets: ['chat'] }, /^p\.json: workload\.presets\.0: Invalid enum value/);
  bad({ presets: [] }, /workload\.presets: Array must contain at least 1/);
  bad({ rate: 0 }, /workload\.rate: Number must be greater than 0/);
  bad({ prefixes: 1.5 }, /workload\.prefixes: Expected integer/);
  bad({ requestsPerPrefix: 0 }, /workload\.requestsPerPrefix: /);
  bad({ outputTokens: { mean: 10 } }, /workload\.outputTokens/);
  bad({ arrival: 'bursty' }, /workload\.arrival: /);
  bad({ prefix: 3 }, /workload: unknown field\(s\) "prefix"/);
  assert.throws(() => parseExperiment({ ...exp({}), workload: { type: 'preble' } }, 'p.json'), /workload\.rate: Required/);
});

test('preble workload runs in the DES; a cache-aware router hits the shared prefixes more than round-robin', () => {
  const w = { presets: ['tool-use', 'agents'], prefixes: 4, requestsPerPrefix: 15, outputTokens: 8 };
  const rr = runExperiment(parseExperiment(exp(w, { replicas: 4 })));
  const pc = runExperiment(parseExperiment(exp(w, { replicas: 4, router: 'prefix-cache' })));
  for (const r of [rr, pc]) {
    assert.equal(r.requestsTotal, 120);
    assert.equal(r.overall.requests.completed, 120);
    assert.equal(r.overall.requests.failed, 0);
  }
  // round-robin spreads each prefix over the 4 engines (a prefix is cold once per engine);
  // prefix-cache keeps each prefix on its holder (cold once in the cluster).
  assert.ok(pc.cluster.prefixCacheHitRate > rr.cluster.prefixCacheHitRate, `${pc.cluster.prefixCacheHitRate} vs ${rr.cluster.prefixCacheHitRate}`);
  assert.ok(rr.cluster.prefixCacheHitRate > 0.3, String(rr.cluster.prefixCacheHitRate));
});
