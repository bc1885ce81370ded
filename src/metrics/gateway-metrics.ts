/**
 * The gateway's own Prometheus metrics (`inferplane_*`), on a private prom-client registry per
 * gateway instance (so several gateways can live in one test process).
 *
 * Units: latencies in seconds (Prometheus convention), tokens as counts.
 * Hot-path note: prom-client hashes the label set on every `inc`/`observe`, even through a
 * `labels()` child. The per-request counters (requests, decisions, tokens) are therefore accumulated
 * in plain per-label-set numbers (`PendingCount`), and added with the public `inc(labels, n)` in the
 * counter's `collect()` hook, which prom-client runs before every read (`registry.metrics()`,
 * `/metrics`, `metric.get()`). What is exposed is identical. Histograms (TTFT/E2E/ITL) observe
 * directly through the public API (`HistogramSeries`).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { FleetRegistry } from '../fleet/registry.ts';

/** Latency buckets, seconds: 1 ms .. 60 s. */
const LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Increments of one counter label set not yet added to prom-client. */
class PendingCount {
  n = 0;
  constructor(readonly labels: Record<string, string>) {}
  inc(v = 1): void {
    this.n += v;
  }
}

/**
 * One histogram label set: forwards each observation to prom-client's public `observe(labels, v)`.
 * (Histograms are not deferred like counters: prom-client has no public API to add pre-bucketed
 * counts, and writing its internal state would tie us to one release's private layout.)
 */
class HistogramSeries {
  constructor(
    readonly labels: Record<string, string>,
    private readonly hist: Histogram<string>,
  ) {}
  /** Records one value (seconds). Non-finite values are dropped (prom-client would throw). */
  observe(v: number): void {
    if (Number.isFinite(v)) this.hist.observe(this.labels, v);
  }
}

function flushCounter(c: Counter<string>, pending: Iterable<PendingCount>): void {
  for (const p of pending) {
    if (p.n) {
      c.inc(p.labels, p.n);
      p.n = 0;
    }
  }
}

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
  /** Pending label sets per metric, flushed by that metric's `collect()`. */
  private readonly pendingRequests: PendingCount[] = [];
  private readonly pendingDecisions: PendingCount[] = [];
  private readonly pendingTokens: PendingCount[] = [];

  constructor(fleet?: FleetRegistry, opts: { defaultMetrics?: boolean } = {}) {
    const r = this.registry;
    const pr = this.pendingRequests;
    const pd = this.pendingDecisions;
    const pt = this.pendingTokens;
    const B = LATENCY_BUCKETS_S;
    this.requests = new Counter({ name: 'inferplane_requests_total', help: 'Requests answered by the gateway, by model, endpoint and HTTP status.', labelNames: ['model', 'endpoint', 'status'], registers: [r], collect() { flushCounter(this, pr); } });
    this.ttft = new Histogram({ name: 'inferplane_ttft_seconds', help: 'Time to first byte of the upstream response body (first token when streaming), seconds, as measured by the gateway.', labelNames: ['model', 'endpoint'], buckets: B, registers: [r] });
    this.e2e = new Histogram({ name: 'inferplane_e2e_seconds', help: 'End-to-end request latency at the gateway, seconds.', labelNames: ['model', 'endpoint'], buckets: B, registers: [r] });
    this.itl = new Histogram({ name: 'inferplane_itl_seconds', help: 'Mean inter-chunk latency of a streamed response, seconds.', labelNames: ['model', 'endpoint'], buckets: B, registers: [r] });
    this.upstreamErrors = new Counter({ name: 'inferplane_upstream_errors_total', help: 'Upstream failures by endpoint and kind (connect, timeout, status_5xx, aborted).', labelNames: ['endpoint', 'kind'], registers: [r] });
    this.retries = new Counter({ name: 'inferplane_retries_total', help: 'Requests re-sent to another endpoint before any byte reached the client.', labelNames: ['model'], registers: [r] });
    this.decisions = new Counter({ name: 'inferplane_routing_decisions_total', help: 'Routing decisions by model, strategy and chosen endpoint.', labelNames: ['model', 'strategy', 'endpoint'], registers: [r], collect() { flushCounter(this, pd); } });
    this.limitRejections = new Counter({ name: 'inferplane_limit_rejections_total', help: 'Requests rejected with 429, by limit (rpm, tpm, model_rps).', labelNames: ['limit'], registers: [r] });
    this.tokens = new Counter({ name: 'inferplane_tokens_total', help: 'Tokens from upstream usage, by model and kind (prompt, completion).', labelNames: ['model', 'kind'], registers: [r], collect() { flushCounter(this, pt); } });
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

  /**
   * The value at `root[k1][k2][k3]` (nested Maps keyed by the caller's own strings, whose hashes
   * V8 caches: no key string is built per request), created with `make` and listed in `list` once.
   */
  private static leaf<T>(root: Map<unknown, unknown>, k1: unknown, k2: unknown, k3: unknown, list: T[] | null, make: () => T): T {
    let m1 = root.get(k1) as Map<unknown, unknown> | undefined;
    if (!m1) root.set(k1, (m1 = new Map()));
    let m2 = m1.get(k2) as Map<unknown, T> | undefined;
    if (!m2) m1.set(k2, (m2 = new Map()));
    let v = m2.get(k3);
    if (!v) {
      v = make();
      m2.set(k3, v);
      list?.push(v);
    }
    return v;
  }
  private readonly byRequests = new Map<unknown, unknown>();
  private readonly byDecisions = new Map<unknown, unknown>();
  private readonly byObs = new Map<unknown, unknown>();
  private readonly byTokens = new Map<unknown, unknown>();

  /** `inferplane_requests_total{model,endpoint,status}`: the accumulator to `inc()`. */
  private requestCounter(model: string, endpoint: string, status: number): PendingCount {
    return GatewayMetrics.leaf(this.byRequests, model, endpoint, status, this.pendingRequests, () => new PendingCount({ model, endpoint, status: String(status) }));
  }
  /** `inferplane_routing_decisions_total{model,strategy,endpoint}` accumulator. */
  private decisionCounter(model: string, strategy: string, endpoint: string): PendingCount {
    return GatewayMetrics.leaf(this.byDecisions, model, strategy, endpoint, this.pendingDecisions, () => new PendingCount({ model, strategy, endpoint }));
  }
  /** `inferplane_ttft_seconds{model,endpoint}` series (observe seconds). */
  private ttftHistogram(model: string, endpoint: string): HistogramSeries {
    return GatewayMetrics.leaf(this.byObs, 't', model, endpoint, null, () => new HistogramSeries({ model, endpoint }, this.ttft));
  }
  /** `inferplane_e2e_seconds{model,endpoint}` series (observe seconds). */
  private e2eHistogram(model: string, endpoint: string): HistogramSeries {
    return GatewayMetrics.leaf(this.byObs, 'e', model, endpoint, null, () => new HistogramSeries({ model, endpoint }, this.e2e));
  }
  /** `inferplane_itl_seconds{model,endpoint}` series (observe seconds). */
  private itlHistogram(model: string, endpoint: string): HistogramSeries {
    return GatewayMetrics.leaf(this.byObs, 'i', model, endpoint, null, () => new HistogramSeries({ model, endpoint }, this.itl));
  }

  countRequest(model: string, endpoint: string, status: number): void {
    this.requestCounter(model, endpoint, status).inc();
  }
  observeTtft(model: string, endpoint: string, seconds: number): void {
    this.ttftHistogram(model, endpoint).observe(seconds);
  }
  observeE2e(model: string, endpoint: string, seconds: number): void {
    this.e2eHistogram(model, endpoint).observe(seconds);
  }
  observeItl(model: string, endpoint: string, seconds: number): void {
    this.itlHistogram(model, endpoint).observe(seconds);
  }
  countDecision(model: string, strategy: string, endpoint: string): void {
    this.decisionCounter(model, strategy, endpoint).inc();
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
    if (prompt) GatewayMetrics.leaf(this.byTokens, model, 'prompt', 0, this.pendingTokens, () => new PendingCount({ model, kind: 'prompt' })).inc(prompt);
    if (completion) GatewayMetrics.leaf(this.byTokens, model, 'completion', 0, this.pendingTokens, () => new PendingCount({ model, kind: 'completion' })).inc(completion);
  }

  /** Prometheus text exposition. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }
  get contentType(): string {
    return this.registry.contentType;
  }
}
