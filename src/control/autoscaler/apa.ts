/**
 * `apa`: AIBrix's Adaptive Pod Autoscaler (AIBrix `pkg/controller/podautoscaler/algorithm/apa.go`,
 * after Huo et al. 2023; reference 2.5), on the per-replica average of a metric:
 *   r = u / T, u = per-replica mean over the stable window (AIBrix uses the stable window only)
 *   r > 1 + upTol   -> desired = min(ceil(N r), ceil(maxUp N))
 *   r < 1 - downTol -> desired = max(ceil(N r), floor(N / maxDown))
 *   otherwise       -> N
 * then stabilization (cooldowns, see {@link stabilize}) and [min, max]. Several metrics: largest wins.
 */
import { ceilR, clamp, floorReplicas, fmt, stabilize, windowed, type PastRecommendation, type ScalingAlgorithm, type ScalingInput } from './types.ts';

/** APA state: past recommendations for the cooldown windows. */
export interface ApaState {
  history: PastRecommendation[];
}

/**
 * The APA formula for one metric (no stabilization, no clamping). `target <= 0` keeps N.
 * Worked examples (AIBrix `apa_test.go`, reference bench-tests 44): N=2, T=30, tol 0.1, rates 2:
 * u=45 -> 3, u=35 -> 3, u=90 -> 4; N=6: u=20 -> 4, u=10 -> 3.
 */
export function apaDesired(N: number, u: number, target: number, tolUp: number, tolDown: number, maxUp: number, maxDown: number): number {
  if (!(target > 0)) return N;
  const r = u / target;
  if (r > 1 + tolUp) return Math.min(ceilR(N * r), ceilR(maxUp * N));
  if (r < 1 - tolDown) return Math.max(ceilR(N * r), Math.floor(N / maxDown));
  return N;
}

/** The APA algorithm (see module docs). */
export const apa: ScalingAlgorithm<ApaState> = {
  strategy: 'apa',
  init: () => ({ history: [] }),
  recommend(input: ScalingInput, state: ApaState) {
    const { spec, nowMs, currentReplicas: N } = input;
    let best: { desired: number; why: string } | undefined;
    for (const src of spec.metrics) {
      const u = windowed(input, src, spec.windows.stableS, 'perReplica');
      if (u === undefined) continue;
      const d = apaDesired(N, u, src.target, spec.tolerance.up, spec.tolerance.down, spec.rates.maxUp, spec.rates.maxDown);
      if (!best || d > best.desired) best = { desired: d, why: `${src.metric} ${fmt(u)}/${fmt(src.target)} per replica over ${N} -> ${d}` };
    }
    if (!best) return { rec: { desired: N, reason: 'apa: hold, no fresh metric signal', held: true }, state };
    const st = stabilize(state.history, nowMs, N, best.desired, spec.cooldown.upS, spec.cooldown.downS);
    const out = clamp(st.desired, floorReplicas(spec), spec.maxReplicas);
    const stab = st.desired !== best.desired ? `, stabilized ${best.desired}->${st.desired}` : '';
    return { rec: { desired: out, reason: `apa: ${best.why}${stab}` }, state: { history: st.history } };
  },
};
