/**
 * The gateway's own Prometheus metrics (`inferplane_*`), on a private prom-client registry per
 * gateway instance (so several gateways can live in one test process).
 *
 * Units: latencies in seconds (Prometheus convention), tokens as counts.
 * Hot-path note: label children are cached in Maps so a request costs a few hash lookups, not a
 * prom-client label-set serialization per observation.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { FleetRegistry } from '../fleet/registry.ts';

/** Latency buckets, seconds: 1 ms .. 60 s. */
const LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'model' | 'endpoint' | 'status'>;
  readonly ttft: Histogram<'model' | 'endpoint'>;
  readonly e2e: Histogram<'model' | 'endpoint'>;
  readonly itl: Histogram<'model' | 'endpoint'>;
  readonly upstreamErrors: Counter<'endpoint' | 'kind'>;
  readonly retries: Counter<'model'>;
  readonly decisions: Counter<'model' | 'strategy' | 'endpoint'>;
  readonly limitRejections: Counter<'limit'>;
  readonly tokens: Counter<'model' | 'kind'>;
  readonly inflight: Gauge<'endpoint'>;
  readonly endpointStale: Gauge<'endpoint' | 'model'>;
  readonly endpointReady: Gauge<'endpoint' | 'model'>;
  private readonly cache = new Map<string, { inc(v?: number): void } | { observe(v: number): void }>();

  constructor(fleet?: FleetRegistry, opts: { defaultMetrics?: boolean } = {}) {
    const r = this.registry;
    this.requests = new Counter({ name: 'inferplane_requests_total', help: 'Requests answered by the gateway, by model, endpoint and HTTP status.', labelNames: ['model', 'endpoint', 'status'], registers: [r] });
    this.ttft = new Histogram({ name: 'inferplane_ttft_seconds', help: 'Time to first byte of the upstream response body (first token when streaming), seconds, as measured by the gateway.', labelNames: ['model', 'endpoint'], buckets: LATENCY_BUCKETS_S, registers: [r] });
    this.e2e = new Histogram({ name: 'inferplane_e2e_seconds', help: 'End-to-end request latency at the gateway, seconds.', labelNames: ['model', 'endpoint'], buckets: LATENCY_BUCKETS_S, registers: [r] });
    this.itl = new Histogram({ name: 'inferplane_itl_seconds', help: 'Mean inter-chunk latency of a streamed response, seconds.', labelNames: ['model', 'endpoint'], buckets: LATENCY_BUCKETS_S, registers: [r] });
    this.upstreamErrors = new Counter({ name: 'inferplane_upstream_errors_total', help: 'Upstream failures by endpoint and kind (connect, timeout, status_5xx, aborted).', labelNames: ['endpoint', 'kind'], registers: [r] });
    this.retries = new Counter({ name: 'inferplane_retries_total', help: 'Requests re-sent to another endpoint before any byte reached the client.', labelNames: ['model'], registers: [r] });
    this.decisions = new Counter({ name: 'inferplane_routing_decisions_total', help: 'Routing decisions by model, strategy and chosen endpoint.', labelNames: ['model', 'strategy', 'endpoint'], registers: [r] });
    this.limitRejections = new Counter({ name: 'inferplane_limit_rejections_total', help: 'Requests rejected with 429, by limit (rpm, tpm, model_rps).', labelNames: ['limit'], registers: [r] });
    this.tokens = new Counter({ name: 'inferplane_tokens_total', help: 'Tokens from upstream usage, by model and kind (prompt, completion).', labelNames: ['model', 'kind'], registers: [r] });
    const fleetRef = fleet;
    // Endpoint gauges are computed at scrape time from the registry (no hot-path cost).
    this.inflight = new Gauge({
      name: 'inferplane_inflight_requests',
      help: 'Requests in flight per endpoint (gateway-observed).',
      labelNames: ['endpoint'],
      registers: [r],
      collect() {
        this.reset();
        for (const e of fleetRef?.list() ?? []) this.set({ endpoint: e.id }, e.inflightRequests);
      },
    });
    this.endpointStale = new Gauge({
      name: 'inferplane_endpoint_stale',
      help: '1 when the last /metrics scrape of the endpoint failed or none succeeded yet.',
      labelNames: ['endpoint', 'model'],
      registers: [r],
      collect() {
        this.reset();
        for (const e of fleetRef?.list() ?? []) this.set({ endpoint: e.id, model: e.model }, e.stale ? 1 : 0);
      },
    });
    this.endpointReady = new Gauge({
      name: 'inferplane_endpoint_ready',
      help: '1 when the endpoint passes its health check.',
      labelNames: ['endpoint', 'model'],
      registers: [r],
      collect() {
        this.reset();
        for (const e of fleetRef?.list() ?? []) this.set({ endpoint: e.id, model: e.model }, e.ready ? 1 : 0);
      },
    });
    if (opts.defaultMetrics) collectDefaultMetrics({ register: r, prefix: 'inferplane_process_' });
  }

  private child<T>(key: string, make: () => T): T {
    let c = this.cache.get(key) as T | undefined;
    if (!c) {
      c = make();
      this.cache.set(key, c as never);
    }
    return c;
  }

  countRequest(model: string, endpoint: string, status: number): void {
    this.child(`r\0${model}\0${endpoint}\0${status}`, () => this.requests.labels(model, endpoint, String(status))).inc();
  }
  observeTtft(model: string, endpoint: string, seconds: number): void {
    this.child(`t\0${model}\0${endpoint}`, () => this.ttft.labels(model, endpoint)).observe(seconds);
  }
  observeE2e(model: string, endpoint: string, seconds: number): void {
    this.child(`e\0${model}\0${endpoint}`, () => this.e2e.labels(model, endpoint)).observe(seconds);
  }
  observeItl(model: string, endpoint: string, seconds: number): void {
    this.child(`i\0${model}\0${endpoint}`, () => this.itl.labels(model, endpoint)).observe(seconds);
  }
  countDecision(model: string, strategy: string, endpoint: string): void {
    this.child(`d\0${model}\0${strategy}\0${endpoint}`, () => this.decisions.labels(model, strategy, endpoint)).inc();
  }
  countUpstreamError(endpoint: string, kind: string): void {
    this.upstreamErrors.labels(endpoint, kind).inc();
  }
  countRetry(model: string): void {
    this.retries.labels(model).inc();
  }
  countLimitRejection(limit: string): void {
    this.limitRejections.labels(limit).inc();
  }
  countTokens(model: string, prompt: number, completion: number): void {
    if (prompt) this.child(`p\0${model}`, () => this.tokens.labels(model, 'prompt')).inc(prompt);
    if (completion) this.child(`c\0${model}`, () => this.tokens.labels(model, 'completion')).inc(completion);
  }

  /** Prometheus text exposition. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }
  get contentType(): string {
    return this.registry.contentType;
  }
}
