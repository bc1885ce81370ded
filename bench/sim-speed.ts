/**
 * `npm run bench:sim-speed`: how fast the discrete-event simulator runs.
 *
 * Workload: one hour of the Azure LLM conversation trace (`shared/data/traces/azure-llm-2023-conv.csv`,
 * 19,366 requests, 22.4 M prompt and 4.1 M output tokens) on 8 simulated H100 engines serving
 * Llama-3.1-8B-Instruct (vLLM defaults for H100: max_num_seqs 1024, max_num_batched_tokens 8192),
 * routed by `least-request`. Reports simulated seconds per wall second (target >= 200x real time),
 * against the baseline of real time (1x) in the same run, plus per-phase wall times, engine steps
 * per wall second, and a `round-robin` run for comparison. Writes docs/benchmarks/sim-speed.md.
 *
 * Options: `--runs N` (default 3; the median is reported).
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseExperiment } from '../src/sim/des/experiment.ts';
import { runExperiment } from '../src/sim/des/run.ts';
import { buildWorkload } from '../src/sim/des/workload.ts';
import { resolveEngineConfig } from '../src/sim/core/config.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const trace = resolve(repoRoot, '../shared/data/traces/azure-llm-2023-conv.csv');
const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1] ?? 0) || 3;

function measure(router: string): { simS: number; buildS: number; runS: number; cpuS: number; completed: number; result: ReturnType<typeof runExperiment> } {
  const exp = parseExperiment({
    engine: { model: 'meta-llama/Llama-3.1-8B-Instruct', gpu: 'H100' },
    replicas: 8,
    router,
    workload: { type: 'trace', path: trace, format: 'azure', startS: 0, durationS: 3600 },
    seed: 1,
  });
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const cfg = resolveEngineConfig(exp.engine);
  const wl = buildWorkload(exp.workload, { seed: exp.seed, baseDir: repoRoot, maxModelLen: cfg.maxModelLen, vocabSize: cfg.model.vocabSize });
  const t1 = performance.now();
  const result = runExperiment(exp, { prebuilt: wl });
  const t2 = performance.now();
  const cpu = process.cpuUsage(c0);
  return { simS: result.simulatedS, buildS: (t1 - t0) / 1000, runS: (t2 - t1) / 1000, cpuS: (cpu.user + cpu.system) / 1e6, completed: result.overall.requests.completed, result };
}

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const lines: string[] = [];
const rows: { router: string; simS: number; wallS: number; speedup: number; buildS: number; cpuS: number; completed: number }[] = [];
for (const router of ['least-request', 'round-robin']) {
  const ms = [] as ReturnType<typeof measure>[];
  for (let i = 0; i < (router === 'least-request' ? runs : 1); i++) ms.push(measure(router));
  const walls = ms.map((m) => m.buildS + m.runS);
  const wall = med(walls);
  const m = ms[walls.indexOf(wall)]!;
  const row = { router, simS: m.simS, wallS: wall, speedup: m.simS / wall, buildS: m.buildS, cpuS: m.cpuS, completed: m.completed };
  rows.push(row);
  console.log(`${router}: ${m.simS.toFixed(0)} simulated s in ${wall.toFixed(2)} wall s (workload build ${m.buildS.toFixed(2)} s) = ${row.speedup.toFixed(0)}x real time (process CPU ${m.cpuS.toFixed(2)} s: ${(m.simS / m.cpuS).toFixed(0)}x per CPU second); ${m.completed} requests completed; TTFT mean ${m.result.overall.ttftMs.mean} ms, E2E mean ${m.result.overall.e2eMs.mean} ms, prefix hit ${m.result.cluster.prefixCacheHitRate}, imbalance ${m.result.cluster.loadImbalance}`);
}
const main = rows[0]!;
const target = 200;
console.log(`speedup vs real time (baseline 1x): ${main.speedup.toFixed(0)}x; target ${target}x: ${main.speedup >= target ? 'met' : 'NOT met'} (ratio ${(main.speedup / target).toFixed(2)})`);
lines.push(
  '# Simulator speed (`npm run bench:sim-speed`)',
  '',
  `Date: ${new Date().toISOString().slice(0, 10)}. Machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), Node ${process.version}, shared with other work.`,
  'Command: `npm run bench:sim-speed` (median of 3 runs for least-request, 1 for round-robin).',
  '',
  'Workload: the whole `shared/data/traces/azure-llm-2023-conv.csv` (about one hour: 58.4 min of arrivals; 19,366 requests, 22.4 M prompt / 4.1 M output tokens),',
  '8 simulated H100 engines, Llama-3.1-8B-Instruct with vLLM defaults for H100 (max_num_seqs 1024, max_num_batched_tokens 8192),',
  'prefix caching on. Wall time includes building the workload (trace parse and request list) and the whole DES run;',
  'synthetic prompt token ids are generated and hashed per request during the run.',
  '',
  '| router | simulated s | wall s | speed-up (x real time, wall) | vs target 200x | process CPU s | simulated s per CPU s | requests completed |',
  '|---|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.router} | ${r.simS.toFixed(0)} | ${r.wallS.toFixed(2)} | ${r.speedup.toFixed(0)}x | ${(r.speedup / target).toFixed(2)} | ${r.cpuS.toFixed(2)} | ${(r.simS / r.cpuS).toFixed(0)}x | ${r.completed} |`),
  '',
  'The baseline is real time (1x). Wall time depends on what else runs on the shared 2-core machine; process CPU time (user + system, GC threads included) is given as the less noisy figure.',
  '',
  `Result: ${main.speedup >= target ? 'the target of 200x real time is met' : 'the target of 200x real time is NOT met'} (${main.speedup.toFixed(0)}x with least-request).`,
  '',
);
writeFileSync(resolve(repoRoot, 'docs/benchmarks/sim-speed.md'), lines.join('\n'));
console.log('wrote docs/benchmarks/sim-speed.md');
