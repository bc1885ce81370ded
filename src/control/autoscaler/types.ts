/**
 * Shared types and helpers of the autoscaling algorithms. Every algorithm is a pure state machine:
 * `recommend(input, state) -> { rec, state }` with the time in `input.nowMs` (ms, injected). No
 * algorithm reads a clock, sets a timer or does I/O.
 */
import type { MetricSource, PodAutoscalerSpec, Strategy } from '../resources.ts';
import type { MetricCollector } from './windows.ts';

/** What an algorithm sees at one decision. */
export interface ScalingInput {
  /** Decision time, ms (wall or virtual). */
  nowMs: number;
  spec: PodAutoscalerSpec;
  /** N: the replica count currently asked for (ready + starting), as the actuator reports it. */
  currentReplicas: number;
  /** Ready replicas (receiving traffic). */
  readyReplicas: number;
  metrics: MetricCollector;
}

/** An algorithm's output: the desired count (already clamped to [min, max]) and why. */
export interface Recommendation {
  desired: number;
  reason: string;
  /** True when the algorithm held the current size because a signal is missing or stale. */
  held?: boolean;
}

/** An autoscaling algorithm: an initial state and a pure step. */
export interface ScalingAlgorithm<S> {
  readonly strategy: Strategy;
  init(): S;
  recommend(input: ScalingInput, state: S): { rec: Recommendation; state: S };
}

/** Clamps `n` to [lo, hi]. */
export function clamp(n: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, n));
}

/** The effective floor: minReplicas, but at least 1 unless scale to zero is enabled (the controller decides zero). */
export function floorReplicas(spec: PodAutoscalerSpec): number {
  return Math.max(spec.minReplicas, 1);
}

/**
 * `Math.ceil` that ignores floating-point noise below 1e-9 (so 1.4 / 0.7 = 2.0000000000000004 gives 2,
 * not 3). Used for every replica-count ceiling.
 */
export function ceilR(x: number): number {
  return Math.ceil(x - 1e-9);
}

/** Formats a number for reasons (2 decimals, no trailing zeros). */
export function fmt(n: number): string {
  return Number.isFinite(n) ? String(Math.round(n * 100) / 100) : String(n);
}

/**
 * Windowed value of a metric source, or undefined when the signal is missing or stale (no sample
 * in the last `spec.staleAfterS` seconds): callers then hold the current size.
 * @param field `total` (sum over ready replicas) or `perReplica`.
 */
export function windowed(input: ScalingInput, src: MetricSource, windowS: number, field: 'total' | 'perReplica'): number | undefined {
  const g = input.metrics.gauges.get(src.metric);
  if (!g || g.isStale(input.nowMs, input.spec.staleAfterS)) return undefined;
  return g.average(input.nowMs, windowS, field);
}

/** One past recommendation, for stabilization windows. */
export interface PastRecommendation {
  atMs: number;
  desired: number;
}

/**
 * Kubernetes HPA stabilization (`pkg/controller/podautoscaler/horizontal.go`,
 * `stabilizeRecommendationWithBehaviors`), also AIBrix's `stabilizeRecommendation` (reference 2.2
 * step 6): scale up only to the *minimum* recommendation of the last `upS` seconds, scale down only to
 * the *maximum* recommendation of the last `downS` seconds. With up 0 s / down 300 s: immediate
 * scale-up, scale-down once every recommendation of the last 5 minutes is lower.
 * Returns the stabilized count and the pruned history (including `rec`).
 */
export function stabilize(history: readonly PastRecommendation[], nowMs: number, current: number, rec: number, upS: number, downS: number): { desired: number; history: PastRecommendation[] } {
  const keepMs = Math.max(upS, downS) * 1000;
  const h = history.filter((p) => nowMs - p.atMs < keepMs);
  h.push({ atMs: nowMs, desired: rec });
  let up = rec;
  let down = rec;
  for (const p of h) {
    if (nowMs - p.atMs < upS * 1000) up = Math.min(up, p.desired);
    if (nowMs - p.atMs < downS * 1000) down = Math.max(down, p.desired);
  }
  let desired = current;
  if (desired < up) desired = up;
  if (desired > down) desired = down;
  return { desired, history: h };
}
