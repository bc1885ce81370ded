/**
 * The autoscaling algorithms on a fake clock, with the worked examples of the reference
 * (shared/reference/aibrix-bench-tests-issues.md items 44-45, aibrix-control-plane.md 2.5) and
 * Knative's panic semantics (peers.md section 7).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { apaDesired, apa } from '../../src/control/autoscaler/apa.ts';
import { hpa, hpaProposal } from '../../src/control/autoscaler/hpa.ts';
import { kpa, kpaStep, type KpaStepInput } from '../../src/control/autoscaler/kpa.ts';
import { tokenflow } from '../../src/control/autoscaler/tokenflow.ts';
import { stabilize, type ScalingAlgorithm } from '../../src/control/autoscaler/types.ts';
import { MetricCollector, type ReplicaSignals } from '../../src/control/autoscaler/windows.ts';
import { parseResource, PodAutoscalerSpecSchema, type PodAutoscalerSpecInput } from '../../src/control/resources.ts';

test('APA worked examples (target 30, tolerance 0.1, rates 2)', () => {
  assert.equal(apaDesired(2, 45, 30, 0.1, 0.1, 2, 2), 3);
  assert.equal(apaDesired(2, 35, 30, 0.1, 0.1, 2, 2), 3);
  assert.equal(apaDesired(2, 90, 30, 0.1, 0.1, 2, 2), 4); // capped by 2x scale-up
  assert.equal(apaDesired(2, 90, 30, 0.1, 0.1, 2.5, 2), 5);
  assert.equal(apaDesired(6, 20, 30, 0.1, 0.1, 2, 2), 4);
  assert.equal(apaDesired(6, 18, 30, 0.1, 0.1, 2, 2), 4);
  assert.equal(apaDesired(6, 10, 30, 0.1, 0.1, 2, 2), 3); // floored by /2
  assert.equal(apaDesired(6, 5, 30, 0.1, 0.1, 2, 2.5), 2);
  assert.equal(apaDesired(6, 33, 30, 0.1, 0.1, 2, 2), 6);
  assert.equal(apaDesired(6, 27, 30, 0.1, 0.1, 2, 2), 6);
  assert.equal(apaDesired(6, 27, 0, 0.1, 0.1, 2, 2), 6); // target 0 -> unchanged
});

const kin = (o: Partial<KpaStepInput>): KpaStepInput => ({
  nowMs: 0, current: 1, ready: 1, stable: 0, panic: 0, target: 10, tolUp: 0, tolDown: 0,
  maxUpRate: 1000, maxDownRate: 2, panicThreshold: 2, stableWindowS: 60, ...o,
});
const noPanic = { panicSinceMs: null, maxPanicPods: 0 };

test('KPA worked examples (target 10, on totals)', () => {
  // stable value 20 -> 2 pods
  assert.equal(kpaStep(kin({ current: 2, ready: 2, stable: 20, panic: 20 }), noPanic).desired, 2);
  // zero load -> 0
  assert.equal(kpaStep(kin({ current: 1, ready: 1, stable: 0, panic: 0 }), noPanic).desired, 0);
  // scale-up limited to current x rate: 2 x 1.5 -> 3
  assert.equal(kpaStep(kin({ current: 2, ready: 2, stable: 100, panic: 100, maxUpRate: 1.5, panicThreshold: 1000 }), noPanic).desired, 3);
  // scale-down limited to current / rate: 4 / 2 -> 2
  assert.equal(kpaStep(kin({ current: 4, ready: 4, stable: 0, panic: 0 }), noPanic).desired, 2);
  // AIBrix tolerance band: 2 replicas at 21 total (10.5 each, within 10%) keep 2
  assert.equal(kpaStep(kin({ current: 2, ready: 2, stable: 21, panic: 21, tolUp: 0.1, tolDown: 0.1 }), noPanic).desired, 2);
});

test('KPA panic: enters at 2x, holds the max across ticks, never scales down, ends after a stable window', () => {
  let st: { panicSinceMs: number | null; maxPanicPods: number } = noPanic;
  // panic value 40 with 2 ready -> dppc 4, 4/2 >= 2: panic, desired 4
  let r = kpaStep(kin({ nowMs: 0, current: 2, ready: 2, stable: 20, panic: 40 }), st);
  assert.equal(r.panic, true);
  assert.equal(r.desired, 4);
  st = r;
  // load falls inside the panic: still 4 (never below the max seen), state kept from the previous tick
  r = kpaStep(kin({ nowMs: 2000, current: 4, ready: 4, stable: 20, panic: 10 }), st);
  assert.equal(r.panic, true);
  assert.equal(r.desired, 4);
  st = r;
  // a fresh state (AIBrix's defect: rebuilt each reconcile) would scale down here
  assert.equal(kpaStep(kin({ nowMs: 2000, current: 4, ready: 4, stable: 20, panic: 10 }), noPanic).desired, 2);
  // 60 s after the last time over the threshold, panic ends and the stable count applies
  r = kpaStep(kin({ nowMs: 60_001, current: 4, ready: 4, stable: 20, panic: 10 }), st);
  assert.equal(r.panic, false);
  assert.equal(r.desired, 2);
});

test('HPA formula with tolerance and pending replicas (Kubernetes replica_calculator)', () => {
  assert.equal(hpaProposal(4, 1.05, 4, 0, 1, 0.1, 0.1).desired, 4); // within tolerance
  assert.equal(hpaProposal(4, 1.5, 4, 0, 1, 0.1, 0.1).desired, 6);
  assert.equal(hpaProposal(4, 0.5, 4, 0, 1, 0.1, 0.1).desired, 2);
  // 2 ready at 1.5x, 2 pending (count as 0 when scaling up): ratio' = 3/4 < 1 -> hold
  assert.equal(hpaProposal(4, 1.5, 2, 2, 1, 0.1, 0.1).desired, 4);
  // 2 ready at 3x, 1 pending: ratio' = 6/3 = 2 -> ceil(2 * 3) = 6
  assert.equal(hpaProposal(3, 3, 2, 1, 1, 0.1, 0.1).desired, 6);
});

test('stabilization: scale-down only to the max recommendation of the window', () => {
  let h: { atMs: number; desired: number }[] = [];
  let r = stabilize(h, 0, 5, 8, 0, 300);
  assert.equal(r.desired, 8); // up immediately
  h = r.history;
  r = stabilize(h, 100_000, 8, 3, 0, 300);
  assert.equal(r.desired, 8); // 8 was recommended 100 s ago
  r = stabilize(r.history, 300_001, 8, 3, 0, 300);
  assert.equal(r.desired, 3);
});

// --- the algorithms on a collector fed through a fake clock ---

function spec(o: PodAutoscalerSpecInput) {
  return parseResource(PodAutoscalerSpecSchema, { model: 'm', ...o }, 'spec');
}
function replicas(n: number, kv: number | undefined, extra: Partial<ReplicaSignals> = {}): ReplicaSignals[] {
  return Array.from({ length: n }, (_, i) => ({ id: `r${i}`, ready: true, stale: false, kvCacheUsage: kv, waiting: 0, running: 1, inflightRequests: 1, inflightTokens: 100, ...extra }));
}
function run<S>(algo: ScalingAlgorithm<S>, s: ReturnType<typeof spec>, seconds: number, N: number, R: number, reps: (t: number) => ReplicaSignals[], tokensPerS = 0, col = new MetricCollector(200), startMs = 0) {
  let state = algo.init();
  let rec = { desired: N, reason: '' } as { desired: number; reason: string; held?: boolean };
  for (let t = 0; t < seconds; t++) {
    const now = startMs + t * 1000;
    col.observe({ nowMs: now, replicas: reps(t), arrivedRequests: tokensPerS > 0 ? 1 : 0, arrivedTokens: tokensPerS });
    if (t % s.intervalS === 0) {
      const r = algo.recommend({ nowMs: now, spec: s, currentReplicas: N, readyReplicas: R, metrics: col }, state);
      state = r.state;
      rec = r.rec;
    }
  }
  return { rec, state, col };
}

test('KPA reads fleet totals, not per-replica averages', () => {
  // 4 replicas at 0.9 KV each: total 3.6, target 0.7 -> ceil(5.14) = 6. On a per-pod average (AIBrix's defect) it would be ceil(0.9/0.7)=2.
  const s = spec({ strategy: 'kpa', metric: 'kvCacheUsage', target: 0.7, cooldown: { downS: 0 } });
  const { rec } = run(kpa, s, 61, 4, 4, () => replicas(4, 0.9));
  assert.equal(rec.desired, 6);
});

test('a failed scrape is missing, never zero: algorithms hold the current size', () => {
  for (const algo of [hpa, kpa, apa, tokenflow] as ScalingAlgorithm<unknown>[]) {
    const s = spec({ strategy: algo.strategy, metric: 'kvCacheUsage', target: 0.7, cooldown: { downS: 0 } });
    // healthy for 30 s at 0.7 per replica, then every scrape fails for 30 s (stale, values kept but not read)
    const { rec } = run(algo, s, 60, 4, 4, (t) => (t < 30 ? replicas(4, 0.7) : replicas(4, 0.0, { stale: true })));
    assert.equal(rec.desired, 4, `${algo.strategy}: ${rec.reason}`);
    assert.equal(rec.held, true, `${algo.strategy} should report a held decision`);
  }
  // One stale replica out of 4 does not drag the total down: extrapolated from the 3 others.
  const col = new MetricCollector(100);
  col.observe({ nowMs: 0, replicas: [...replicas(3, 0.8), { id: 'x', ready: true, stale: true, kvCacheUsage: 0, inflightRequests: 0, inflightTokens: 0 }], arrivedRequests: 0, arrivedTokens: 0 });
  assert.ok(Math.abs(col.gauges.get('kvCacheUsage')!.average(0, 10, 'total')! - 3.2) < 1e-9);
});

test('HPA scales up on high KV usage and waits 300 s before scaling down', () => {
  const s = spec({ strategy: 'hpa', metric: 'kvCacheUsage', target: 0.5, intervalS: 15 });
  const up = run(hpa, s, 16, 2, 2, () => replicas(2, 0.9));
  assert.equal(up.rec.desired, 4); // ceil(1.8 * 2) = 4
  // low load: recommendation 1, but the 4 recommended earlier in the window hold it
  let state = up.state;
  const col = up.col;
  for (let t = 16; t < 400; t++) {
    col.observe({ nowMs: t * 1000, replicas: replicas(4, 0.1), arrivedRequests: 0, arrivedTokens: 0 });
    if (t % 15 === 0) {
      const r = hpa.recommend({ nowMs: t * 1000, spec: s, currentReplicas: 4, readyReplicas: 4, metrics: col }, state);
      state = r.state;
      if (t < 300) assert.equal(r.rec.desired, 4, `t=${t}: ${r.rec.reason}`);
      if (t >= 330) assert.equal(r.rec.desired, 1, `t=${t}: ${r.rec.reason}`);
    }
  }
});

test('tokenflow: learns capacity where queues form, then anticipates a token ramp that KPA cannot see', () => {
  const s = spec({ strategy: 'tokenflow', metric: 'kvCacheUsage', target: 0.7, forecast: { replicaStartupS: 60, trendWindowS: 30, headroom: 0 } });
  // Phase 1: 1000 tok/s on 2 replicas without queues: capacity still unknown (nothing says where the limit is).
  const col = new MetricCollector(200);
  let state = tokenflow.init();
  let rec = { desired: 2, reason: '' };
  const step = (t: number, tokens: number, waiting: number) => {
    col.observe({ nowMs: t * 1000, replicas: replicas(2, 0.7, { waiting }), arrivedRequests: 1, arrivedTokens: tokens });
    if (t % 2 === 0) ({ rec, state } = tokenflow.recommend({ nowMs: t * 1000, spec: s, currentReplicas: 2, readyReplicas: 2, metrics: col }, state));
  };
  for (let t = 0; t < 100; t++) step(t, 1000, 0);
  assert.equal(state.muTokensPerReplicaS, null);
  assert.equal(state.carriedTokensPerReplicaS, 500);
  // Queues form at 1000 tok/s: capacity = 1000 / 2 ready replicas.
  for (let t = 100; t < 120; t++) step(t, 1000, t < 106 ? 0 : 3);
  assert.ok(state.muTokensPerReplicaS !== null && Math.abs(state.muTokensPerReplicaS - 500) < 1, `mu ${state.muTokensPerReplicaS}`);
  for (let t = 120; t < 126; t++) step(t, 1000, 0);
  // Phase 2: tokens ramp by +20 tok/s each second while KV stays at target (the engines have not caught up).
  const ups: { desired: number; reason: string }[] = [];
  for (let t = 126; t < 156; t++) {
    col.observe({ nowMs: t * 1000, replicas: replicas(2, 0.7), arrivedRequests: 1, arrivedTokens: 1000 + 20 * (t - 125) });
    if (t % 2 === 0) {
      ({ rec, state } = tokenflow.recommend({ nowMs: t * 1000, spec: s, currentReplicas: 2, readyReplicas: 2, metrics: col }, state));
      if (rec.desired > 2) ups.push(rec);
      // KPA on the same signals holds 2: it cannot see the ramp.
      assert.equal(kpa.recommend({ nowMs: t * 1000, spec: { ...s, strategy: 'kpa' }, currentReplicas: 2, readyReplicas: 2, metrics: col }, kpa.init()).rec.desired, 2);
    }
  }
  assert.ok(ups.length > 0, 'tokenflow scaled up on the forecast');
  assert.match(ups[0]!.reason, /^tokenflow: up to \d+ \(demand [\d.]+ replicas\);.*-> plan [\d.]+/);
  assert.ok(Math.max(...ups.map((u) => u.desired)) <= 4, 'rate limit: at most 2x per step');
});

test('tokenflow: a forming queue (saturation) uses the panic window; without one the panic window does not scale up', () => {
  const s = spec({ strategy: 'tokenflow', metric: 'kvCacheUsage', target: 0.5, windows: { stableS: 60, panicS: 6 } });
  const run2 = (waiting: number) => {
    const col = new MetricCollector(200);
    let state = tokenflow.init();
    let rec = { desired: 4, reason: '' };
    for (let t = 0; t < 66; t++) {
      // 60 s at 0.4 per replica (S = 3.2 replicas), then 6 s at 1.0 (P = 8)
      col.observe({ nowMs: t * 1000, replicas: replicas(4, t < 60 ? 0.4 : 1.0, { waiting: t < 60 ? 0 : waiting }), arrivedRequests: 0, arrivedTokens: 0 });
    }
    ({ rec, state } = tokenflow.recommend({ nowMs: 65_000, spec: s, currentReplicas: 4, readyReplicas: 4, metrics: col }, state));
    return rec;
  };
  assert.equal(run2(5).desired, 8);
  assert.match(run2(5).reason, /saturated/);
  assert.equal(run2(0).desired, 4);
});

test('tokenflow: scales down once, after the cooldown window, to the level it allows', () => {
  const s = spec({ strategy: 'tokenflow', metric: 'kvCacheUsage', target: 0.7, cooldown: { downS: 60 }, forecast: { tokensPerReplicaS: 500 } });
  const col = new MetricCollector(200);
  let state = tokenflow.init();
  const decisions: number[] = [];
  let N = 6;
  for (let t = 0; t < 200; t++) {
    col.observe({ nowMs: t * 1000, replicas: replicas(N, 0.2), arrivedRequests: 1, arrivedTokens: 600 });
    if (t % 2 === 0) {
      const r = tokenflow.recommend({ nowMs: t * 1000, spec: s, currentReplicas: N, readyReplicas: N, metrics: col }, state);
      state = r.state;
      if (r.rec.desired !== N) {
        decisions.push(r.rec.desired);
        N = r.rec.desired;
      }
    }
  }
  // demand: KV total 6*0.2=1.2 -> 1.2/0.7*1.1 -> 2; tokens 600*1.1/500 -> 2. One step 6 -> 3 (rate /2), then 3 -> 2.
  assert.deepEqual(decisions, [3, 2]);
});

test('tokenflow: the planning headroom sets how far below the known capacity the fleet is planned (fake clock)', () => {
  // 4 ready replicas, 4800 tok/s arriving steadily (no trend), capacity 1000 tok/s per replica, KV low.
  // plan = 4800 (1 + headroom) / 1000; up when plan > 4 (1 + 0.1); target ceil(plan x 1.1), at most 2 x 4.
  const decide = (headroom: number) => {
    const s = spec({ strategy: 'tokenflow', metric: 'kvCacheUsage', target: 0.7, forecast: { tokensPerReplicaS: 1000, headroom } });
    const col = new MetricCollector(200);
    for (let t = 0; t < 130; t++) col.observe({ nowMs: t * 1000, replicas: replicas(4, 0.2), arrivedRequests: 4, arrivedTokens: 4800 });
    return tokenflow.recommend({ nowMs: 129_000, spec: s, currentReplicas: 4, readyReplicas: 4, metrics: col }, tokenflow.init()).rec;
  };
  const h25 = decide(0.25); // plan 6 -> ceil(6.6) = 7
  assert.equal(h25.desired, 7);
  assert.match(h25.reason, /-> plan 6\b/);
  const h10 = decide(0.1); // plan 5.28 -> ceil(5.81) = 6
  assert.equal(h10.desired, 6);
  assert.match(h10.reason, /-> plan 5\.28\b/);
  const h0 = decide(0); // plan 4.8 > 4.4 -> ceil(5.28) = 6
  assert.equal(h0.desired, 6);
  // 4000 tok/s with headroom 0.1: plan 4.4, not above 4 x 1.1: hold 4.
  const s = spec({ strategy: 'tokenflow', metric: 'kvCacheUsage', target: 0.7, forecast: { tokensPerReplicaS: 1000, headroom: 0.1 } });
  const col = new MetricCollector(200);
  for (let t = 0; t < 130; t++) col.observe({ nowMs: t * 1000, replicas: replicas(4, 0.2), arrivedRequests: 4, arrivedTokens: 4000 });
  assert.equal(tokenflow.recommend({ nowMs: 129_000, spec: s, currentReplicas: 4, readyReplicas: 4, metrics: col }, tokenflow.init()).rec.desired, 4);
});
