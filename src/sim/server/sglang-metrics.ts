/**
 * `/metrics` of the simulator in SGLang's dialect (`--dialect sglang`), on a private prom-client
 * Registry. Names, types and default buckets from SGLang's `python/sglang/srt/metrics/collector.py`
 * (`SchedulerMetricsCollector`, `TokenizerMetricsCollector`; reference vllm-api.md §6).
 *
 * Label: `model_name` only (as in SGLang's documented sample, `docs/references/production_metrics.md`;
 * newer SGLang adds `engine_type`, `tp_rank`, `pp_rank`). Simulator choices, documented:
 * `sglang:cache_hit_rate` is the cumulative prefix-cache hit rate in tokens (SGLang computes it per
 * batch); `sglang:gen_throughput` is generated tokens per simulated second since the previous scrape;
 * `sglang:num_retracted_reqs` is the number of preemptions since the previous scrape.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineSnapshot } from '../core/types.ts';
import { pythonStyleLabels, type EngineMetricsSink, type FinishedRequestStats } from './metrics.ts';

/** `sglang:time_to_first_token_seconds` default buckets (s). */
export const SGLANG_TTFT_BUCKETS = [0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400];
/** `sglang:e2e_request_latency_seconds` default buckets (s). */
export const SGLANG_E2E_BUCKETS = [0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400, 600, 1200, 1800, 2400];
/** `sglang:inter_token_latency_seconds` default buckets (s). */
export const SGLANG_ITL_BUCKETS = [0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.06, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0];

/** SGLang-named metrics fed by the same server events as the vLLM set. */
export class SglangMetrics implements EngineMetricsSink {
  readonly registry = new Registry();
  private readonly L: { model_name: string };
  private readonly g: Record<'running' | 'queue' | 'usedTokens' | 'tokenUsage' | 'genThroughput' | 'hitRate' | 'maxTokens' | 'retracted', Gauge<string>>;
  private readonly promptTokens: Counter<string>;
  private readonly generationTokens: Counter<string>;
  private readonly cachedTokens: Counter<string>;
  private readonly numRequests: Counter<string>;
  private readonly aborted: Counter<string>;
  private readonly ttft: Histogram<string>;
  private readonly itl: Histogram<string>;
  private readonly e2e: Histogram<string>;
  private generated = 0;
  private last: { simMs: number; generated: number; preemptions: number } | null = null;

  /** `nowSimMs` gives the simulated clock (for `gen_throughput`). */
  constructor(
    modelName: string,
    private readonly nowSimMs: () => number,
  ) {
    const r = [this.registry];
    const labelNames = ['model_name'];
    this.L = { model_name: modelName };
    const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames, registers: r });
    const counter = (name: string, help: string) => {
      const c = new Counter({ name, help, labelNames, registers: r });
      c.labels(this.L).inc(0);
      return c;
    };
    this.g = {
      running: gauge('sglang:num_running_reqs', 'The number of running requests.'),
      usedTokens: gauge('sglang:num_used_tokens', 'The number of used tokens.'),
      tokenUsage: gauge('sglang:token_usage', 'The token usage.'),
      genThroughput: gauge('sglang:gen_throughput', 'The generation throughput (token/s).'),
      queue: gauge('sglang:num_queue_reqs', 'The number of requests in the waiting queue.'),
      hitRate: gauge('sglang:cache_hit_rate', 'The prefix cache hit rate.'),
      maxTokens: gauge('sglang:max_total_num_tokens', 'Maximum total number of tokens in the KV cache pool.'),
      retracted: gauge('sglang:num_retracted_reqs', 'The number of retracted requests.'),
    };
    this.promptTokens = counter('sglang:prompt_tokens_total', 'Number of prefill tokens processed.');
    this.generationTokens = counter('sglang:generation_tokens_total', 'Number of generation tokens processed.');
    this.cachedTokens = counter('sglang:cached_tokens_total', 'Number of cached prompt tokens.');
    this.numRequests = counter('sglang:num_requests_total', 'Number of requests processed.');
    this.aborted = counter('sglang:num_aborted_requests_total', 'Number of requests aborted.');
    const hist = (name: string, help: string, buckets: number[]) => new Histogram({ name, help, labelNames, buckets, registers: r });
    this.ttft = hist('sglang:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', SGLANG_TTFT_BUCKETS);
    this.itl = hist('sglang:inter_token_latency_seconds', 'Histogram of inter-token latency in seconds.', SGLANG_ITL_BUCKETS);
    this.e2e = hist('sglang:e2e_request_latency_seconds', 'Histogram of End-to-end request latency in seconds', SGLANG_E2E_BUCKETS);
  }

  observeStep(_tokens: number): void {}

  observeFirstToken(ttftS: number, promptTokens: number): void {
    this.ttft.labels(this.L).observe(ttftS);
    this.promptTokens.labels(this.L).inc(promptTokens);
  }

  observeGenerated(n: number): void {
    if (n <= 0) return;
    this.generated += n;
    this.generationTokens.labels(this.L).inc(n);
  }

  observeItl(s: number): void {
    this.itl.labels(this.L).observe(s);
  }

  observeFinished(f: FinishedRequestStats): void {
    this.numRequests.labels(this.L).inc();
    if (f.reason === 'abort') this.aborted.labels(this.L).inc();
    if (f.cachedTokens > 0) this.cachedTokens.labels(this.L).inc(f.cachedTokens);
    this.e2e.labels(this.L).observe(f.e2eS);
  }

  refresh(s: EngineSnapshot, _unixS: number, blockSize = 16): void {
    const L = this.L;
    this.g.running.labels(L).set(s.running);
    this.g.queue.labels(L).set(s.waiting);
    this.g.tokenUsage.labels(L).set(s.kvCacheUsage);
    this.g.usedTokens.labels(L).set(s.usedGpuBlocks * blockSize);
    this.g.maxTokens.labels(L).set(s.numGpuBlocks * blockSize);
    const c = s.counters;
    this.g.hitRate.labels(L).set(c.prefixCacheQueries > 0 ? c.prefixCacheHits / c.prefixCacheQueries : 0);
    const now = this.nowSimMs();
    if (this.last && now > this.last.simMs) {
      this.g.genThroughput.labels(L).set(((this.generated - this.last.generated) * 1000) / (now - this.last.simMs));
      this.g.retracted.labels(L).set(c.preemptions - this.last.preemptions);
    } else {
      this.g.genThroughput.labels(L).set(0);
      this.g.retracted.labels(L).set(0);
    }
    this.last = { simMs: now, generated: this.generated, preemptions: c.preemptions };
  }

  refreshLora(): void {}

  get contentType(): string {
    return 'text/plain; version=0.0.4; charset=utf-8';
  }

  async render(): Promise<string> {
    return (await this.registry.metrics()).split('\n').map(pythonStyleLabels).join('\n');
  }
}
