/**
 * The discrete-event cluster: N simulated engine cores on a virtual clock, fed by a workload and
 * routed by the gateway's own `RoutingStrategy` objects (unchanged; clock and randomness injected
 * through `RoutingContext`).
 *
 * Events: request arrivals (routed at once), engine enqueues (arrival + the core's α0 host delay),
 * step ends (the step's tokens are emitted, the next step is scheduled), metric scrapes (every
 * `scrapeIntervalMs`, refreshing the `EndpointState` the router reads; in-flight counts are always
 * current), client timeouts, and engine start-up/drain for run-time scaling (`addEngine`,
 * `removeEngine`), and KV-event deliveries (`kvEvents`: each engine step's events reach the
 * strategy's `applyKvEvents` at the step's end + `delayMs`, in order per engine). Arrivals, enqueues
 * and timeouts are monotone FIFOs; only step ends, engine events and KV deliveries go through a
 * binary heap, so an event costs O(log engines).
 */
import { EngineCore, type EngineConfig, type LatencyCoefficients, type StepResult } from '../core/engine.ts';
import { newEndpointState, type EndpointState } from '../../engines/state.ts';
import type { RoutingContext, RoutingRequest, RoutingStrategy } from '../../routing/types.ts';
import type { KvEventSink } from '../../routing/cache/kv-aware.ts';
import type { BlockHasher } from '../core/types.ts';
import type { KvCacheEvent, KvEventBatch } from '../../engines/vllm/kv-events.ts';
import { sha256CborBlockHasher, wireKvEvent } from '../core/kv-wire.ts';
import { createRng } from '../../bench/rng.ts';
import { Samples } from './stats.ts';
import type { SimRequestSpec } from './workload.ts';

/** One engine in the cluster. */
export interface SimEngineInfo {
  id: string;
  core: EngineCore;
  state: EndpointState;
  /** Virtual time it was added / becomes ready / was removed (ms). */
  addedMs: number;
  readyMs: number;
  removedMs: number | null;
  draining: boolean;
  /** Requests routed to it. */
  routed: number;
  /** Σ KV usage samples and their count (sampled at scrapes while present). */
  kvSum: number;
  kvSamples: number;
}

interface EngineSlot extends SimEngineInfo {
  index: number;
  busy: boolean;
  pending: StepResult | null;
  lastQueries: number;
  lastHits: number;
  /** Enqueues in flight to this engine (routed, α0 not elapsed). */
  pendingEnqueues: number;
  /** KV events emitted since the last step was scheduled, and batches awaiting delivery (FIFO from kvHead). */
  kvBuf: KvCacheEvent[];
  kvQueue: KvEventBatch[];
  kvHead: number;
}

/** KV-event wiring of a cluster run (see `ClusterOptions.kvEvents`). */
export interface KvEventsOptions {
  /** Receives every engine's event batches (`applyKvEvents(endpointId, batch)`). */
  sink: KvEventSink;
  /** The engines' `PYTHONHASHSEED` (NONE_HASH seed of the sha256_cbor chain). */
  hashSeed: string;
  /** Delay from a step's end to the batch reaching the sink (ms of simulated time; models the event stream's staleness). >= 0. */
  delayMs: number;
}

/** What the KV-event wiring delivered. */
export interface KvEventCounts {
  batches: number;
  blocksStored: number;
  blocksRemoved: number;
  clears: number;
}

/** Options of a cluster run. */
export interface ClusterOptions {
  engine: EngineConfig;
  replicas: number;
  strategy: RoutingStrategy;
  /** Model name used in `EndpointState.model` and routing requests. */
  modelName: string;
  scrapeIntervalMs: number;
  seed: number;
  coefficients?: LatencyCoefficients;
  /** Client timeout (ms after arrival); unfinished requests are aborted and counted failed. */
  requestTimeoutMs?: number;
  /** Called at every scrape (after the endpoint states refresh): the place for an autoscaler. */
  onScrape?: (cluster: SimCluster, nowMs: number) => void;
  /**
   * Deliver KV events to a sink (a strategy with `applyKvEvents`): the engine cores then hash blocks
   * with vLLM's `sha256_cbor` (`kv-events.ts`) and each step's events are delivered as one batch
   * (`ts` = the step's end, s) at the step's end + `delayMs`. Batches of an engine removed before
   * delivery are dropped.
   */
  kvEvents?: KvEventsOptions;
}

/** Per-stage sample buffers. */
export interface StageSamples {
  ttft: Samples;
  e2e: Samples;
  itl: Samples;
  completed: number;
  failed: number;
  outputTokens: number;
}

const NONE = -1;

/** The cluster simulator. Build it, then `run(requests)` once. */
export class SimCluster {
  readonly engines: EngineSlot[] = [];
  private readonly byId = new Map<string, EngineSlot>();
  private readonly opts: ClusterOptions;
  private readonly ctx: RoutingContext;
  private nowMs = 0;
  private nextEngineNo = 0;
  private routable: EndpointState[] | null = null;
  // Binary heap of (time, seq, engine index, kind) for step ends and engine events.
  private hT: number[] = [];
  private hS: number[] = [];
  private hE: number[] = [];
  private hK: number[] = [];
  private seq = 0;
  // Per-request state (index = position in the workload).
  private reqs: readonly SimRequestSpec[] = [];
  private engineOf = new Int32Array(0);
  private firstMs = new Float64Array(0);
  private lastMs = new Float64Array(0);
  private doneFlag = new Uint8Array(0);
  private routingReq: (RoutingRequest | null)[] = [];
  private tokensCache: (ArrayLike<number> | null)[] = [];
  /** Per-stage samples (filled by `run`). */
  stageSamples: StageSamples[] = [];
  /** Virtual time of the last event (ms). */
  endMs = 0;
  /** What was delivered to `kvEvents.sink`. */
  readonly kvEventCounts: KvEventCounts = { batches: 0, blocksStored: 0, blocksRemoved: 0, clears: 0 };
  private readonly hasher: BlockHasher | undefined;

  constructor(opts: ClusterOptions) {
    this.opts = opts;
    if (opts.kvEvents && !(opts.kvEvents.delayMs >= 0)) throw new Error(`kvEventDelayMs: must be >= 0, got ${opts.kvEvents.delayMs}`);
    this.hasher = opts.kvEvents ? sha256CborBlockHasher(opts.kvEvents.hashSeed) : undefined;
    const rng = createRng((opts.seed >>> 0) ^ 0x5bd1e995);
    const ctx = { nowMs: 0, random: () => rng.next() };
    this.ctx = ctx;
    for (let i = 0; i < opts.replicas; i++) this.addEngine(0, 0);
  }

  /** Current virtual time (ms). */
  get now(): number {
    return this.nowMs;
  }

  /** The routing strategy (the gateway's own object). */
  get strategy(): RoutingStrategy {
    return this.opts.strategy;
  }

  /**
   * Adds an engine at `nowMs`; it becomes routable after `startupDelayMs` (model load, warm-up).
   * Returns its id (`engine-N`).
   */
  addEngine(nowMs: number, startupDelayMs: number): string {
    const id = `engine-${this.nextEngineNo++}`;
    const kvBuf: KvCacheEvent[] = [];
    const core = new EngineCore(this.opts.engine, {
      coefficients: this.opts.coefficients,
      ...(this.opts.kvEvents ? { hashBlock: this.hasher, onKvEvent: (e) => void slot.kvBuf.push(wireKvEvent(e)) } : {}),
    });
    const slot: EngineSlot = {
      id,
      core,
      state: newEndpointState({ id, url: `sim://${id}`, model: this.opts.modelName, ready: startupDelayMs <= 0, stale: false, scrapedAtMs: nowMs, running: 0, waiting: 0, kvCacheUsage: 0, prefixCacheHitRate: 0, preemptions: 0 }),
      addedMs: nowMs,
      readyMs: nowMs + Math.max(0, startupDelayMs),
      removedMs: null,
      draining: false,
      routed: 0,
      kvSum: 0,
      kvSamples: 0,
      index: this.engines.length,
      busy: false,
      pending: null,
      lastQueries: 0,
      lastHits: 0,
      pendingEnqueues: 0,
      kvBuf,
      kvQueue: [],
      kvHead: 0,
    };
    this.engines.push(slot);
    this.byId.set(id, slot);
    if (startupDelayMs > 0) this.heapPush(nowMs + startupDelayMs, slot.index, 1);
    this.routable = null;
    return id;
  }

  /**
   * Stops routing to an engine; it is removed once its queued and running requests have finished
   * (drain). Throws for an unknown or already removed id.
   */
  removeEngine(id: string, nowMs: number): void {
    const s = this.byId.get(id);
    if (!s || s.removedMs !== null) throw new Error(`removeEngine: no active engine '${id}'`);
    s.draining = true;
    s.state.ready = false;
    this.routable = null;
    this.maybeRemove(s, nowMs);
  }

  /** Engines present (not removed), including draining and starting ones. */
  activeEngines(): SimEngineInfo[] {
    return this.engines.filter((e) => e.removedMs === null);
  }

  private maybeRemove(s: EngineSlot, nowMs: number): void {
    if (s.draining && s.removedMs === null && !s.busy && !s.core.hasWork() && s.pendingEnqueues === 0) {
      s.removedMs = nowMs;
      this.opts.strategy.onEndpointRemoved?.(s.id);
    }
  }

  private heapPush(t: number, e: number, kind: number): void {
    const T = this.hT, S = this.hS, E = this.hE, K = this.hK;
    let i = T.length;
    const sq = this.seq++;
    T.push(t); S.push(sq); E.push(e); K.push(kind);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (T[p]! < t || (T[p] === t && S[p]! < sq)) break;
      T[i] = T[p]!; S[i] = S[p]!; E[i] = E[p]!; K[i] = K[p]!;
      i = p;
    }
    T[i] = t; S[i] = sq; E[i] = e; K[i] = kind;
  }

  private heapPop(): void {
    const T = this.hT, S = this.hS, E = this.hE, K = this.hK;
    const n = T.length - 1;
    const t = T[n]!, sq = S[n]!, e = E[n]!, k = K[n]!;
    T.pop(); S.pop(); E.pop(); K.pop();
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      let c = l;
      const r = l + 1;
      if (r < n && (T[r]! < T[l]! || (T[r] === T[l] && S[r]! < S[l]!))) c = r;
      if (T[c]! > t || (T[c] === t && S[c]! > sq)) break;
      T[i] = T[c]!; S[i] = S[c]!; E[i] = E[c]!; K[i] = K[c]!;
      i = c;
    }
    T[i] = t; S[i] = sq; E[i] = e; K[i] = k;
  }

  private routableStates(): EndpointState[] {
    if (!this.routable) this.routable = this.engines.filter((e) => e.removedMs === null && !e.draining && e.state.ready).map((e) => e.state);
    return this.routable;
  }

  private scrape(nowMs: number): void {
    for (const s of this.engines) {
      if (s.removedMs !== null) continue;
      const st = s.state;
      const q = s.core.queueDepths();
      const c = s.core.liveCounters();
      const kv = s.core.kvCacheUsage();
      st.running = q.running;
      st.waiting = q.waiting;
      st.kvCacheUsage = kv;
      const dq = c.prefixCacheQueries - s.lastQueries;
      st.prefixCacheHitRate = dq > 0 ? (c.prefixCacheHits - s.lastHits) / dq : st.prefixCacheHitRate;
      s.lastQueries = c.prefixCacheQueries;
      s.lastHits = c.prefixCacheHits;
      st.preemptions = c.preemptions;
      st.scrapedAtMs = nowMs;
      st.stale = false;
      if (nowMs >= s.readyMs) {
        s.kvSum += kv;
        s.kvSamples++;
      }
    }
    this.opts.onScrape?.(this, nowMs);
  }

  private startStep(s: EngineSlot, t: number): void {
    const res = s.core.step(t);
    if (res.batchSize === 0 && res.outputs.length === 0) {
      s.busy = false;
      s.pending = null;
      if (s.kvBuf.length) this.queueKvBatch(s, t);
      this.maybeRemove(s, t);
      return;
    }
    s.busy = true;
    s.pending = res;
    this.heapPush(t + res.durationMs, s.index, 0);
    // vLLM publishes a step's events after the step (scheduler `take_events` with the step's output).
    if (s.kvBuf.length) this.queueKvBatch(s, t + res.durationMs);
  }

  /** Moves the engine's buffered events into one batch delivered at `publishMs` + delay. */
  private queueKvBatch(s: EngineSlot, publishMs: number): void {
    s.kvQueue.push({ ts: publishMs / 1000, events: s.kvBuf.splice(0) });
    this.heapPush(publishMs + this.opts.kvEvents!.delayMs, s.index, 2);
  }

  private deliverKvBatch(s: EngineSlot): void {
    const batch = s.kvQueue[s.kvHead]!;
    s.kvQueue[s.kvHead++] = undefined as unknown as KvEventBatch;
    if (s.kvHead > 1024 && s.kvHead * 2 > s.kvQueue.length) {
      s.kvQueue.splice(0, s.kvHead);
      s.kvHead = 0;
    }
    if (s.removedMs !== null) return;
    const c = this.kvEventCounts;
    c.batches++;
    for (const e of batch.events) {
      if (e.type === 'BlockStored') c.blocksStored += e.blockHashes.length;
      else if (e.type === 'BlockRemoved') c.blocksRemoved += e.blockHashes.length;
      else c.clears++;
    }
    this.opts.kvEvents!.sink.applyKvEvents(s.id, batch);
  }

  private onStepEnd(s: EngineSlot, t: number): void {
    const res = s.pending!;
    s.pending = null;
    const outs = res.outputs;
    const reqs = this.reqs;
    const strat = this.opts.strategy;
    const ctx = this.ctx;
    const finishDelay = s.core.hostOverheads.finishDelayMs;
    for (let k = 0; k < outs.length; k++) {
      const o = outs[k]!;
      const idx = +o.requestId;
      if (this.doneFlag[idx]) continue;
      const spec = reqs[idx]!;
      const ss = this.stageSamples[spec.stage]!;
      if (o.newTokens > 0) {
        if (o.firstToken) {
          this.firstMs[idx] = t;
          ss.ttft.push(t - spec.arrivalMs);
          const rr = this.routingReq[idx];
          if (rr && strat.onFirstToken) strat.onFirstToken(rr, s.state, ctx);
        } else ss.itl.push(t - this.lastMs[idx]!);
        this.lastMs[idx] = t;
      }
      if (o.finished) {
        const ok = o.finishReason === 'length';
        if (ok) {
          ss.e2e.push(t + finishDelay - spec.arrivalMs);
          ss.completed++;
          ss.outputTokens += o.outputTokens;
        } else ss.failed++;
        this.endRequest(idx, s, ok, o.outputTokens);
      }
    }
    if (s.core.hasWork()) this.startStep(s, t);
    else {
      s.busy = false;
      this.maybeRemove(s, t);
    }
  }

  private endRequest(idx: number, s: EngineSlot, ok: boolean, outputTokens: number): void {
    this.doneFlag[idx] = 1;
    const spec = this.reqs[idx]!;
    s.state.inflightRequests--;
    s.state.inflightTokens -= spec.promptLen + spec.outputTokens;
    const rr = this.routingReq[idx];
    if (rr) {
      this.opts.strategy.onRequestEnd?.({ req: rr, endpoint: s.state, promptTokens: spec.promptLen, outputTokens, ok }, this.ctx);
      this.routingReq[idx] = null;
    }
    this.tokensCache[idx] = null;
  }

  private tokensOf(idx: number): ArrayLike<number> {
    let t = this.tokensCache[idx];
    if (!t) {
      t = this.reqs[idx]!.tokens();
      this.tokensCache[idx] = t;
    }
    return t;
  }

  /**
   * Runs the workload to completion (every request finished, failed or timed out) and returns the
   * virtual end time (ms). `stageCount` sizes the per-stage buffers.
   */
  run(requests: readonly SimRequestSpec[], stageCount: number): number {
    const n = requests.length;
    this.reqs = requests;
    this.engineOf = new Int32Array(n).fill(NONE);
    this.firstMs = new Float64Array(n);
    this.lastMs = new Float64Array(n);
    this.doneFlag = new Uint8Array(n);
    this.routingReq = new Array(n).fill(null);
    this.tokensCache = new Array(n).fill(null);
    this.stageSamples = Array.from({ length: stageCount }, () => ({ ttft: new Samples(), e2e: new Samples(), itl: new Samples(), completed: 0, failed: 0, outputTokens: 0 }));
    const strat = this.opts.strategy;
    const ctx = this.ctx;
    const hooks = Boolean(strat.onRequestStart || strat.onFirstToken || strat.onRequestEnd);
    const arrivalDelay = this.engines.length ? this.engines[0]!.core.hostOverheads.arrivalDelayMs : 0;
    const timeout = this.opts.requestTimeoutMs;
    // FIFO of routed requests waiting for their enqueue time (arrival + α0): request indices.
    const enq = new Int32Array(n);
    let enqHead = 0;
    let enqTail = 0;
    let toHead = 0; // next request to check for timeout (in arrival order)
    let ai = 0; // next arrival
    let nextScrape = 0;
    const scrapeEvery = this.opts.scrapeIntervalMs;
    const INF = Number.POSITIVE_INFINITY;
    for (;;) {
      const tA = ai < n ? requests[ai]!.arrivalMs : INF;
      const tE = enqHead < enqTail ? requests[enq[enqHead]!]!.arrivalMs + arrivalDelay : INF;
      const tH = this.hT.length ? this.hT[0]! : INF;
      let tT = INF;
      if (timeout !== undefined) {
        while (toHead < ai && this.doneFlag[toHead]) toHead++;
        if (toHead < ai) tT = requests[toHead]!.arrivalMs + timeout;
      }
      const tMin = Math.min(tA, tE, tH, tT);
      if (tMin === INF) break;
      if (nextScrape <= tMin) {
        this.nowMs = nextScrape;
        ctx.nowMs = nextScrape;
        this.scrape(nextScrape);
        nextScrape += scrapeEvery;
        continue;
      }
      this.nowMs = tMin;
      ctx.nowMs = tMin;
      if (tH === tMin) {
        const e = this.hE[0]!;
        const kind = this.hK[0]!;
        this.heapPop();
        const s = this.engines[e]!;
        if (kind === 0) this.onStepEnd(s, tMin);
        else if (kind === 2) this.deliverKvBatch(s);
        else {
          s.state.ready = !s.draining;
          this.routable = null;
        }
      } else if (tE === tMin) {
        const idx = enq[enqHead++]!;
        const e = this.engineOf[idx]!;
        const s = this.engines[e]!;
        s.pendingEnqueues--;
        if (this.doneFlag[idx]) {
          this.maybeRemove(s, tMin);
          continue;
        }
        const spec = requests[idx]!;
        s.core.addRequest({ id: String(idx), promptTokenIds: this.tokensOf(idx), maxTokens: spec.outputTokens, arrivalMs: spec.arrivalMs }, tMin);
        this.tokensCache[idx] = null;
        if (!s.busy) this.startStep(s, tMin);
      } else if (tA === tMin) {
        const idx = ai++;
        const spec = requests[idx]!;
        let memo: number[] | undefined;
        const rr: RoutingRequest = {
          id: String(idx),
          model: this.opts.modelName,
          baseModel: this.opts.modelName,
          promptTokens: () => (memo ??= Array.from(this.tokensOf(idx))),
          promptLength: spec.promptLen,
          maxTokens: spec.outputTokens,
          headers: {},
          arrivalMs: spec.arrivalMs,
        };
        if (spec.userId !== undefined) {
          rr.userId = spec.userId;
          rr.headers = { 'x-user-id': spec.userId };
        }
        const cands = this.routableStates();
        const dec = strat.route(rr, cands, ctx);
        const ep = dec.endpoint;
        const s = ep ? this.byId.get(ep.id) : undefined;
        if (!s) {
          this.doneFlag[idx] = 1;
          this.stageSamples[spec.stage]!.failed++;
          continue;
        }
        this.engineOf[idx] = s.index;
        s.routed++;
        s.pendingEnqueues++;
        s.state.inflightRequests++;
        s.state.inflightTokens += spec.promptLen + spec.outputTokens;
        if (hooks) {
          this.routingReq[idx] = rr;
          strat.onRequestStart?.(rr, s.state, ctx);
        }
        enq[enqTail++] = idx;
      } else {
        // Client timeout of request toHead.
        const idx = toHead;
        const e = this.engineOf[idx]!;
        const s = this.engines[e]!;
        s.core.abortRequest(String(idx), tMin);
        this.stageSamples[requests[idx]!.stage]!.failed++;
        this.endRequest(idx, s, false, 0);
        if (!s.busy && s.core.hasWork()) this.startStep(s, tMin);
      }
    }
    this.endMs = this.nowMs;
    return this.nowMs;
  }
}
