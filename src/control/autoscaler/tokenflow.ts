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
 *   mu      = tokens/s one replica can take: `tokensPerReplicaS` when configured, else learned from
 *             the fleet itself: at each onset of queueing (waiting per replica >= 1 over the panic
 *             window, after a decision without), level / R, the arrival rate per ready replica at which
 *             queues started to form (EWMA weight 0.5 over onsets); never below the largest rate per
 *             replica carried with no queue over a whole stable window on a settled fleet (R = N).
 *             (The engine signal cannot give it: KV usage is knee-shaped, see above.)
 *   plan(x) = x (1 + headroom) / mu                      headroom default 0.25 (plan for 80% of mu)
 *   S, P    = fleet totals of the metric over the stable and panic windows, in replicas at target
 *   upRaw   = max(S, P while queues form (waiting >= 1 per replica over the panic window) and no
 *             replica is starting, plan(lambdaH))
 *   downRaw = max(S, plan(level))
 *   upRaw > N (1 + upTol): desired = clamp(ceil(upRaw (1 + upTol)), N + 1, ceil(maxUp max(N, 1)))
 *             (the tolerance kept as margin so the next step needs a real change; at most one
 *             scale-up per panic window: the panic window fills over its length)
 *   downRaw < N (1 - downTol): desired = the max over the last cooldown.downS s of the targets
 *             ceil(downRaw (1 + upTol)) (and of scale-up targets), once that is itself <= N (1 -
 *             downTol); at least floor(N / maxDown); at most one scale-down per stable window
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
  /** Largest token rate per replica carried without a queue over a stable window (tokens/s). */
  carriedTokensPerReplicaS: number;
  /** Whether the previous decision saw queues forming (to detect onsets). */
  saturated: boolean;
  /** Times (ms) of the last scale-up and scale-down steps, or null. */
  lastUpMs: number | null;
  lastDownMs: number | null;
  history: PastRecommendation[];
}

/** EWMA weight of a new capacity observation (one per saturation onset). */
export const MU_EWMA_ALPHA = 0.5;

/** A fleet counts as queue-free when waiting per replica over the stable window is below this. */
export const MU_MAX_WAITING = 0.05;

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
  init: () => ({ muTokensPerReplicaS: null, carriedTokensPerReplicaS: 0, saturated: false, lastUpMs: null, lastDownMs: null, history: [] }),
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

    // Capacity: the token rate per ready replica at which queues start to form, never below what was
    // carried without a queue.
    let mu = state.muTokensPerReplicaS;
    let carried = state.carriedTokensPerReplicaS;
    let learned = '';
    if (f.tokensPerReplicaS !== undefined) mu = f.tokensPerReplicaS;
    else if (R > 0) {
      if (saturated && !state.saturated && level > 0) {
        const obs = level / R;
        mu = mu === null ? obs : (1 - MU_EWMA_ALPHA) * mu + MU_EWMA_ALPHA * obs;
        learned = ` (queues formed at ${fmt(obs)})`;
      }
      const rStable = metrics.arrivedTokens.rate(nowMs, spec.windows.stableS);
      if (R === N && waitStable !== undefined && waitStable < MU_MAX_WAITING && rStable !== undefined) carried = Math.max(carried, rStable / R);
      if (mu !== null && carried > mu) mu = carried;
    }
    const muOk = mu !== null && mu > 0;
    const planRaw = (x: number) => (muOk ? (x * (1 + f.headroom)) / mu! : 0);
    // While replicas start (N > R) the panic reading of the ready ones mostly shows the backlog the new
    // replicas will relieve: follow the stable window then.
    const upRaw = Math.max(S, saturated && N === R ? P : 0, planRaw(lambdaH));
    const downRaw = Math.max(S, planRaw(level));
    const tolUp = spec.tolerance.up;
    const tolDown = spec.tolerance.down;
    const detail = `${which} stable ${fmt(S)} panic ${fmt(P)} replicas at target${saturated ? ' (saturated)' : ''}; tokens ${fmt(level)}/s trend ${fmt(tr.slope)}/s2 -> ${fmt(lambdaH)}/s in ${fmt(H)}s; capacity ${muOk ? fmt(mu!) : 'unknown'}${learned} tok/s per replica -> plan ${fmt(planRaw(lambdaH))}`;

    const history = state.history.filter((p) => nowMs - p.atMs < spec.cooldown.downS * 1000);
    const since = (t: number | null) => (t === null ? Infinity : nowMs - t);
    let { lastUpMs, lastDownMs } = state;
    let desired = N;
    let verdict = 'hold';
    const scaleUp = upRaw > N * (1 + tolUp);
    // Targets keep the up-tolerance as margin, so that the next step needs a real change of demand.
    const upTarget = ceilR(upRaw * (1 + tolUp));
    const downTarget = ceilR(downRaw * (1 + tolUp));
    history.push({ atMs: nowMs, desired: scaleUp ? Math.max(upTarget, downTarget) : downTarget });
    if (scaleUp) {
      if (since(lastUpMs) < spec.windows.panicS * 1000) verdict = `hold, settling after the last scale-up (needs ${upTarget})`;
      else {
        desired = Math.max(N + 1, Math.min(upTarget, ceilR(spec.rates.maxUp * Math.max(N, 1))));
        verdict = `up to ${desired} (demand ${fmt(upRaw)} replicas)`;
        lastUpMs = nowMs;
      }
    } else if (downRaw < N * (1 - tolDown)) {
      const level2 = Math.max(...history.map((p) => p.desired));
      if (since(lastDownMs) < spec.windows.stableS * 1000) verdict = `hold, settling after the last scale-down (allows ${level2})`;
      else if (level2 <= N * (1 - tolDown)) {
        lastDownMs = nowMs;
        desired = Math.max(level2, Math.floor(N / spec.rates.maxDown));
        verdict = `down to ${desired} (max over ${spec.cooldown.downS}s: ${level2}, demand ${fmt(downRaw)} replicas)`;
      } else verdict = `hold, scale-down delayed (max over ${spec.cooldown.downS}s: ${level2})`;
    }
    const out = clamp(desired, floorReplicas(spec), spec.maxReplicas);
    return { rec: { desired: out, reason: `tokenflow: ${verdict}; ${detail}` }, state: { muTokensPerReplicaS: mu, carriedTokensPerReplicaS: carried, saturated, lastUpMs, lastDownMs, history } };
  },
};
