/**
 * The calibration set (`shared/data/calibration/experiments.json`, real vLLM v0.15.1 runs on H100)
 * turned into DES replays, shared by `npm run calibrate` and `npm run bench:sim-fidelity`.
 *
 * Each non-overloaded stage record (stage 0 or 1; summaries skipped; the 6 INVALID trainval rows
 * and the trainval duplicate of the default_args Llama-2-7b codegen run skipped) becomes one replay:
 * the recorded engine flags (max_num_batched_tokens, max_num_seqs 128, max_model_len 4096, prefix
 * caching and chunked prefill on, 8 GiB CPU offload for default_args), the model and TP, and the
 * inference-perf shared_prefix workload of its profile (`shared/data/workloads/
 * inference-perf-presets.json` values, constant arrivals, ignore_eos outputs) at the stage's rate.
 * The prefix-group structure uses inference-perf's resolved 10 x 10 (see the calibration README).
 *
 * A replay runs `warmupS` of load at the stage's rate (at least 30 s, 120 s for long outputs, and
 * long enough to send the prompt pool twice), then `measureS` more; only requests arriving in the
 * second part are measured (steady state, as in the real 600-1200 s stages).
 *
 * Targets: mean TTFT, mean E2E, and mean ITL derived as (E2E − TTFT)/(output − 1); for Llama-2-7b
 * `itl_mean_ms_requested_len` (the client under-counts its output tokens, calibration README).
 */
import { readFileSync } from 'node:fs';
import type { Experiment } from './experiment.ts';
import { runExperiment } from './run.ts';
import type { LatencyCoefficients } from '../core/latency.ts';
import { buildWorkload } from './workload.ts';
import { resolveEngineConfig } from '../core/config.ts';

/** Workload presets (inference-perf shared_prefix; shared/data/workloads/inference-perf-presets.json). */
export const PRESETS: Record<string, { stages: { rate: number; durationS: number }[]; systemPromptTokens: number; questionTokens: number; outputTokens: number }> = {
  general: { stages: [{ rate: 8, durationS: 600 }, { rate: 20, durationS: 600 }], systemPromptTokens: 100, questionTokens: 447, outputTokens: 248 },
  codegen: { stages: [{ rate: 5, durationS: 600 }, { rate: 10, durationS: 600 }], systemPromptTokens: 100, questionTokens: 466, outputTokens: 247 },
  roleplay: { stages: [{ rate: 6, durationS: 1200 }], systemPromptTokens: 150, questionTokens: 600, outputTokens: 251 },
  reasoning: { stages: [{ rate: 4, durationS: 1200 }], systemPromptTokens: 100, questionTokens: 934, outputTokens: 1448 },
  'general-lite': { stages: [{ rate: 2.5, durationS: 600 }, { rate: 6, durationS: 600 }], systemPromptTokens: 100, questionTokens: 447, outputTokens: 248 },
  'reasoning-lite': { stages: [{ rate: 1, durationS: 1200 }], systemPromptTokens: 100, questionTokens: 934, outputTokens: 1448 },
};

/**
 * Whether replayed prompts repeat whole (`cycle`, inference-perf cycling its G x P prompt pool) or
 * only share the group's system prompt (`unique`). Default `cycle`: with `unique` the replays of
 * the 20 req/s stages saturate under any physically plausible prefill cost (prefill >= roofline at
 * peak), which the real runs did not. Override with SIM_CAL_QUESTION_REUSE=unique to test it.
 */
export const QUESTION_REUSE: 'cycle' | 'unique' = (process.env.SIM_CAL_QUESTION_REUSE as 'cycle' | 'unique' | undefined) ?? 'cycle';

/** One replayable calibration record. */
export interface CalibrationCase {
  id: string;
  dataset: 'default_args' | 'trainval';
  model: string;
  gpu: string;
  tp: number;
  profile: string;
  stage: number;
  rate: number;
  target: { ttftMs: number; e2eMs: number; itlMs: number };
  experiment: Experiment;
  /** Index of the measured stage in the replay. */
  measuredStage: number;
  /** Output tokens per request (for the derived ITL). */
  outputTokens: number;
}

interface RawRecord {
  id: string;
  dataset: string;
  model: string;
  gpu: string;
  tensor_parallel: number;
  stage: number | string;
  overloaded: boolean;
  data_quality?: string;
  same_run_as?: string;
  engine: { max_num_batched_tokens: number; max_num_seqs?: number; max_model_len?: number; kv_cpu_offload_gib?: number };
  workload: { profile?: string; rate_rps?: number } | string;
  source_folder?: string;
  ttft_ms: { mean: number };
  e2e_ms: { mean: number };
  itl_mean_ms: number;
  itl_mean_ms_requested_len?: number;
}

/** Resolves `shared/data/calibration/experiments.json` from the repository root. */
export function calibrationFile(repoRoot: string): string {
  return `${repoRoot}/../shared/data/calibration/experiments.json`;
}

/**
 * Loads the replayable (non-overloaded) cases, and separately the overloaded ones (saturation smoke test).
 * @param warmupS / measureS simulated seconds of warm-up and of measurement per replay.
 */
export function loadCalibrationCases(file: string, opts: { warmupS?: number; measureS?: number; includeOverloaded?: boolean } = {}): CalibrationCase[] {
  const raw = JSON.parse(readFileSync(file, 'utf8')) as RawRecord[];
  const out: CalibrationCase[] = [];
  for (const r of raw) {
    if (r.stage === 'summary') continue;
    if (r.data_quality?.startsWith('INVALID')) continue;
    if (r.dataset === 'trainval' && r.same_run_as) continue;
    if (r.overloaded && !opts.includeOverloaded) continue;
    let profile: string;
    if (r.dataset === 'default_args') profile = (r.workload as { profile: string }).profile;
    else {
      const w = r.workload as string;
      profile = r.source_folder && r.source_folder.includes(`${w}-lite`) ? `${w}-lite` : w;
    }
    const preset = PRESETS[profile];
    if (!preset) throw new Error(`calibration: no workload preset for profile '${profile}' (${r.id})`);
    const stage = Number(r.stage);
    const rate = preset.stages[stage]?.rate;
    if (rate === undefined) throw new Error(`calibration: ${r.id} has no stage ${stage} in preset ${profile}`);
    const long = preset.outputTokens > 1000;
    // Warm up long enough for the 100-prompt pool to have been sent twice (the real stages last
    // 600-1,200 s, so their first-time prompt misses are a negligible fraction).
    const warmupS = opts.warmupS ?? Math.max(long ? 120 : 30, Math.ceil(200 / rate));
    const measureS = opts.measureS ?? (long ? 120 : 60);
    const llama2 = r.model.toLowerCase().includes('llama-2-7b');
    const itl = llama2 && r.itl_mean_ms_requested_len !== undefined ? r.itl_mean_ms_requested_len : r.itl_mean_ms;
    const experiment: Experiment = {
      engine: {
        model: r.model,
        gpu: r.gpu,
        tensorParallel: r.tensor_parallel,
        maxNumSeqs: r.engine.max_num_seqs ?? 128,
        maxNumBatchedTokens: r.engine.max_num_batched_tokens,
        maxModelLen: r.engine.max_model_len ?? 4096,
        blockSize: 16,
        gpuMemoryUtilization: 0.9,
        enablePrefixCaching: true,
        enableChunkedPrefill: true,
        kvOffloadGiB: r.dataset === 'default_args' ? (r.engine.kv_cpu_offload_gib ?? 8) : 0,
        pcieGBps: 50,
        enableLora: false,
        maxLoras: 1,
        maxLoraRank: 16,
        seed: 0,
      },
      replicas: 1,
      router: 'round-robin',
      scrapeIntervalMs: 500,
      workload: {
        type: 'sharedPrefix',
        stages: [
          { rate, durationS: warmupS },
          { rate, durationS: measureS },
        ],
        arrival: 'constant',
        systemPromptTokens: preset.systemPromptTokens,
        questionTokens: preset.questionTokens,
        outputTokens: preset.outputTokens,
        prefixGroups: 10,
        promptsPerGroup: 10,
        questionReuse: QUESTION_REUSE,
      },
      seed: 1,
    };
    out.push({
      id: r.id,
      dataset: r.dataset as CalibrationCase['dataset'],
      model: r.model,
      gpu: r.gpu,
      tp: r.tensor_parallel,
      profile,
      stage,
      rate,
      target: { ttftMs: r.ttft_ms.mean, e2eMs: r.e2e_ms.mean, itlMs: itl },
      experiment,
      measuredStage: 1,
      outputTokens: preset.outputTokens,
    });
  }
  return out;
}

/** Simulated means of one case. */
export interface CaseOutcome {
  ttftMs: number;
  e2eMs: number;
  itlMs: number;
  preemptions: number;
  completed: number;
}

const prebuiltCache = new WeakMap<CalibrationCase, ReturnType<typeof buildWorkload>>();

/** Replays one case with the given coefficients. */
export function replayCase(c: CalibrationCase, coefficients?: LatencyCoefficients): CaseOutcome {
  let pre = prebuiltCache.get(c);
  if (!pre) {
    const eng = resolveEngineConfig(c.experiment.engine);
    pre = buildWorkload(c.experiment.workload, { seed: c.experiment.seed, baseDir: '.', maxModelLen: eng.maxModelLen, vocabSize: eng.model.vocabSize });
    prebuiltCache.set(c, pre);
  }
  const res = runExperiment(c.experiment, { coefficients, prebuilt: pre });
  const s = res.stages[c.measuredStage]!;
  return {
    ttftMs: s.ttftMs.mean,
    e2eMs: s.e2eMs.mean,
    itlMs: (s.e2eMs.mean - s.ttftMs.mean) / (c.outputTokens - 1),
    preemptions: res.cluster.preemptions,
    completed: s.requests.completed,
  };
}

/** Absolute percentage error (0..inf, as a fraction). */
export function ape(sim: number, real: number): number {
  return Math.abs(sim - real) / Math.abs(real);
}

/** Median of numbers (0 for none). */
export function median(xs: readonly number[]): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
