import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadExperiment, parseExperiment, type ExperimentInput } from '../../../src/sim/des/experiment.ts';
import { runExperiment, type ExperimentResult } from '../../../src/sim/des/run.ts';
import { SimCluster } from '../../../src/sim/des/cluster.ts';
import { buildWorkload } from '../../../src/sim/des/workload.ts';
import { resolveEngineConfig } from '../../../src/sim/core/engine.ts';
import { createStrategy } from '../../../src/routing/registry.ts';

const engine = { model: 'meta-llama/Llama-3.1-8B-Instruct', gpu: 'H100', maxNumSeqs: 64, maxNumBatchedTokens: 2048, maxModelLen: 4096 };

function exp(over: Partial<ExperimentInput> & { workload?: ExperimentInput['workload'] } = {}): ExperimentInput {
  return {
    engine,
    replicas: 1,
    router: 'round-robin',
    workload: { type: 'sharedPrefix', stages: [{ rate: 4, durationS: 5 }], systemPromptTokens: 100, questionTokens: 300, outputTokens: 64, prefixGroups: 4, promptsPerGroup: 3 },
    seed: 1,
    ...over,
  };
}

function run(e: ExperimentInput): ExperimentResult {
  return runExperiment(parseExperiment(e));
}

test('experiment validation names the field path', () => {
  const bad = (o: unknown, re: RegExp) => assert.throws(() => parseExperiment(o, 'x.json'), (e: Error) => re.test(e.message), String(re));
  bad({ ...exp(), workload: { ...(exp().workload as object), stages: [{ rate: -1, durationS: 5 }] } }, /^x\.json: workload\.stages\.0\.rate: /);
  bad({ ...exp(), engine: { ...engine, maxNumSeqs: 'many' } }, /engine\.maxNumSeqs: Expected number/);
  bad({ ...exp(), replicas: 0 }, /replicas: /);
  bad({ ...exp(), workload: { type: 'nope' } }, /workload\.type: /);
  bad({ ...exp(), extra: 1 }, /\(root\): unknown field\(s\) "extra"/);
  bad({ ...exp(), workload: { type: 'trace', path: 'a.csv', format: 'csv' } }, /workload\.format: /);
  assert.throws(() => run(exp({ engine: { ...engine, model: 'no/such-model' } })), /engine\.model: unknown model "no\/such-model"; known models: /);
  assert.throws(() => run(exp({ engine: { ...engine, gpu: 'B200' } })), /engine\.gpu: unknown GPU "B200"; known GPUs: H100-SXM/);
  assert.throws(() => run(exp({ router: 'no-such-router' })), /router: unknown routing strategy 'no-such-router'/);
});

test('experiment files: YAML and JSON are read; syntax errors name the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'simexp-'));
  try {
    const y = join(dir, 'e.yaml');
    writeFileSync(y, 'engine:\n  model: Qwen/Qwen3-8B\n  gpu: H100\nworkload:\n  type: poisson\n  stages: [{ rate: 2, durationS: 3 }]\n  inputTokens: 200\n  outputTokens: { type: uniform, min: 10, max: 30 }\n');
    const e = loadExperiment(y);
    assert.equal(e.replicas, 1);
    assert.equal(e.workload.type, 'poisson');
    const j = join(dir, 'bad.json');
    writeFileSync(j, '{ "engine": ');
    assert.throws(() => loadExperiment(j), (err: Error) => err.message.startsWith(`${j}: not valid JSON`));
    const y2 = join(dir, 'bad.yaml');
    writeFileSync(y2, 'engine:\n  model: Qwen/Qwen3-8B\nworkload:\n  type: poisson\n  stages: [{ rate: 2 }]\n  inputTokens: 200\n  outputTokens: 10\n');
    assert.throws(() => loadExperiment(y2), (err: Error) => err.message.includes('workload.stages.0.durationS'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a small run has the documented result shape and completes every request', () => {
  const r = run(exp({ replicas: 2, workload: { type: 'sharedPrefix', stages: [{ rate: 4, durationS: 3 }, { rate: 8, durationS: 3 }], systemPromptTokens: 100, questionTokens: 300, outputTokens: 64, prefixGroups: 4, promptsPerGroup: 3 } }));
  assert.equal(r.requestsTotal, 12 + 24);
  assert.equal(r.overall.requests.completed, 36);
  assert.equal(r.overall.requests.failed, 0);
  assert.equal(r.stages.length, 2);
  for (const p of [r.overall, ...r.stages]) {
    for (const k of ['ttftMs', 'e2eMs', 'itlMs'] as const) {
      const s = p[k];
      assert.ok(s.mean > 0 && s.p50 > 0 && s.p90 >= s.p50 && s.p99 >= s.p90, `${k} ${JSON.stringify(s)}`);
    }
    assert.ok(p.e2eMs.mean > p.ttftMs.mean);
    assert.ok(p.throughput.requestsPerS > 0 && p.throughput.outputTokensPerS > 0);
  }
  assert.equal(r.stages[0]!.requests.completed, 12);
  assert.equal(r.stages[0]!.throughput.outputTokensPerS, (12 * 64) / 3);
  assert.equal(r.engines.length, 2);
  assert.deepEqual(r.engines.map((e) => e.requests), [18, 18], 'round-robin splits evenly');
  assert.equal(r.cluster.loadImbalance, 1);
  for (const e of r.engines) assert.ok(e.meanKvUsage > 0 && e.meanKvUsage < 1 && e.prefixCacheHitRate > 0);
  // Deterministic for a seed.
  assert.deepEqual(run(exp({ replicas: 2 })), run(exp({ replicas: 2 })));
});

test('qualitative effects: higher load raises TTFT and ITL', () => {
  const wl = (rate: number): ExperimentInput['workload'] => ({ type: 'sharedPrefix', stages: [{ rate, durationS: 6 }], systemPromptTokens: 100, questionTokens: 1000, outputTokens: 100, prefixGroups: 10, promptsPerGroup: 100 });
  const low = run(exp({ workload: wl(2) }));
  const high = run(exp({ workload: wl(40) }));
  assert.ok(high.overall.ttftMs.mean > low.overall.ttftMs.mean, `${high.overall.ttftMs.mean} > ${low.overall.ttftMs.mean}`);
  assert.ok(high.overall.itlMs.mean > low.overall.itlMs.mean, `${high.overall.itlMs.mean} > ${low.overall.itlMs.mean}`);
});

test('qualitative effects: prefix sharing lowers TTFT', () => {
  const wl = (sys: number, q: number): ExperimentInput['workload'] => ({ type: 'sharedPrefix', stages: [{ rate: 8, durationS: 5 }], systemPromptTokens: sys, questionTokens: q, outputTokens: 32, prefixGroups: 1, promptsPerGroup: 1000 });
  const shared = run(exp({ workload: wl(1800, 200) }));
  const unique = run(exp({ workload: wl(0, 2000) }));
  assert.ok(shared.cluster.prefixCacheHitRate > 0.8, String(shared.cluster.prefixCacheHitRate));
  assert.ok(unique.cluster.prefixCacheHitRate < 0.05, String(unique.cluster.prefixCacheHitRate));
  assert.ok(shared.overall.ttftMs.mean < unique.overall.ttftMs.mean, `${shared.overall.ttftMs.mean} < ${unique.overall.ttftMs.mean}`);
});

test('sharedPrefix questionReuse: cycled prompts hit whole, unique questions share only the system prompt', () => {
  const wl = (questionReuse: 'cycle' | 'unique'): ExperimentInput['workload'] => ({ type: 'sharedPrefix', stages: [{ rate: 10, durationS: 4 }], systemPromptTokens: 160, questionTokens: 320, outputTokens: 8, prefixGroups: 2, promptsPerGroup: 2, questionReuse });
  const cyc = run(exp({ workload: wl('cycle') }));
  const uni = run(exp({ workload: wl('unique') }));
  // cycle: 4 distinct prompts of 480 tokens, 40 requests: all but the first 4 hit 464 tokens.
  assert.ok(cyc.cluster.prefixCacheHitRate > 0.85, String(cyc.cluster.prefixCacheHitRate));
  // unique: at most the 160-token system prompt of 480 hits.
  assert.ok(uni.cluster.prefixCacheHitRate > 0.25 && uni.cluster.prefixCacheHitRate <= 160 / 480, String(uni.cluster.prefixCacheHitRate));
});

test('qualitative effects: a smaller KV cache causes preemptions', () => {
  const wl: ExperimentInput['workload'] = { type: 'poisson', stages: [{ rate: 20, durationS: 4 }], inputTokens: 500, outputTokens: 300 };
  const big = run(exp({ workload: wl }));
  const small = run(exp({ workload: wl, engine: { ...engine, numGpuBlocksOverride: 400 } }));
  assert.equal(big.cluster.preemptions, 0);
  assert.ok(small.cluster.preemptions > 0);
  assert.equal(small.overall.requests.completed, small.requestsTotal, 'preempted requests recompute and finish');
  assert.ok(small.engines[0]!.meanKvUsage > big.engines[0]!.meanKvUsage);
});

test('client timeout aborts and counts requests as failed', () => {
  const r = run(exp({ requestTimeoutS: 0.5, workload: { type: 'poisson', stages: [{ rate: 50, durationS: 2 }], inputTokens: 2000, outputTokens: 400 } }));
  assert.ok(r.overall.requests.failed > 0);
  assert.equal(r.overall.requests.failed + r.overall.requests.completed, r.requestsTotal);
});

test('gateway strategies drive the DES unchanged: least-request balances, hooks run', () => {
  const r = run(exp({ replicas: 3, router: 'least-request', workload: { type: 'poisson', stages: [{ rate: 30, durationS: 3 }], inputTokens: 300, outputTokens: 50 } }));
  assert.equal(r.router, 'least-request');
  assert.ok(r.cluster.loadImbalance < 1.2, String(r.cluster.loadImbalance));
  const weighted = run(exp({ replicas: 2, router: 'least-request:2,least-kv-cache:1' }));
  assert.equal(weighted.overall.requests.completed, weighted.requestsTotal);
});

test('engines can be added (after a start-up delay) and removed (after draining) at run time', () => {
  const e = parseExperiment(exp({ workload: { type: 'poisson', stages: [{ rate: 20, durationS: 6 }], inputTokens: 200, outputTokens: 100 } }));
  const cfg = resolveEngineConfig(e.engine);
  const wl = buildWorkload(e.workload, { seed: 1, baseDir: '.', maxModelLen: cfg.maxModelLen, vocabSize: cfg.model.vocabSize });
  let added = '';
  let removed = false;
  const cluster = new SimCluster({
    engine: cfg,
    replicas: 2,
    strategy: createStrategy('round-robin'),
    modelName: 'm',
    scrapeIntervalMs: 500,
    seed: 1,
    onScrape: (c, now) => {
      if (now === 1000) added = c.addEngine(now, 2000);
      if (now === 2000 && !removed) {
        c.removeEngine('engine-0', now);
        removed = true;
      }
    },
  });
  cluster.run(wl.requests, wl.stages.length);
  const [e0, e1, e2] = cluster.engines;
  assert.equal(added, 'engine-2');
  assert.equal(e2!.readyMs, 3000);
  assert.ok(e0!.removedMs !== null && e0!.removedMs >= 2000, 'engine-0 removed after draining');
  assert.equal(e1!.removedMs, null);
  assert.ok(e2!.routed > 0, 'the new engine serves after it is ready');
  const total = cluster.stageSamples.reduce((a, s) => a + s.completed, 0);
  assert.equal(total, wl.requests.length, 'no request lost by scaling');
  assert.throws(() => cluster.removeEngine('engine-0', 9999), /no active engine/);
});

test('trace workloads: Azure rows replay with unique prompts; Mooncake hash_ids share blocks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'simtrace-'));
  try {
    const az = join(dir, 'az.csv');
    writeFileSync(az, 'TIMESTAMP,ContextTokens,GeneratedTokens\r\n2023-11-16 18:15:46.6805900,400,20\r\n2023-11-16 18:15:47.1805900,800,30\r\n2023-11-16 18:15:48.6805900,300,10');
    const mc = join(dir, 'mc.jsonl');
    const rows = Array.from({ length: 12 }, (_, i) => JSON.stringify({ timestamp: i * 200, input_length: 1200, output_length: 10, hash_ids: [0, 1, 100 + i] }));
    writeFileSync(mc, rows.join('\n') + '\n');
    const a = run(exp({ workload: { type: 'trace', path: az, format: 'azure', timeScale: 0.5 } }));
    assert.equal(a.requestsTotal, 3);
    assert.equal(a.overall.requests.completed, 3);
    assert.ok(a.cluster.prefixCacheHitRate < 0.05);
    // copies: each row x3, spread over the gap to the next row (timeScale 0.5: gaps 250 and 750 ms), distinct prompts.
    const w = buildWorkload(parseExperiment(exp({ workload: { type: 'trace', path: az, format: 'azure', timeScale: 0.5, copies: 3 } })).workload, { seed: 1, baseDir: dir, maxModelLen: 4096, vocabSize: 128256 });
    assert.deepEqual(w.requests.map((r) => Math.round(r.arrivalMs * 1000) / 1000), [0, 83.333, 166.667, 250, 500, 750, 1000, 1000, 1000]);
    assert.deepEqual(w.requests.map((r) => r.promptLen), [400, 400, 400, 800, 800, 800, 300, 300, 300]);
    assert.notDeepEqual(Array.from(w.requests[0]!.tokens()), Array.from(w.requests[1]!.tokens()));
    const m = run(exp({ workload: { type: 'trace', path: mc, format: 'mooncake' } }));
    assert.equal(m.overall.requests.completed, 12);
    // 11 of 12 requests reuse 2 x 512 of 1200 tokens.
    assert.ok(m.cluster.prefixCacheHitRate > 0.6, String(m.cluster.prefixCacheHitRate));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI: inferplane sim run writes the result with --out; a bad file exits non-zero naming the field', async () => {
  const { spawnSync } = await import('node:child_process');
  const { readFileSync } = await import('node:fs');
  const dir = mkdtempSync(join(tmpdir(), 'simcli-'));
  try {
    const good = join(dir, 'e.json');
    writeFileSync(good, JSON.stringify(exp({ workload: { type: 'poisson', stages: [{ rate: 2, durationS: 2 }], inputTokens: 100, outputTokens: 10 } })));
    const out = join(dir, 'r.json');
    const ok = spawnSync(process.execPath, ['bin/inferplane.js', 'sim', 'run', good, '--out', out], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    const r = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(r.overall.requests.completed, r.requestsTotal);
    assert.ok(r.meta.wallS >= 0);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'engine:\n  model: Qwen/Qwen3-8B\n  maxNumSeqs: 0\nworkload:\n  type: poisson\n  stages: [{ rate: 1, durationS: 1 }]\n  inputTokens: 10\n  outputTokens: 10\n');
    const ko = spawnSync(process.execPath, ['bin/inferplane.js', 'sim', 'run', bad], { encoding: 'utf8' });
    assert.notEqual(ko.status, 0);
    assert.match(ko.stderr, /bad\.yaml: engine\.maxNumSeqs: /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
