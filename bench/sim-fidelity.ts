/**
 * `npm run bench:sim-fidelity`: how close the simulator is to real vLLM v0.15.1 on H100.
 *
 * Replays every non-overloaded calibration stage (`shared/data/calibration/experiments.json`; see
 * `src/sim/des/calibration-set.ts`) with the committed coefficients and prints, per experiment and
 * per GPU type, the absolute percentage error (APE) of mean TTFT, mean E2E and mean ITL, with the
 * median across experiments against the targets (E2E and ITL <= 10%, TTFT <= 20%). The baseline in
 * the same run is the BLIS "iter29" coefficient set (the published starting point). Also checks the
 * qualitative effects (higher load raises TTFT and ITL; prefix sharing lowers TTFT; a smaller KV
 * cache causes preemptions) and replays the overloaded runs as a saturation smoke test.
 * NOTE: the fit uses the same experiments, so these are in-sample (training) errors.
 * Writes docs/benchmarks/sim-fidelity.md.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BLIS_ITER29_COEFFICIENTS, DEFAULT_COEFFICIENTS, type LatencyCoefficients } from '../src/sim/core/latency.ts';
import { ape, calibrationFile, loadCalibrationCases, median, replayCase, type CalibrationCase } from '../src/sim/des/calibration-set.ts';
import { parseExperiment, type Experiment } from '../src/sim/des/experiment.ts';
import { runExperiment } from '../src/sim/des/run.ts';
import coefFile from '../src/sim/core/coefficients.json' with { type: 'json' };

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const file = calibrationFile(repoRoot);
const cases = loadCalibrationCases(file);
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

interface Row {
  c: CalibrationCase;
  sim: { ttftMs: number; e2eMs: number; itlMs: number; preemptions: number };
  err: { ttft: number; e2e: number; itl: number };
}

function evaluate(coef: LatencyCoefficients): Row[] {
  return cases.map((c) => {
    const sim = replayCase(c, coef);
    return { c, sim, err: { ttft: ape(sim.ttftMs, c.target.ttftMs), e2e: ape(sim.e2eMs, c.target.e2eMs), itl: ape(sim.itlMs, c.target.itlMs) } };
  });
}

const t0 = performance.now();
const fitted = evaluate(DEFAULT_COEFFICIENTS);
const baseline = evaluate(BLIS_ITER29_COEFFICIENTS);
const out: string[] = [];
const log = (s = '') => {
  console.log(s);
  out.push(s);
};

log('# Simulator fidelity (`npm run bench:sim-fidelity`)');
log();
log(`Date: ${new Date().toISOString().slice(0, 10)}. Machine: ${cpus().length} cores, Node ${process.version}. Command: \`npm run bench:sim-fidelity\`.`);
log(`Coefficients: \`src/sim/core/coefficients.json\` (fit of ${(coefFile.fit as Record<string, unknown>).date ?? 'n/a'}, loss ${(coefFile.fit as Record<string, unknown>).loss ?? 'n/a'}). Baseline: BLIS iter29 coefficients in the same simulator.`);
log();
log(`Data: ${cases.length} non-overloaded stages of \`shared/data/calibration/experiments.json\` (real vLLM v0.15.1, H100). **These are the same stages the coefficients were fitted on: in-sample errors, not held-out accuracy.**`);
log('Each stage is replayed with its recorded engine flags and inference-perf workload: a warm-up at the stage rate (≥ 30 s, ≥ 120 s for the 1,448-token reasoning profiles, and long enough to send the 100-prompt pool twice), then 60 s measured (120 s for reasoning).');
log('ITL = (E2E − TTFT)/(output − 1); Llama-2-7b default_args targets use `itl_mean_ms_requested_len` (calibration README caveat).');
log();
log('## Per experiment (fitted coefficients)');
log();
log('| stage | model | TP | profile | rate | TTFT real / sim (APE) | E2E real / sim (APE) | ITL real / sim (APE) |');
log('|---|---|---:|---|---:|---|---|---|');
for (const r of fitted) {
  const c = r.c;
  log(`| ${c.id} | ${c.model.split('/')[1]} | ${c.tp} | ${c.profile} | ${c.rate} | ${c.target.ttftMs.toFixed(1)} / ${r.sim.ttftMs.toFixed(1)} (${pct(r.err.ttft)}) | ${c.target.e2eMs.toFixed(0)} / ${r.sim.e2eMs.toFixed(0)} (${pct(r.err.e2e)}) | ${c.target.itlMs.toFixed(2)} / ${r.sim.itlMs.toFixed(2)} (${pct(r.err.itl)}) |`);
}
log();
log('## Median APE across experiments');
log();
log('| group | stages | TTFT (target ≤ 20%) | E2E (target ≤ 10%) | ITL (target ≤ 10%) | baseline BLIS iter29: TTFT / E2E / ITL |');
log('|---|---:|---:|---:|---:|---|');
const groups: [string, (r: Row) => boolean][] = [
  ['all', () => true],
  ...[...new Set(cases.map((c) => c.gpu))].map((g) => [`GPU ${g}`, (r: Row) => r.c.gpu === g] as [string, (r: Row) => boolean]),
  ['dataset default_args', (r) => r.c.dataset === 'default_args'],
  ['dataset trainval', (r) => r.c.dataset === 'trainval'],
];
const verdicts: string[] = [];
for (const [name, pred] of groups) {
  const f = fitted.filter(pred);
  const b = baseline.filter(pred);
  const m = { ttft: median(f.map((r) => r.err.ttft)), e2e: median(f.map((r) => r.err.e2e)), itl: median(f.map((r) => r.err.itl)) };
  const mb = { ttft: median(b.map((r) => r.err.ttft)), e2e: median(b.map((r) => r.err.e2e)), itl: median(b.map((r) => r.err.itl)) };
  log(`| ${name} | ${f.length} | ${pct(m.ttft)} ${m.ttft <= 0.2 ? '✓' : '✗'} | ${pct(m.e2e)} ${m.e2e <= 0.1 ? '✓' : '✗'} | ${pct(m.itl)} ${m.itl <= 0.1 ? '✓' : '✗'} | ${pct(mb.ttft)} / ${pct(mb.e2e)} / ${pct(mb.itl)} |`);
  if (name.startsWith('GPU')) verdicts.push(`${name}: TTFT ${m.ttft <= 0.2 ? 'met' : 'NOT met'}, E2E ${m.e2e <= 0.1 ? 'met' : 'NOT met'}, ITL ${m.itl <= 0.1 ? 'met' : 'NOT met'}`);
}
log();
log(`Targets per GPU type: ${verdicts.join('; ')}.`);
log();

// Held-out check: coefficients fitted on the default_args dataset only, evaluated on trainval.
const holdoutPath = resolve(repoRoot, 'src/sim/core/coefficients-holdout.json');
if (existsSync(holdoutPath)) {
  const ho = JSON.parse(readFileSync(holdoutPath, 'utf8')) as { coefficients: LatencyCoefficients; fit: { trainDataset?: string; date?: string } };
  const train = ho.fit.trainDataset ?? 'default_args';
  const held = evaluate(ho.coefficients).filter((r) => r.c.dataset !== train);
  const m = { ttft: median(held.map((r) => r.err.ttft)), e2e: median(held.map((r) => r.err.e2e)), itl: median(held.map((r) => r.err.itl)) };
  log('## Held-out check');
  log();
  log(`Coefficients fitted on the ${train} stages only (\`npm run calibrate -- --train-dataset ${train} --out src/sim/core/coefficients-holdout.json\`, ${ho.fit.date ?? ''}), evaluated on the ${held.length} other stages (other models: Llama-4-Scout FP8, Llama-3.1-70B, Mistral-Nemo, Qwen2.5-7B, Yi-34B, and Llama-2-7b reasoning-lite):`);
  log();
  log('| held-out stages | TTFT (target ≤ 20%) | E2E (target ≤ 10%) | ITL (target ≤ 10%) |');
  log('|---:|---:|---:|---:|');
  log(`| ${held.length} | ${pct(m.ttft)} | ${pct(m.e2e)} | ${pct(m.itl)} |`);
  log();
}

// Qualitative checks.
log('## Qualitative effects');
log();
const checks: [string, boolean, string][] = [];
// 1. Higher load raises TTFT and ITL: every two-stage experiment, stage 1 (higher rate) vs stage 0.
let pairs = 0;
let okPairs = 0;
const byRun = new Map<string, Row[]>();
for (const r of fitted) {
  const key = r.c.id.replace(/\/stage\d$/, '');
  byRun.set(key, [...(byRun.get(key) ?? []), r]);
}
for (const rs of byRun.values()) {
  if (rs.length !== 2) continue;
  const [lo, hi] = rs[0]!.c.rate < rs[1]!.c.rate ? [rs[0]!, rs[1]!] : [rs[1]!, rs[0]!];
  pairs++;
  if (hi.sim.ttftMs > lo.sim.ttftMs && hi.sim.itlMs > lo.sim.itlMs) okPairs++;
}
checks.push(['higher load raises TTFT and ITL (two-stage runs, higher-rate stage vs lower)', okPairs === pairs && pairs > 0, `${okPairs}/${pairs} runs`]);
// 2. Prefix sharing lowers TTFT: Llama-3.1-8B general at 8 req/s, shared system prompts vs none.
const base = (over: Partial<Experiment['workload']>, engine: Partial<Experiment['engine']> = {}): Experiment =>
  parseExperiment({
    engine: { model: 'meta-llama/Llama-3.1-8B-Instruct', gpu: 'H100', maxNumSeqs: 128, maxNumBatchedTokens: 2048, maxModelLen: 4096, ...engine },
    workload: { type: 'sharedPrefix', stages: [{ rate: 8, durationS: 60 }], arrival: 'constant', systemPromptTokens: 100, questionTokens: 447, outputTokens: 248, prefixGroups: 10, promptsPerGroup: 10, ...over },
    seed: 1,
  });
const shared = runExperiment(base({ systemPromptTokens: 1000, questionTokens: 200, prefixGroups: 4, promptsPerGroup: 1000 }));
const unshared = runExperiment(base({ systemPromptTokens: 0, questionTokens: 1200, prefixGroups: 1, promptsPerGroup: 4000 }));
checks.push([
  'prefix sharing lowers TTFT (1,200-token prompts, 1,000 shared vs none)',
  shared.overall.ttftMs.mean < unshared.overall.ttftMs.mean,
  `TTFT ${shared.overall.ttftMs.mean} ms (hit rate ${shared.cluster.prefixCacheHitRate}) vs ${unshared.overall.ttftMs.mean} ms (hit rate ${unshared.cluster.prefixCacheHitRate})`,
]);
// 3. A smaller KV cache causes preemptions: reasoning-like load with 0.9 vs 0.25 memory utilization... on Llama-2-7b (MHA, 512 KiB/token).
const kv = (util: number) =>
  runExperiment(
    parseExperiment({
      engine: { model: 'meta-llama/Llama-2-7b-hf', gpu: 'H100', maxNumSeqs: 128, maxNumBatchedTokens: 2048, maxModelLen: 4096, gpuMemoryUtilization: util },
      workload: { type: 'sharedPrefix', stages: [{ rate: 2, durationS: 90 }], systemPromptTokens: 100, questionTokens: 934, outputTokens: 1448, prefixGroups: 23, promptsPerGroup: 1 },
      seed: 1,
    }),
  );
const bigKv = kv(0.9);
const smallKv = kv(0.3);
checks.push([
  'a smaller KV cache causes preemptions (Llama-2-7b, reasoning shape, gpu_memory_utilization 0.9 vs 0.3)',
  bigKv.cluster.preemptions === 0 && smallKv.cluster.preemptions > 0,
  `${bigKv.engine.numGpuBlocks} blocks: ${bigKv.cluster.preemptions} preemptions; ${smallKv.engine.numGpuBlocks} blocks: ${smallKv.cluster.preemptions} preemptions`,
]);
// 4. Saturation smoke test: the overloaded reasoning runs must saturate in the simulator too.
const over = loadCalibrationCases(file, { includeOverloaded: true, warmupS: 150, measureS: 150 }).filter((c) => !cases.some((k) => k.id === c.id));
let saturated = 0;
const satNotes: string[] = [];
for (const c of over) {
  const o = replayCase(c);
  if (o.ttftMs > 5000) saturated++;
  satNotes.push(`${c.model.split('/')[1]}: sim TTFT ${(o.ttftMs / 1000).toFixed(1)} s after 150 s (real mean over 1,200 s: ${(c.target.ttftMs / 1000).toFixed(0)} s)`);
}
checks.push(['overloaded runs saturate (queue grows: mean TTFT > 5 s within 300 s)', saturated === over.length && over.length > 0, `${saturated}/${over.length}; ${satNotes.join('; ')}`]);
log('| check | result | detail |');
log('|---|---|---|');
for (const [name, ok, detail] of checks) log(`| ${name} | ${ok ? 'pass' : 'FAIL'} | ${detail} |`);
log();
log('## Notes and limits');
log();
log('- All calibration data are H100 runs of vLLM v0.15.1, so "per GPU type" has one row; other GPUs use datasheet peaks with the H100-fitted multipliers and are not validated.');
log('- The replays assume inference-perf cycled a 10 x 10 prompt pool (calibration README: the group structure is uncertain). Under that assumption most prompt tokens are prefix-cache hits, so the data constrain the prefill cost weakly; the fit bounds prefill compute and weight streaming at the datasheet peak (multiplier >= 1).');
log('- TTFT is the weakest metric: the fitted per-request constant α0 (~20 ms) carries much of it, as in BLIS; the model under-predicts TTFT of the 70B/MoE runs and over-predicts the 7B runs.');
log('- The overloaded (reasoning) runs are kept out of the fit; the smoke test only checks that they saturate, not their (run-length dependent) TTFT.');
log();
log(`Wall time: ${((performance.now() - t0) / 1000).toFixed(1)} s.`);
writeFileSync(resolve(repoRoot, 'docs/benchmarks/sim-fidelity.md'), out.join('\n') + '\n');
console.log('wrote docs/benchmarks/sim-fidelity.md');
