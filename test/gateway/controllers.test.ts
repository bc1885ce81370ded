/** The controllers run beside the gateway: admin routes mounted, fleet-file documents applied. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateFleet } from '../../src/fleet/config.ts';
import { runFleet } from '../../src/gateway/runtime.ts';

const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';

test('autoscalers from the fleet file and the admin API act on the fleet registry', async (t) => {
  const cfg = validateFleet({
    gateway: { port: 0, logLevel: 'silent', adminKey: 'admin-key-123' },
    models: [{ name: MODEL, simulator: { gpu: 'H100', replicas: 1 } }],
    autoscalers: [{ name: 'llama', model: MODEL, minReplicas: 2, maxReplicas: 3 }],
  });
  const run = await runFleet(cfg, { port: 0 });
  t.after(() => run.stop(0));
  const admin = { authorization: 'Bearer admin-key-123' };
  const list = await fetch(`${run.url}/admin/autoscalers`, { headers: admin });
  assert.equal(list.status, 200);
  const body = (await list.json()) as { data: { spec: { name?: string; model: string } }[] };
  assert.deepEqual(body.data.map((d) => d.spec.model), [MODEL]);
  // minReplicas 2 > 1 running: the controller scales the simulated model up through the registry.
  const end = Date.now() + 20_000;
  while (run.fleet.endpointsOf(MODEL).length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  assert.equal(run.fleet.endpointsOf(MODEL).length, 2);
  assert.equal((await fetch(`${run.url}/admin/autoscalers`)).status, 401, 'admin routes need the admin key');
  const adapters = await fetch(`${run.url}/admin/adapters`, { headers: admin });
  assert.equal(adapters.status, 200);
});

test('an invalid autoscaler document in the fleet file aborts the start with its path', async () => {
  const cfg = validateFleet({
    gateway: { port: 0, logLevel: 'silent' },
    models: [{ name: 'm', endpoints: ['http://127.0.0.1:9'] }],
    autoscalers: [{ model: 'm', minReplicas: 5, maxReplicas: 2 }],
  });
  await assert.rejects(runFleet(cfg, { port: 0 }), /autoscalers\.0.*minReplicas/s);
});
