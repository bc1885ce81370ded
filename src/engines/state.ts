/**
 * The canonical engine state: what every component above `engines/` reads about an endpoint,
 * whatever the engine's dialect (vLLM V1, vLLM V0, SGLang). See ARCHITECTURE.md "Canonical signals".
 *
 * Rules:
 * - Engine signals are `undefined` when never observed. A failed scrape sets `stale: true` and keeps
 *   the last known values: a missing signal never reads as zero.
 * - Gateway-local counters (`inflightRequests`, `inflightTokens`) are always current, even between scrapes.
 */

/** Engine dialect of an endpoint: which metric names and admin endpoints it speaks. */
export type EngineDialect = 'vllm' | 'sglang';

/** Latency summary over a recent window, in milliseconds. */
export interface LatencySummaryMs {
  mean: number;
  p50?: number;
  p90?: number;
  p99?: number;
}

/** One endpoint (one engine replica) as routing and the controllers see it. */
export interface EndpointState {
  /** Stable id, unique in the fleet (e.g. `llama-8b-0` or the URL). */
  id: string;
  /** Base URL, e.g. `http://127.0.0.1:8001` (no trailing slash). */
  url: string;
  /** Base model served (the name clients put in `model`). */
  model: string;
  dialect: EngineDialect;
  /** Optional role label (e.g. `prefill`, `decode`) and free-form labels. */
  role?: string;
  labels?: Record<string, string>;
  /** True when the last health check passed; routing only uses ready endpoints. */
  ready: boolean;
  /** True when the last metrics scrape failed or is older than the staleness limit. */
  stale: boolean;
  /** Wall/virtual time (ms) of the last successful scrape, or null if none yet. */
  scrapedAtMs: number | null;

  // --- engine signals, from /metrics (undefined = never observed) ---
  /** Requests in the running batch (`vllm:num_requests_running`, `sglang:num_running_reqs`). */
  running?: number;
  /** Requests queued (`vllm:num_requests_waiting`, `sglang:num_queue_reqs`). */
  waiting?: number;
  /** KV cache usage, 0..1 (`vllm:kv_cache_usage_perc`, V0 `vllm:gpu_cache_usage_perc`, `sglang:token_usage`). */
  kvCacheUsage?: number;
  /** Prefix-cache hit rate 0..1 over the last scrape interval (delta hits / delta queries, tokens). */
  prefixCacheHitRate?: number;
  /** Prompt (prefill) and generation throughput, tokens/s, over the last scrape interval. */
  promptTokensPerS?: number;
  generationTokensPerS?: number;
  /** Engine-side latency summaries over the last scrape interval. */
  ttftMs?: LatencySummaryMs;
  itlMs?: LatencySummaryMs;
  /** Number of preemptions (counter, cumulative). */
  preemptions?: number;
  /** LoRA adapters loaded (running or waiting in `vllm:lora_requests_info`, or from /v1/models). */
  loraAdapters?: string[];
  /** `max_lora` from `vllm:lora_requests_info` (GPU adapter slots). */
  maxLoras?: number;

  // --- gateway-local counters (always current) ---
  /** Requests the gateway has sent to this endpoint that have not finished. */
  inflightRequests: number;
  /** Prompt + expected output tokens of those requests (tokens). */
  inflightTokens: number;
}

/** A fresh state for a newly registered endpoint (nothing observed yet). */
export function newEndpointState(init: Pick<EndpointState, 'id' | 'url' | 'model'> & Partial<EndpointState>): EndpointState {
  return {
    dialect: 'vllm',
    ready: false,
    stale: true,
    scrapedAtMs: null,
    inflightRequests: 0,
    inflightTokens: 0,
    ...init,
  };
}
