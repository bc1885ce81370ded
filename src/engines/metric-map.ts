/**
 * Engine dialects -> canonical signals. Maps the Prometheus metrics of vLLM V1, vLLM V0 (and early
 * V1) and SGLang to the engine-signal fields of `EndpointState` (ARCHITECTURE.md "Canonical
 * signals"; names from reference vllm-api.md §1.2-1.4 and §6). Pure: the caller passes the parsed
 * scrape, the previous scrape's memory and the time.
 *
 * Rules:
 * - A signal whose metric is absent stays `undefined` (never zero).
 * - Rates (tokens/s, prefix-cache hit rate, TTFT/ITL over the interval) come from counter/histogram
 *   **deltas** between two scrapes; the first scrape gives none. A counter that went down (engine
 *   restart) is treated as reset: the delta is its current value, as Prometheus' `rate()` does.
 * - Several series of one metric (data-parallel engines, several `model_name`s) are summed for
 *   counts and averaged for KV usage.
 */
import type { EndpointState, EngineDialect, LatencySummaryMs } from './state.ts';
import { meanSamples, mergedHistogram, sumSamples, type ParsedMetrics, type PromHistogram } from '../metrics/prom-text.ts';

/** Metric names of one dialect, first match wins (so V1 names are tried before their V0 fallbacks). */
export interface DialectMetricNames {
  running: string[];
  waiting: string[];
  /** Gauges with a 0..1 fraction of KV blocks/tokens used. */
  kvCacheUsage: string[];
  /** Counter pairs [hits, queries] (tokens) whose delta ratio is the hit rate. */
  prefixCacheCounters: Array<[hits: string, queries: string]>;
  /** Gauges already holding a 0..1 hit rate (used when no counter pair is present). */
  prefixCacheRateGauges: string[];
  promptTokens: string[];
  generationTokens: string[];
  /** Histograms in seconds. */
  ttft: string[];
  itl: string[];
  preemptions: string[];
  /** Info gauge with `max_lora`, `running_lora_adapters`, `waiting_lora_adapters` labels. */
  loraInfo: string[];
}

/** vLLM: V1 names first, then V0 / early-V1 (≈v0.8) fallbacks (reference §1.4). */
export const VLLM_METRICS: DialectMetricNames = {
  running: ['vllm:num_requests_running'],
  waiting: ['vllm:num_requests_waiting'],
  kvCacheUsage: ['vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc'],
  prefixCacheCounters: [
    ['vllm:prefix_cache_hits_total', 'vllm:prefix_cache_queries_total'],
    ['vllm:gpu_prefix_cache_hits_total', 'vllm:gpu_prefix_cache_queries_total'],
  ],
  prefixCacheRateGauges: ['vllm:gpu_prefix_cache_hit_rate'],
  promptTokens: ['vllm:prompt_tokens_total'],
  generationTokens: ['vllm:generation_tokens_total'],
  ttft: ['vllm:time_to_first_token_seconds'],
  itl: ['vllm:inter_token_latency_seconds', 'vllm:time_per_output_token_seconds'],
  preemptions: ['vllm:num_preemptions_total'],
  loraInfo: ['vllm:lora_requests_info'],
};

/** SGLang (`python/sglang/srt/metrics/collector.py`; reference §6). `sglang:cache_hit_rate` is a gauge. */
export const SGLANG_METRICS: DialectMetricNames = {
  running: ['sglang:num_running_reqs'],
  waiting: ['sglang:num_queue_reqs'],
  kvCacheUsage: ['sglang:token_usage'],
  prefixCacheCounters: [],
  prefixCacheRateGauges: ['sglang:cache_hit_rate'],
  promptTokens: ['sglang:prompt_tokens_total'],
  generationTokens: ['sglang:generation_tokens_total'],
  ttft: ['sglang:time_to_first_token_seconds'],
  itl: ['sglang:inter_token_latency_seconds', 'sglang:time_per_output_token_seconds'],
  /** Counter of retracted (preempted) requests in newer SGLang; older versions only have a gauge. */
  preemptions: ['sglang:num_retracted_reqs_total'],
  loraInfo: [],
};

/** The metric names of a dialect. */
export function dialectMetrics(dialect: EngineDialect): DialectMetricNames {
  return dialect === 'sglang' ? SGLANG_METRICS : VLLM_METRICS;
}

/** What one scrape leaves for the next (cumulative counters and histograms). */
export interface ScrapeMemory {
  atMs: number;
  counters: Record<string, number>;
  histograms: Record<string, PromHistogram>;
}

/** Engine-signal fields of `EndpointState` that a scrape sets. */
export type CanonicalSignals = Pick<
  EndpointState,
  'running' | 'waiting' | 'kvCacheUsage' | 'prefixCacheHitRate' | 'promptTokensPerS' | 'generationTokensPerS' | 'ttftMs' | 'itlMs' | 'preemptions' | 'loraAdapters' | 'maxLoras'
>;

/** Result of mapping one scrape. */
export interface CanonicalScrape {
  signals: CanonicalSignals;
  /** Pass to the next call as `prev`. */
  memory: ScrapeMemory;
}

function first(parsed: ParsedMetrics, names: string[], f: (name: string) => number | undefined): number | undefined {
  for (const n of names) {
    if (parsed.has(n)) {
      const v = f(n);
      if (v !== undefined) return v;
    }
  }
  return undefined;
}

function delta(cur: number, prev: number | undefined): number | undefined {
  if (prev === undefined) return undefined;
  return cur >= prev ? cur - prev : cur;
}

/**
 * Quantile from a cumulative-bucket histogram by linear interpolation inside the bucket (as
 * Prometheus' `histogram_quantile`); the `+Inf` bucket yields the highest finite bound.
 * Returns undefined for an empty histogram. `q` in 0..1; result in the histogram's unit.
 */
export function histogramQuantile(q: number, buckets: ReadonlyArray<{ le: number; count: number }>): number | undefined {
  if (buckets.length === 0) return undefined;
  const total = buckets[buckets.length - 1]!.count;
  if (!(total > 0)) return undefined;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (b.le === Infinity) return prevLe;
      const inBucket = b.count - prevCount;
      if (inBucket <= 0) return b.le;
      return prevLe + ((b.le - prevLe) * (rank - prevCount)) / inBucket;
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}

/** Difference of two cumulative histograms (`cur - prev`); `prev` undefined -> undefined; reset -> `cur`. */
export function histogramDelta(cur: PromHistogram, prev: PromHistogram | undefined): PromHistogram | undefined {
  if (!prev) return undefined;
  if (cur.count < prev.count) return cur;
  const prevByLe = new Map(prev.buckets.map((b) => [b.le, b.count]));
  return {
    labels: cur.labels,
    buckets: cur.buckets.map((b) => ({ le: b.le, count: b.count - (prevByLe.get(b.le) ?? 0) })),
    count: cur.count - prev.count,
    sum: cur.sum - prev.sum,
  };
}

/** Latency summary in ms of a histogram in seconds (mean and p50/p90/p99); undefined when it holds no observations. */
export function summarizeSeconds(h: PromHistogram): LatencySummaryMs | undefined {
  if (!(h.count > 0)) return undefined;
  const s: LatencySummaryMs = { mean: (h.sum / h.count) * 1000 };
  const p50 = histogramQuantile(0.5, h.buckets);
  const p90 = histogramQuantile(0.9, h.buckets);
  const p99 = histogramQuantile(0.99, h.buckets);
  if (p50 !== undefined) s.p50 = p50 * 1000;
  if (p90 !== undefined) s.p90 = p90 * 1000;
  if (p99 !== undefined) s.p99 = p99 * 1000;
  return s;
}

/**
 * LoRA residency from `vllm:lora_requests_info`: the series with the largest value (its value is
 * the update time; stale label sets linger, reference §1.3) gives `max_lora` and the adapters in
 * `running_lora_adapters` + `waiting_lora_adapters` (comma-joined names).
 */
export function loraFromInfo(parsed: ParsedMetrics, names: string[]): { adapters: string[]; maxLoras?: number } | undefined {
  for (const n of names) {
    const f = parsed.get(n);
    if (!f || f.samples.length === 0) continue;
    let best = f.samples[0]!;
    for (const s of f.samples) if (s.value > best.value) best = s;
    const set = new Set<string>();
    for (const key of ['running_lora_adapters', 'waiting_lora_adapters']) {
      for (const a of (best.labels[key] ?? '').split(',')) if (a.trim()) set.add(a.trim());
    }
    const out: { adapters: string[]; maxLoras?: number } = { adapters: [...set].sort() };
    const ml = Number(best.labels.max_lora);
    if (best.labels.max_lora !== undefined && Number.isFinite(ml)) out.maxLoras = ml;
    return out;
  }
  return undefined;
}

/**
 * Maps one parsed scrape to canonical signals.
 * @param prev memory of the previous scrape of the same endpoint (null for the first one)
 * @param parsed the scrape, parsed by `parsePromText`
 * @param nowMs time of this scrape (ms; wall or virtual clock)
 * @param dialect engine dialect (default `vllm`, which also reads V0 names)
 */
export function toCanonical(prev: ScrapeMemory | null, parsed: ParsedMetrics, nowMs: number, dialect: EngineDialect = 'vllm'): CanonicalScrape {
  const names = dialectMetrics(dialect);
  const signals: CanonicalSignals = {};
  const memory: ScrapeMemory = { atMs: nowMs, counters: {}, histograms: {} };
  const dtS = prev ? (nowMs - prev.atMs) / 1000 : 0;

  const running = first(parsed, names.running, (n) => sumSamples(parsed, n));
  if (running !== undefined) signals.running = running;
  const waiting = first(parsed, names.waiting, (n) => sumSamples(parsed, n));
  if (waiting !== undefined) signals.waiting = waiting;
  const kv = first(parsed, names.kvCacheUsage, (n) => meanSamples(parsed, n));
  if (kv !== undefined) signals.kvCacheUsage = kv;

  // counters remembered for deltas
  const counter = (key: string, candidates: string[]): number | undefined => {
    const v = first(parsed, candidates, (n) => sumSamples(parsed, n));
    if (v !== undefined) memory.counters[key] = v;
    return v;
  };
  const rate = (key: string, candidates: string[]): number | undefined => {
    const v = counter(key, candidates);
    if (v === undefined || !prev || dtS <= 0) return undefined;
    const d = delta(v, prev.counters[key]);
    return d === undefined ? undefined : d / dtS;
  };
  const pt = rate('prompt', names.promptTokens);
  if (pt !== undefined) signals.promptTokensPerS = pt;
  const gt = rate('generation', names.generationTokens);
  if (gt !== undefined) signals.generationTokensPerS = gt;

  let hitRate: number | undefined;
  for (const [hitsName, queriesName] of names.prefixCacheCounters) {
    if (!parsed.has(hitsName) || !parsed.has(queriesName)) continue;
    const hits = counter('prefixHits', [hitsName]);
    const queries = counter('prefixQueries', [queriesName]);
    if (hits === undefined || queries === undefined || !prev) break;
    const dh = delta(hits, prev.counters.prefixHits);
    const dq = delta(queries, prev.counters.prefixQueries);
    if (dh !== undefined && dq !== undefined && dq > 0) hitRate = Math.min(1, Math.max(0, dh / dq));
    break;
  }
  if (hitRate === undefined && !('prefixQueries' in memory.counters)) {
    hitRate = first(parsed, names.prefixCacheRateGauges, (n) => meanSamples(parsed, n));
  }
  if (hitRate !== undefined) signals.prefixCacheHitRate = hitRate;

  if (names.preemptions.length > 0) {
    const p = first(parsed, names.preemptions, (n) => sumSamples(parsed, n));
    if (p !== undefined) signals.preemptions = p;
  }

  const latency = (key: string, candidates: string[]): LatencySummaryMs | undefined => {
    for (const n of candidates) {
      const h = mergedHistogram(parsed, n);
      if (!h) continue;
      memory.histograms[key] = h;
      const d = histogramDelta(h, prev?.histograms[key]);
      return d ? summarizeSeconds(d) : undefined;
    }
    return undefined;
  };
  const ttft = latency('ttft', names.ttft);
  if (ttft) signals.ttftMs = ttft;
  const itl = latency('itl', names.itl);
  if (itl) signals.itlMs = itl;

  const lora = loraFromInfo(parsed, names.loraInfo);
  if (lora) {
    signals.loraAdapters = lora.adapters;
    if (lora.maxLoras !== undefined) signals.maxLoras = lora.maxLoras;
  }
  return { signals, memory };
}

// ---------------------------------------------------------------------------------------------
// LoRA load/unload calls per dialect (reference §2 for vLLM, §6 for SGLang).
// ---------------------------------------------------------------------------------------------

/** An HTTP call to make against an engine's base URL. */
export interface EngineHttpCall {
  method: 'POST';
  path: string;
  body: Record<string, unknown>;
}

/**
 * The request that loads a LoRA adapter.
 * - vLLM: `POST /v1/load_lora_adapter {"lora_name","lora_path"}` (needs `VLLM_ALLOW_RUNTIME_LORA_UPDATING`
 *   on the engine); success is 200 with a plain-text body.
 * - SGLang: `POST /load_lora_adapter {"lora_name","lora_path","pinned"?}`; reply JSON
 *   `{success, error_message, loaded_adapters}` with 200 or 400.
 */
export function loraLoadCall(dialect: EngineDialect, name: string, path: string, opts: { pinned?: boolean; loadInplace?: boolean } = {}): EngineHttpCall {
  if (dialect === 'sglang') {
    const body: Record<string, unknown> = { lora_name: name, lora_path: path };
    if (opts.pinned !== undefined) body.pinned = opts.pinned;
    return { method: 'POST', path: '/load_lora_adapter', body };
  }
  const body: Record<string, unknown> = { lora_name: name, lora_path: path };
  if (opts.loadInplace) body.load_inplace = true;
  return { method: 'POST', path: '/v1/load_lora_adapter', body };
}

/** The request that unloads a LoRA adapter (vLLM `/v1/unload_lora_adapter`, SGLang `/unload_lora_adapter`, body `{"lora_name"}`). */
export function loraUnloadCall(dialect: EngineDialect, name: string): EngineHttpCall {
  return { method: 'POST', path: dialect === 'sglang' ? '/unload_lora_adapter' : '/v1/unload_lora_adapter', body: { lora_name: name } };
}

/** Outcome of a LoRA load/unload call, read from the engine's reply. */
export interface LoraCallResult {
  ok: boolean;
  /** Error message from the engine (absent on success). */
  error?: string;
  /** SGLang's `loaded_adapters` when returned. */
  loadedAdapters?: string[];
}

/**
 * Interprets a LoRA load/unload reply. vLLM: 200 = success (plain text), otherwise an OpenAI error
 * body (either shape). SGLang: JSON `{success, error_message, loaded_adapters}`.
 */
export function parseLoraReply(dialect: EngineDialect, status: number, bodyText: string): LoraCallResult {
  if (dialect === 'sglang') {
    try {
      const o = JSON.parse(bodyText) as { success?: boolean; error_message?: string | null; loaded_adapters?: unknown };
      const res: LoraCallResult = { ok: status === 200 && o.success !== false };
      if (!res.ok) res.error = o.error_message ?? `HTTP ${status}`;
      if (o.loaded_adapters && typeof o.loaded_adapters === 'object') {
        res.loadedAdapters = Array.isArray(o.loaded_adapters) ? o.loaded_adapters.map(String) : Object.keys(o.loaded_adapters as object);
      }
      return res;
    } catch {
      return status === 200 ? { ok: true } : { ok: false, error: bodyText || `HTTP ${status}` };
    }
  }
  if (status === 200) return { ok: true };
  let msg = bodyText;
  try {
    const o = JSON.parse(bodyText) as { error?: { message?: string }; message?: string; detail?: string };
    msg = o.error?.message ?? o.message ?? o.detail ?? bodyText;
  } catch {
    /* plain text */
  }
  return { ok: false, error: msg || `HTTP ${status}` };
}
