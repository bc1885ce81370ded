/**
 * Integration over loopback: two simulated vLLM engines (LoRA routes on), a local HTTP artifact
 * server, the controllers' admin API on an HTTP server, and the `inferplane` CLI as a child process.
 * An adapter added through the CLI is downloaded once, loaded on both engines (their /v1/models list
 * it), listed, then removed through the CLI and unloaded everywhere. Autoscalers are set, listed,
 * rejected with field paths, and removed.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { startSimServer, type SimServerHandle } from '../../src/sim/server/server.ts';
import { newEndpointState, type EndpointState } from '../../src/engines/state.ts';
import { AdapterManager } from '../../src/control/adapters/manager.ts';
import { ArtifactCache } from '../../src/control/adapters/fetcher.ts';
import { AutoscalerController } from '../../src/control/autoscaler/controller.ts';
import { createControlAdminHandler } from '../../src/control/admin-api.ts';
import { Command } from 'commander';
import { registerControl } from '../../src/cli/control.ts';

const exec = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;
const cacheDir = await mkdtemp(join(tmpdir(), 'inferplane-admin-'));
const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
  await rm(cacheDir, { recursive: true, force: true });
});
const listen = async (s: Server) => {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => { s.closeAllConnections(); s.close(r); }));
  return `http://127.0.0.1:${(s.address() as { port: number }).port}`;
};

const weights = Buffer.from('fake lora weights '.repeat(1000));
let artifactGets = 0;
const artifactUrl = await listen(createServer((req, res) => {
  artifactGets++;
  res.writeHead(200, { 'content-length': weights.length }).end(weights);
}));

const engines: SimServerHandle[] = [];
for (let i = 0; i < 2; i++) {
  const h = await startSimServer({ model: 'meta-llama/Llama-3.1-8B-Instruct', enableLora: true, maxLoras: 4, allowRuntimeLoraUpdating: true, timeScale: 1000 });
  closers.push(() => h.close());
  engines.push(h);
}
const eps: EndpointState[] = engines.map((h, i) => newEndpointState({ id: `e${i}`, url: h.url, model: 'llama', ready: true, stale: false }));
const adapters = new AdapterManager({ clock: { now: () => Date.now() }, http: fetch, endpoints: () => eps, cache: new ArtifactCache(cacheDir) });
const autoscalers = new AutoscalerController({ clock: { now: () => Date.now() }, actuator: { currentReplicas: () => 2, setReplicas: () => undefined }, signals: { observe: () => undefined } });
const handler = createControlAdminHandler({ autoscalers, adapters });
const gateway = await listen(createServer((req, res) => {
  if (req.headers.authorization !== 'Bearer admin-key-1') {
    res.writeHead(401).end('{"error":{"message":"bad admin key","type":"auth","param":null,"code":null}}');
    return;
  }
  void handler(req, res).then((handled) => { if (!handled) res.writeHead(404).end('{}'); });
}));

/** Runs the CLI in-process (commander + registerControl), capturing stdout/stderr and the exit code. */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const program = new Command().exitOverride();
  let stdout = '';
  let stderr = '';
  registerControl(program, { out: (t) => void (stdout += t), err: (t) => void (stderr += t) });
  await program.parseAsync(['node', 'inferplane', ...args, '--gateway', gateway, '--admin-key', 'admin-key-1']);
  const code = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { code, stdout, stderr };
}

/** Runs the real `bin/inferplane.js` (one spawn, to check the wiring in main.ts). */
async function cliProcess(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(process.execPath, [join(root, 'bin/inferplane.js'), ...args, '--gateway', gateway, '--admin-key', 'admin-key-1'], { cwd: root });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}
const modelsOf = async (h: SimServerHandle) => ((await (await fetch(`${h.url}/v1/models`)).json()) as { data: { id: string; root: string }[] }).data;

test('adapter lifecycle through the CLI: add (download once, load on all), list, rm (unloaded everywhere)', async () => {
  const sha = createHash('sha256').update(weights).digest('hex');
  const add = await cli('adapters', 'add', 'sql-lora', '--base', 'llama', '--url', `${artifactUrl}/sql/adapter.safetensors`, '--replicas', 'all', '--sha256', sha, '--wait');
  assert.equal(add.code, 0, add.stderr);
  assert.match(add.stdout, /adapter sql-lora: Ready on e\d, e\d/);
  assert.equal(artifactGets, 1);
  for (const h of engines) {
    const m = (await modelsOf(h)).find((x) => x.id === 'sql-lora');
    assert.ok(m, 'listed by the engine');
    assert.equal(m.root, adapters.get('sql-lora')!.status.localPath);
  }
  const list = await cliProcess('adapters', 'list');
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /sql-lora\s+llama\s+Ready/);
  const rmr = await cli('adapters', 'rm', 'sql-lora');
  assert.equal(rmr.code, 0, rmr.stderr);
  for (const h of engines) assert.equal((await modelsOf(h)).some((x) => x.id === 'sql-lora'), false);
  const again = await cli('adapters', 'rm', 'sql-lora');
  assert.equal(again.code, 1);
  assert.match(again.stderr, /HTTP 404: no adapter named sql-lora/);
  const bad = await cli('adapters', 'add', 'x', '--base', 'llama', '--url', 'ftp://nope/x');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /artifactUrl: unsupported scheme ftp:/);
});

test('autoscalers through the CLI: set, list, field-path errors, rm', async () => {
  const set = await cli('autoscalers', 'set', 'llama-as', '--model', 'llama', '--strategy', 'kpa', '--metric', 'kvCacheUsage', '--target', '0.7', '--max', '6');
  assert.equal(set.code, 0, set.stderr);
  assert.match(set.stdout, /autoscaler llama-as: kpa on llama \[1, 6\]/);
  assert.equal(autoscalers.get('llama-as')!.spec.metrics[0]!.target, 0.7);
  const list = await cli('autoscalers', 'list');
  assert.match(list.stdout, /llama-as\s+llama\s+kpa\s+1\s+6/);
  const bad = await cli('autoscalers', 'set', 'llama-as', '--model', 'llama', '--min', '8', '--max', '6');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /HTTP 400: body: minReplicas: minReplicas \(8\) must be <= maxReplicas \(6\)/);
  assert.equal(autoscalers.get('llama-as')!.spec.maxReplicas, 6, 'nothing applied');
  // raw API: the envelope carries the field path in `param`
  const r = await fetch(`${gateway}/admin/autoscalers/x`, { method: 'PUT', headers: { authorization: 'Bearer admin-key-1' }, body: JSON.stringify({ model: 'm', metrics: [{ metric: 'kvCacheUsage', target: 0 }] }) });
  assert.equal(r.status, 400);
  const body = (await r.json()) as { error: { param: string; code: string } };
  assert.deepEqual([body.error.param, body.error.code], ['metrics.0.target', 'invalid_resource']);
  assert.equal((await cli('autoscalers', 'rm', 'llama-as')).code, 0);
  assert.equal(autoscalers.list().length, 0);
});
