import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AutoscalerController, type DecisionLog } from '../../src/control/autoscaler/controller.ts';
import type { FleetObservation } from '../../src/control/autoscaler/windows.ts';
import { ResourceValidationError } from '../../src/control/resources.ts';

/** A fake fleet: replicas become ready `startupS` after being asked for; KV usage = load / ready. */
function fakeFleet(startupS: number) {
  let now = 0;
  const replicas: { id: string; readyAtMs: number }[] = [{ id: 'r0', readyAtMs: 0 }];
  let load = 0.5; // total KV demand in replica units
  let arrivals = 0;
  let queued = 0;
  let stale = false;
  let next = 1;
  const fleet = {
    clock: { now: () => now },
    set now(v: number) { now = v; },
    setLoad(l: number) { load = l; },
    setArrivals(a: number) { arrivals = a; },
    setQueued(q: number) { queued = q; },
    setStale(s: boolean) { stale = s; },
    actuator: {
      currentReplicas: () => replicas.length,
      setReplicas(_m: string, n: number) {
        while (replicas.length < n) replicas.push({ id: `r${next++}`, readyAtMs: now + startupS * 1000 });
        while (replicas.length > n) replicas.pop();
      },
    },
    signals: {
      observe(_m: string, t: number): FleetObservation {
        const ready = replicas.filter((r) => r.readyAtMs <= t);
        const kv = ready.length ? Math.min(1, load / ready.length) : undefined;
        return {
          nowMs: t,
          replicas: replicas.map((r) => ({ id: r.id, ready: r.readyAtMs <= t, stale, kvCacheUsage: kv, waiting: 0, running: 1, inflightRequests: arrivals > 0 ? 1 : 0, inflightTokens: 0 })),
          arrivedRequests: arrivals,
          arrivedTokens: arrivals * 100,
          queuedRequests: queued,
        };
      },
    },
    replicas,
  };
  return fleet;
}

test('controller scales up under load and back down after it, logging reasons', () => {
  const f = fakeFleet(10);
  const logs: DecisionLog[] = [];
  const c = new AutoscalerController({ clock: f.clock, actuator: f.actuator, signals: f.signals, onDecision: (d) => logs.push(d) });
  c.apply({ model: 'm', strategy: 'kpa', metric: 'kvCacheUsage', target: 0.7, maxReplicas: 8, cooldown: { downS: 30 } });
  for (let t = 0; t <= 400; t++) {
    f.now = t * 1000;
    f.setLoad(t >= 20 && t < 200 ? 3.5 : 0.5);
    f.setArrivals(1);
    c.tick();
  }
  const peak = Math.max(...logs.map((l) => l.to));
  assert.ok(peak >= 5, `peak ${peak}`);
  assert.equal(f.replicas.length, 1, 'back to 1 after the load');
  assert.ok(logs.every((l) => l.reason.startsWith('kpa:')), JSON.stringify(logs));
  const st = c.get('m')!.status;
  assert.equal(st.scalingEvents, logs.length);
  assert.ok(st.decisions.length > 0 && st.decisions.at(-1)!.to === 1);
  assert.equal(st.lastRecommendation!.desired, 1);
});

test('controller holds when every scrape fails, and reports it in a condition', () => {
  const f = fakeFleet(0);
  f.actuator.setReplicas('m', 4);
  const c = new AutoscalerController({ clock: f.clock, actuator: f.actuator, signals: f.signals });
  c.apply({ model: 'm', strategy: 'apa', metric: 'kvCacheUsage', target: 0.7, cooldown: { downS: 0 } });
  f.setLoad(2.8);
  for (let t = 0; t < 30; t++) { f.now = t * 1000; c.tick(); }
  f.setStale(true);
  f.setLoad(0);
  for (let t = 30; t < 90; t++) { f.now = t * 1000; c.tick(); }
  assert.equal(f.replicas.length, 4);
  const cond = c.get('m')!.status.conditions.find((x) => x.type === 'MetricsAvailable');
  assert.equal(cond?.status, 'False');
});

test('scale to zero after idleS, wake on a queued request or the gateway hook', () => {
  const f = fakeFleet(5);
  const c = new AutoscalerController({ clock: f.clock, actuator: f.actuator, signals: f.signals });
  c.apply({ model: 'm', strategy: 'kpa', metric: 'kvCacheUsage', target: 0.7, minReplicas: 0, scaleToZero: { enabled: true, idleS: 30 } });
  assert.equal(c.scalesToZero('m'), true);
  f.setArrivals(0);
  f.setLoad(0);
  for (let t = 0; t <= 40; t++) { f.now = t * 1000; c.tick(); }
  assert.equal(f.replicas.length, 0);
  assert.match(c.get('m')!.status.decisions.at(-1)!.reason, /scale to zero: idle/);
  f.setQueued(3);
  for (let t = 41; t <= 44; t++) { f.now = t * 1000; c.tick(); }
  assert.equal(f.replicas.length, 1);
  assert.match(c.get('m')!.status.decisions.at(-1)!.reason, /cold start/);
  // back to zero, then the gateway hook wakes it at once
  f.setQueued(0);
  for (let t = 45; t <= 120; t++) { f.now = t * 1000; c.tick(); }
  assert.equal(f.replicas.length, 0);
  assert.equal(c.wake('m'), true);
  assert.equal(f.replicas.length, 1);
  assert.equal(c.wake('m'), false);
});

test('a failing actuator is recorded; bad specs change nothing', async () => {
  const f = fakeFleet(0);
  const c = new AutoscalerController({
    clock: f.clock,
    signals: f.signals,
    actuator: { currentReplicas: () => 1, setReplicas: () => Promise.reject(new Error('no capacity')) },
  });
  c.apply({ model: 'm', strategy: 'kpa', metric: 'kvCacheUsage', target: 0.5, cooldown: { downS: 0 } });
  f.setLoad(3);
  for (let t = 0; t < 3; t++) { f.now = t * 1000; c.tick(); }
  await new Promise((r) => setImmediate(r));
  const d = c.get('m')!.status.decisions[0]!;
  assert.equal(d.success, false);
  assert.equal(d.error, 'no capacity');
  assert.equal(c.get('m')!.status.conditions.find((x) => x.type === 'AbleToScale')?.status, 'False');
  assert.throws(() => c.apply({ model: 'm', maxReplicas: 0 }), ResourceValidationError);
  assert.equal(c.get('m')!.spec.strategy, 'kpa');
  assert.throws(() => c.apply({ name: 'other', model: 'm' }), /already scaled/);
  assert.throws(() => c.apply({ strategy: 'hpa' }), /model: required/);
  assert.equal(c.list().length, 1);
  assert.equal(c.remove('m'), true);
  assert.equal(c.list().length, 0);
});
