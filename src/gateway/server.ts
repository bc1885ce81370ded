/**
 * The gateway's HTTP pipeline: auth -> parse -> model -> strategy -> limits -> route -> proxy -> account.
 *
 * - Client side: `Http1Server` (`./http1.ts`: node:net + Node's llhttp parser, without `node:http`'s
 *   stream objects); upstream through one `UpstreamPool` per endpoint (`./upstream.ts`: keep-alive
 *   HTTP/1.1 built for this path; measured faster than undici here, see that module). Socket writes
 *   of one event-loop turn are coalesced (`./write-batch.ts`).
 * - Request bodies are read whole by the HTTP layer (413 above `maxBodyBytes`), parsed once (`JSON.parse`); the original
 *   bytes are forwarded unless the gateway must add `stream_options.include_usage` (streaming request
 *   by a key with a TPM limit whose client did not ask for usage).
 * - Responses stream through chunk by chunk with backpressure, byte for byte (the usage chunk the
 *   gateway itself requested is the only thing ever removed).
 * - Retries: a connection failure or a 5xx answer before any byte reached the client is retried on
 *   another endpoint (at most `maxAttempts` attempts, each on an endpoint not tried yet). A refused
 *   connection also marks the endpoint not ready until its health check passes again.
 * - Client disconnect aborts the upstream request (`RequestAbort` -> the exchange's `abort`).
 * - Errors: OpenAI envelope with stable codes (`./errors.ts`); upstream errors pass through with
 *   their status and body.
 * - Response headers: `x-request-id`, `target-pod` (endpoint id), `x-routing-strategy`, plus the
 *   strategy's own headers (`x-session-id` for session affinity), `x-config-profile` when a profile applied.
 * - One pino JSON line per request (async destination, never blocks the event loop).
 *
 * Compare AIBrix (`../shared/reference/aibrix-gateway.md`): no retries there (§10.1), upstream 500
 * bodies replaced (§1.4; we pass them through), single-candidate shortcut that skips the router
 * (§1.3; we always route, so session headers and stateful strategies see every request).
 */
import { Http1Server, type Http1Request, type Http1Response, type RequestLike, type ResponseLike } from './http1.ts';
import { randomUUID } from 'node:crypto';
import { UpstreamPool, UpstreamError, type UpstreamHandler as UpstreamHandlerContract } from './upstream.ts';
import type { Logger } from 'pino';
import { createLogger } from './log.ts';
import { ApiError } from '../openai/errors.ts';
import type { EndpointState } from '../engines/state.ts';
import type { FleetConfig, ModelConfig } from '../fleet/config.ts';
import type { FleetRegistry } from '../fleet/registry.ts';
import type { RoutingContext, RoutingRequest, RoutingStrategy } from '../routing/types.ts';
import { GatewayMetrics } from '../metrics/gateway-metrics.ts';
import * as E from './errors.ts';
import { KeyStore, type ApiKeyInfo } from './keys.ts';
import type { LimitsGate } from './limits.ts';
import { parseInference, type InferenceKind, type ParsedInference } from './parse.ts';
import { readJsonObject, sendJson } from './http-json.ts';
import { StrategySelector } from './select.ts';
import { GatewayKvEvents } from './kv-events.ts';
import { isKvEventSink } from '../routing/cache/kv-aware.ts';
import { UsageStripper, UsageTap, usageFromJson, type TokenUsage } from './stream.ts';

export type GatewaySettings = FleetConfig['gateway'];

export interface GatewayOptions {
  fleet: FleetRegistry;
  settings: GatewaySettings;
  apiKeys?: readonly ApiKeyInfo[];
  limits?: LimitsGate;
  /** Logger; default pino at `settings.logLevel` to stdout through an async destination. */
  logger?: Logger;
  /** Clock and randomness (tests may fix them). */
  now?: () => number;
  random?: () => number;
}

/**
 * What the controllers (`src/gateway/controllers.ts`) give the request path; absent when they do not
 * run. Kept as an interface so the gateway does not depend on `src/control`.
 */
export interface ControlHooks {
  /** True when `model` may sit at zero replicas (its requests then wait for a cold start). */
  scalesToZero(model: string): boolean;
  /** A request arrived for `model` with no ready replica: start one (AutoscalerController.wake). */
  wake(model: string): void;
  /** Base model of a declared LoRA adapter (not being deleted), else undefined. */
  adapterBaseModel(adapter: string): string | undefined;
  /** Endpoint ids the adapter manager has loaded (or is loading) `adapter` on. */
  adapterEndpoints(adapter: string): readonly string[];
  /** Loads `adapter` on some ready endpoint now and resolves with its id (AdapterManager.ensure). */
  ensureAdapter(adapter: string): Promise<string>;
  /** A request for `adapter` was routed to `endpointId` (AdapterManager.touch, for LRU eviction). */
  touchAdapter(adapter: string, endpointId: string): void;
}

/** One request held while its model starts from zero replicas. */
interface ColdWaiter {
  /** A replica became ready: continue. */
  ready(): void;
  /** The gateway is draining: fail with 503. */
  fail(err: ApiError): void;
}

/** Outcome of one upstream exchange (see `Gateway.exchange`). */
type Exchange =
  | { kind: 'error'; err: unknown }
  | { kind: 'retry'; status: number }
  | { kind: 'broken'; err: unknown; status: number; usage?: TokenUsage }
  | { kind: 'done'; status: number; usage?: TokenUsage; sse: boolean; firstMs: number; lastMs: number; chunks: number };

/** Gateway-measured latency per endpoint (EWMA, ms). */
export interface ObservedLatency {
  ttftMs?: number;
  itlMs?: number;
  requests: number;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization', 'content-length']);
/** Bound on the cached per-combination request loggers (model names come from clients). */
const MAX_REQUEST_LOGGERS = 10_000;
/**
 * Distinct unknown model names that get their own `model` label on `inferplane_requests_total`;
 * later ones are counted as `(other)` (names come from clients: unbounded label sets would grow
 * the registry and every scrape without limit).
 */
const MAX_UNKNOWN_MODEL_LABELS = 100;
const KIND_BY_PATH: Record<string, InferenceKind> = {
  '/v1/chat/completions': 'chat',
  '/v1/completions': 'completion',
  '/v1/embeddings': 'embedding',
};

function sendError(res: Http1Response, err: ApiError, requestId?: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(err.toBody());
  const h: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...err.headers };
  if (requestId) h['x-request-id'] = requestId;
  res.writeHead(err.status, h);
  res.end(body);
}

/** A request header as one string (`set-cookie`, the only array-valued one, is never read here). */
function headerString(v: string | string[] | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function classify(e: unknown): 'timeout' | 'connect' | 'aborted' | 'other' {
  if (e instanceof UpstreamError) {
    if (e.code === 'UPSTREAM_HEADERS_TIMEOUT' || e.code === 'UPSTREAM_BODY_TIMEOUT' || e.code === 'UPSTREAM_CONNECT_TIMEOUT') return 'timeout';
    if (e.code === 'UPSTREAM_ABORTED') return 'aborted';
    if (e.code === 'UPSTREAM_CLOSED' || e.code === 'UPSTREAM_DESTROYED') return 'connect';
    return 'other';
  }
  if ((e as Error)?.name === 'AbortError') return 'aborted';
  const code = (e as { code?: string })?.code;
  if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'EHOSTUNREACH' || code === 'ENOTFOUND' || code === 'ETIMEDOUT' || code === 'ENETUNREACH') return 'connect';
  return 'other';
}

/** The gateway server. `start()` listens; `drain()` stops gracefully; `close()` stops now. */
export class Gateway {
  readonly fleet: FleetRegistry;
  readonly settings: GatewaySettings;
  readonly keys: KeyStore;
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
  readonly observed = new Map<string, ObservedLatency>();
  private readonly selector: StrategySelector;
  /** KV-event subscriptions of the endpoints that publish them, feeding `kv-aware` / `cache-cost-kv`. */
  readonly kvEvents: GatewayKvEvents;
  private readonly limits?: LimitsGate;
  private readonly pools = new Map<string, UpstreamPool>();
  private readonly server: Http1Server;
  /** Abort handles of requests in flight upstream (aborted by drain and by a client disconnect). */
  private readonly active = new Set<RequestAbort>();
  private readonly now: () => number;
  private readonly random: () => number;
  private draining = false;
  private readonly adminMounts: ((req: RequestLike, res: ResponseLike) => Promise<boolean>)[] = [];
  /** Requests and tokens (prompt estimate + max_tokens) routed per model since the last `takeArrivals`. */
  private readonly arrivals = new Map<string, { requests: number; tokens: number }>();
  private inflight = 0;
  /** Child loggers by endpoint, model, strategy, key name, path, status * 16 + attempts (see `requestLogger`). */
  private readonly requestLoggers = new Map<string, Map<string, Map<string, Map<string, Map<string, Map<number, Logger>>>>>>();
  private requestLoggerCount = 0;
  /** Unknown model names given their own metrics label so far (at most `MAX_UNKNOWN_MODEL_LABELS`). */
  private readonly unknownModels = new Set<string>();
  private idleWaiters: (() => void)[] = [];
  private control?: ControlHooks;
  /** Requests held per model while it starts from zero replicas (bounded by `settings.coldStartQueue`). */
  private readonly coldWaiters = new Map<string, Set<ColdWaiter>>();

  constructor(opts: GatewayOptions) {
    this.fleet = opts.fleet;
    this.settings = opts.settings;
    this.keys = new KeyStore(opts.apiKeys);
    this.limits = opts.limits;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.metrics = new GatewayMetrics(this.fleet, { defaultMetrics: true });
    this.log = opts.logger ?? createLogger(this.settings.logLevel).child({ component: 'gateway' });
    this.selector = new StrategySelector(this.settings.routing, (m, s) => this.kvEvents.addStrategy(m.name, s));
    this.kvEvents = new GatewayKvEvents(this.fleet, this.log, (model) => this.modelConsumesKvEvents(model));
    this.kvEvents.registerMetrics(this.metrics.registry);
    this.kvEvents.start();
    const maxBody = this.settings.maxBodyBytes;
    this.server = new Http1Server({
      onRequest: (req, res) => this.dispatch(req, res),
      maxBodyBytes: maxBody,
      keepAliveTimeoutMs: 65_000,
      headersTimeoutMs: 60_000,
      requestTimeoutMs: 300_000,
      // Errors the HTTP layer answers itself (bad HTTP, 413, 408, ...) in the OpenAI envelope.
      errorBody: (status, message, code) => JSON.stringify((status === 413 ? E.bodyTooLarge(maxBody) : new ApiError(status, message, 'invalid_request_error', code)).toBody()),
    });
    this.fleet.on('remove', (ep: EndpointState) => {
      const p = this.pools.get(ep.id);
      if (p) {
        this.pools.delete(ep.id);
        p.close().catch(() => undefined);
      }
      this.observed.delete(ep.id);
      for (const s of this.selector.instances()) s.onEndpointRemoved?.(ep.id);
    });
    this.fleet.on('ready', (ep: EndpointState) => {
      const q = this.coldWaiters.get(ep.model);
      if (q) for (const w of [...q]) w.ready();
    });
  }

  /**
   * False only when `model`'s routing is locked to a strategy that consumes no KV events (then its
   * endpoints' KV-event publishers are not followed); a request may otherwise name `kv-aware`.
   */
  private modelConsumesKvEvents(model: string): boolean {
    const cfg = this.fleet.modelConfig(model);
    if (!cfg?.lockedRoutingStrategy) return true;
    try {
      return isKvEventSink(this.selector.strategyFor(cfg, cfg.lockedRoutingStrategy));
    } catch {
      return false;
    }
  }

  /** Connects the controllers to the request path (scale from zero, LoRA adapters); see `ControlHooks`. */
  setControlHooks(hooks: ControlHooks): void {
    this.control = hooks;
  }

  /**
   * Requests of `model` held now while it starts from zero replicas (the gateway's queue; read by the
   * autoscaler's signal source as `queuedRequests`).
   */
  queuedRequests(model: string): number {
    return this.coldWaiters.get(model)?.size ?? 0;
  }

  /**
   * Holds a request until a replica of `model` is ready (the `ready` event of the fleet), after asking
   * the controllers to start one. Bounded: `settings.coldStartQueue` waiters per model and
   * `settings.coldStartTimeoutMs` each.
   * @throws ApiError 503 `cold_start_queue_full` / `cold_start_timeout` / `draining`; 499 when the client leaves.
   */
  private waitForReplica(model: string, res: Http1Response): Promise<void> {
    let q = this.coldWaiters.get(model);
    const max = this.settings.coldStartQueue;
    if ((q?.size ?? 0) >= max) return Promise.reject(E.coldStartQueueFull(model, max));
    if (!q) this.coldWaiters.set(model, (q = new Set()));
    const queue = q;
    this.control!.wake(model);
    const ms = this.settings.coldStartTimeoutMs;
    return new Promise<void>((resolve, reject) => {
      const end = (err?: ApiError) => {
        clearTimeout(timer);
        res.off('close', gone);
        queue.delete(w);
        if (queue.size === 0 && this.coldWaiters.get(model) === queue) this.coldWaiters.delete(model);
        if (err) reject(err);
        else resolve();
      };
      const w: ColdWaiter = { ready: () => end(), fail: (err) => end(err) };
      const timer = setTimeout(() => end(E.coldStartTimeout(model, ms)), ms);
      const gone = () => end(E.clientClosed());
      res.on('close', gone);
      queue.add(w);
    });
  }

  /**
   * Mounts extra admin routes (e.g. the controllers' `createControlAdminHandler`), tried in order
   * after admin authentication; a handler resolves true when it answered the request.
   */
  mountAdmin(handler: (req: RequestLike, res: ResponseLike) => Promise<boolean>): void {
    this.adminMounts.push(handler);
  }

  /**
   * Requests and tokens that arrived for `model` since the previous call (counted when a request
   * is admitted and routed; tokens = prompt estimate + requested max_tokens). Resets the counts.
   * Read by the autoscaler's signal source.
   */
  takeArrivals(model: string): { requests: number; tokens: number } {
    const a = this.arrivals.get(model);
    if (!a) return { requests: 0, tokens: 0 };
    this.arrivals.delete(model);
    return a;
  }

  /** Listens; resolves with the bound port. */
  async start(port = this.settings.port, host = this.settings.host): Promise<number> {
    return this.server.listen(port, host);
  }

  get port(): number {
    return this.server.address()?.port ?? 0;
  }

  /** Requests being served now. */
  get inflightRequests(): number {
    return this.inflight;
  }

  /**
   * Graceful stop: stop accepting connections, answer new requests on open connections with 503
   * `draining`, wait for in-flight requests up to `graceMs`, then abort what is left and close.
   * Resolves with the number of requests that had to be aborted.
   */
  async drain(graceMs = this.settings.drainGraceMs): Promise<number> {
    this.draining = true;
    for (const q of this.coldWaiters.values()) for (const w of [...q]) w.fail(E.draining());
    this.server.close();
    // Idle keep-alive connections are closed; busy ones close after their response.
    this.server.closeIdleConnections();
    if (this.inflight > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, graceMs);
        this.idleWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    const aborted = this.active.size;
    for (const ac of this.active) ac.abort();
    await this.close();
    return aborted;
  }

  /** Immediate stop: closes the server, every client socket and the upstream pools. */
  async close(): Promise<void> {
    this.draining = true;
    this.server.close();
    this.server.destroyAll();
    await Promise.all([...this.pools.values()].map((p) => p.destroy().catch(() => undefined)));
    this.pools.clear();
    await this.kvEvents.close().catch(() => undefined);
    await this.limits?.close().catch(() => undefined);
    this.log.flush?.();
  }

  private pool(ep: EndpointState): UpstreamPool {
    let p = this.pools.get(ep.id);
    if (!p) {
      p = new UpstreamPool(ep.url, {
        connections: 256,
        headersTimeoutMs: this.settings.upstreamTimeoutMs,
        bodyTimeoutMs: this.settings.upstreamTimeoutMs,
        connectTimeoutMs: Math.min(10_000, this.settings.upstreamTimeoutMs),
      });
      this.pools.set(ep.id, p);
    }
    return p;
  }

  private dispatch(req: Http1Request, res: Http1Response): void {
    const rawUrl = req.url;
    const q = rawUrl.indexOf('?');
    const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const method = req.method;
    if (method === 'POST' && KIND_BY_PATH[path]) {
      this.handleInference(req, res, KIND_BY_PATH[path]!, path).catch((e) => this.fail(res, e));
      return;
    }
    if (path === '/health') {
      if (method !== 'GET' && method !== 'HEAD') return sendError(res, E.methodNotAllowed(method, path));
      const ready = !this.draining;
      res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: ready ? 'ok' : 'draining' }));
      return;
    }
    if (path === '/metrics') {
      this.metrics.text().then(
        (t) => {
          res.writeHead(200, { 'content-type': this.metrics.contentType });
          res.end(t);
        },
        (e) => this.fail(res, e),
      );
      return;
    }
    if (path === '/v1/models') {
      if (method !== 'GET') return sendError(res, E.methodNotAllowed(method, path));
      return this.models(req, res);
    }
    if (path.startsWith('/admin/')) {
      this.admin(req, res, method, path).catch((e) => this.fail(res, e));
      return;
    }
    if (path.startsWith('/v1/') && method === 'POST') {
      this.handleInference(req, res, 'other', path).catch((e) => this.fail(res, e));
      return;
    }
    sendError(res, E.notFound(path));
  }

  private fail(res: Http1Response, e: unknown): void {
    if (e instanceof ApiError) return sendError(res, e);
    this.log.error({ err: e }, 'internal error');
    sendError(res, new ApiError(500, `internal gateway error: ${(e as Error)?.message ?? String(e)}`, 'api_error', 'internal_error'));
  }

  private models(req: Http1Request, res: Http1Response): void {
    try {
      this.keys.authenticate(headerString(req.headers.authorization));
    } catch (e) {
      return sendError(res, e as ApiError);
    }
    const data: Record<string, unknown>[] = this.fleet.modelNames().map((id) => ({ id, object: 'model', created: 0, owned_by: 'inferplane', root: id, parent: null }));
    for (const [adapter, base] of this.fleet.adapters()) if (!this.fleet.modelConfig(adapter)) data.push({ id: adapter, object: 'model', created: 0, owned_by: 'inferplane', root: adapter, parent: base });
    const body = JSON.stringify({ object: 'list', data });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  private async handleInference(req: Http1Request, res: Http1Response, kind: InferenceKind, path: string): Promise<void> {
    const t0 = this.now();
    const hdr = req.headers;
    const given = hdr['x-request-id'];
    const requestId = typeof given === 'string' && given.length > 0 && given.length <= 128 ? given : randomUUID();
    if (this.draining) {
      return sendError(res, E.draining(), requestId);
    }
    this.inflight++;
    let status = 0;
    let modelName = '';
    let modelKnown = false;
    let endpointId = '';
    let strategyName = '';
    let reason = '';
    let attempts = 0;
    let usage: TokenUsage | undefined;
    let ttftMs: number | undefined;
    let keyName: string | undefined;
    let errCode: string | number | null = null;
    let rpsModel: string | undefined;
    try {
      const key = this.keys.authenticate(headerString(hdr.authorization));
      keyName = key?.name;
      const raw = req.body; // whole, at most maxBodyBytes (the HTTP layer answered 413 otherwise)
      const parsed = parseInference(kind, raw);
      modelName = parsed.model;
      let resolved = this.fleet.resolveModel(parsed.model);
      if (!resolved && this.control) {
        // A declared adapter not loaded anywhere yet: its base model serves it once loaded.
        const base = this.control.adapterBaseModel(parsed.model);
        if (base !== undefined && this.fleet.modelConfig(base)) resolved = { model: base, adapter: parsed.model };
      }
      if (!resolved) throw kind === 'other' ? E.notFound(path) : E.modelNotFound(parsed.model);
      modelKnown = true;
      const model = this.fleet.modelConfig(resolved.model)!;
      const sel = this.selector.select(model, hdr['routing-strategy'] as string | undefined, hdr['config-profile'] as string | undefined, parsed.promptLengthEstimate, parsed.maxTokens);
      // A request for an adapter goes by `lora-affinity` unless the client or the model fixed the strategy.
      if (resolved.adapter && sel.source !== 'header' && sel.source !== 'locked') {
        sel.spec = 'lora-affinity';
        sel.strategy = this.selector.strategyFor(model, sel.spec);
      }
      strategyName = sel.spec;
      if (this.limits && (key?.rpm || key?.tpm || sel.requestsPerSecond)) {
        await this.limits.admit(key, resolved.model, sel.requestsPerSecond, t0);
        if (sel.requestsPerSecond) rpsModel = resolved.model;
      }
      // Scale from zero: hold the request while a replica of a model at zero starts.
      if (this.control && this.fleet.readyEndpoints(resolved.model).length === 0 && this.control.scalesToZero(resolved.model)) await this.waitForReplica(resolved.model, res);
      // A LoRA adapter is routed only to endpoints that have it (scraped) or that the adapter
      // manager has placed it on; when there is none, it is loaded now on one endpoint.
      let only: Set<string> | undefined;
      if (resolved.adapter) only = await this.adapterEndpoints(resolved.model, resolved.adapter);
      const sid = hdr['x-session-id'];
      const uid = hdr['x-user-id'];
      const rreq: RoutingRequest = new GatewayRoutingRequest(
        requestId,
        parsed,
        resolved.model,
        resolved.adapter,
        typeof sid === 'string' && sid ? sid : undefined,
        typeof uid === 'string' && uid ? uid : key?.name,
        hdr as Readonly<Record<string, string>>,
        t0,
      );
      const arr = this.arrivals.get(resolved.model);
      const arrTokens = parsed.promptLengthEstimate + (parsed.maxTokens ?? 0);
      if (arr) (arr.requests++, (arr.tokens += arrTokens));
      else this.arrivals.set(resolved.model, { requests: 1, tokens: arrTokens });
      // Ask the engine for usage when a TPM limit needs it and the client did not ask.
      let upstreamBody = raw;
      let strip = false;
      if (parsed.stream && key?.tpm && !parsed.includeUsage && kind !== 'other') {
        const so = parsed.body.stream_options;
        parsed.body.stream_options = { ...(so && typeof so === 'object' ? so : {}), include_usage: true };
        upstreamBody = Buffer.from(JSON.stringify(parsed.body));
        strip = true;
      }
      const out = await this.proxy(req, res, {
        path,
        requestId,
        model,
        sel: { strategy: sel.strategy, spec: sel.spec, profile: sel.profile },
        only,
        rreq,
        parsed,
        body: upstreamBody,
        strip,
        t0,
      });
      status = out.status;
      endpointId = out.endpoint;
      reason = out.reason;
      attempts = out.attempts;
      usage = out.usage;
      ttftMs = out.ttftMs;
      if (resolved.adapter && this.control) this.control.touchAdapter(resolved.adapter, endpointId);
      if (usage && key?.tpm && this.limits) await this.limits.addTokens(key, usage.totalTokens, this.now()).catch((e) => this.log.warn({ err: e, requestId }, 'tpm accounting failed'));
      if (usage) this.metrics.countTokens(resolved.model, usage.promptTokens, usage.completionTokens);
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(500, `internal gateway error: ${(e as Error)?.message ?? String(e)}`, 'api_error', 'internal_error');
      if (!(e instanceof ApiError)) this.log.error({ err: e, requestId }, 'internal error');
      if (err.status === 429) this.metrics.countLimitRejection(err.headers['x-ratelimit-limit-kind'] ?? 'unknown');
      status = err.status;
      errCode = err.code;
      // Not routed at all: give the model-RPS slot back (AIBrix does the same, aibrix-gateway.md §4).
      if (rpsModel && err.code === 'no_ready_endpoint') this.limits?.release(rpsModel, t0).catch(() => undefined);
      if (!res.headersSent && strategyName) res.setHeader('x-routing-strategy', strategyName);
      sendError(res, err, requestId);
    } finally {
      const e2eMs = this.now() - t0;
      this.metrics.countRequest(!modelName ? '-' : modelKnown ? modelName : this.unknownModelLabel(modelName), endpointId || '-', status);
      if (endpointId) this.metrics.observeE2e(modelName, endpointId, e2eMs / 1000);
      const rlog = endpointId && errCode === null && attempts < 16 ? this.requestLogger(path, modelName, keyName, endpointId, strategyName, status, attempts) : undefined;
      if (rlog) {
        // Routed and answered: path, model, key, endpoint, strategy, status and attempts are the
        // child logger's pre-serialized bindings; only what varies per request is serialized here.
        rlog.info({ requestId, reason: reason || undefined, ttftMs, e2eMs, promptTokens: usage?.promptTokens, completionTokens: usage?.completionTokens }, 'request');
      } else {
        this.log.info(
          {
            requestId,
            path,
            model: modelName,
            key: keyName,
            status,
            code: errCode ?? undefined,
            endpoint: endpointId || undefined,
            strategy: strategyName || undefined,
            reason: reason || undefined,
            attempts,
            ttftMs,
            e2eMs,
            promptTokens: usage?.promptTokens,
            completionTokens: usage?.completionTokens,
          },
          'request',
        );
      }
      this.inflight--;
      if (this.inflight === 0 && this.idleWaiters.length) {
        const w = this.idleWaiters;
        this.idleWaiters = [];
        w.forEach((f) => f());
      }
    }
  }

  /** The metrics label of an unknown model name: itself for the first `MAX_UNKNOWN_MODEL_LABELS` distinct ones, then `(other)`. */
  private unknownModelLabel(name: string): string {
    if (this.unknownModels.has(name)) return name;
    if (this.unknownModels.size >= MAX_UNKNOWN_MODEL_LABELS) return '(other)';
    this.unknownModels.add(name);
    return name;
  }

  /**
   * The child logger carrying `{path, model, key, endpoint, strategy, status, attempts}` (attempts < 16) for one combination (pino
   * serializes a child's bindings once). Kept per combination, at most `MAX_REQUEST_LOGGERS`; beyond
   * that undefined (the caller logs the full object).
   */
  private requestLogger(path: string, model: string, key: string | undefined, endpoint: string, strategy: string, status: number, attempts: number): Logger | undefined {
    let a = this.requestLoggers.get(endpoint);
    if (!a) this.requestLoggers.set(endpoint, (a = new Map()));
    let b = a.get(model);
    if (!b) a.set(model, (b = new Map()));
    let c = b.get(strategy);
    if (!c) b.set(strategy, (c = new Map()));
    const k = key ?? '';
    let d = c.get(k);
    if (!d) c.set(k, (d = new Map()));
    let e = d.get(path);
    if (!e) d.set(path, (e = new Map()));
    const sa = status * 16 + attempts;
    let l = e.get(sa);
    if (!l) {
      if (this.requestLoggerCount >= MAX_REQUEST_LOGGERS) return undefined;
      this.requestLoggerCount++;
      e.set(sa, (l = this.log.child({ path, model, key, endpoint, strategy, status, attempts })));
    }
    return l;
  }

  private async proxy(
    req: Http1Request,
    res: Http1Response,
    p: {
      path: string;
      requestId: string;
      model: ModelConfig;
      sel: { strategy: RoutingStrategy; spec: string; profile?: string };
      /** Route only to these endpoint ids (a LoRA adapter's endpoints), when given. */
      only?: Set<string>;
      rreq: RoutingRequest;
      parsed: ParsedInference;
      body: Buffer;
      strip: boolean;
      t0: number;
    },
  ): Promise<{ status: number; endpoint: string; reason: string; attempts: number; usage?: TokenUsage; ttftMs?: number }> {
    const ctx: RoutingContext = { nowMs: p.t0, random: this.random };
    const strategy = p.sel.strategy;
    const baseModel = p.rreq.baseModel;
    const tried: string[] = [];
    const ac = new RequestAbort(res);
    this.active.add(ac);
    const onClose = ac.onClose;
    res.on('close', onClose);
    const headers: Record<string, string> = { 'content-type': 'application/json', 'x-request-id': p.requestId };
    if (p.model.upstreamApiKey) headers.authorization = `Bearer ${p.model.upstreamApiKey}`;
    const accept = headerString(req.headers.accept);
    if (accept) headers.accept = accept;
    let lastErr: ApiError | undefined;
    let lastReason = '';
    try {
      for (let attempt = 1; attempt <= this.settings.maxAttempts; attempt++) {
        let candidates = this.candidates(baseModel, p.only);
        if (tried.length) candidates = candidates.filter((e) => !tried.includes(e.id));
        if (candidates.length === 0) {
          if (lastErr) throw lastErr;
          if (p.only) throw E.noReadyEndpoint(baseModel, `no ready endpoint has LoRA adapter ${p.rreq.adapter}`);
          throw E.noReadyEndpoint(baseModel, this.fleet.endpointsOf(baseModel).length ? 'all endpoints are unhealthy' : 'the model has no endpoints');
        }
        ctx.nowMs = attempt === 1 ? p.t0 : this.now();
        const decision = strategy.route(p.rreq, candidates, ctx);
        const ep = decision.endpoint;
        if (!ep) {
          if (lastErr) throw lastErr;
          throw E.noReadyEndpoint(baseModel, decision.reason);
        }
        lastReason = decision.reason;
        tried.push(ep.id);
        this.metrics.countDecision(baseModel, p.sel.spec, ep.id);
        if (attempt > 1) this.metrics.countRetry(baseModel);
        const tokens = p.rreq.promptLength + (p.rreq.maxTokens ?? 0);
        ep.inflightRequests++;
        ep.inflightTokens += tokens;
        strategy.onRequestStart?.(p.rreq, ep, ctx);
        const sendMs = this.now();
        let ok = false;
        let usage: TokenUsage | undefined;
        try {
          const canRetry5xx = attempt < this.settings.maxAttempts && this.candidates(baseModel, p.only).some((e) => !tried.includes(e.id));
          const out = await this.exchange(res, ep, ac, headers, p, decision.headers, canRetry5xx, strategy, ctx);
          if (out.kind === 'error') {
            if (ac.clientGone) throw new ApiError(499, 'client closed the request', 'api_error', 'client_closed');
            const kind = classify(out.err);
            this.metrics.countUpstreamError(ep.id, kind);
            if (kind === 'timeout') throw E.upstreamTimeout(ep.id, this.settings.upstreamTimeoutMs);
            if (kind === 'connect') this.fleet.setReady(ep.id, false); // passive health check
            lastErr = E.upstreamUnreachable(ep.id, (out.err as Error)?.message || (out.err as { code?: string })?.code || 'error');
            continue; // nothing was sent to the client: retry on another endpoint
          }
          if (out.kind === 'retry') {
            // 5xx before any byte was sent: retry elsewhere.
            this.metrics.countUpstreamError(ep.id, 'status_5xx');
            lastErr = E.upstreamUnreachable(ep.id, `status ${out.status}`);
            continue;
          }
          usage = out.usage;
          if (out.kind === 'broken') {
            // Failure after the response started (mid-stream): nothing can be retried.
            const kind = ac.clientGone ? 'aborted' : classify(out.err);
            this.metrics.countUpstreamError(ep.id, kind);
            res.destroy();
            return { status: ac.clientGone ? 499 : 502, endpoint: ep.id, reason: `${decision.reason}; stream broken (${kind})`, attempts: attempt, usage };
          }
          const ttft = out.chunks > 0 ? out.firstMs - sendMs : undefined;
          if (ttft !== undefined) {
            this.metrics.observeTtft(baseModel, ep.id, ttft / 1000);
            const obs = this.observed.get(ep.id) ?? { requests: 0 };
            obs.requests++;
            obs.ttftMs = obs.ttftMs === undefined ? ttft : obs.ttftMs * 0.8 + ttft * 0.2;
            if (out.sse && out.chunks > 1) {
              const itl = (out.lastMs - out.firstMs) / (out.chunks - 1);
              obs.itlMs = obs.itlMs === undefined ? itl : obs.itlMs * 0.8 + itl * 0.2;
              this.metrics.observeItl(baseModel, ep.id, itl / 1000);
            }
            this.observed.set(ep.id, obs);
          }
          ok = out.status < 400;
          return { status: out.status, endpoint: ep.id, reason: decision.reason, attempts: attempt, usage, ttftMs: ttft };
        } finally {
          ep.inflightRequests--;
          ep.inflightTokens -= tokens;
          strategy.onRequestEnd?.(
            { req: p.rreq, endpoint: ep, ok, promptTokens: usage?.promptTokens ?? p.rreq.promptLength, outputTokens: usage?.completionTokens ?? 0, cachedTokens: usage?.cachedTokens },
            { nowMs: this.now(), random: this.random },
          );
        }
      }
      throw lastErr ?? E.noReadyEndpoint(baseModel, lastReason);
    } finally {
      res.off('close', onClose);
      this.active.delete(ac);
    }
  }

  /** Ready endpoints of `baseModel`, restricted to `only` when given. */
  private candidates(baseModel: string, only: Set<string> | undefined): readonly EndpointState[] {
    const all = this.fleet.readyEndpoints(baseModel);
    return only ? all.filter((e) => only.has(e.id)) : all;
  }

  /**
   * Endpoint ids that have (or are about to have) LoRA `adapter` of `baseModel`: those whose scraped
   * `loraAdapters` list it plus those the adapter manager placed it on. When none of them is ready
   * and the controllers run, asks the adapter manager to load it now (`ensureAdapter`) and adds the
   * endpoint it chose.
   * @throws ApiError 503 `adapter_unavailable` when that load fails.
   */
  private async adapterEndpoints(baseModel: string, adapter: string): Promise<Set<string>> {
    const only = new Set<string>();
    for (const ep of this.fleet.endpointsOf(baseModel)) if (ep.loraAdapters?.includes(adapter)) only.add(ep.id);
    if (!this.control) return only;
    for (const id of this.control.adapterEndpoints(adapter)) only.add(id);
    if (this.fleet.readyEndpoints(baseModel).some((e) => only.has(e.id))) return only;
    try {
      only.add(await this.control.ensureAdapter(adapter));
    } catch (e) {
      throw e instanceof ApiError ? e : E.adapterUnavailable(adapter, (e as Error).message);
    }
    return only;
  }

  /**
   * One upstream exchange through the endpoint's `UpstreamPool` (no stream objects on the hot path):
   * a 5xx answer is discarded when `canRetry5xx` (nothing reaches the client); any other answer is
   * committed: headers written, body chunks written as they arrive (pausing upstream while the
   * client socket is full), usage read on the way. Never rejects.
   */
  private exchange(
    res: Http1Response,
    ep: EndpointState,
    ac: RequestAbort,
    headers: Record<string, string>,
    p: ExchangeRequest,
    extraHeaders: Record<string, string> | undefined,
    canRetry5xx: boolean,
    strategy: RoutingStrategy,
    ctx: RoutingContext,
  ): Promise<Exchange> {
    return new Promise<Exchange>((resolve) => {
      const h = new UpstreamHandler(res, ep, ac, p, extraHeaders, canRetry5xx, strategy, ctx, this.now, resolve);
      this.pool(ep).dispatch({ path: p.path, method: 'POST', headers, body: p.body }, h);
    });
  }

  private async admin(req: Http1Request, res: Http1Response, method: string, path: string): Promise<void> {
    const adminKey = this.settings.adminKey;
    if (!adminKey) {
      return sendError(res, E.notFound(path));
    }
    const auth = headerString(req.headers.authorization) ?? '';
    if (auth !== `Bearer ${adminKey}`) {
      return sendError(res, E.badApiKey(!auth));
    }
    for (const h of this.adminMounts) if (await h(req, res)) return;
    const json = (status: number, v: unknown) => sendJson(res, status, v);
    const readJson = () => readJsonObject(req, this.settings.maxBodyBytes);
    if (path === '/admin/keys' && method === 'GET') {
      return json(200, { data: this.keys.list() });
    }
    if (path === '/admin/keys' && method === 'POST') {
      const b = await readJson();
      if (typeof b.name !== 'string' || !b.name) throw E.badRequest('name must be a non-empty string', 'name');
      if (b.key !== undefined && (typeof b.key !== 'string' || b.key.length < 8)) throw E.badRequest('key must be a string of at least 8 characters', 'key');
      for (const f of ['rpm', 'tpm'] as const) if (b[f] !== undefined && (typeof b[f] !== 'number' || !Number.isInteger(b[f]) || (b[f] as number) <= 0)) throw E.badRequest(`${f} must be a positive integer`, f);
      let info: ApiKeyInfo;
      try {
        info = this.keys.add({ name: b.name, key: b.key as string | undefined, rpm: b.rpm as number | undefined, tpm: b.tpm as number | undefined });
      } catch (e) {
        throw E.badRequest((e as Error).message, 'key');
      }
      return json(201, info);
    }
    if (path.startsWith('/admin/keys/') && method === 'DELETE') {
      const name = decodeURIComponent(path.slice('/admin/keys/'.length));
      if (!this.keys.remove(name)) throw new ApiError(404, `no key named ${name}`, 'invalid_request_error', 'key_not_found', 'name');
      return json(200, { deleted: name });
    }
    if (path === '/admin/endpoints' && method === 'GET') {
      return json(200, { data: this.fleet.list().map((e) => ({ ...e, observed: this.observed.get(e.id) })) });
    }
    const m = /^\/admin\/models\/([^/]+)\/scale$/.exec(path);
    if (m && method === 'POST') {
      const b = await readJson();
      const model = decodeURIComponent(m[1]!);
      if (!this.fleet.modelConfig(model)) throw E.modelNotFound(model);
      if (typeof b.replicas !== 'number' || !Number.isInteger(b.replicas) || b.replicas < 0) throw E.badRequest('replicas must be a non-negative integer', 'replicas');
      try {
        await this.fleet.scaleModel(model, b.replicas);
      } catch (e) {
        throw E.badRequest((e as Error).message, 'model');
      }
      return json(200, { model, replicas: b.replicas });
    }
    throw E.notFound(path);
  }
}

/**
 * The `RoutingRequest` of one gateway request: a class so that `promptTokens` is a prototype method
 * delegating to the parsed body (no closure per request on the hot path).
 */
class GatewayRoutingRequest implements RoutingRequest {
  readonly model: string;
  readonly promptLength: number;
  readonly maxTokens: number | undefined;
  constructor(
    readonly id: string,
    private readonly parsed: ParsedInference,
    readonly baseModel: string,
    readonly adapter: string | undefined,
    readonly sessionId: string | undefined,
    readonly userId: string | undefined,
    readonly headers: Readonly<Record<string, string>>,
    readonly arrivalMs: number,
  ) {
    this.model = parsed.model;
    this.promptLength = parsed.promptLengthEstimate;
    this.maxTokens = parsed.maxTokens;
  }
  promptTokens(): readonly number[] {
    return this.parsed.promptTokens();
  }
}

/**
 * Abort handle of one proxied request: aborted by the client disconnecting (`onClose`, registered on
 * the response's `close`) or by drain (`abort()`); aborts the upstream exchange in flight, if any.
 * One object per request instead of an EventEmitter plus closures.
 */
class RequestAbort {
  /** The client went away before the response finished. */
  clientGone = false;
  aborted = false;
  /** The exchange in flight (set by `UpstreamHandler`, cleared when it settles). */
  handler: UpstreamHandler | null = null;
  /** Listener for the response's `close` (bound once per request). */
  readonly onClose: () => void;
  constructor(private readonly res: Http1Response) {
    this.onClose = this.closed.bind(this);
  }
  private closed(): void {
    if (!this.res.writableFinished) {
      this.clientGone = true;
      this.abort();
    }
  }
  abort(): void {
    this.aborted = true;
    this.handler?.abortFn?.(new UpstreamError('UPSTREAM_ABORTED', 'request aborted'));
  }
}

/** What `Gateway.exchange` needs from the request. */
interface ExchangeRequest {
  path: string;
  rreq: RoutingRequest;
  requestId: string;
  sel: { spec: string; profile?: string };
  parsed: ParsedInference;
  body: Buffer;
  strip: boolean;
}

/**
 * `UpstreamPool` handler for one upstream exchange (one object per attempt, methods on the
 * prototype: fewer allocations than a closure per callback on the hot path).
 */
class UpstreamHandler implements UpstreamHandlerContract {
  private status = 0;
  private committed = false;
  private discard = false;
  private settled = false;
  private tap: UsageTap | undefined;
  private stripper: UsageStripper | undefined;
  private collect: Buffer[] | undefined;
  private sse = false;
  private firstMs = 0;
  private lastMs = 0;
  private chunks = 0;
  /** The pool's abort for this exchange (from `onConnect`). */
  abortFn: ((err?: Error) => void) | null = null;
  private resumeFn: (() => void) | null = null;

  constructor(
    private readonly res: Http1Response,
    private readonly ep: EndpointState,
    private readonly ac: RequestAbort,
    private readonly p: ExchangeRequest,
    private readonly extraHeaders: Record<string, string> | undefined,
    private readonly canRetry5xx: boolean,
    private readonly strategy: RoutingStrategy,
    private readonly ctx: RoutingContext,
    private readonly now: () => number,
    private readonly resolve: (x: Exchange) => void,
  ) {
    ac.handler = this;
  }

  private done(x: Exchange): void {
    if (this.settled) return;
    this.settled = true;
    if (this.ac.handler === this) this.ac.handler = null;
    this.resolve(x);
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortFn = abort;
    if (this.ac.aborted) abort(new UpstreamError('UPSTREAM_ABORTED', 'request aborted'));
  }

  onHeaders(statusCode: number, raw: string[], resume: () => void): boolean {
    this.status = statusCode;
    if (statusCode >= 500 && this.canRetry5xx) {
      this.discard = true;
      return true;
    }
    this.committed = true;
    const p = this.p;
    const out: Record<string, string | string[]> = {};
    // Names come lowercased; values are latin1 strings, so header bytes pass through unchanged
    // (node:http writes header strings as latin1).
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const k = raw[i]!;
      if (k === 'content-length') {
        if (!p.strip) out[k] = raw[i + 1]!; // the stripped stream is shorter
        continue;
      }
      if (HOP_BY_HOP.has(k)) continue;
      const v = raw[i + 1]!;
      const prev = out[k];
      out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    out['x-request-id'] = p.requestId;
    out['target-pod'] = this.ep.id;
    out['x-routing-strategy'] = p.sel.spec;
    if (p.sel.profile) out['x-config-profile'] = p.sel.profile;
    const extra = this.extraHeaders;
    if (extra) for (const k in extra) out[k] = extra[k]!;
    this.res.writeHead(statusCode, out);
    this.sse = p.parsed.stream && statusCode < 300;
    if (this.sse) {
      if (p.strip) this.stripper = new UsageStripper();
      else this.tap = new UsageTap();
    } else if (statusCode < 300) this.collect = [];
    this.resumeFn = resume;
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.discard) return true;
    const t = this.now();
    if (this.chunks === 0) {
      this.firstMs = t;
      this.strategy.onFirstToken?.(this.p.rreq, this.ep, this.ctx);
    }
    this.lastMs = t;
    this.chunks++;
    let outChunk = chunk;
    if (this.stripper) outChunk = this.stripper.push(chunk);
    else if (this.tap) this.tap.push(chunk);
    else if (this.collect) this.collect.push(chunk);
    if (outChunk.length && !this.res.write(outChunk)) {
      this.res.once('drain', this.resumeFn!);
      return false;
    }
    return true;
  }

  onComplete(): void {
    if (this.discard) return this.done({ kind: 'retry', status: this.status });
    if (this.stripper) {
      const rest = this.stripper.end();
      if (rest.length) this.res.write(rest);
    }
    this.tap?.end();
    this.res.end();
    const c = this.collect;
    const usage = this.tap?.usage ?? this.stripper?.usage ?? (c ? usageFromJson(c.length === 1 ? c[0]! : Buffer.concat(c)) : undefined);
    this.done({ kind: 'done', status: this.status, usage, sse: this.sse, firstMs: this.firstMs, lastMs: this.lastMs, chunks: this.chunks });
  }

  onError(err: Error): void {
    if (this.committed) this.done({ kind: 'broken', err, status: this.status, usage: this.tap?.usage ?? this.stripper?.usage });
    else this.done({ kind: 'error', err });
  }

}
