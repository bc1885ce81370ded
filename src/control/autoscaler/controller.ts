/**
 * The autoscaler's reconcile loop (standalone mode and the DES).
 *
 * Every second (`tick`) it collects one {@link FleetObservation} per autoscaled model into that
 * model's {@link MetricCollector}; every `spec.intervalS` it asks the strategy for a recommendation and,
 * when it differs from the actuator's current count, calls `setReplicas(model, n, reason)`. The
 * actuator owns the replicas (start-up, health, draining): a new replica gets traffic only once healthy,
 * a removed one drains first (the fleet's job; see `src/fleet`).
 *
 * Time and I/O are injected: `clock.now()` (ms), `timers` (only used by `start()`), the actuator and the
 * signal source. `tick()` is synchronous so the discrete-event simulator can call it on virtual time.
 *
 * Warm-up: for max(windows.stableS, cooldown.downS) seconds after an autoscaler is created it may
 * scale up but not down, as if the starting replica count had been recommended at creation: windows
 * that hold a few seconds of an idle or warming fleet must not shrink it (with empty windows every
 * strategy would otherwise scale down at its first tick).
 *
 * Scale to zero (per autoscaler, `scaleToZero.enabled` with `minReplicas: 0`): after `idleS` seconds
 * with no arrival, nothing in flight and nothing queued, the controller sets 0 replicas. While at 0,
 * the gateway holds requests for the model (its bounded cold-start queue) and calls {@link
 * AutoscalerController.wake}; a queued request seen in an observation also wakes the model.
 */
import { MAX_DECISIONS, parseResource, PodAutoscalerSpecSchema, setCondition, type PodAutoscaler, type PodAutoscalerSpec, type Strategy } from '../resources.ts';
import { apa } from './apa.ts';
import { hpa } from './hpa.ts';
import { kpa } from './kpa.ts';
import { tokenflow } from './tokenflow.ts';
import type { Recommendation, ScalingAlgorithm } from './types.ts';
import { MetricCollector, type FleetObservation } from './windows.ts';

/** Injected clock: `now()` in ms (wall or virtual). */
export interface Clock {
  now(): number;
}

/** Injected timers, only used by {@link AutoscalerController.start}. */
export interface Timers {
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

/**
 * What the controller scales. `currentReplicas` is the count asked for (ready + starting, not the
 * draining ones); `setReplicas` may be synchronous or return a promise (a rejection is recorded in the
 * status as a failed decision).
 */
export interface ScaleActuator {
  currentReplicas(model: string): number;
  setReplicas(model: string, n: number, reason: string): void | Promise<void>;
}

/**
 * Where observations come from: the endpoint states of the model's replicas and the gateway's
 * counters since the previous call. Return undefined when nothing can be observed (no sample is written;
 * the autoscaler then holds once its signals go stale).
 */
export interface SignalSource {
  observe(model: string, nowMs: number): FleetObservation | undefined;
}

/** A decision log entry (also what `onDecision` receives). */
export interface DecisionLog {
  name: string;
  model: string;
  atMs: number;
  from: number;
  to: number;
  reason: string;
}

/** The algorithm registry by strategy name. */
export const ALGORITHMS: Record<Strategy, ScalingAlgorithm<any>> = { hpa, kpa, apa, tokenflow };

interface Entry {
  pa: PodAutoscaler;
  collector: MetricCollector;
  algoState: unknown;
  lastDecisionMs: number | null;
  /** Time of the last activity (arrival, in-flight or queued request), for scale to zero. */
  lastActiveMs: number;
  /** When the autoscaler was created (ms): scale-down is held during the warm-up that follows. */
  createdMs: number;
}

/** Options of {@link AutoscalerController}. */
export interface AutoscalerControllerOptions {
  clock: Clock;
  actuator: ScaleActuator;
  signals: SignalSource;
  timers?: Timers;
  /** Called for every change of the desired count (log it with its reason). */
  onDecision?: (d: DecisionLog) => void;
}

/** The window capacity a spec needs (s): its longest window plus slack. */
function capacityFor(spec: PodAutoscalerSpec): number {
  return Math.max(spec.windows.stableS, spec.forecast.trendWindowS, 10) + 2;
}

/** Reconciles a set of PodAutoscalers against an actuator (see module docs). */
export class AutoscalerController {
  private entries = new Map<string, Entry>();
  private handle: unknown = null;

  constructor(private readonly opts: AutoscalerControllerOptions) {}

  /**
   * Adds or replaces an autoscaler from an unvalidated document.
   * Keeps collected metrics and algorithm state when the strategy and windows do not change.
   * @throws ResourceValidationError (field paths prefixed by `where`); nothing is changed then.
   * @throws Error when another autoscaler already targets the same model.
   */
  apply(doc: unknown, where = 'autoscaler'): PodAutoscaler {
    const spec = parseResource(PodAutoscalerSpecSchema, doc, where);
    if (!spec.model) throw Object.assign(new Error(`${where}: model: required (the model whose replicas are scaled)`), { path: 'model' });
    const name = spec.name ?? spec.model;
    for (const [n, e] of this.entries) if (n !== name && e.pa.spec.model === spec.model) throw new Error(`${where}: model: ${spec.model} is already scaled by autoscaler ${n}`);
    const full = { ...spec, name, model: spec.model };
    const old = this.entries.get(name);
    const now = this.opts.clock.now();
    if (old && old.pa.spec.strategy === full.strategy && capacityFor(old.pa.spec) === capacityFor(full)) {
      old.pa.spec = full;
      return old.pa;
    }
    const pa: PodAutoscaler = {
      spec: full,
      status: old?.pa.status ?? { desiredReplicas: 0, currentReplicas: 0, readyReplicas: 0, lastScaleMs: null, decisions: [], conditions: [], scalingEvents: 0 },
    };
    setCondition(pa.status.conditions, { type: 'ValidSpec', status: 'True', reason: 'Validated', message: '' }, now);
    this.entries.set(name, { pa, collector: new MetricCollector(capacityFor(full)), algoState: ALGORITHMS[full.strategy].init(), lastDecisionMs: null, lastActiveMs: now, createdMs: now });
    return pa;
  }

  /** Removes an autoscaler; replicas stay as they are. Returns false when unknown. */
  remove(name: string): boolean {
    return this.entries.delete(name);
  }

  /** The autoscaler by name, or undefined. */
  get(name: string): PodAutoscaler | undefined {
    return this.entries.get(name)?.pa;
  }

  /** All autoscalers (spec + status), in insertion order. */
  list(): PodAutoscaler[] {
    return [...this.entries.values()].map((e) => e.pa);
  }

  /** True when `model` has scale to zero enabled (the gateway then queues requests while it is cold). */
  scalesToZero(model: string): boolean {
    for (const e of this.entries.values()) if (e.pa.spec.model === model) return e.pa.spec.scaleToZero.enabled && e.pa.spec.minReplicas === 0;
    return false;
  }

  /**
   * Cold-start hook for the gateway: a request arrived for `model` and no replica is ready. When the
   * model's autoscaler is at 0 replicas, it asks for max(minReplicas, 1) at once. Returns true when a
   * scale-up was requested.
   */
  wake(model: string): boolean {
    for (const e of this.entries.values()) {
      if (e.pa.spec.model !== model) continue;
      const now = this.opts.clock.now();
      e.lastActiveMs = now;
      const N = this.opts.actuator.currentReplicas(model);
      if (N > 0) return false;
      this.actuate(e, now, N, { desired: Math.max(e.pa.spec.minReplicas, 1), reason: 'cold start: request waiting for a replica' });
      return true;
    }
    return false;
  }

  /** Collects one observation per model and decides where due. Synchronous; call once per second. */
  tick(): void {
    const now = this.opts.clock.now();
    for (const e of this.entries.values()) {
      const model = e.pa.spec.model;
      const obs = this.opts.signals.observe(model, now);
      if (obs) {
        e.collector.observe(obs);
        if (obs.arrivedRequests > 0 || (obs.queuedRequests ?? 0) > 0 || e.collector.inflightRequests > 0) e.lastActiveMs = now;
      }
      if (e.lastDecisionMs !== null && now - e.lastDecisionMs < e.pa.spec.intervalS * 1000) continue;
      e.lastDecisionMs = now;
      this.decide(e, now);
    }
  }

  private decide(e: Entry, now: number): void {
    const spec = e.pa.spec;
    const N = this.opts.actuator.currentReplicas(spec.model);
    const R = e.collector.readyReplicas;
    const st = e.pa.status;
    st.currentReplicas = N;
    st.readyReplicas = R;
    let rec: Recommendation;
    const zeroOk = spec.scaleToZero.enabled && spec.minReplicas === 0;
    if (N > spec.maxReplicas) rec = { desired: spec.maxReplicas, reason: `bounds: ${N} above maxReplicas` };
    else if (N < spec.minReplicas) rec = { desired: spec.minReplicas, reason: `bounds: ${N} below minReplicas` };
    else if (N === 0) {
      rec = zeroOk && e.collector.queuedRequests > 0 ? { desired: Math.max(1, spec.minReplicas), reason: `cold start: ${e.collector.queuedRequests} requests queued` } : { desired: 0, reason: zeroOk ? 'idle at zero' : 'at zero (scale to zero off): hold' };
      if (!zeroOk) rec.desired = N;
    } else if (zeroOk && now - e.lastActiveMs >= spec.scaleToZero.idleS * 1000) {
      rec = { desired: 0, reason: `scale to zero: idle for ${Math.round((now - e.lastActiveMs) / 1000)}s` };
    } else {
      const algo = ALGORITHMS[spec.strategy];
      const r = algo.recommend({ nowMs: now, spec, currentReplicas: N, readyReplicas: R, metrics: e.collector }, e.algoState);
      e.algoState = r.state;
      rec = r.rec;
      const warmupMs = Math.max(spec.windows.stableS, spec.cooldown.downS) * 1000;
      if (rec.desired < N && now - e.createdMs < warmupMs) rec = { desired: N, reason: `${rec.reason}; scale-down held: warm-up (${Math.round((now - e.createdMs) / 1000)}s of ${warmupMs / 1000}s)` };
      setCondition(st.conditions, rec.held ? { type: 'MetricsAvailable', status: 'False', reason: 'SignalMissing', message: rec.reason } : { type: 'MetricsAvailable', status: 'True', reason: 'Fresh', message: '' }, now);
    }
    st.lastRecommendation = { atMs: now, desired: rec.desired, reason: rec.reason };
    if (rec.desired !== N) this.actuate(e, now, N, rec);
    else st.desiredReplicas = N;
    setCondition(st.conditions, { type: 'ScalingActive', status: st.desiredReplicas !== R ? 'True' : 'False', reason: st.desiredReplicas !== R ? 'Scaling' : 'Stable', message: '' }, now);
  }

  private actuate(e: Entry, now: number, from: number, rec: Recommendation): void {
    const st = e.pa.status;
    const d = { atMs: now, from, to: rec.desired, reason: rec.reason, success: true } as PodAutoscaler['status']['decisions'][number];
    st.decisions.push(d);
    if (st.decisions.length > MAX_DECISIONS) st.decisions.splice(0, st.decisions.length - MAX_DECISIONS);
    st.desiredReplicas = rec.desired;
    st.lastScaleMs = now;
    st.scalingEvents++;
    this.opts.onDecision?.({ name: e.pa.spec.name, model: e.pa.spec.model, atMs: now, from, to: rec.desired, reason: rec.reason });
    const fail = (err: unknown) => {
      d.success = false;
      d.error = err instanceof Error ? err.message : String(err);
      setCondition(st.conditions, { type: 'AbleToScale', status: 'False', reason: 'FailedRescale', message: d.error }, this.opts.clock.now());
    };
    try {
      const p = this.opts.actuator.setReplicas(e.pa.spec.model, rec.desired, rec.reason);
      if (p && typeof (p as Promise<void>).then === 'function') (p as Promise<void>).catch(fail);
      setCondition(st.conditions, { type: 'AbleToScale', status: 'True', reason: 'SucceededRescale', message: '' }, now);
    } catch (err) {
      fail(err);
    }
  }

  /** Starts ticking every second on the injected timers (standalone mode). */
  start(): void {
    if (this.handle !== null) return;
    if (!this.opts.timers) throw new Error('AutoscalerController.start: no timers injected');
    this.handle = this.opts.timers.setInterval(() => this.tick(), 1000);
  }

  /** Stops ticking. */
  stop(): void {
    if (this.handle !== null) this.opts.timers!.clearInterval(this.handle);
    this.handle = null;
  }
}
