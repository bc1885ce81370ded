/**
 * Runs one experiment (see `experiment.ts`) in the discrete-event cluster and builds the result
 * JSON of `inferplane sim run`.
 */
import { resolveEngineConfig, type LatencyCoefficients } from '../core/engine.ts';
import { createStrategy } from '../../routing/registry.ts';
import { SimCluster, type KvEventCounts, type KvEventsOptions } from './cluster.ts';
import { isKvEventSink } from '../../routing/cache/kv-aware.ts';
import { DEFAULT_HASH_SEED } from '../../engines/vllm/block-hash.ts';
import { summarize, type LatencySummary } from './stats.ts';
import { buildWorkload, type SimRequestSpec, type StageInfo } from './workload.ts';
import type { Experiment } from './experiment.ts';
import type { RoutingStrategy } from '../../routing/types.ts';
import { DesAutoscaler, type DesAutoscalerResult } from '../../control/autoscaler/des-hook.ts';

/** Latency/throughput figures of one stage or of the whole run. */
export interface PhaseResult {
  ttftMs: LatencySummary;
  e2eMs: LatencySummary;
  /** Inter-token latency over every generated token after the first. */
  itlMs: LatencySummary;
  throughput: { requestsPerS: number; outputTokensPerS: number };
  requests: { completed: number; failed: number };
}

export interface StageResult extends PhaseResult {
  index: number;
  rate?: number;
  durationS: number;
}

export interface EngineResult {
  id: string;
  /** Simulated time it was added, became routable, and left (s; `removedS` null = still present at the end). */
  addedS: number;
  readyS: number;
  removedS: number | null;
  /** Requests routed to the engine. */
  requests: number;
  /** GPU prefix-cache hits / queries, tokens (0..1). */
  prefixCacheHitRate: number;
  /** CPU-tier hits / queries, tokens (0..1). */
  cpuCacheHitRate: number;
  preemptions: number;
  /** Mean of `kv_cache_usage_perc` sampled at every scrape (0..1). */
  meanKvUsage: number;
  /** Fraction of the run the engine spent executing steps (0..1). */
  busyFraction: number;
}

/** The JSON printed by `inferplane sim run`. */
export interface ExperimentResult {
  name?: string;
  engine: { model: string; gpu: string; tensorParallel: number; numGpuBlocks: number; numCpuBlocks: number; maxNumSeqs: number; maxNumBatchedTokens: number; maxModelLen: number };
  /** Engine replicas at the start (with an autoscaler: `replicas.initial`). */
  replicas: number;
  router: string;
  /** Simulated time from 0 to the last event (s). */
  simulatedS: number;
  requestsTotal: number;
  overall: PhaseResult;
  stages: StageResult[];
  engines: EngineResult[];
  cluster: {
    /** Σ GPU hits / Σ queries over engines (tokens). */
    prefixCacheHitRate: number;
    /** max / mean requests routed per engine (1 = perfectly even). */
    loadImbalance: number;
    preemptions: number;
    /**
     * Routers that consume KV events only: what reached the router (`batches`, blocks stored /
     * removed, `clears`) and the configured `delayMs`.
     */
    kvEvents?: KvEventCounts & { delayMs: number };
  };
  /**
   * With an `autoscaler` section only. Replica-hours: Σ over engines of (removed or end - added),
   * hours, start-up and draining included (the GPUs are held); `scalingEvents`: changes of the
   * desired replica count; `replicaTimeline`: [time s, desired replicas] at the start and at every
   * change; `decisions`: every decision with its reason; `autoscaler`: the spec as defaulted and its
   * final status.
   */
  replicaHours?: number;
  scalingEvents?: number;
  replicaTimeline?: [number, number][];
  decisions?: DesAutoscalerResult['decisions'];
  autoscaler?: DesAutoscalerResult['autoscaler'];
}

/** Options of `runExperiment`. */
export interface RunOptions {
  /** Directory trace paths are resolved against (the experiment file's directory). Default: cwd. */
  baseDir?: string;
  /** Override the latency coefficients (calibration). */
  coefficients?: LatencyCoefficients;
  /** Use this request list instead of building it from `workload` (calibration reuses one). */
  prebuilt?: { requests: SimRequestSpec[]; stages: StageInfo[] };
  /** Called with the cluster once the run has finished (raw samples, e.g. for SLO attainment). */
  onFinished?: (cluster: SimCluster) => void;
}

const r4 = (x: number) => Math.round(x * 10000) / 10000;

/**
 * Runs an experiment to completion.
 * @throws Error naming the field for a bad engine config (`engine.model: unknown model ...`) or router.
 */
export function runExperiment(exp: Experiment, opts: RunOptions = {}): ExperimentResult {
  const engine = resolveEngineConfig(exp.engine, 'engine.');
  let strategy;
  try {
    strategy = createStrategy(exp.router, exp.routerOptions);
  } catch (e) {
    throw new Error(`router: ${(e as Error).message}`);
  }
  const kvEvents = kvEventWiring(exp, strategy, engine.blockSize);
  const modelName = typeof exp.engine.model === 'string' ? exp.engine.model : engine.model.id;
  const wl = opts.prebuilt ?? buildWorkload(exp.workload, { seed: exp.seed, baseDir: opts.baseDir ?? process.cwd(), maxModelLen: engine.maxModelLen, vocabSize: engine.model.vocabSize });
  const as = exp.autoscaler
    ? new DesAutoscaler({ spec: exp.autoscaler, model: modelName, replicas: exp.replicas, replicaStartupS: exp.replicaStartupS ?? 60 })
    : null;
  if (!as && typeof exp.replicas !== 'number') throw new Error('replicas: {min, max, initial} needs an autoscaler section');
  as?.attachWorkload(wl.requests);
  const replicas = as ? as.initialReplicas : (exp.replicas as number);
  const cluster = new SimCluster({
    engine,
    replicas,
    strategy,
    modelName,
    scrapeIntervalMs: exp.scrapeIntervalMs ?? (as ? 1000 : 500),
    ...(as ? { onScrape: as.onScrape } : {}),
    ...(kvEvents ? { kvEvents } : {}),
    seed: exp.seed,
    coefficients: opts.coefficients,
    requestTimeoutMs: exp.requestTimeoutS !== undefined ? exp.requestTimeoutS * 1000 : undefined,
  });
  const endMs = cluster.run(wl.requests, wl.stages.length);
  opts.onFinished?.(cluster);
  const ss = cluster.stageSamples;
  const phase = (idx: number[], durMs: number): PhaseResult => {
    const parts = idx.map((i) => ss[i]!);
    const completed = parts.reduce((a, p) => a + p.completed, 0);
    const out = parts.reduce((a, p) => a + p.outputTokens, 0);
    const durS = Math.max(durMs, 1) / 1000;
    return {
      ttftMs: summarize(...parts.map((p) => p.ttft)),
      e2eMs: summarize(...parts.map((p) => p.e2e)),
      itlMs: summarize(...parts.map((p) => p.itl)),
      throughput: { requestsPerS: r4(completed / durS), outputTokensPerS: r4(out / durS) },
      requests: { completed, failed: parts.reduce((a, p) => a + p.failed, 0) },
    };
  };
  const stages: StageResult[] = wl.stages.map((s) => ({ index: s.index, ...(s.rate !== undefined ? { rate: s.rate } : {}), durationS: s.durationMs / 1000, ...phase([s.index], s.durationMs) }));
  const lastStage = wl.stages[wl.stages.length - 1];
  const workloadMs = lastStage ? lastStage.startMs + lastStage.durationMs : endMs;
  // One stage: the overall figures are the stage's (skip sorting the same samples twice).
  const overall: PhaseResult =
    stages.length === 1 && Math.abs(stages[0]!.durationS * 1000 - workloadMs) < 1e-6
      ? { ttftMs: stages[0]!.ttftMs, e2eMs: stages[0]!.e2eMs, itlMs: stages[0]!.itlMs, throughput: stages[0]!.throughput, requests: stages[0]!.requests }
      : phase(
          wl.stages.map((s) => s.index),
          Math.max(workloadMs, 1),
        );
  let q = 0;
  let h = 0;
  let pre = 0;
  const engines: EngineResult[] = cluster.engines.map((s) => {
    const c = s.core.liveCounters();
    q += c.prefixCacheQueries;
    h += c.prefixCacheHits;
    pre += c.preemptions;
    const life = Math.max(1, (s.removedMs ?? endMs) - s.addedMs);
    return {
      id: s.id,
      addedS: r4(s.addedMs / 1000),
      readyS: r4(s.readyMs / 1000),
      removedS: s.removedMs === null ? null : r4(s.removedMs / 1000),
      requests: s.routed,
      prefixCacheHitRate: c.prefixCacheQueries > 0 ? r4(c.prefixCacheHits / c.prefixCacheQueries) : 0,
      cpuCacheHitRate: c.prefixCacheQueries > 0 ? r4(c.cpuCacheHits / c.prefixCacheQueries) : 0,
      preemptions: c.preemptions,
      meanKvUsage: s.kvSamples > 0 ? r4(s.kvSum / s.kvSamples) : 0,
      busyFraction: r4(Math.min(1, c.busyMs / life)),
    };
  });
  const counts = engines.map((e) => e.requests);
  const mean = counts.reduce((a, b) => a + b, 0) / Math.max(1, counts.length);
  return {
    ...(exp.name !== undefined ? { name: exp.name } : {}),
    engine: {
      model: engine.model.id,
      gpu: engine.gpu.id,
      tensorParallel: engine.tensorParallel,
      numGpuBlocks: engine.numGpuBlocks,
      numCpuBlocks: engine.numCpuBlocks,
      maxNumSeqs: engine.maxNumSeqs,
      maxNumBatchedTokens: engine.maxNumBatchedTokens,
      maxModelLen: engine.maxModelLen,
    },
    replicas,
    router: strategy.name,
    simulatedS: r4(endMs / 1000),
    requestsTotal: wl.requests.length,
    overall,
    stages,
    engines,
    cluster: {
      prefixCacheHitRate: q > 0 ? r4(h / q) : 0,
      loadImbalance: mean > 0 ? r4(Math.max(...counts) / mean) : 0,
      preemptions: pre,
      ...(kvEvents ? { kvEvents: { ...cluster.kvEventCounts, delayMs: kvEvents.delayMs } } : {}),
    },
    ...(as ? autoscalerFields(as.result(cluster, endMs)) : {}),
  };
}

function autoscalerFields(r: DesAutoscalerResult): Pick<ExperimentResult, 'replicaHours' | 'scalingEvents' | 'replicaTimeline' | 'decisions' | 'autoscaler'> {
  return { replicaHours: r.replicaHours, scalingEvents: r.scalingEvents, replicaTimeline: r.replicaTimeline, decisions: r.decisions, autoscaler: r.autoscaler };
}

/**
 * KV-event wiring for a strategy that consumes KV events (`isKvEventSink`: `kv-aware`,
 * `cache-cost-kv`, or a weighted combination with such members): the engines hash with sha256_cbor
 * seeded by the sink's `blockHashing.hashSeed` (the strategy's `hashSeed` option, default "0"),
 * whose `blockSize` must be the engines'. Null for other strategies.
 * @throws Error `routerOptions.blockSize: ...` when the strategy's block size differs from
 *   `engine.blockSize`; `kvEventDelayMs: ...` when set for a router that takes no KV events.
 */
function kvEventWiring(exp: Experiment, strategy: RoutingStrategy, engineBlockSize: number): KvEventsOptions | null {
  if (!isKvEventSink(strategy)) {
    if (exp.kvEventDelayMs !== undefined) throw new Error(`kvEventDelayMs: router '${exp.router}' does not consume KV events (kv-aware, cache-cost-kv do)`);
    return null;
  }
  const h = strategy.blockHashing;
  if (h && h.blockSize !== engineBlockSize)
    throw new Error(`routerOptions.blockSize: the router hashes ${h.blockSize}-token blocks but engine.blockSize is ${engineBlockSize}; they must be equal`);
  return { sink: strategy, hashSeed: h?.hashSeed ?? DEFAULT_HASH_SEED, delayMs: exp.kvEventDelayMs ?? 0 };
}
