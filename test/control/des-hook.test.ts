import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DesAutoscaler, type DesClusterLike } from '../../src/control/autoscaler/des-hook.ts';
import { newEndpointState, type EndpointState } from '../../src/engines/state.ts';

/** A fake DES cluster: engines become ready after their start-up delay; KV usage = load / ready. */
function fakeCluster(initial: number) {
  const engines: { id: string; state: EndpointState; draining: boolean; addedMs: number; readyMs: number; removedMs: number | null }[] = [];
  let next = 0;
  let load = 0;
  const c: DesClusterLike & { engines: typeof engines; setLoad(l: number): void; refresh(t: number): void } = {
    engines,
    setLoad: (l) => void (load = l),
    activeEngines: () => engines.filter((e) => e.removedMs === null),
    addEngine(nowMs, startupDelayMs) {
      const id = `engine-${next++}`;
      engines.push({ id, state: newEndpointState({ id, url: `sim://${id}`, model: 'm', ready: startupDelayMs <= 0, stale: false, waiting: 0, running: 0, kvCacheUsage: 0 }), draining: false, addedMs: nowMs, readyMs: nowMs + startupDelayMs, removedMs: null });
      return id;
    },
    removeEngine(id, nowMs) {
      const e = engines.find((x) => x.id === id && x.removedMs === null);
      if (!e) throw new Error(`no engine ${id}`);
      e.draining = true;
      e.state.ready = false;
      e.removedMs = nowMs;
    },
    refresh(t) {
      const live = engines.filter((e) => e.removedMs === null && !e.draining);
      for (const e of live) e.state.ready = t >= e.readyMs;
      const ready = live.filter((e) => e.state.ready);
      for (const e of ready) e.state.kvCacheUsage = Math.min(1, load / ready.length);
    },
  };
  for (let i = 0; i < initial; i++) c.addEngine(0, 0);
  return c;
}

test('DES hook: scales a simulated cluster with start-up delay and reports replica-hours, events and timeline', () => {
  const as = new DesAutoscaler({ spec: { strategy: 'kpa', metric: 'kvCacheUsage', target: 0.5, cooldown: { downS: 60 } }, model: 'm', replicas: { min: 1, max: 8, initial: 2 }, replicaStartupS: 30 });
  assert.equal(as.initialReplicas, 2);
  const c = fakeCluster(as.initialReplicas);
  as.attachWorkload([{ arrivalMs: 500, promptLen: 100, outputTokens: 10 }]);
  for (let t = 0; t <= 600; t++) {
    c.setLoad(t >= 100 && t < 300 ? 3 : 0.4);
    c.refresh(t * 1000);
    as.onScrape(c, t * 1000);
  }
  const r = as.result(c, 600_000);
  const peak = Math.max(...r.replicaTimeline.map(([, n]) => n));
  assert.ok(peak >= 6, `peak ${peak}`);
  assert.equal(r.replicaTimeline[0]![1], 2);
  assert.equal(r.replicaTimeline.at(-1)![1], c.activeEngines().filter((e) => !e.draining).length);
  assert.equal(r.scalingEvents, r.decisions.length);
  assert.equal(r.scalingEvents, r.replicaTimeline.length - 1);
  // replica-hours = sum of engine lifetimes
  const ms = c.engines.reduce((a, e) => a + ((e.removedMs ?? 600_000) - e.addedMs), 0);
  assert.ok(Math.abs(r.replicaHours - ms / 3_600_000) < 1e-3);
  assert.ok(r.decisions.every((d) => d.reason.startsWith('kpa:') || d.reason.startsWith('bounds')));
});

test('DES hook: scale-down drops starting engines first; bad bounds are rejected with field paths', () => {
  const as = new DesAutoscaler({ spec: { strategy: 'hpa', metric: 'kvCacheUsage', target: 0.5 }, model: 'm', replicas: { min: 1, max: 8, initial: 2 }, replicaStartupS: 60 });
  const c = fakeCluster(2);
  c.refresh(0);
  as.onScrape(c, 0);
  // Reach into the actuator through a decision: ask for 5, then 2 before the new ones are ready.
  const ctl = as.controller;
  ctl.apply({ name: 'm', model: 'm', strategy: 'hpa', metric: 'kvCacheUsage', target: 0.5, minReplicas: 5, maxReplicas: 8 });
  as.onScrape(c, 15_000);
  assert.equal(c.activeEngines().length, 5);
  ctl.apply({ name: 'm', model: 'm', strategy: 'hpa', metric: 'kvCacheUsage', target: 0.5, minReplicas: 1, maxReplicas: 2 });
  as.onScrape(c, 30_000);
  const live = c.activeEngines();
  assert.deepEqual(live.map((e) => e.id), ['engine-0', 'engine-1'], 'the starting engines were removed, not the ready ones');
  assert.throws(() => new DesAutoscaler({ spec: { strategy: 'kpa', metric: 'kvCacheUsage', target: -1 }, model: 'm' }), /autoscaler: target: Number must be greater than 0/);
  assert.throws(() => new DesAutoscaler({ spec: {}, model: 'm', replicas: { min: 2, max: 4, initial: 9 } }), /replicas.initial/);
});
