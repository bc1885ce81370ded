/**
 * Metric collection for the autoscaler: 1-second buckets over sliding windows, aggregated across
 * replicas.
 *
 * What AIBrix does (`pkg/controller/podautoscaler/metrics/client.go`, see
 * `shared/reference/aibrix-control-plane.md` 2.3-2.4) and what we do differently:
 * - AIBrix writes one sample per reconcile: the *mean over pods*, and feeds it to KPA, whose
 *   `ceil(value/target)` needs the fleet *total* (defect). We keep both: `total` (sum over ready
 *   replicas, the demand) and `perReplica` (total / ready replicas). KPA and ours read `total`; HPA and
 *   APA read `perReplica`.
 * - AIBrix reads a failed scrape as 0 (defect: it pulls the average down and can scale down). Here a
 *   replica whose signal is missing or stale does not report; the total is extrapolated from the
 *   replicas that do (mean of reporting x ready count). If no ready replica reports, no bucket is
 *   written for that second, and a window with no bucket newer than `staleAfterS` yields `undefined`:
 *   the algorithms then hold the current size.
 * - Replicas that are not ready (starting, draining) are not counted: they receive no traffic.
 *
 * Buckets: each holds the last sample written in its second (as AIBrix). A window's value is the mean
 * of its buckets (missing seconds are skipped, not zero). Counters (token and request arrivals from the
 * gateway) accumulate per second instead; their rate is the sum over the window divided by its span.
 * All times are in ms (wall or virtual, injected by the caller).
 */
import type { EndpointState } from '../../engines/state.ts';
import type { AutoscalingMetric } from '../resources.ts';

/** A replica as the collector reads it: the canonical endpoint state fields it needs. */
export type ReplicaSignals = Pick<EndpointState, 'id' | 'ready' | 'stale' | 'kvCacheUsage' | 'waiting' | 'running' | 'inflightRequests' | 'inflightTokens'>;

/**
 * One observation of a model's fleet at time `nowMs` (ms).
 * `arrivedRequests`/`arrivedTokens` are counts since the previous observation (gateway counters,
 * tokens = prompt tokens + requested max output tokens or an estimate). `queueTimeMs` is the mean
 * gateway queue time over the last second (undefined when not measured).
 */
export interface FleetObservation {
  nowMs: number;
  /** Replicas of the model known to the fleet, ready or not. */
  replicas: ReplicaSignals[];
  arrivedRequests: number;
  arrivedTokens: number;
  queueTimeMs?: number;
  /** Requests held by the gateway for this model because no replica is ready (cold start). */
  queuedRequests?: number;
}

/** A sample aggregated across replicas. `ready` = ready replicas, `reporting` = those with a fresh value. */
export interface AggregatedSample {
  /** Sum over ready replicas (extrapolated for non-reporting ones), in the metric's unit. */
  total: number;
  /** total / ready. */
  perReplica: number;
  ready: number;
  reporting: number;
}

/** Reads a canonical signal from a replica; undefined when never observed. */
export function signalOf(r: ReplicaSignals, metric: AutoscalingMetric): number | undefined {
  switch (metric) {
    case 'kvCacheUsage':
      return r.kvCacheUsage;
    case 'waiting':
      return r.waiting;
    case 'running':
      return r.running;
    case 'tokensInFlight':
      return r.inflightTokens;
    case 'inflightRequests':
      return r.inflightRequests;
    case 'queueTimeMs':
      return undefined;
  }
}

/** True for signals the gateway counts itself (always current, never stale). */
function gatewayLocal(metric: AutoscalingMetric): boolean {
  return metric === 'tokensInFlight' || metric === 'inflightRequests' || metric === 'queueTimeMs';
}

/**
 * Aggregates one per-replica metric across the ready replicas.
 * A replica reports when it is ready, its value is a finite number and (for engine signals) it is not
 * stale. Returns undefined when no ready replica reports (the signal is missing: hold, never zero).
 * `total = sum(reported) + mean(reported) x (ready - reporting)`; `perReplica = total / ready`.
 */
export function aggregateReplicas(replicas: readonly ReplicaSignals[], metric: AutoscalingMetric): AggregatedSample | undefined {
  let ready = 0;
  let reporting = 0;
  let sum = 0;
  for (const r of replicas) {
    if (!r.ready) continue;
    ready++;
    if (r.stale && !gatewayLocal(metric)) continue;
    const v = signalOf(r, metric);
    if (v === undefined || !Number.isFinite(v)) continue;
    reporting++;
    sum += v;
  }
  if (reporting === 0) return undefined;
  const total = sum + (sum / reporting) * (ready - reporting);
  return { total, perReplica: total / ready, ready, reporting };
}

interface Bucket {
  sec: number;
  total: number;
  perReplica: number;
}

/**
 * A gauge window: 1-s buckets holding the last aggregated sample of each second, kept for
 * `capacityS` seconds. Queries take any window length up to the capacity.
 */
export class GaugeWindow {
  private buckets: Bucket[] = [];
  /** Time (ms) of the last recorded sample, or null. */
  lastSampleMs: number | null = null;

  constructor(readonly capacityS: number) {}

  /** Records a sample at `tMs`; a later sample in the same second replaces the earlier one. */
  record(tMs: number, s: { total: number; perReplica: number }): void {
    const sec = Math.floor(tMs / 1000);
    const last = this.buckets[this.buckets.length - 1];
    if (last && last.sec === sec) {
      last.total = s.total;
      last.perReplica = s.perReplica;
    } else if (!last || sec > last.sec) {
      this.buckets.push({ sec, total: s.total, perReplica: s.perReplica });
    } else return; // out of order: ignore
    this.lastSampleMs = tMs;
    const oldest = sec - this.capacityS;
    let drop = 0;
    while (drop < this.buckets.length && this.buckets[drop]!.sec <= oldest) drop++;
    if (drop) this.buckets.splice(0, drop);
  }

  /**
   * Mean of the bucket values of the last `windowS` seconds (seconds in (now-windowS, now]) for
   * `field`; undefined when the window holds no bucket. Missing seconds are skipped, not zero.
   */
  average(nowMs: number, windowS: number, field: 'total' | 'perReplica'): number | undefined {
    const nowSec = Math.floor(nowMs / 1000);
    let n = 0;
    let sum = 0;
    for (let i = this.buckets.length - 1; i >= 0; i--) {
      const b = this.buckets[i]!;
      if (b.sec <= nowSec - windowS) break;
      if (b.sec > nowSec) continue;
      n++;
      sum += b[field];
    }
    return n ? sum / n : undefined;
  }

  /** True when no sample was recorded in the last `staleAfterS` seconds. */
  isStale(nowMs: number, staleAfterS: number): boolean {
    return this.lastSampleMs === null || nowMs - this.lastSampleMs > staleAfterS * 1000;
  }
}

/**
 * A counter window: per-second sums of events (e.g. arrived tokens), kept for `capacityS` seconds.
 * Seconds with no event count as 0 (the counter is gateway-local and always current), from the first
 * observation on.
 */
export class CounterWindow {
  private buckets = new Map<number, number>();
  /** Second of the first observation, or null. */
  private startSec: number | null = null;

  constructor(readonly capacityS: number) {}

  /** Adds `amount` to the bucket of `tMs`'s second (amount >= 0). */
  add(tMs: number, amount: number): void {
    const sec = Math.floor(tMs / 1000);
    if (this.startSec === null) this.startSec = sec;
    this.buckets.set(sec, (this.buckets.get(sec) ?? 0) + amount);
    for (const k of this.buckets.keys()) if (k <= sec - this.capacityS) this.buckets.delete(k);
  }

  /**
   * Per-second values of the last `windowS` complete seconds (oldest first): seconds in
   * [now-windowS, now). Seconds before the first observation are left out.
   */
  series(nowMs: number, windowS: number): number[] {
    if (this.startSec === null) return [];
    const nowSec = Math.floor(nowMs / 1000);
    const from = Math.max(nowSec - windowS, this.startSec);
    const out: number[] = [];
    for (let s = from; s < nowSec; s++) out.push(this.buckets.get(s) ?? 0);
    return out;
  }

  /** Mean rate per second over the last `windowS` complete seconds; undefined before one full second. */
  rate(nowMs: number, windowS: number): number | undefined {
    const s = this.series(nowMs, windowS);
    if (!s.length) return undefined;
    return s.reduce((a, b) => a + b, 0) / s.length;
  }
}

/** All metrics the collector keeps for one model, whatever the configured sources. */
export const COLLECTED_METRICS: readonly AutoscalingMetric[] = ['kvCacheUsage', 'waiting', 'running', 'tokensInFlight', 'inflightRequests', 'queueTimeMs'];

/**
 * Collects every canonical signal of one model's fleet into gauge windows, plus token and request
 * arrival counters. Feed it one {@link FleetObservation} per second (or more often; the last one in a
 * second wins). `capacityS` must cover the longest window queried (stable window, trend window).
 */
export class MetricCollector {
  readonly gauges = new Map<AutoscalingMetric, GaugeWindow>();
  readonly arrivedTokens: CounterWindow;
  readonly arrivedRequests: CounterWindow;
  /** Ready replicas at the last observation. */
  readyReplicas = 0;
  /** Time (ms) of the last arrival seen, or null. */
  lastArrivalMs: number | null = null;
  /** In-flight requests (gateway) at the last observation, summed over replicas. */
  inflightRequests = 0;
  /** Requests held by the gateway for a cold model at the last observation. */
  queuedRequests = 0;

  constructor(readonly capacityS: number) {
    for (const m of COLLECTED_METRICS) this.gauges.set(m, new GaugeWindow(capacityS));
    this.arrivedTokens = new CounterWindow(capacityS);
    this.arrivedRequests = new CounterWindow(capacityS);
  }

  /** Records one observation (see the module docs for aggregation and missing signals). */
  observe(o: FleetObservation): void {
    for (const m of COLLECTED_METRICS) {
      if (m === 'queueTimeMs') {
        const ready = o.replicas.filter((r) => r.ready).length;
        if (o.queueTimeMs !== undefined && Number.isFinite(o.queueTimeMs) && ready > 0) {
          this.gauges.get(m)!.record(o.nowMs, { total: o.queueTimeMs * ready, perReplica: o.queueTimeMs });
        }
        continue;
      }
      const s = aggregateReplicas(o.replicas, m);
      if (s) this.gauges.get(m)!.record(o.nowMs, s);
    }
    this.arrivedTokens.add(o.nowMs, o.arrivedTokens);
    this.arrivedRequests.add(o.nowMs, o.arrivedRequests);
    if (o.arrivedRequests > 0) this.lastArrivalMs = o.nowMs;
    this.readyReplicas = o.replicas.filter((r) => r.ready).length;
    this.inflightRequests = o.replicas.reduce((a, r) => a + (r.inflightRequests ?? 0), 0);
    this.queuedRequests = o.queuedRequests ?? 0;
  }
}
