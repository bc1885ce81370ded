/**
 * The simulator's `/metrics`: vLLM V1 metric names, types, labels and histogram buckets as listed in
 * reference vllm-api.md §1.2-1.3 (`vllm/v1/metrics/loggers.py`), on a private prom-client Registry.
 *
 * Labels: `model_name` (first served name) and `engine` ("0") on engine metrics;
 * `finished_reason` on `request_success_total` (every reason pre-created at 0);
 * `vllm:cache_config_info` carries the cache config fields plus `engine` (no `model_name`);
 * `vllm:lora_requests_info` carries only `max_lora`, `running_lora_adapters`,
 * `waiting_lora_adapters`, value = Unix time of the last update (created only with LoRA enabled).
 *
 * Formatting vs Python's prometheus_client: label sets are printed sorted by name and bucket bounds
 * in Python's float form (`le="1.0"`), as vLLM's output has them; differences left (harmless to
 * Prometheus parsers): sample values print as JS numbers (`3` not `3.0`) and there are no
 * `_created` series.
 *
 * With `v0Metrics`, the V0 / early-V1 names are added for old clients (reference §1.4):
 * `vllm:gpu_cache_usage_perc`, `vllm:cpu_cache_usage_perc`, `vllm:num_requests_swapped`,
 * `vllm:gpu_prefix_cache_hit_rate`, `vllm:gpu_prefix_cache_queries_total`/`_hits_total`,
 * `vllm:time_per_output_token_seconds`.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineSnapshot } from '../core/types.ts';

/** vLLM's `build_1_2_5_buckets(max)`: 1, 2, 5, 10, 20, 50, ... up to the largest value <= max. */
export function build125Buckets(max: number): number[] {
  const out: number[] = [];
  for (let exp = 0; ; exp++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** exp;
      if (v > max) return out;
      out.push(v);
    }
  }
}

/** `vllm:time_to_first_token_seconds` buckets (s). */
export const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0];
/** `vllm:inter_token_latency_seconds` and `request_time_per_output_token_seconds` buckets (s). */
export const ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];
/** e2e / queue / inference / prefill / decode time buckets (s). */
export const REQUEST_LATENCY_BUCKETS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0];
/** `vllm:iteration_tokens_total` buckets (tokens). */
export const ITERATION_TOKEN_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];
/** `vllm:request_params_n` buckets. */
export const PARAMS_N_BUCKETS = [1, 2, 5, 10, 20];
/** `request_success_total{finished_reason}` values, pre-created at 0 (`FINISH_REASON_STRINGS`). */
export const FINISH_REASONS = ['stop', 'length', 'abort', 'error'] as const;

const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/**
 * Rewrites one exposition line the way Python's prometheus_client prints it: labels sorted by name,
 * integer bucket bounds as floats (`le="1"` -> `le="1.0"`). Comment lines pass unchanged.
 */
export function pythonStyleLabels(line: string): string {
  if (line.startsWith('#')) return line;
  const open = line.indexOf('{');
  if (open < 0) return line;
  const close = line.lastIndexOf('}');
  if (close < open) return line;
  const pairs: Array<[string, string]> = [];
  for (const m of line.slice(open + 1, close).matchAll(LABEL_RE)) pairs.push([m[1]!, m[1] === 'le' && /^-?\d+$/.test(m[2]!) ? `${m[2]}.0` : m[2]!]);
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return `${line.slice(0, open)}{${pairs.map(([k, v]) => `${k}="${v}"`).join(',')}${line.slice(close)}`;
}

/** Static facts the metrics describe. */
export interface SimMetricsConfig {
  modelName: string;
  maxModelLen: number;
  /** Labels of `vllm:cache_config_info` (stringified as Python prints them), `engine` added. */
  cacheConfigInfo: Record<string, string>;
  /** Present when LoRA is enabled (`--max-loras`). */
  maxLoras?: number;
  v0Metrics?: boolean;
}

/** Timings of one finished request, in seconds (virtual time), for the request histograms. */
export interface FinishedRequestStats {
  reason: 'stop' | 'length' | 'abort' | 'error';
  promptTokens: number;
  generationTokens: number;
  cachedTokens: number;
  /** `max_tokens` as the client sent it (undefined when absent). */
  maxTokensParam?: number;
  /** Effective generation limit (max_tokens, or max_model_len - prompt when absent). */
  maxGenerationTokens: number;
  /** Seconds; undefined when the phase never happened (aborted while waiting). */
  e2eS: number;
  queueS?: number;
  prefillS?: number;
  decodeS?: number;
  inferenceS?: number;
}

/** What the server reports to a dialect's metric set (vLLM's `SimMetrics`, SGLang's `SglangMetrics`). */
export interface EngineMetricsSink {
  /** One engine step with `tokens` scheduled (prefill + decode). */
  observeStep(tokens: number): void;
  /** A request's first token: TTFT (simulated s) and its prompt tokens. */
  observeFirstToken(ttftS: number, promptTokens: number): void;
  /** `n` tokens generated. */
  observeGenerated(n: number): void;
  /** One inter-token gap (simulated s). */
  observeItl(s: number): void;
  /** A request finished (or was aborted). */
  observeFinished(f: FinishedRequestStats): void;
  /** Refreshes gauges from the core before a scrape; `unixS` is wall time, `blockSize` tokens per KV block. */
  refresh(s: EngineSnapshot, unixS: number, blockSize?: number): void;
  /** Per-step LoRA residency update (no-op where the dialect has none). */
  refreshLora(s: Pick<EngineSnapshot, 'runningAdapters' | 'waitingAdapters'>, unixS: number): void;
  readonly contentType: string;
  /** The exposition text. */
  render(): Promise<string>;
}

/** The simulator's metric set; update it from the driver, render it with `render()`. */
export class SimMetrics implements EngineMetricsSink {
  readonly registry = new Registry();
  private readonly L: { model_name: string; engine: string };
  private readonly running: Gauge<string>;
  private readonly waiting: Gauge<string>;
  private readonly kvUsage: Gauge<string>;
  private readonly prefixQueries: Counter<string>;
  private readonly prefixHits: Counter<string>;
  private readonly preemptions: Counter<string>;
  private readonly promptTokens: Counter<string>;
  private readonly generationTokens: Counter<string>;
  private readonly success: Counter<string>;
  private readonly reqPromptTokens: Histogram<string>;
  private readonly reqGenTokens: Histogram<string>;
  private readonly reqMaxGenTokens: Histogram<string>;
  private readonly reqParamsMaxTokens: Histogram<string>;
  private readonly reqPrefillKvComputed: Histogram<string>;
  private readonly reqParamsN: Histogram<string>;
  private readonly iterationTokens: Histogram<string>;
  private readonly ttft: Histogram<string>;
  private readonly itl: Histogram<string>;
  private readonly tpot: Histogram<string>;
  private readonly e2e: Histogram<string>;
  private readonly queue: Histogram<string>;
  private readonly inference: Histogram<string>;
  private readonly prefill: Histogram<string>;
  private readonly decode: Histogram<string>;
  private readonly loraInfo: Gauge<string> | null = null;
  private readonly v0: {
    gpuCache: Gauge<string>;
    cpuCache: Gauge<string>;
    swapped: Gauge<string>;
    hitRate: Gauge<string>;
    queries: Counter<string>;
    hits: Counter<string>;
    tpot: Histogram<string>;
  } | null = null;
  private lastCounters = { prefixQueries: 0, prefixHits: 0, preemptions: 0 };

  constructor(private readonly cfg: SimMetricsConfig) {
    const r = [this.registry];
    const labelNames = ['model_name', 'engine'];
    this.L = { model_name: cfg.modelName, engine: '0' };
    const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames, registers: r });
    const counter = (name: string, help: string, extra: string[] = []) => new Counter({ name, help, labelNames: [...labelNames, ...extra], registers: r });
    const hist = (name: string, help: string, buckets: number[]) => new Histogram({ name, help, labelNames, buckets, registers: r });
    this.running = gauge('vllm:num_requests_running', 'Number of requests in model execution batches.');
    this.waiting = gauge('vllm:num_requests_waiting', 'Number of requests waiting to be processed.');
    const sleep = new Gauge({ name: 'vllm:engine_sleep_state', help: 'Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.', labelNames: [...labelNames, 'sleep_state'], registers: r });
    sleep.labels({ ...this.L, sleep_state: 'awake' }).set(1);
    sleep.labels({ ...this.L, sleep_state: 'weights_offloaded' }).set(0);
    sleep.labels({ ...this.L, sleep_state: 'discard_all' }).set(0);
    this.kvUsage = gauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.');
    this.prefixQueries = counter('vllm:prefix_cache_queries_total', 'Prefix cache queries, in terms of number of queried tokens.');
    this.prefixHits = counter('vllm:prefix_cache_hits_total', 'Prefix cache hits, in terms of number of cached tokens.');
    this.preemptions = counter('vllm:num_preemptions_total', 'Cumulative number of preemption from the engine.');
    this.promptTokens = counter('vllm:prompt_tokens_total', 'Number of prefill tokens processed.');
    this.generationTokens = counter('vllm:generation_tokens_total', 'Number of generation tokens processed.');
    this.success = counter('vllm:request_success_total', 'Count of successfully processed requests.', ['finished_reason']);
    const lenBuckets = build125Buckets(cfg.maxModelLen);
    this.reqPromptTokens = hist('vllm:request_prompt_tokens', 'Number of prefill tokens processed.', lenBuckets);
    this.reqGenTokens = hist('vllm:request_generation_tokens', 'Number of generation tokens processed.', lenBuckets);
    this.reqMaxGenTokens = hist('vllm:request_max_num_generation_tokens', 'Histogram of maximum number of requested generation tokens.', lenBuckets);
    this.reqParamsMaxTokens = hist('vllm:request_params_max_tokens', 'Histogram of the max_tokens request parameter.', lenBuckets);
    this.reqPrefillKvComputed = hist('vllm:request_prefill_kv_computed_tokens', 'Histogram of new KV tokens computed during prefill (excluding cached tokens).', lenBuckets);
    this.reqParamsN = hist('vllm:request_params_n', 'Histogram of the n request parameter.', PARAMS_N_BUCKETS);
    this.iterationTokens = hist('vllm:iteration_tokens_total', 'Histogram of number of tokens per engine_step.', ITERATION_TOKEN_BUCKETS);
    this.ttft = hist('vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', TTFT_BUCKETS);
    this.itl = hist('vllm:inter_token_latency_seconds', 'Histogram of inter-token latency in seconds.', ITL_BUCKETS);
    this.tpot = hist('vllm:request_time_per_output_token_seconds', 'Histogram of time_per_output_token_seconds per request.', ITL_BUCKETS);
    this.e2e = hist('vllm:e2e_request_latency_seconds', 'Histogram of e2e request latency in seconds.', REQUEST_LATENCY_BUCKETS);
    this.queue = hist('vllm:request_queue_time_seconds', 'Histogram of time spent in WAITING phase for request.', REQUEST_LATENCY_BUCKETS);
    this.inference = hist('vllm:request_inference_time_seconds', 'Histogram of time spent in RUNNING phase for request.', REQUEST_LATENCY_BUCKETS);
    this.prefill = hist('vllm:request_prefill_time_seconds', 'Histogram of time spent in PREFILL phase for request.', REQUEST_LATENCY_BUCKETS);
    this.decode = hist('vllm:request_decode_time_seconds', 'Histogram of time spent in DECODE phase for request.', REQUEST_LATENCY_BUCKETS);
    for (const reason of FINISH_REASONS) this.success.labels({ ...this.L, finished_reason: reason }).inc(0);
    for (const c of [this.prefixQueries, this.prefixHits, this.preemptions, this.promptTokens, this.generationTokens]) c.labels(this.L).inc(0);
    new Gauge({ name: 'vllm:cache_config_info', help: 'Information of the LLMEngine CacheConfig', labelNames: [...Object.keys(cfg.cacheConfigInfo), 'engine'], registers: r })
      .labels({ ...cfg.cacheConfigInfo, engine: '0' })
      .set(1);
    if (cfg.maxLoras !== undefined) {
      this.loraInfo = new Gauge({ name: 'vllm:lora_requests_info', help: 'Running stats on lora requests.', labelNames: ['max_lora', 'waiting_lora_adapters', 'running_lora_adapters'], registers: r });
    }
    if (cfg.v0Metrics) {
      const v0l = ['model_name'];
      this.v0 = {
        gpuCache: new Gauge({ name: 'vllm:gpu_cache_usage_perc', help: 'GPU KV-cache usage. 1 means 100 percent usage. (V0 name)', labelNames: v0l, registers: r }),
        cpuCache: new Gauge({ name: 'vllm:cpu_cache_usage_perc', help: 'CPU KV-cache usage. 1 means 100 percent usage. (V0 name)', labelNames: v0l, registers: r }),
        swapped: new Gauge({ name: 'vllm:num_requests_swapped', help: 'Number of requests swapped to CPU. (V0 name)', labelNames: v0l, registers: r }),
        hitRate: new Gauge({ name: 'vllm:gpu_prefix_cache_hit_rate', help: 'GPU prefix cache block hit rate. (V0 name)', labelNames: v0l, registers: r }),
        queries: new Counter({ name: 'vllm:gpu_prefix_cache_queries_total', help: 'GPU prefix cache queries, in terms of number of queried tokens. (early V1 name)', labelNames, registers: r }),
        hits: new Counter({ name: 'vllm:gpu_prefix_cache_hits_total', help: 'GPU prefix cache hits, in terms of number of cached tokens. (early V1 name)', labelNames, registers: r }),
        tpot: new Histogram({ name: 'vllm:time_per_output_token_seconds', help: 'Histogram of time per output token in seconds. (deprecated name)', labelNames, buckets: ITL_BUCKETS, registers: r }),
      };
      this.v0.queries.labels(this.L).inc(0);
      this.v0.hits.labels(this.L).inc(0);
    }
  }

  /** One engine step: tokens scheduled (prefill tokens + decode tokens). */
  observeStep(tokens: number): void {
    if (tokens > 0) this.iterationTokens.labels(this.L).observe(tokens);
  }

  /** A request's first token: its TTFT (s) and prompt tokens. */
  observeFirstToken(ttftS: number, promptTokens: number): void {
    this.ttft.labels(this.L).observe(ttftS);
    this.promptTokens.labels(this.L).inc(promptTokens);
  }

  /** `n` generated tokens (counter). */
  observeGenerated(n: number): void {
    if (n > 0) this.generationTokens.labels(this.L).inc(n);
  }

  /** One inter-token gap (s). */
  observeItl(s: number): void {
    this.itl.labels(this.L).observe(s);
    this.v0?.tpot.labels(this.L).observe(s);
  }

  /** A finished request (success counter by reason and the per-request histograms). */
  observeFinished(f: FinishedRequestStats): void {
    const L = this.L;
    this.success.labels({ ...L, finished_reason: f.reason }).inc();
    this.e2e.labels(L).observe(f.e2eS);
    this.reqPromptTokens.labels(L).observe(f.promptTokens);
    this.reqGenTokens.labels(L).observe(f.generationTokens);
    this.reqMaxGenTokens.labels(L).observe(f.maxGenerationTokens);
    if (f.maxTokensParam !== undefined) this.reqParamsMaxTokens.labels(L).observe(f.maxTokensParam);
    this.reqParamsN.labels(L).observe(1);
    if (f.queueS !== undefined) this.queue.labels(L).observe(f.queueS);
    if (f.prefillS !== undefined) {
      this.prefill.labels(L).observe(f.prefillS);
      this.reqPrefillKvComputed.labels(L).observe(Math.max(0, f.promptTokens - f.cachedTokens));
    }
    if (f.decodeS !== undefined) this.decode.labels(L).observe(f.decodeS);
    if (f.inferenceS !== undefined) this.inference.labels(L).observe(f.inferenceS);
    if (f.decodeS !== undefined && f.generationTokens > 1) this.tpot.labels(L).observe(f.decodeS / (f.generationTokens - 1));
  }

  /** Refreshes gauges and core-owned counters from a snapshot (call before rendering). `unixS` stamps `lora_requests_info`. */
  refresh(s: EngineSnapshot, unixS: number): void {
    const L = this.L;
    this.running.labels(L).set(s.running);
    this.waiting.labels(L).set(s.waiting);
    this.kvUsage.labels(L).set(s.kvCacheUsage);
    const c = s.counters;
    const inc = (ctr: Counter<string>, cur: number, key: keyof SimMetrics['lastCounters']) => {
      const d = cur - this.lastCounters[key];
      if (d > 0) ctr.labels(L).inc(d);
    };
    inc(this.prefixQueries, c.prefixCacheQueries, 'prefixQueries');
    inc(this.prefixHits, c.prefixCacheHits, 'prefixHits');
    inc(this.preemptions, c.preemptions, 'preemptions');
    if (this.v0) {
      const dq = c.prefixCacheQueries - this.lastCounters.prefixQueries;
      const dh = c.prefixCacheHits - this.lastCounters.prefixHits;
      if (dq > 0) this.v0.queries.labels(L).inc(dq);
      if (dh > 0) this.v0.hits.labels(L).inc(dh);
      const m = { model_name: L.model_name };
      this.v0.gpuCache.labels(m).set(s.kvCacheUsage);
      this.v0.cpuCache.labels(m).set(s.numCpuBlocks > 0 ? s.usedCpuBlocks / s.numCpuBlocks : 0);
      this.v0.swapped.labels(m).set(0);
      this.v0.hitRate.labels(m).set(c.prefixCacheQueries > 0 ? c.prefixCacheHits / c.prefixCacheQueries : 0);
    }
    this.lastCounters = { prefixQueries: c.prefixCacheQueries, prefixHits: c.prefixCacheHits, preemptions: c.preemptions };
    this.refreshLora(s, unixS);
  }

  /**
   * Stamps `vllm:lora_requests_info` for the current running/waiting adapter sets (vLLM does this on
   * every scheduler update; old label sets linger with their last timestamp). No-op without LoRA.
   */
  refreshLora(s: Pick<EngineSnapshot, 'runningAdapters' | 'waitingAdapters'>, unixS: number): void {
    if (!this.loraInfo) return;
    this.loraInfo
      .labels({ max_lora: String(this.cfg.maxLoras), running_lora_adapters: s.runningAdapters.join(','), waiting_lora_adapters: s.waitingAdapters.join(',') })
      .set(unixS);
  }

  /** Content type of `render()`'s text. */
  get contentType(): string {
    return 'text/plain; version=0.0.4; charset=utf-8';
  }

  /** The exposition text (bucket bounds in Python float form, e.g. `le="1.0"`). */
  async render(): Promise<string> {
    const text = await this.registry.metrics();
    return text.split('\n').map(pythonStyleLabels).join('\n');
  }
}
