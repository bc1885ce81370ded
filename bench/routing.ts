/**
 * `npm run bench:routing`: routing quality in the discrete-event simulator (src/sim/des), with the
 * gateway's own strategy objects (`createStrategy`, unchanged), engine metrics as of the last scrape
 * (500 ms) plus the gateway's always-current in-flight counts.
 *
 * Workloads (Llama-3.1-8B on H100 engines, maxModelLen 131072):
 * - `conversation-8` / `conversation-16`: the Mooncake conversation trace (first `--requests` rows,
 *   default 3000; `--full` for all 12 031), hash_ids as 512-token blocks of synthetic ids;
 * - `synthetic-8`: the Mooncake synthetic trace (first `--requests` rows);
 * - `preble-8`: a synthetic shared-prefix mix of the Preble presets tool-use, agents and
 *   programming (10 prefixes x 100 samples each, shuffled, Poisson arrivals), built with
 *   `sharedPrefixRequests` (src/bench/workload.ts) and replayed through the same DES.
 * Load: per workload, `random` is first swept over arrival rates from 1/4 of the trace's own rate
 * upwards; its capacity is the largest offered rate at which its mean TTFT stays within `--knee`
 * (default 2) times its mean TTFT at the lightest rate (beyond it queueing dominates and grows
 * quickly). The comparison then runs at `--load` (default 0.7) of that rate.
 * Writes docs/benchmarks/routing.md (table per workload, ratios against `random`, exact commands).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { execSync } from 'node:child_process';
import { parseExperiment, type ExperimentInput } from '../src/sim/des/experiment.ts';
import { runExperiment, type ExperimentResult } from '../src/sim/des/run.ts';
import { syntheticIds, type SimRequestSpec, type StageInfo } from '../src/sim/des/workload.ts';
import { resolveEngineConfig } from '../src/sim/core/engine.ts';
import { createRng } from '../src/bench/rng.ts';
import { PREBLE_PRESETS, sharedPrefixRequests } from '../src/bench/workload.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const data = resolve(root, '../shared/data/traces');
const args = process.argv.slice(2);
const arg = (name: string, def: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : def;
};
const FULL = args.includes('--full');
const REQUESTS = Number(arg('requests', '3000'));
const LOAD = Number(arg('load', '0.7'));
const KNEE = Number(arg('knee', '2'));
const ONLY = arg('only', '');
const STRATEGIES = arg('strategies', 'random,least-request,prefix-cache,prefix-cache-preble,cache-cost,kv-aware,cache-cost-kv').split(',');
const ENGINE = { model: 'meta-llama/Llama-3.1-8B-Instruct', gpu: 'H100', maxModelLen: 131072 };

interface Workload {
  name: string;
  title: string;
  replicas: number;
  /** Experiment for a time scale (trace workloads), or a prebuilt request list builder. */
  experiment(scale: number, router: string): ExperimentInput;
  prebuilt?: (scale: number) => { requests: SimRequestSpec[]; stages: StageInfo[] };
  /** Offered rate (req/s) at scale 1. */
  baseRate: number;
}

function traceWorkload(name: string, title: string, file: string, replicas: number): Workload {
  const path = resolve(data, file);
  const exp = (scale: number, router: string): ExperimentInput => ({
    name,
    engine: ENGINE,
    replicas,
    router,
    scrapeIntervalMs: 500,
    workload: { type: 'trace', path, format: 'mooncake', timeScale: scale, ...(FULL ? {} : { maxRequests: REQUESTS }) },
    seed: 1,
  });
  // offered rate at scale 1: requests / span of the replayed rows
  const probe = runExperimentSafeRate(exp(1, 'random'));
  return { name, title, replicas, experiment: exp, baseRate: probe };
}

/** Rows / arrival span (req/s) of a trace experiment, read from its built workload. */
function runExperimentSafeRate(input: ExperimentInput): number {
  const exp = parseExperiment(input);
  const w = exp.workload;
  if (w.type !== 'trace') throw new Error('trace expected');
  // Reading the rows is cheap; the loader is the DES's own.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const rows = loadRows(w.path, w.maxRequests);
  const spanS = (rows[rows.length - 1]! - rows[0]!) / 1000;
  return rows.length / Math.max(spanS, 1e-9);
}

import { loadMooncakeTrace } from '../src/bench/traces.ts';
function loadRows(path: string, max?: number): number[] {
  const rows = loadMooncakeTrace(path, max !== undefined ? { maxRequests: max } : undefined);
  return rows.map((r) => r.arrivalMs);
}

/** The Preble presets mix (tool-use, agents, programming), Poisson arrivals at `rate` req/s. */
function prebleWorkload(replicas: number): Workload {
  const engine = resolveEngineConfig(ENGINE, 'engine.');
  const vocab = engine.model.vocabSize;
  const rng = createRng(11);
  type Spec = { input: number; output: number; prefix?: { id: number; tokens: number }; uid: number };
  const specs: Spec[] = [];
  let pid = 0;
  let uid = 0;
  for (const preset of ['tool-use', 'agents', 'programming'] as const) {
    const p = PREBLE_PRESETS[preset];
    const reqs = sharedPrefixRequests({ numPrefixes: 10, samplesPerPrefix: 100, totalTokens: p.totalTokens, sharedFraction: p.sharedFraction, outputTokens: { mean: 128, std: 32 } }, rng);
    for (const r of reqs) specs.push({ input: r.inputTokens, output: r.outputTokens, ...(r.prefix ? { prefix: { id: pid + r.prefix.id, tokens: r.prefix.tokens } } : {}), uid: uid++ });
    pid += 10;
  }
  const order = rng.shuffle(specs);
  const baseRate = 10; // req/s at scale 1
  const build = (scale: number) => {
    const arr = createRng(12);
    let t = 0;
    const requests: SimRequestSpec[] = order.map((s) => {
      t += arr.exponential(baseRate / scale / 1000);
      const shared = Math.min(s.prefix?.tokens ?? 0, s.input - 1);
      return {
        arrivalMs: t,
        stage: 0,
        promptLen: s.input,
        outputTokens: s.output,
        tokens: () => {
          const a = new Int32Array(s.input);
          if (shared > 0) syntheticIds(1, s.prefix!.id, shared, vocab, a, 0);
          syntheticIds(2, s.uid, s.input - shared, vocab, a, shared);
          return a;
        },
      };
    });
    return { requests, stages: [{ index: 0, startMs: 0, durationMs: t }] };
  };
  return {
    name: `preble-${replicas}`,
    title: `Preble presets (tool-use + agents + programming, 3 x 10 prefixes x 100 requests), ${replicas} x H100`,
    replicas,
    baseRate,
    prebuilt: build,
    experiment: (scale, router) => ({
      name: `preble-${replicas}`,
      engine: ENGINE,
      replicas,
      router,
      scrapeIntervalMs: 500,
      workload: { type: 'poisson', stages: [{ rate: baseRate / scale, durationS: 1 }], inputTokens: 1, outputTokens: 1 },
      seed: 1,
    }),
  };
}

function run(w: Workload, scale: number, router: string): ExperimentResult {
  const exp = parseExperiment(w.experiment(scale, router));
  return runExperiment(exp, w.prebuilt ? { prebuilt: w.prebuilt(scale) } : {});
}

interface Row {
  router: string;
  r: ExperimentResult;
  wallS: number;
}

const sections: string[] = [];
const summary: string[] = [];
const workloads: Array<() => Workload> = [
  () => traceWorkload('conversation-8', `Mooncake conversation trace${FULL ? '' : ` (first ${REQUESTS} requests)`}, 8 x H100`, 'mooncake-conversation.jsonl', 8),
  () => traceWorkload('conversation-16', `Mooncake conversation trace${FULL ? '' : ` (first ${REQUESTS} requests)`}, 16 x H100`, 'mooncake-conversation.jsonl', 16),
  () => traceWorkload('synthetic-8', `Mooncake synthetic trace${FULL ? '' : ` (first ${REQUESTS} requests)`}, 8 x H100`, 'mooncake-synthetic.jsonl', 8),
  () => prebleWorkload(8),
];
const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');

for (const make of workloads) {
  const w = make();
  if (ONLY && !w.name.startsWith(ONLY)) continue;
  // 1. capacity of random: sweep rates from light to heavy until mean TTFT passes KNEE x the lightest.
  const sweep: Array<{ scale: number; rate: number; meanTtft: number }> = [];
  let capRate = 0;
  let light = 0;
  for (const mult of [0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32]) {
    const scale = 1 / mult;
    const r = run(w, scale, 'random');
    const rate = w.baseRate * mult;
    sweep.push({ scale, rate, meanTtft: r.overall.ttftMs.mean });
    process.stdout.write(`[${w.name}] random sweep: ${rate.toFixed(2)} req/s -> mean TTFT ${r.overall.ttftMs.mean.toFixed(0)} ms\n`);
    if (light === 0) light = r.overall.ttftMs.mean;
    if (r.overall.ttftMs.mean > KNEE * light) break;
    capRate = rate;
  }
  const rate = LOAD * capRate;
  const scale = w.baseRate / rate;
  // 2. every strategy at that load
  const rows: Row[] = [];
  for (const router of STRATEGIES) {
    const t0 = performance.now();
    const r = run(w, scale, router);
    rows.push({ router, r, wallS: (performance.now() - t0) / 1000 });
    const o = r.overall;
    process.stdout.write(`[${w.name}] ${router.padEnd(20)} TTFT mean ${o.ttftMs.mean.toFixed(0)} p50 ${o.ttftMs.p50.toFixed(0)} p99 ${o.ttftMs.p99.toFixed(0)} ms, hit ${r.cluster.prefixCacheHitRate}, imbalance ${r.cluster.loadImbalance}\n`);
  }
  const base = rows.find((x) => x.router === 'random')!.r.overall;
  let md = `## ${w.title}\n\n`;
  md += `Capacity sweep of \`random\` (capacity = highest rate with mean TTFT <= ${KNEE}x its value at the lightest rate): ${sweep.map((s) => `${s.rate.toFixed(2)} req/s -> ${f0(s.meanTtft)} ms`).join('; ')}. Capacity ~${capRate.toFixed(2)} req/s; runs at ${Math.round(LOAD * 100)}% of it: ${rate.toFixed(2)} req/s (time scale ${scale.toFixed(4)}).\n\n`;
  md += '| strategy | mean TTFT ms | P50 TTFT | P99 TTFT | mean ITL ms | mean E2E ms | req/s | output tok/s | cluster hit rate | load imbalance | mean TTFT vs random | P99 TTFT vs random | failed |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n';
  for (const { router, r } of rows) {
    const o = r.overall;
    md += `| ${router} | ${f0(o.ttftMs.mean)} | ${f0(o.ttftMs.p50)} | ${f0(o.ttftMs.p99)} | ${f1(o.itlMs.mean)} | ${f0(o.e2eMs.mean)} | ${o.throughput.requestsPerS.toFixed(2)} | ${f0(o.throughput.outputTokensPerS)} | ${(r.cluster.prefixCacheHitRate * 100).toFixed(1)}% | ${r.cluster.loadImbalance.toFixed(2)} | ${(o.ttftMs.mean / base.ttftMs.mean).toFixed(2)}x | ${(o.ttftMs.p99 / base.ttftMs.p99).toFixed(2)}x | ${o.requests.failed} |\n`;
  }
  const byP99 = [...rows].filter((x) => x.router !== 'random').sort((a, b) => a.r.overall.ttftMs.p99 - b.r.overall.ttftMs.p99);
  const best = [...rows].filter((x) => x.router !== 'random').sort((a, b) => a.r.overall.ttftMs.mean - b.r.overall.ttftMs.mean)[0]!;
  const pc = rows.find((x) => x.router === 'prefix-cache');
  const cc = rows.find((x) => x.router === 'cache-cost');
  md += `\nBest mean TTFT: \`${best.router}\` (${((1 - best.r.overall.ttftMs.mean / base.ttftMs.mean) * 100).toFixed(0)}% lower than random); best P99 TTFT: \`${byP99[0]!.router}\` (${((1 - byP99[0]!.r.overall.ttftMs.p99 / base.ttftMs.p99) * 100).toFixed(0)}% lower).`;
  if (pc && cc) md += ` \`cache-cost\` vs AIBrix \`prefix-cache\`: P99 TTFT ${((1 - cc.r.overall.ttftMs.p99 / pc.r.overall.ttftMs.p99) * 100).toFixed(0)}% lower, hit rate ${(cc.r.cluster.prefixCacheHitRate * 100).toFixed(1)}% vs ${(pc.r.cluster.prefixCacheHitRate * 100).toFixed(1)}%.`;
  md += `\n\nOne run from the command line (same result): \`inferplane sim run exp.json\` with\n\n\`\`\`json\n${JSON.stringify(w.prebuilt ? { note: 'Preble mix is built in bench/routing.ts (the DES workload schema has no Preble preset type)' } : w.experiment(Number(scale.toFixed(6)), 'cache-cost'))}\n\`\`\`\n\n`;
  sections.push(md);
  summary.push(`${w.name}: capacity ${capRate.toFixed(2)} req/s, run at ${rate.toFixed(2)} req/s; best mean TTFT ${best.router}`);
  // write after each workload so partial results survive a time limit
  writeDoc();
}

function writeDoc(): void {
  const date = new Date().toISOString().slice(0, 10);
  let commit = 'unknown';
  try {
    commit = execSync('git rev-parse --short HEAD', { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    // not a git checkout
  }
  let md = `# Routing quality in the discrete-event simulator\n\nDate: ${date}. Machine: ${os.cpus().length} cores, Node ${process.version}. Commit: ${commit} (the simulator's latency coefficients are those of src/sim/core/coefficients.json at that commit). Command: \`npm run bench:routing${args.length ? ' -- ' + args.join(' ') : ''}\`.\n\n`;
  md += `Engines: Llama-3.1-8B-Instruct on H100 (simulated, src/sim/core defaults: block 16, chunked prefill, prefix caching), maxModelLen 131072, metrics scraped every 500 ms (policies see engine metrics as of the last scrape plus the gateway's current in-flight counts). Strategies are the gateway's own objects built by \`createStrategy\` with default options. \`kv-aware\` and \`cache-cost-kv\` receive the simulated engines' KV events (vLLM sha256_cbor block hashes, each step's batch delivered at the step's end, \`kvEventDelayMs\` 0; see docs/simulator.md "KV events and users").\n\n`;
  md += sections.join('');
  mkdirSync(resolve(root, 'docs/benchmarks'), { recursive: true });
  writeFileSync(resolve(root, 'docs/benchmarks/routing.md'), md);
}
console.log(summary.join('\n'));
console.log('wrote docs/benchmarks/routing.md');
