/** The scraper: vLLM/SGLang names to canonical state, stale on failure with values kept, gauges exported. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FleetRegistry } from '../../src/fleet/registry.ts';
import { newEndpointState } from '../../src/engines/state.ts';
import { Scraper } from '../../src/metrics/scraper.ts';
import { GatewayMetrics } from '../../src/metrics/gateway-metrics.ts';
import { validateFleet } from '../../src/fleet/config.ts';

async function serve(text: () => string | null): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const t = text();
    if (t === null) return res.writeHead(500).end('boom');
    res.writeHead(200, { 'content-type': 'text/plain' }).end(t);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

function fleetWith(models: string[]): FleetRegistry {
  const f = new FleetRegistry();
  const cfg = validateFleet({ models: models.map((name) => ({ name, endpoints: ['http://127.0.0.1:1'] })) });
  for (const m of cfg.models) f.addModel(m);
  return f;
}

test('vLLM and SGLang scrapes map to canonical state; a failed scrape marks stale and keeps values', async (t) => {
  let vllm: string | null = 'vllm:num_requests_running{model_name="m"} 3\nvllm:num_requests_waiting{model_name="m"} 2\nvllm:kv_cache_usage_perc{model_name="m"} 0.4\n';
  const sglang = 'sglang:num_running_reqs{model_name="s"} 7\nsglang:num_queue_reqs{model_name="s"} 1\nsglang:token_usage{model_name="s"} 0.75\n';
  const a = await serve(() => vllm);
  const b = await serve(() => sglang);
  t.after(() => (a.server.close(), b.server.close()));
  const fleet = fleetWith(['m', 's']);
  fleet.addEndpoint(newEndpointState({ id: 'v', url: a.url, model: 'm', ready: true }));
  fleet.addEndpoint(newEndpointState({ id: 'g', url: b.url, model: 's', dialect: 'sglang', ready: true }));
  fleet.addEndpoint(newEndpointState({ id: 'dead', url: 'http://127.0.0.1:1', model: 'm', ready: true }));
  let now = 1_000;
  const scraper = new Scraper(fleet, { intervalMs: 1000, timeoutMs: 500, now: () => now });
  t.after(() => scraper.stop());
  await scraper.scrapeAll();
  const v = fleet.get('v')!;
  assert.deepEqual([v.running, v.waiting, v.kvCacheUsage, v.stale, v.scrapedAtMs], [3, 2, 0.4, false, 1000]);
  const g = fleet.get('g')!;
  assert.deepEqual([g.running, g.waiting, g.kvCacheUsage, g.stale], [7, 1, 0.75, false]);
  const dead = fleet.get('dead')!;
  assert.equal(dead.stale, true);
  assert.equal(dead.running, undefined, 'never observed stays undefined, not zero');

  // Gateway counters are never overwritten by a scrape.
  v.inflightRequests = 4;
  vllm = null; // the engine now answers 500
  now = 2_000;
  await scraper.scrapeAll();
  assert.equal(v.stale, true);
  assert.deepEqual([v.running, v.waiting, v.kvCacheUsage, v.scrapedAtMs, v.inflightRequests], [3, 2, 0.4, 1000, 4], 'last values kept');

  const metrics = new GatewayMetrics(fleet);
  const text = await metrics.text();
  assert.match(text, /inferplane_endpoint_stale\{endpoint="v",model="m"\} 1/);
  assert.match(text, /inferplane_endpoint_stale\{endpoint="g",model="s"\} 0/);
  assert.match(text, /inferplane_inflight_requests\{endpoint="v"\} 4/);
});

test('registry: ready cache, events, adapters', () => {
  const fleet = fleetWith(['m']);
  const events: string[] = [];
  for (const ev of ['add', 'remove', 'ready', 'unready']) fleet.on(ev, (e: { id: string }) => events.push(`${ev}:${e.id}`));
  fleet.addEndpoint(newEndpointState({ id: 'x', url: 'http://x', model: 'm' }));
  assert.equal(fleet.readyEndpoints('m').length, 0);
  fleet.setReady('x', true);
  assert.deepEqual(fleet.readyEndpoints('m').map((e) => e.id), ['x']);
  fleet.get('x')!.loraAdapters = ['lora-a'];
  assert.deepEqual(fleet.resolveModel('lora-a'), { model: 'm', adapter: 'lora-a' });
  assert.equal(fleet.resolveModel('nope'), undefined);
  fleet.setReady('x', false);
  fleet.removeEndpoint('x');
  assert.deepEqual(events, ['add:x', 'ready:x', 'unready:x', 'remove:x']);
  assert.throws(() => fleet.addEndpoint(newEndpointState({ id: 'y', url: 'http://y', model: 'zzz' })), /undeclared model/);
});
