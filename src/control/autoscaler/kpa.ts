/**
 * `kpa`: the Knative Pod Autoscaler, on the fleet *total* of a metric (Knative's concurrency is a
 * total; AIBrix feeds a per-pod average here, a defect we do not repeat: reference 2.4 [obs]).
 *
 * Formula (Knative `pkg/autoscaler/scaling/autoscaler.go` `Scale`; peers.md section 7; AIBrix
 * `algorithm/kpa.go` for the tolerance band):
 *   S = mean total over the stable window (default 60 s), P = over the panic window (default 6 s)
 *   dspc = ceil(S / T), dppc = ceil(P / T)                 (T = per-replica target)
 *   AIBrix tolerance: S / N within [T(1-down), T(1+up)] -> dspc = N
 *   both clamped to [floor(N / maxDown), max(1, ceil(maxUp * N))]
 *   panic: starts when dppc / ready >= panicThreshold (2.0), is extended while over it, ends a full
 *   stable window after the last time over it (Knative); while in panic desired = max(dspc, dppc) and
 *   never below the largest count seen in this panic (`maxPanicPods`); the panic state is kept between
 *   ticks (AIBrix rebuilds it each reconcile: defect, reference 2.5 [obs]).
 *   scale-down delay: the stabilization window `cooldown.downS` (max over the window), as AIBrix.
 *   clamp to [min, max].
 * Several metrics: dspc and dppc are the largest over the sources.
 */
import { ceilR, clamp, floorReplicas, fmt, stabilize, windowed, type PastRecommendation, type ScalingAlgorithm, type ScalingInput } from './types.ts';

/** KPA state kept between ticks. `panicSinceMs`: last time over the threshold (null = not in panic). */
export interface KpaState {
  panicSinceMs: number | null;
  maxPanicPods: number;
  history: PastRecommendation[];
}

/** Inputs of one KPA step, for the pure formula (tests use the reference's worked examples). */
export interface KpaStepInput {
  nowMs: number;
  /** N, current replicas (rates are relative to it). */
  current: number;
  /** Ready replicas (panic ratio denominator; at least 1 is used). */
  ready: number;
  /** Stable and panic totals; target per replica. */
  stable: number;
  panic: number;
  target: number;
  tolUp: number;
  tolDown: number;
  maxUpRate: number;
  maxDownRate: number;
  panicThreshold: number;
  stableWindowS: number;
}

/**
 * One Knative KPA step without stabilization or [min, max] clamping.
 * @returns desired count, whether in panic, and the next panic state.
 */
export function kpaStep(i: KpaStepInput, st: Pick<KpaState, 'panicSinceMs' | 'maxPanicPods'>): { desired: number; panic: boolean; panicSinceMs: number | null; maxPanicPods: number; why: string } {
  const readyCount = Math.max(1, i.ready);
  let dspc = ceilR(i.stable / i.target);
  const dppc = ceilR(i.panic / i.target);
  const perReplica = i.current > 0 ? i.stable / i.current : Infinity;
  if (i.current > 0 && perReplica >= i.target * (1 - i.tolDown) && perReplica <= i.target * (1 + i.tolUp)) dspc = i.current;
  const maxUp = Math.max(1, ceilR(i.maxUpRate * i.current));
  const maxDown = Math.floor(i.current / i.maxDownRate);
  const stableCount = clamp(dspc, maxDown, maxUp);
  const panicCount = clamp(dppc, maxDown, maxUp);
  const over = dppc / readyCount >= i.panicThreshold;
  let panicSinceMs = st.panicSinceMs;
  let maxPanicPods = st.maxPanicPods;
  if (over) panicSinceMs = i.nowMs;
  else if (panicSinceMs !== null && i.nowMs - panicSinceMs > i.stableWindowS * 1000) {
    panicSinceMs = null;
    maxPanicPods = 0;
  }
  let desired = stableCount;
  let why = `stable ${fmt(i.stable)}/${fmt(i.target)} -> ${stableCount}`;
  if (panicSinceMs !== null) {
    desired = Math.max(stableCount, panicCount);
    if (desired > maxPanicPods) maxPanicPods = desired;
    else desired = maxPanicPods;
    why = `panic (panic ${fmt(i.panic)}/${fmt(i.target)} = ${dppc} over ${readyCount} ready) -> ${desired}`;
  }
  return { desired, panic: panicSinceMs !== null, panicSinceMs, maxPanicPods, why };
}

/** The KPA algorithm (see module docs). */
export const kpa: ScalingAlgorithm<KpaState> = {
  strategy: 'kpa',
  init: () => ({ panicSinceMs: null, maxPanicPods: 0, history: [] }),
  recommend(input: ScalingInput, state: KpaState) {
    const { spec, nowMs, currentReplicas: N, readyReplicas: R } = input;
    let S: number | undefined;
    let P: number | undefined;
    let target = 1;
    let which = '';
    for (const src of spec.metrics) {
      const s = windowed(input, src, spec.windows.stableS, 'total');
      const p = windowed(input, src, spec.windows.panicS, 'total');
      if (s === undefined || p === undefined) continue;
      // Compare sources in replica units; keep the one demanding most.
      if (S === undefined || Math.max(s, p) / src.target > Math.max(S, P!) / target) {
        S = s;
        P = p;
        target = src.target;
        which = src.metric;
      }
    }
    if (S === undefined || P === undefined) return { rec: { desired: N, reason: 'kpa: hold, no fresh metric signal', held: true }, state };
    const step = kpaStep(
      { nowMs, current: N, ready: R, stable: S, panic: P, target, tolUp: spec.tolerance.up, tolDown: spec.tolerance.down, maxUpRate: spec.rates.maxUp, maxDownRate: spec.rates.maxDown, panicThreshold: spec.panicThreshold, stableWindowS: spec.windows.stableS },
      state,
    );
    const st = stabilize(state.history, nowMs, N, step.desired, spec.cooldown.upS, spec.cooldown.downS);
    const out = clamp(st.desired, floorReplicas(spec), spec.maxReplicas);
    const stab = st.desired !== step.desired ? `, scale-down delayed ${step.desired}->${st.desired}` : '';
    return { rec: { desired: out, reason: `kpa: ${which} ${step.why}${stab}` }, state: { panicSinceMs: step.panicSinceMs, maxPanicPods: step.maxPanicPods, history: st.history } };
  },
};
