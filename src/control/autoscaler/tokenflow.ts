/**
 * `tokenflow` (ours): an autoscaler that plans replicas from the token arrival rate, anticipates its
 * trend over the replica start-up time, and keeps the engine signal as a safety net.
 *
 * Why: engine signals react late and are knee-shaped. KV cache usage per replica stays low while an
 * engine keeps up and jumps to ~1.0 once it falls behind (requests pile up in its queue), so a
 * KV-driven autoscaler either scales too late or oscillates around the knee; and a replica asked for
 * now only serves `replicaStartupS` (60 s) later. The gateway, however, sees every request's tokens the
 * moment it arrives.
 *
 * Formula (per decision at time t; units: tokens/s, replicas; R = ready replicas, N = asked for):
 *   series  = per-second arrived tokens (prompt + max output) over the last `trendWindowS` s (120)
 *   OLS fit = mean m and slope b (tokens/s^2) of the series (n points)
 *   level   = max(0, m + b (n-1)/2)                     fitted rate now
 *   lambdaH = max(level, min(m + b ((n-1)/2 + H), 2m))  H = replicaStartupS + intervalS: the rate when
 *                                                       a replica asked for now will serve (growth
 *                                                       only, at most doubling)
 *   mu      = tokens/s one replica carries with the metric at its target: `tokensPerReplicaS` when
 *             configured, else learned as rate_stable / S (S = stable demand in replicas at target),
 *             EWMA weight 0.2, only on a settled fleet (R = N), not saturated, with S within
 *             [0.5, 1.2] x R (the metric near its target, where the ratio is representative: the
 *             engine signal is not linear in load far from it)
 *   plan(x) = ceil(x (1 + headroom) / mu)                headroom default 0 (the target is the headroom)
 *   reactive (KPA on totals): S, P = fleet totals of the metric over the stable and panic windows,
 *             ceil(S/T); ceil(P/T) too while saturated (waiting per replica >= 1 over the panic
 *             window: the stable window lags a queue that is forming), unless replicas are starting (then the panic reading mostly shows a backlog the new replicas will relieve)
 *   up      = max(reactive, plan(lambdaH));  if up > N: desired = min(up, ceil(maxUp x max(N, 1)))
 *             (at most one scale-up per panic window: the panic window fills over its length, so
 *             stepping every tick would climb a staircase of one-replica events)
 *   down    = max(ceil(S/T), plan(level));   if down < N (1 - downTol): desired = the max over the
 *             last cooldown.downS s of `down` (and of `up` where it exceeded N) (one step to the level every recent
 *             recommendation allows) once that level is itself below N (1 - downTol), at least
 *             floor(N / maxDown); at most one scale-down per stable window
 *   clamp to [min, max].
 * Until mu is known the algorithm is the reactive KPA-on-totals part alone. Replicas asked for but not
 * ready count in N, so absolute (total- and rate-based) demand does not keep adding replicas while
 * they start. A missing or stale engine signal holds the current size.
 */
import { ceilR, clamp, floorReplicas, fmt, windowed, type PastRecommendation, type ScalingAlgorithm, type ScalingInput } from './types.ts';

/** Tokenflow state kept between ticks. */
export interface TokenflowState {
  /** Learned per-replica capacity (tokens/s), or null. */
  muTokensPerReplicaS: number | null;
  /** Times (ms) of the last scale-up and scale-down steps, or null. */
  lastUpMs: number | null;
  lastDownMs: number | null;
  history: PastRecommendation[];
}

/** EWMA weight of a new capacity observation. */
export const MU_EWMA_ALPHA = 0.2;

/** Capacity is learned only while the stable demand S (replicas at target) is within this band of the ready replicas R. */
export const MU_BAND: readonly [number, number] = [0.5, 1.2];

/** OLS fit of a per-second series: mean and slope (per second). */
export function fitTrend(series: readonly number[]): { mean: number; slope: number; n: number } {
  const n = series.length;
  if (n === 0) return { mean: 0, slope: 0, n: 0 };
  let my = 0;
  for (const v of series) my += v;
  my /= n;
  if (n < 2) return { mean: my, slope: 0, n };
  const mx = (n - 1) / 2;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (i - mx) * (series[i]! - my);
    den += (i - mx) * (i - mx);
  }
  return { mean: my, slope: num / den, n };
}

/** The tokenflow algorithm (see module docs). */
export const tokenflow: ScalingAlgorithm<TokenflowState> = {
  strategy: 'tokenflow',
  init: () => ({ muTokensPerReplicaS: null, lastUpMs: null, lastDownMs: null, history: [] }),
  recommend(input: ScalingInput, state: TokenflowState) {
    const { spec, nowMs, currentReplicas: N, readyReplicas: R, metrics } = input;
    const f = spec.forecast;
    let S = -1; // stable demand, replicas
    let P = -1; // panic demand, replicas
    let which = '';
    for (const src of spec.metrics) {
      const s = windowed(input, src, spec.windows.stableS, 'total');
      const p = windowed(input, src, spec.windows.panicS, 'total');
      if (s === undefined || p === undefined) continue;
      if (s / src.target > S) which = src.metric;
      S = Math.max(S, s / src.target);
      P = Math.max(P, p / src.target);
    }
    if (S < 0) return { rec: { desired: N, reason: 'tokenflow: hold, no fresh metric signal', held: true }, state };

    // Saturation: queues forming on the ready replicas.
    const wg = metrics.gauges.get('waiting');
    const fresh = wg && !wg.isStale(nowMs, spec.staleAfterS);
    const waitPanic = fresh ? wg!.average(nowMs, spec.windows.panicS, 'perReplica') : undefined;
    const waitStable = fresh ? wg!.average(nowMs, spec.windows.stableS, 'perReplica') : undefined;
    const saturated = waitPanic !== undefined && waitPanic >= 1;

    // Token arrival rate: level and trend.
    const tr = fitTrend(metrics.arrivedTokens.series(nowMs, f.trendWindowS));
    const H = f.replicaStartupS + spec.intervalS;
    const level = Math.max(0, tr.mean + (tr.slope * (tr.n - 1)) / 2);
    const lambdaH = Math.max(level, Math.min(tr.mean + tr.slope * ((tr.n - 1) / 2 + H), 2 * tr.mean));

    // Capacity at the target: learned where the metric sits near its target on a settled fleet.
    let mu = state.muTokensPerReplicaS;
    let learned = '';
    if (f.tokensPerReplicaS !== undefined) mu = f.tokensPerReplicaS;
    else {
      const rStable = metrics.arrivedTokens.rate(nowMs, spec.windows.stableS);
      if (R > 0 && R === N && !saturated && S >= MU_BAND[0] * R && S <= MU_BAND[1] * R && rStable !== undefined && rStable > 0) {
        const obs = rStable / S;
        mu = mu === null ? obs : (1 - MU_EWMA_ALPHA) * mu + MU_EWMA_ALPHA * obs;
        learned = ` (learned ${fmt(obs)})`;
      }
    }
    const muOk = mu !== null && mu > 0;
    const plan = (x: number) => (muOk ? ceilR((x * (1 + f.headroom)) / mu!) : 0);
    // While replicas start (N > R) the panic reading of the ready ones mostly shows the backlog the new
    // replicas will relieve: follow the stable window then.
    const reactive = Math.max(ceilR(S), saturated && N === R ? ceilR(P) : 0);
    const up = Math.max(reactive, plan(lambdaH));
    const down = Math.max(ceilR(S), plan(level));
    const detail = `${which} stable ${fmt(S)} panic ${fmt(P)} replicas at target${saturated ? ' (saturated)' : ''}; tokens ${fmt(level)}/s trend ${fmt(tr.slope)}/s2 -> ${fmt(lambdaH)}/s in ${fmt(H)}s; capacity ${muOk ? fmt(mu!) : 'unknown'}${learned} tok/s per replica -> plan ${plan(lambdaH)}`;

    const history = state.history.filter((p) => nowMs - p.atMs < spec.cooldown.downS * 1000);
    // A scale-up counts as a recommendation for the cooldown window (as in Kubernetes' stabilization);
    // engine panic readings that do not trigger a scale-up do not hold a scale-down.
    history.push({ atMs: nowMs, desired: up > N ? Math.max(up, down) : down });
    let desired = N;
    let verdict = 'hold';
    const since = (t: number | null) => (t === null ? Infinity : nowMs - t);
    let { lastUpMs, lastDownMs } = state;
    if (up > N) {
      if (since(lastUpMs) < spec.windows.panicS * 1000) verdict = `hold, settling after the last scale-up (needs ${up})`;
      else {
        desired = Math.min(up, ceilR(spec.rates.maxUp * Math.max(N, 1)));
        verdict = `up to ${desired}`;
        lastUpMs = nowMs;
      }
    } else if (down < N * (1 - spec.tolerance.down)) {
      const level2 = Math.max(...history.map((p) => p.desired));
      if (since(lastDownMs) < spec.windows.stableS * 1000) verdict = `hold, settling after the last scale-down (allows ${level2})`;
      else if (level2 <= N * (1 - spec.tolerance.down)) {
        lastDownMs = nowMs;
        desired = Math.max(level2, Math.floor(N / spec.rates.maxDown));
        verdict = `down to ${desired} (max over ${spec.cooldown.downS}s: ${level2})`;
      } else verdict = `hold, scale-down delayed (max over ${spec.cooldown.downS}s: ${level2})`;
    }
    const out = clamp(desired, floorReplicas(spec), spec.maxReplicas);
    return { rec: { desired: out, reason: `tokenflow: ${verdict}; ${detail}` }, state: { muTokensPerReplicaS: mu, lastUpMs, lastDownMs, history } };
  },
};
