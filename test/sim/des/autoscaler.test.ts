/** `inferplane sim run` with an `autoscaler` section (issue 6): the live controller on virtual time. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseExperiment, type ExperimentInput } from '../../../src/sim/des/experiment.ts';
import { runExperiment, type ExperimentResult } from '../../../src/sim/des/run.ts';

const engine = { model: 'meta-llama/Llama-3.1-8B-Instruct', gpu: 'H100', maxNumSeqs: 64, numGpuBlocksOverride: 800, maxModelLen: 4096 };

/** A load step: 30 s at 1 req/s, 90 s at 10 req/s, 150 s at 0.5 req/s (4.5 min of simulated time). */
function stepExp(autoscaler: Record<string, unknown>, over: Partial<ExperimentInput> = {}): ExperimentInput {
  return {
    engine,
    replicas: { min: 1, max: 6, initial: 1 },
    replicaStartupS: 10,
    router: 'least-request',
    autoscaler,
    workload: { type: 'poisson', stages: [{ rate: 1, durationS: 30 }, { rate: 10, durationS: 90 }, { rate: 0.5, durationS: 150 }], inputTokens: 800, outputTokens: 150 },
    seed: 1,
    ...over,
  };
}

/** ∫ desired replicas dt over [0, endS], hours. */
function timelineHours(tl: [number, number][], endS: number): number {
  let s = 0;
  for (let i = 0; i < tl.length; i++) s += ((i + 1 < tl.length ? tl[i + 1]![0] : endS) - tl[i]![0]) * tl[i]![1];
  return s / 3600;
}

function checkConsistent(r: ExperimentResult, initial: number, maxE2eS: number): void {
  const tl = r.replicaTimeline!;
  assert.deepEqual(tl[0], [0, initial], 'the timeline starts at the initial count');
  for (let i = 1; i < tl.length; i++) {
    assert.ok(tl[i]![0] >= tl[i - 1]![0], 'times are ordered');
    assert.notEqual(tl[i]![1], tl[i - 1]![1], 'every entry after the first is a change');
  }
  assert.equal(r.scalingEvents, tl.length - 1, 'scalingEvents = changes of the desired count');
  assert.equal(r.decisions!.length, r.scalingEvents);
  // Replica-hours = Σ engine lifetimes (start-up and draining included) ...
  const lifeH = r.engines.reduce((a, e) => a + ((e.removedS ?? r.simulatedS) - e.addedS), 0) / 3600;
  assert.ok(Math.abs(r.replicaHours! - lifeH) < 2e-4, `replicaHours ${r.replicaHours} vs engine lifetimes ${lifeH}`);
  // ... = ∫ desired count dt, plus the draining time of removed engines (each at most the longest request).
  const tlH = timelineHours(tl, r.simulatedS);
  const removed = r.engines.filter((e) => e.removedS !== null).length;
  assert.ok(r.replicaHours! >= tlH - 2e-4, `replicaHours ${r.replicaHours} >= timeline integral ${tlH}`);
  assert.ok(r.replicaHours! <= tlH + (removed * maxE2eS) / 3600 + 2e-4, `replicaHours ${r.replicaHours} <= timeline integral ${tlH} + drains`);
}

for (const strategy of ['hpa', 'kpa']) {
  test(`${strategy}: scales up under a load step and back down after it; result fields consistent`, () => {
    let maxE2eS = 0;
    const r = runExperiment(parseExperiment(stepExp({ strategy, metric: 'kvCacheUsage', target: 0.5, cooldown: { downS: 30 }, windows: { stableS: 20, panicS: 4 } })), {
      onFinished: (c) => {
        for (const s of c.stageSamples) for (const v of s.e2e.view()) maxE2eS = Math.max(maxE2eS, v / 1000);
      },
    });
    assert.equal(r.overall.requests.failed, 0);
    assert.equal(r.replicas, 1);
    const tl = r.replicaTimeline!;
    const peak = Math.max(...tl.map(([, n]) => n));
    assert.ok(peak >= 2, `scaled up (peak ${peak})`);
    const up = tl.find(([, n]) => n > 1)!;
    assert.ok(up[0] >= 30 && up[0] < 120, `first scale-up during the step, at ${up[0]} s`);
    assert.equal(tl[tl.length - 1]![1], 1, 'back to min after the step');
    assert.ok(tl[tl.length - 1]![0] >= 120, 'scale-down after the step');
    assert.equal(r.engines.filter((e) => e.removedS === null).length, 1, 'one engine left at the end');
    // A started engine becomes routable replicaStartupS later.
    for (const e of r.engines.slice(1)) assert.ok(Math.abs(e.readyS - e.addedS - 10) < 1e-6);
    checkConsistent(r, 1, maxE2eS);
    assert.equal(r.autoscaler!.spec.strategy, strategy);
    assert.equal(r.autoscaler!.spec.model, engine.model, 'target model defaults to the experiment model');
  });
}

test('the minimal spec {strategy, metric, target} works for every strategy, the rest defaulted', () => {
  for (const strategy of ['hpa', 'kpa', 'apa', 'tokenflow']) {
    const e = parseExperiment({ engine, replicas: 2, router: 'round-robin', autoscaler: { strategy, metric: 'kvCacheUsage', target: 0.7 }, workload: { type: 'poisson', stages: [{ rate: 2, durationS: 20 }], inputTokens: 200, outputTokens: 20 }, seed: 2 });
    assert.equal(e.replicaStartupS, undefined);
    const r = runExperiment(e);
    assert.equal(r.overall.requests.failed, 0);
    // A plain count with an autoscaler pins min = max = count.
    assert.deepEqual(r.replicaTimeline, [[0, 2]], strategy);
    assert.equal(r.scalingEvents, 0);
    assert.equal(r.autoscaler!.spec.minReplicas, 2);
    assert.equal(r.autoscaler!.spec.maxReplicas, 2);
    assert.equal(r.autoscaler!.spec.forecast.replicaStartupS, 60, 'replicaStartupS defaults to 60');
    assert.ok(Math.abs(r.replicaHours! - (2 * r.simulatedS) / 3600) < 2e-4);
  }
  // Without an autoscaler the result has none of its fields.
  const plain = runExperiment(parseExperiment({ engine, replicas: 1, workload: { type: 'poisson', stages: [{ rate: 1, durationS: 5 }], inputTokens: 100, outputTokens: 10 } }));
  assert.equal(plain.replicaHours, undefined);
  assert.equal(plain.replicaTimeline, undefined);
});

test('autoscaler validation errors name the field', () => {
  const base = stepExp({ strategy: 'hpa', metric: 'kvCacheUsage', target: 0.7 });
  const bad = (o: unknown, re: RegExp) => assert.throws(() => parseExperiment(o, 'x.json'), (e: Error) => re.test(e.message), `${String(re)}`);
  bad({ ...base, autoscaler: { strategy: 'nope', metric: 'kvCacheUsage', target: 0.7 } }, /^x\.json: autoscaler: strategy: /);
  bad({ ...base, autoscaler: { strategy: 'kpa', metric: 'kvCacheUsage', target: -1 } }, /^x\.json: autoscaler: target: /);
  bad({ ...base, autoscaler: { strategy: 'kpa', metric: 'gpuTemp', target: 0.7 } }, /^x\.json: autoscaler: metric: /);
  bad({ ...base, autoscaler: { strategy: 'kpa', metric: 'kvCacheUsage' } }, /autoscaler: target: `metric` and `target` must be given together/);
  bad({ ...base, autoscaler: { strategy: 'kpa', model: 'other/model', metric: 'kvCacheUsage', target: 0.7 } }, /^x\.json: autoscaler\.model: must be the experiment's model/);
  bad({ ...base, autoscaler: 'kpa' }, /^x\.json: autoscaler: Expected object/);
  bad({ ...base, replicas: { min: 3, max: 2 } }, /^x\.json: replicas\.max: must be >= replicas\.min/);
  bad({ ...base, replicas: { min: 1, max: 4, initial: 5 } }, /^x\.json: replicas\.initial: must be an integer in \[1, 4\]/);
  bad({ ...base, replicas: { min: 1, max: 4, start: 2 } }, /^x\.json: replicas: unknown field\(s\) "start"/);
  bad({ ...base, replicas: 0 }, /^x\.json: replicas: Number must be greater than or equal to 1/);
  bad({ ...base, replicas: 'many' }, /^x\.json: replicas: expected a number or \{min, max, initial\}/);
  bad({ ...base, replicaStartupS: -1 }, /^x\.json: replicaStartupS: /);
  const { autoscaler: _a, ...noAs } = base;
  bad({ ...noAs }, /^x\.json: replicas: \{min, max, initial\} needs an autoscaler section/);
  bad({ ...noAs, replicas: 2 }, /^x\.json: replicaStartupS: only used with an autoscaler section/);
});
