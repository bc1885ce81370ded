/**
 * The autoscaler inside the discrete-event simulator (`src/sim/des`): the same
 * {@link AutoscalerController} and algorithms that run live, on virtual time, actuating simulated
 * engines.
 *
 * Integration point (what the DES calls; `SimCluster` of `src/sim/des/cluster.ts` fits
 * {@link DesClusterLike} as is):
 * ```ts
 * const as = new DesAutoscaler({ spec: exp.autoscaler, model: modelName, replicas: exp.replicas, replicaStartupS: exp.replicaStartupS });
 * as.attachWorkload(wl.requests);                       // arrivals -> gateway token counters
 * const cluster = new SimCluster({ ...opts, replicas: as.initialReplicas, onScrape: as.onScrape });
 * const endMs = cluster.run(wl.requests, stages);
 * const extra = as.result(cluster, endMs);               // { replicaHours, scalingEvents, replicaTimeline, decisions }
 * ```
 * `onScrape(cluster, nowMs)` runs at every DES scrape (1 s recommended): it observes every engine's
 * `EndpointState` (starting engines are not ready and not counted; draining ones are leaving and not
 * counted), feeds the arrivals since the last call, ticks the controller, and applies its decisions:
 * scale up = `addEngine(now, replicaStartupS * 1000)` (routable once started); scale down = drop
 * engines that are still starting first (they hold no work), then `removeEngine` on the ready ones
 * with the fewest in-flight requests (they drain, then leave).
 * Gateway token counter: prompt tokens + requested output tokens of each arrival (what a gateway
 * knows at arrival time from the prompt and `max_tokens`).
 */
import type { EndpointState } from '../../engines/state.ts';
import { parseResource, PodAutoscalerSpecSchema, type PodAutoscaler, type ScalingDecision } from '../resources.ts';
import { AutoscalerController } from './controller.ts';
import type { FleetObservation } from './windows.ts';

/** What the hook needs from the DES cluster (structural; `SimCluster` satisfies it). */
export interface DesClusterLike {
  activeEngines(): readonly { id: string; state: EndpointState; draining: boolean; addedMs: number; removedMs: number | null }[];
  addEngine(nowMs: number, startupDelayMs: number): string;
  removeEngine(id: string, nowMs: number): void;
  /** Every engine ever added (for replica-hours); defaults to `activeEngines()` when absent. */
  readonly engines?: readonly { addedMs: number; removedMs: number | null }[];
}

/** An arrival as the DES workload lists it. */
export interface DesArrival {
  arrivalMs: number;
  promptLen: number;
  outputTokens: number;
}

/** Replica bounds of a simulated run: `{min, max, initial}`, or a plain count (fixed: no autoscaling range). */
export type DesReplicas = number | { min?: number; max?: number; initial?: number };

/** Options of {@link DesAutoscaler}. */
export interface DesAutoscalerOptions {
  /** A PodAutoscaler spec (e.g. `{strategy: "kpa", metric: "kvCacheUsage", target: 0.7}`; the rest defaulted). */
  spec: unknown;
  /** Model name of the simulated engines. */
  model: string;
  /** `{min, max, initial}`; min/max override the spec's minReplicas/maxReplicas. Default: the spec's bounds, initial = min. */
  replicas?: DesReplicas;
  /** Simulated replica start-up delay (s). Default 60. Also the default of `forecast.replicaStartupS`. */
  replicaStartupS?: number;
}

/** What a simulated run with an autoscaler adds to its result. */
export interface DesAutoscalerResult {
  /** Σ over engines of (removed or end - added), hours; includes start-up and draining time (GPUs are held). */
  replicaHours: number;
  /** Number of changes of the desired replica count. */
  scalingEvents: number;
  /** [time (s), desired replicas] at the start and at every change. */
  replicaTimeline: [number, number][];
  /** Every decision with its reason. */
  decisions: ScalingDecision[];
  /** The autoscaler (spec + final status). */
  autoscaler: PodAutoscaler;
}

/** Runs a PodAutoscaler on a DES cluster (see module docs). */
export class DesAutoscaler {
  readonly controller: AutoscalerController;
  /** Replicas the cluster should start with. */
  readonly initialReplicas: number;
  private now = 0;
  private cluster: DesClusterLike | null = null;
  private arrivals: readonly DesArrival[] = [];
  private nextArrival = 0;
  private pendingReq = 0;
  private pendingTok = 0;
  private readonly startupMs: number;
  private readonly timeline: [number, number][] = [];
  private readonly decisions: ScalingDecision[] = [];
  private readonly name: string;

  /** @throws ResourceValidationError (paths prefixed `autoscaler`) for a bad spec or bounds. */
  constructor(opts: DesAutoscalerOptions) {
    const startupS = opts.replicaStartupS ?? 60;
    if (!(startupS >= 0)) throw new Error(`replicaStartupS: must be >= 0, got ${startupS}`);
    this.startupMs = startupS * 1000;
    const raw = { ...((opts.spec ?? {}) as Record<string, unknown>) };
    raw.model = opts.model;
    const r = opts.replicas;
    if (typeof r === 'number') {
      raw.minReplicas = r;
      raw.maxReplicas = r;
    } else if (r) {
      if (r.min !== undefined) raw.minReplicas = r.min;
      if (r.max !== undefined) raw.maxReplicas = r.max;
    }
    const fc = (raw.forecast ?? {}) as Record<string, unknown>;
    if (fc.replicaStartupS === undefined) raw.forecast = { ...fc, replicaStartupS: startupS };
    const spec = parseResource(PodAutoscalerSpecSchema, raw, 'autoscaler');
    const initial = typeof r === 'object' && r.initial !== undefined ? r.initial : spec.minReplicas;
    if (!Number.isInteger(initial) || initial < spec.minReplicas || initial > spec.maxReplicas)
      throw new Error(`replicas.initial: must be an integer in [${spec.minReplicas}, ${spec.maxReplicas}], got ${initial}`);
    this.initialReplicas = Math.max(initial, 1);
    this.name = spec.name ?? opts.model;
    this.timeline.push([0, this.initialReplicas]);
    this.controller = new AutoscalerController({
      clock: { now: () => this.now },
      actuator: { currentReplicas: () => this.currentReplicas(), setReplicas: (_m, n) => this.setReplicas(n) },
      signals: { observe: (_m, t) => this.observe(t) },
      onDecision: (d) => {
        this.timeline.push([d.atMs / 1000, d.to]);
        this.decisions.push({ atMs: d.atMs, from: d.from, to: d.to, reason: d.reason, success: true });
      },
    });
    this.controller.apply(raw, 'autoscaler');
  }

  /** Gives the workload's arrivals (sorted by `arrivalMs`) so the gateway counters can be fed. */
  attachWorkload(arrivals: readonly DesArrival[]): void {
    this.arrivals = arrivals;
    this.nextArrival = 0;
  }

  /** The DES scrape callback (bound; pass it as `ClusterOptions.onScrape`). */
  readonly onScrape = (cluster: DesClusterLike, nowMs: number): void => {
    this.cluster = cluster;
    this.now = nowMs;
    while (this.nextArrival < this.arrivals.length && this.arrivals[this.nextArrival]!.arrivalMs <= nowMs) {
      const a = this.arrivals[this.nextArrival++]!;
      this.pendingReq++;
      this.pendingTok += a.promptLen + a.outputTokens;
    }
    this.controller.tick();
  };

  private engines() {
    return this.cluster ? this.cluster.activeEngines().filter((e) => !e.draining) : [];
  }

  private currentReplicas(): number {
    return this.cluster ? this.engines().length : this.initialReplicas;
  }

  private observe(t: number): FleetObservation {
    const obs: FleetObservation = { nowMs: t, replicas: this.engines().map((e) => e.state), arrivedRequests: this.pendingReq, arrivedTokens: this.pendingTok };
    this.pendingReq = 0;
    this.pendingTok = 0;
    return obs;
  }

  private setReplicas(n: number): void {
    const c = this.cluster;
    if (!c) return;
    let live = this.engines();
    while (live.length < n) {
      c.addEngine(this.now, this.startupMs);
      live = this.engines();
    }
    if (live.length > n) {
      // Starting engines first (newest first), then ready ones with the fewest in-flight requests.
      const order = [...live].sort((a, b) => Number(a.state.ready) - Number(b.state.ready) || a.state.inflightRequests - b.state.inflightRequests || b.addedMs - a.addedMs);
      for (const e of order.slice(0, live.length - n)) c.removeEngine(e.id, this.now);
    }
  }

  /** The figures a run adds to its result (call after `cluster.run`). */
  result(cluster: DesClusterLike, endMs: number): DesAutoscalerResult {
    const all = cluster.engines ?? cluster.activeEngines();
    let ms = 0;
    for (const e of all) ms += Math.max(0, (e.removedMs ?? endMs) - e.addedMs);
    const pa = this.controller.get(this.name)!;
    return {
      replicaHours: Math.round((ms / 3_600_000) * 10000) / 10000,
      scalingEvents: pa.status.scalingEvents,
      replicaTimeline: this.timeline.map(([t, n]) => [Math.round(t * 1000) / 1000, n]),
      decisions: this.decisions,
      autoscaler: pa,
    };
  }
}
