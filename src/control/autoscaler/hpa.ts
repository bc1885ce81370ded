/**
 * `hpa`: the Kubernetes Horizontal Pod Autoscaler on a Pods metric (autoscaling/v2, AverageValue).
 *
 * Formula (Kubernetes `pkg/controller/podautoscaler/replica_calculator.go`, `GetMetricReplicas` /
 * `calcPlainMetricReplicas`; docs "Algorithm details"):
 *   ratio = avg / target, avg = per-replica mean over the replicas that report (R of them)
 *   |ratio - 1| <= tolerance (0.1)                 -> keep the current count
 *   pending replicas P (asked for, not ready yet): when scaling up they count as 0 usage, when
 *   scaling down as exactly the target: ratio' = (avg*R + (down ? target*P : 0)) / ((R+P) * target);
 *   if ratio' is within tolerance or flips direction  -> keep the current count
 *   desired = ceil(ratio' * (R+P))   (ceil(ratio * R) when P = 0)
 * Several metrics: the largest proposal wins. Then behaviour (defaults of autoscaling/v2):
 *   stabilization: up `cooldown.upS` (default 0), down `cooldown.downS` (default 300 s) (see
 *   {@link stabilize}); rate policies per 15 s period: up max(+100%, +4 pods), down -100%.
 * The current metric is the mean over the decision interval (the Pods metric's latest value).
 */
import { ceilR, clamp, floorReplicas, fmt, stabilize, windowed, type PastRecommendation, type ScalingAlgorithm, type ScalingInput } from './types.ts';

/** State kept between ticks: past recommendations (stabilization) and applied changes (rate periods). */
export interface HpaState {
  history: PastRecommendation[];
  changes: { atMs: number; from: number; to: number }[];
}

/** Kubernetes HPA scale-up/scale-down policy period (s) and limits (autoscaling/v2 defaults). */
export const HPA_POLICY_PERIOD_S = 15;

/**
 * The plain-metric replica formula for one metric (no stabilization, no rate limits).
 * @param avg per-replica mean over `reporting` replicas; @param pending replicas without metrics yet.
 * @returns the proposed count and a short reason.
 */
export function hpaProposal(current: number, avg: number, reporting: number, pending: number, target: number, tolUp: number, tolDown: number): { desired: number; why: string } {
  const ratio = avg / target;
  const within = (r: number) => r <= 1 + tolUp && r >= 1 - tolDown;
  if (within(ratio)) return { desired: current, why: `ratio ${fmt(ratio)} within tolerance` };
  if (pending <= 0) return { desired: ceilR(ratio * reporting), why: `ratio ${fmt(ratio)} x ${reporting}` };
  const up = ratio > 1;
  const r2 = (avg * reporting + (up ? 0 : target * pending)) / ((reporting + pending) * target);
  if (within(r2) || (up && r2 < 1) || (!up && r2 > 1)) return { desired: current, why: `ratio ${fmt(ratio)}, ${fmt(r2)} counting ${pending} pending` };
  return { desired: ceilR(r2 * (reporting + pending)), why: `ratio ${fmt(r2)} x ${reporting + pending} (incl. ${pending} pending)` };
}

/** The HPA algorithm (see module docs). */
export const hpa: ScalingAlgorithm<HpaState> = {
  strategy: 'hpa',
  init: () => ({ history: [], changes: [] }),
  recommend(input: ScalingInput, state: HpaState) {
    const { spec, nowMs, currentReplicas: N, readyReplicas: R } = input;
    const win = Math.max(1, ceilR(spec.intervalS));
    let best: { desired: number; why: string } | undefined;
    const missing: string[] = [];
    for (const src of spec.metrics) {
      const avg = windowed(input, src, win, 'perReplica');
      if (avg === undefined || R === 0) {
        missing.push(src.metric);
        continue;
      }
      const p = hpaProposal(N, avg, R, Math.max(0, N - R), src.target, spec.tolerance.up, spec.tolerance.down);
      if (!best || p.desired > best.desired) best = { desired: p.desired, why: `${src.metric} ${fmt(avg)}/${fmt(src.target)}: ${p.why}` };
    }
    if (!best) return { rec: { desired: N, reason: `hpa: hold, no fresh ${missing.join(', ')} signal`, held: true }, state };
    const st = stabilize(state.history, nowMs, N, best.desired, spec.cooldown.upS, spec.cooldown.downS);
    let desired = st.desired;
    // Rate policies over the last period: replicas at the period start = N minus net change since.
    const periodMs = HPA_POLICY_PERIOD_S * 1000;
    const changes = state.changes.filter((c) => nowMs - c.atMs < periodMs);
    const added = changes.reduce((a, c) => a + Math.max(0, c.to - c.from), 0);
    const upLimit = Math.max(2 * (N - added), N - added + 4);
    let limited = '';
    if (desired > upLimit) {
      desired = upLimit;
      limited = `, rate-limited to ${upLimit}`;
    }
    // Scale-down policy is -100% per period: no limit beyond the floor.
    const out = clamp(desired, floorReplicas(spec), spec.maxReplicas);
    const nextChanges = out !== N ? [...changes, { atMs: nowMs, from: N, to: out }] : changes;
    const stab = st.desired !== best.desired ? `, stabilized ${best.desired}->${st.desired}` : '';
    return { rec: { desired: out, reason: `hpa: ${best.why}${stab}${limited}` }, state: { history: st.history, changes: nextChanges } };
  },
};
