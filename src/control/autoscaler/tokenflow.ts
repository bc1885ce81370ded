/**
 * `tokenflow` (ours): an autoscaler that anticipates load from the token arrival rate and accounts
 * for replica start-up time.
 *
 * Why: engine signals react late. KV cache usage saturates at 1.0 per replica, so under overload a
 * KV-driven autoscaler sees at most `N / target` replicas of demand per tick, and a new replica is only
 * useful `replicaStartupS` (60 s) after it is asked for. The gateway, however, sees every request's
 * tokens the moment it arrives.
 *
 * Formula (per decision at time t; units: tokens/s, replicas):
 *   reactive  = max over sources of ceil(P/T), ceil(S/T)      fleet totals over the panic (P) and
 *                                                             stable (S) windows, as KPA
 *   lambda    = mean token arrival rate over the last `panicS` seconds (gateway counter)
 *   slope     = least-squares slope of per-second token arrivals over `trendWindowS` (tokens/s^2)
 *   H         = replicaStartupS + intervalS                   (time until a replica asked now serves)
 *   lambdaH   = lambda + max(0, slope) * H                    (short-horizon linear forecast, growth only)
 *   mu        = tokens/s one replica carries at the target    (configured `tokensPerReplicaS`, or
 *               learned: EWMA(0.2) of lambda_stable / (S/T) over decisions where the replicas are
 *               busy enough to measure (S/T >= 0.5 ready) and not saturated (waiting per replica < 1))
 *   forecast  = ceil(lambdaH * (1 + headroom) / mu)           (0 until mu is known)
 *   up        = max(reactive, forecast); if up > N: desired = min(up, ceil(maxUp * max(N, 1)))
 *   down      = max(ceil(S/T * (1 + headroom)), ceil(lambda_stable * (1 + headroom) / mu), forecast)
 *               if down < N * (1 - downTol): desired = the max of `down` over the last cooldown.downS
 *               seconds (scale down once, to the level every recent recommendation allows),
 *               at least floor(N / maxDown)
 *   clamp to [min, max].
 * Start-up: replicas asked for but not ready count in N, so the absolute (total-based) demand does not
 * keep adding replicas while they start, and the forecast horizon covers their start-up.
 * A missing or stale engine signal holds the current size (the forecast alone never scales down).
 */
import { ceilR, clamp, floorReplicas, fmt, windowed, type PastRecommendation, type ScalingAlgorithm, type ScalingInput } from './types.ts';
import { slopePerS } from './windows.ts';

/** Tokenflow state: learned per-replica capacity (tokens/s at target, or null) and down history. */
export interface TokenflowState {
  muTokensPerReplicaS: number | null;
  history: PastRecommendation[];
}

/** EWMA weight of a new capacity observation. */
export const MU_EWMA_ALPHA = 0.2;

/** The tokenflow algorithm (see module docs). */
export const tokenflow: ScalingAlgorithm<TokenflowState> = {
  strategy: 'tokenflow',
  init: () => ({ muTokensPerReplicaS: null, history: [] }),
  recommend(input: ScalingInput, state: TokenflowState) {
    const { spec, nowMs, currentReplicas: N, readyReplicas: R, metrics } = input;
    const f = spec.forecast;
    let reactive = -1;
    let stableDemand = -1; // replicas, from S/T
    let why = '';
    let primaryStable: number | undefined;
    for (const src of spec.metrics) {
      const s = windowed(input, src, spec.windows.stableS, 'total');
      const p = windowed(input, src, spec.windows.panicS, 'total');
      if (s === undefined || p === undefined) continue;
      if (primaryStable === undefined) primaryStable = s / src.target;
      const r = Math.max(ceilR(p / src.target), ceilR(s / src.target));
      if (r > reactive) {
        reactive = r;
        why = `${src.metric} stable ${fmt(s)} panic ${fmt(p)} total /${fmt(src.target)}`;
      }
      stableDemand = Math.max(stableDemand, s / src.target);
    }
    if (reactive < 0) return { rec: { desired: N, reason: 'tokenflow: hold, no fresh metric signal', held: true }, state };

    const lambda = metrics.arrivedTokens.rate(nowMs, spec.windows.panicS) ?? 0;
    const lambdaStable = metrics.arrivedTokens.rate(nowMs, spec.windows.stableS) ?? 0;
    const slope = slopePerS(metrics.arrivedTokens.series(nowMs, f.trendWindowS));
    const H = f.replicaStartupS + spec.intervalS;
    const lambdaH = lambda + Math.max(0, slope) * H;

    // Learn mu from busy, unsaturated periods.
    let mu = f.tokensPerReplicaS ?? state.muTokensPerReplicaS;
    if (f.tokensPerReplicaS === undefined && primaryStable !== undefined && R > 0 && primaryStable >= 0.5 * R && lambdaStable > 0) {
      const waiting = metrics.gauges.get('waiting');
      const w = waiting && !waiting.isStale(nowMs, spec.staleAfterS) ? waiting.average(nowMs, spec.windows.stableS, 'perReplica') : undefined;
      if (w !== undefined && w < 1) {
        const obs = lambdaStable / primaryStable;
        mu = mu === null ? obs : (1 - MU_EWMA_ALPHA) * mu + MU_EWMA_ALPHA * obs;
      }
    }
    const muOk = mu !== null && mu > 0;
    const forecast = muOk ? ceilR((lambdaH * (1 + f.headroom)) / mu!) : 0;
    const up = Math.max(reactive, forecast);
    const detail = `${why}; tokens ${fmt(lambda)}/s slope ${fmt(slope)}/s2 H ${fmt(H)}s -> ${fmt(lambdaH)}/s, mu ${muOk ? fmt(mu!) : 'unknown'} -> forecast ${forecast}, reactive ${reactive}`;

    const history = state.history.filter((p) => nowMs - p.atMs < spec.cooldown.downS * 1000);
    let desired = N;
    let verdict = 'hold';
    if (up > N) {
      desired = Math.min(up, ceilR(spec.rates.maxUp * Math.max(N, 1)));
      verdict = `up to ${desired}`;
    } else {
      const down = Math.max(ceilR(stableDemand * (1 + f.headroom)), muOk ? ceilR((lambdaStable * (1 + f.headroom)) / mu!) : 0, forecast);
      history.push({ atMs: nowMs, desired: down });
      if (down < N * (1 - spec.tolerance.down)) {
        const level = Math.max(...history.map((p) => p.desired));
        if (level < N) {
          desired = Math.max(level, Math.floor(N / spec.rates.maxDown));
          verdict = `down to ${desired} (max over ${spec.cooldown.downS}s: ${level})`;
        } else verdict = `hold, scale-down delayed (max over ${spec.cooldown.downS}s: ${level})`;
      }
    }
    if (up > N) history.push({ atMs: nowMs, desired: up });
    const out = clamp(desired, floorReplicas(spec), spec.maxReplicas);
    return { rec: { desired: out, reason: `tokenflow: ${verdict}; ${detail}` }, state: { muTokensPerReplicaS: mu, history } };
  },
};
