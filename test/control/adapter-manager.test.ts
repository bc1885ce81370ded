/**
 * The adapter state machine with failures injected at every step: download, load, restart (backoff
 * kept in status), endpoints leaving, the engine losing an adapter, slots full (LRU eviction), unload.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdapterManager, backoffMs } from '../../src/control/adapters/manager.ts';
import { ArtifactCache, type FetchFn } from '../../src/control/adapters/fetcher.ts';
import { lruVictim, rankEndpoints } from '../../src/control/adapters/placement.ts';
import { newEndpointState, type EndpointState } from '../../src/engines/state.ts';
import type { ModelAdapter } from '../../src/control/resources.ts';

const dir = await mkdtemp(join(tmpdir(), 'inferplane-adapters-'));
after(() => rm(dir, { recursive: true, force: true }));

/** A fake fleet of vLLM engines reached through an injected fetch; failures are injected per call. */
function world(n: number, opts: { maxLoras?: number } = {}) {
  let now = 0;
  const loaded = new Map<string, Set<string>>();
  const calls: { ep: string; path: string; body: Record<string, unknown> }[] = [];
  const failures: { match: (ep: string, path: string) => boolean; status: number; text: string }[] = [];
  const eps: EndpointState[] = [];
  for (let i = 0; i < n; i++) {
    eps.push(newEndpointState({ id: `e${i}`, url: `http://e${i}`, model: 'base', ready: true, stale: false, maxLoras: opts.maxLoras }));
    loaded.set(`e${i}`, new Set());
  }
  const engineHttp: FetchFn = async (url, init) => {
    const u = new URL(url);
    const ep = u.hostname;
    const body = JSON.parse(init?.body ?? '{}') as Record<string, unknown>;
    calls.push({ ep, path: u.pathname, body });
    const f = failures.findIndex((x) => x.match(ep, u.pathname));
    if (f >= 0) {
      const [x] = failures.splice(f, 1);
      return new Response(x!.text, { status: x!.status });
    }
    const set = loaded.get(ep)!;
    const name = String(body.lora_name);
    if (u.pathname === '/v1/load_lora_adapter') {
      if (set.has(name)) return new Response(JSON.stringify({ error: { message: `The lora adapter '${name}' has already been loaded.`, type: 'InvalidUserInput', param: null, code: 400 } }), { status: 400 });
      set.add(name);
      return new Response(`Success: LoRA adapter '${name}' added successfully.`, { status: 200 });
    }
    if (u.pathname === '/v1/unload_lora_adapter') {
      if (!set.delete(name)) return new Response(JSON.stringify({ error: { message: `The lora adapter '${name}' cannot be found.`, type: 'NotFoundError', param: null, code: 404 } }), { status: 404 });
      return new Response(`Success: LoRA adapter '${name}' removed successfully.`, { status: 200 });
    }
    return new Response('not found', { status: 404 });
  };
  // Artifact source: a fake fetch too (download failures injected with `artifactFail`).
  const artifactFail: number[] = [];
  let downloads = 0;
  const artifactHttp: FetchFn = async () => {
    downloads++;
    const s = artifactFail.shift();
    if (s) return new Response('artifact store down', { status: s });
    return new Response(new Uint8Array([1, 2, 3]), { status: 200 });
  };
  const saved = new Map<string, string>();
  const mk = (cacheName: string) =>
    new AdapterManager({
      clock: { now: () => now },
      http: engineHttp,
      endpoints: () => eps,
      cache: new ArtifactCache(join(dir, cacheName), artifactHttp),
      secrets: (s) => (s === 'hub' ? 'tok' : undefined),
      env: {},
      onChange: (a: ModelAdapter) => saved.set(a.spec.name, JSON.stringify({ spec: a.spec, status: a.status, generation: a.generation })),
    });
  return {
    eps, loaded, calls, failures, artifactFail, saved, mk,
    get downloads() { return downloads; },
    set now(v: number) { now = v; },
    get now() { return now; },
    failLoad(ep: string, status = 500, text = 'engine exploded') {
      failures.push({ match: (e, p) => e === ep && p === '/v1/load_lora_adapter', status, text });
    },
  };
}

let seq = 0;
const spec = (o: Record<string, unknown> = {}) => ({ name: 'sql', baseModel: 'base', artifactUrl: `http://store/${seq++}/sql.safetensors`, ...o });

test('happy path: Pending -> Downloading -> Loading -> Ready, one download for several endpoints', async () => {
  const w = world(3);
  const m = w.mk('happy');
  const a = m.apply(spec({ replicas: 'all' }));
  assert.equal(a.status.phase, 'Pending');
  await m.reconcile();
  assert.equal(a.status.phase, 'Ready');
  assert.deepEqual(a.status.endpoints.sort(), ['e0', 'e1', 'e2']);
  assert.equal(w.downloads, 1);
  const loads = w.calls.filter((c) => c.path === '/v1/load_lora_adapter');
  assert.equal(loads.length, 3);
  assert.deepEqual(Object.keys(loads[0]!.body).sort(), ['lora_name', 'lora_path']);
  assert.equal(loads[0]!.body.lora_path, a.status.localPath);
  assert.equal(a.status.conditions.find((c) => c.type === 'Ready')?.status, 'True');
});

test('download failure: Failed with backoff kept in status; survives a restart; then Ready', async () => {
  const w = world(1);
  const m1 = w.mk('dl');
  w.artifactFail.push(503);
  const a = m1.apply(spec());
  await m1.reconcile();
  assert.equal(a.status.phase, 'Failed');
  assert.match(a.status.lastError!, /download: .*HTTP 503/);
  assert.deepEqual(a.status.download, { attempts: 1, nextAttemptAtMs: 5000 });
  // Restart: a new manager restored from the saved status does not retry before the backoff ends.
  const m2 = w.mk('dl');
  const b = m2.restore(JSON.parse(w.saved.get('sql')!));
  w.now = 4000;
  await m2.reconcile();
  assert.equal(w.downloads, 1, 'no retry before nextAttemptAtMs');
  assert.equal(b.status.phase, 'Failed');
  // Second failure doubles the backoff.
  w.artifactFail.push(500);
  w.now = 5000;
  await m2.reconcile();
  assert.deepEqual(b.status.download, { attempts: 2, nextAttemptAtMs: 15000 });
  w.now = 15000;
  await m2.reconcile();
  assert.equal(b.status.phase, 'Ready');
  assert.deepEqual(b.status.download, { attempts: 0, nextAttemptAtMs: 0 });
  assert.equal(backoffMs(10, 5, 300), 300_000);
});

test('download retries are bounded; a non-retriable scheme fails at once; a missing secret fails clearly', async () => {
  const w = world(1);
  const m = w.mk('bounded');
  const a = m.apply(spec({ retry: { maxAttempts: 2, baseS: 1 } }));
  w.artifactFail.push(500, 500, 500);
  await m.reconcile();
  w.now = 1000;
  await m.reconcile();
  assert.equal(a.status.download.attempts, 2);
  assert.equal(a.status.conditions.find((c) => c.type === 'Downloaded')?.reason, 'RetriesExhausted');
  w.now = 100_000;
  await m.reconcile();
  assert.equal(w.downloads, 2, 'terminal: no more attempts');
  // Changing the spec resets the retry state.
  m.apply(spec({ name: 'sql', retry: { maxAttempts: 2, baseS: 1 }, artifactUrl: 'http://store/fixed/sql.safetensors' }));
  w.artifactFail.length = 0;
  await m.reconcile();
  assert.equal(a.status.phase, 'Ready');

  // A non-retriable fetch error (here S3 credentials that are not KEY:SECRET) is terminal at once.
  const s3 = m.apply(spec({ name: 's3a', artifactUrl: 's3://bucket/k', credentials: { secret: 'hub' } }));
  await m.reconcile();
  assert.equal(s3.status.phase, 'Failed');
  assert.equal(s3.status.download.attempts, 5);
  assert.match(s3.status.lastError!, /s3 credentials: expected ACCESS_KEY_ID:SECRET_ACCESS_KEY/);
  const sec = m.apply(spec({ name: 'sec', credentials: { secret: 'nope' } }));
  await m.reconcile();
  assert.match(sec.status.lastError!, /credentials.secret: secret nope not found/);
});

test('load failure on one endpoint: backoff per endpoint, another endpoint is tried, then recovery', async () => {
  const w = world(2);
  const m = w.mk('load');
  w.failLoad('e0');
  w.failLoad('e1');
  const a = m.apply(spec({ replicas: 1 }));
  await m.reconcile();
  assert.equal(a.status.phase, 'Failed');
  assert.equal(a.status.endpointStates.e0!.attempts, 1);
  assert.match(a.status.lastError!, /load on e0: HTTP 500: engine exploded/);
  // e0 is in backoff: the next pass tries e1, which fails too.
  await m.reconcile();
  assert.equal(a.status.endpointStates.e1!.attempts, 1);
  // Nothing is tried before the backoff ends.
  const before = w.calls.length;
  w.now = 4999;
  await m.reconcile();
  assert.equal(w.calls.length, before);
  w.now = 5000;
  await m.reconcile();
  assert.equal(a.status.phase, 'Ready');
  assert.equal(a.status.endpoints.length, 1);
  // "already loaded" counts as success (e.g. after a restart that lost the status)
  w.loaded.get('e1')!.add('other');
  const o = m.apply(spec({ name: 'other', replicas: 'all' }));
  await m.reconcile();
  assert.deepEqual(o.status.endpoints.sort(), ['e0', 'e1']);
});

test('endpoints come and go: re-placed; replicas "all" follows new endpoints; engine losing it reloads', async () => {
  const w = world(2);
  const m = w.mk('move');
  const a = m.apply(spec({ replicas: 1 }));
  await m.reconcile();
  const first = a.status.endpoints[0]!;
  w.eps.splice(w.eps.findIndex((e) => e.id === first), 1);
  await m.reconcile();
  assert.equal(a.status.endpoints.length, 1);
  assert.notEqual(a.status.endpoints[0], first);
  const all = m.apply(spec({ name: 'all', replicas: 'all' }));
  await m.reconcile();
  w.eps.push(newEndpointState({ id: 'e9', url: 'http://e9', model: 'base', ready: true, stale: false }));
  w.loaded.set('e9', new Set());
  await m.reconcile();
  assert.ok(all.status.endpoints.includes('e9'));
  // The engine restarts and loses the adapter: a later scrape without it triggers a reload.
  const e9 = w.eps.find((e) => e.id === 'e9')!;
  w.loaded.get('e9')!.clear();
  w.now = 10_000;
  e9.scrapedAtMs = 10_000;
  e9.loraAdapters = [];
  await m.reconcile(); // drops it
  await m.reconcile(); // places it again
  assert.ok(w.loaded.get('e9')!.has('all'));
});

test('slots full: ensure() evicts the least recently used adapter; remove() unloads everywhere', async () => {
  const w = world(1, { maxLoras: 2 });
  const m = w.mk('lru');
  const x = m.apply(spec({ name: 'x' }));
  const y = m.apply(spec({ name: 'y' }));
  const z = m.apply(spec({ name: 'z' }));
  await m.reconcile();
  assert.deepEqual([x.status.phase, y.status.phase], ['Ready', 'Ready']);
  assert.equal(z.status.phase, 'Loading'); // no free slot: loads on demand
  w.now = 100;
  m.touch('x', 'e0'); // y is now the least recently used
  const ep = await m.ensure('z');
  assert.equal(ep, 'e0');
  assert.deepEqual([...w.loaded.get('e0')!].sort(), ['x', 'z']);
  assert.deepEqual(y.status.endpoints, []);
  assert.equal(y.status.conditions.find((c) => c.type === 'Placed')?.reason, 'Evicted');
  assert.equal(await m.ensure('x'), 'e0');
  await assert.rejects(m.ensure('nope'), /not declared/);
  // Unload failure on delete is recorded; the adapter is removed anyway.
  w.failures.push({ match: (_e, p) => p === '/v1/unload_lora_adapter', status: 500, text: 'stuck' });
  assert.equal(await m.remove('x'), true);
  assert.equal(m.get('x'), undefined);
  assert.equal(await m.remove('z'), true);
  assert.deepEqual([...w.loaded.get('e0')!], ['x']); // x's unload failed (injected), z's succeeded
  assert.equal(await m.remove('z'), false);
});

test('placement policies and LRU choice', () => {
  const eps = [
    { id: 'a', load: 5, adapters: ['p'], maxLoras: 4 },
    { id: 'b', load: 1, adapters: ['p', 'q', 'r', 's'], maxLoras: 4 },
    { id: 'c', load: 2, adapters: [], maxLoras: 4 },
  ];
  assert.deepEqual(rankEndpoints(eps, 'spread').map((e) => e.id), ['c', 'a', 'b']);
  assert.deepEqual(rankEndpoints(eps, 'leastAdapters').map((e) => e.id), ['c', 'a', 'b']);
  assert.deepEqual(rankEndpoints(eps, 'binPack').map((e) => e.id), ['a', 'c', 'b']);
  assert.equal(lruVictim(['p', 'q', 'r'], new Map([['p', 5], ['q', 1], ['r', 3]])), 'q');
  assert.equal(lruVictim(['p', 'q'], new Map([['p', 5]])), 'q'); // never used = oldest
  assert.equal(lruVictim([], new Map()), undefined);
});

test('start() reconciles on the injected timers; stop() clears them', async () => {
  const w = world(1);
  const t: { fn?: () => void } = {};
  let cleared = false;
  const m = new AdapterManager({
    clock: { now: () => 0 },
    http: async () => new Response('ok', { status: 200 }),
    endpoints: () => w.eps,
    cache: new ArtifactCache(join(dir, 'timers'), async () => new Response(new Uint8Array([1]), { status: 200 })),
    timers: { setInterval: (f) => ((t.fn = f), 1), clearInterval: () => void (cleared = true) },
  });
  const a = m.apply(spec());
  m.start(1000);
  assert.ok(t.fn, 'interval registered');
  t.fn();
  await m.reconcile(); // queued after the timer's pass
  assert.equal(a.status.phase, 'Ready');
  m.stop();
  assert.equal(cleared, true);
});
