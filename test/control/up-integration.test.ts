/**
 * Issue 6, end to end through `inferplane up` as a child process with simulated engines:
 * - an autoscaler declared in the fleet file scales a model up under load and back down after it,
 *   with the reasons in the JSON log lines and in the admin API status;
 * - an adapter declared in the fleet file is downloaded from a local HTTP server, loaded, routed to
 *   (`target-pod` is an endpoint that has it), then removed with `inferplane adapters rm` and
 *   unloaded from every engine (each engine's `/v1/models`).
 * Behaviour only: every wait polls with a generous overall deadline, no timing thresholds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';

const LLAMA = 'meta-llama/Llama-3.1-8B-Instruct';
const QWEN = 'Qwen/Qwen2.5-7B-Instruct';
const ADMIN = 'admin-key-for-tests';
const admin = { authorization: `Bearer ${ADMIN}` };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, f: () => Promise<T | undefined | false>, log: () => string, timeoutMs = 90_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}\n--- inferplane output (tail) ---\n${log().slice(-4000)}`);
    await sleep(100);
  }
}

interface Decision {
  from: number;
  to: number;
  reason: string;
}

/** Runs `node bin/inferplane.js ...args`; resolves with its exit code and output. */
function cli(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ['bin/inferplane.js', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.on('exit', (code) => resolve({ code, out }));
  });
}

test('inferplane up: fleet-file autoscaler scales up under load and back down; fleet-file adapter is downloaded, loaded, routed to, removed by the CLI', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'inferplane-up-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  // The adapter artifact: a PEFT directory served over HTTP.
  const fetched: string[] = [];
  const files: Record<string, string> = {
    'adapter_config.json': JSON.stringify({ r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'], peft_type: 'LORA' }),
    'adapter_model.safetensors': 'not really weights, the simulator does not read them',
  };
  const artifacts: Server = createServer((req, res) => {
    fetched.push(req.url ?? '');
    const name = (req.url ?? '').replace(/^\/sql-lora\//, '');
    const body = files[name];
    if (body === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((r) => artifacts.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => artifacts.close(() => r())));
  const artifactPort = (artifacts.address() as AddressInfo).port;

  const fleet = `
gateway:
  host: 127.0.0.1
  adminKey: ${ADMIN}
  scrapeIntervalMs: 200
  healthIntervalMs: 500
  drainGraceMs: 1000
stateDir: state
models:
  - name: ${LLAMA}
    simulator: { gpu: H100, replicas: 1, timeScale: 20 }
  - name: ${QWEN}
    simulator: { gpu: H100, replicas: 2, timeScale: 20, enableLora: true, maxLoras: 2 }
autoscalers:
  - name: llama
    model: ${LLAMA}
    strategy: hpa
    metric: inflightRequests
    target: 2
    minReplicas: 1
    maxReplicas: 3
    intervalS: 1
    windows: { stableS: 2, panicS: 1 }
    cooldown: { upS: 0, downS: 2 }
    forecast: { replicaStartupS: 1 }
adapters:
  - name: sql-lora
    baseModel: ${QWEN}
    artifactUrl: http://127.0.0.1:${artifactPort}/sql-lora/
    replicas: 1
`;
  const file = join(dir, 'fleet.yaml');
  writeFileSync(file, fleet);

  const child: ChildProcess = spawn(process.execPath, ['bin/inferplane.js', 'up', '-c', file, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, VLLM_ALLOW_RUNTIME_LORA_UPDATING: 'true' },
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const log = () => out;

  const url = await until('the gateway to listen', async () => {
    if (child.exitCode !== null) assert.fail(`inferplane up exited:\n${out}`);
    const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(out);
    return m && /Ctrl-C/.test(out) ? m[1]! : undefined;
  }, log);

  const getJson = async (path: string) => (await (await fetch(`${url}${path}`, { headers: admin })).json()) as any;
  const endpoints = async (model: string): Promise<{ id: string; url: string; ready: boolean }[]> => (await getJson('/admin/endpoints')).data.filter((e: { model: string }) => e.model === model);
  const decisionsLogged = (): Decision[] =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as { msg?: string } & Decision;
        } catch {
          return {} as { msg?: string } & Decision;
        }
      })
      .filter((l) => l.msg === 'autoscaler decision');

  // --- Adapter: downloaded from the local server, loaded on one Qwen engine. -------------------
  const ready = await until('sql-lora to be Ready', async () => {
    const a = await getJson('/admin/adapters/sql-lora');
    return a.status?.phase === 'Ready' && a.status.endpoints.length === 1 ? (a.status.endpoints as string[]) : undefined;
  }, log);
  assert.deepEqual(fetched.sort(), ['/sql-lora/adapter_config.json', '/sql-lora/adapter_model.safetensors'], 'downloaded once, both files');
  const qwenEps = await endpoints(QWEN);
  assert.equal(qwenEps.length, 2);
  const engineModels = async (epUrl: string) => ((await (await fetch(`${epUrl}/v1/models`)).json()) as { data: { id: string }[] }).data.map((d) => d.id);
  for (const ep of qwenEps) assert.equal((await engineModels(ep.url)).includes('sql-lora'), ready.includes(ep.id), `${ep.id} /v1/models`);
  // Routed to: every request for the adapter lands on the endpoint that has it.
  for (let i = 0; i < 4; i++) {
    const r = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'sql-lora', messages: [{ role: 'user', content: 'SELECT the answer' }], max_tokens: 8 }),
    });
    assert.equal(r.status, 200, await r.clone().text());
    assert.ok(ready.includes(r.headers.get('target-pod')!), `target-pod ${r.headers.get('target-pod')} has the adapter (${ready})`);
    assert.equal(((await r.json()) as { model: string }).model, 'sql-lora');
  }
  // Removed through the CLI, unloaded everywhere.
  const rm = await cli(['adapters', 'rm', 'sql-lora', '--gateway', url, '--admin-key', ADMIN]);
  assert.equal(rm.code, 0, rm.out);
  assert.match(rm.out, /sql-lora: removed/);
  for (const ep of qwenEps) assert.equal((await engineModels(ep.url)).includes('sql-lora'), false, `${ep.id} still lists sql-lora`);
  assert.equal((await fetch(`${url}/admin/adapters/sql-lora`, { headers: admin })).status, 404);
  await until('the gateway to stop listing sql-lora', async () => !((await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] }).data.some((d) => d.id === 'sql-lora'), log);

  // --- Autoscaler: load -> scale up; no load -> scale down. ----------------------------------
  let stop = false;
  let served = 0;
  const worker = async () => {
    while (!stop) {
      const r = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: LLAMA, messages: [{ role: 'user', content: 'Tell me a long story about autoscaling.' }], max_tokens: 256, ignore_eos: true }),
      });
      await r.arrayBuffer();
      if (r.status === 200) served++;
    }
  };
  const workers = Array.from({ length: 12 }, worker);
  try {
    await until('the llama model to scale up to 3 replicas', async () => (await endpoints(LLAMA)).filter((e) => e.ready).length === 3, log);
  } finally {
    stop = true;
    await Promise.all(workers);
  }
  assert.ok(served > 0);
  // Log lines are flushed asynchronously (pino): wait for them rather than read at once.
  const up = await until('a scale-up decision in the log', async () => { const u = decisionsLogged().filter((d) => d.to > d.from); return u.length ? u : undefined; }, log);
  assert.equal(up[0]!.from, 1);
  assert.match(up[0]!.reason, /\S/);
  // No load: back to minReplicas.
  await until('the llama model to scale back down to 1 replica', async () => (await endpoints(LLAMA)).length === 1, log);
  const down = await until('a scale-down decision to 1 in the log', async () => { const d = decisionsLogged().filter((x) => x.to < x.from); return d.at(-1)?.to === 1 ? d : undefined; }, log);
  assert.equal(down.at(-1)!.to, 1);
  assert.match(down.at(-1)!.reason, /\S/);
  const status = (await getJson('/admin/autoscalers/llama')).status as { desiredReplicas: number; decisions: Decision[]; scalingEvents: number };
  assert.equal(status.desiredReplicas, 1);
  assert.ok(status.decisions.some((d) => d.to > d.from) && status.decisions.some((d) => d.to < d.from), JSON.stringify(status.decisions));
  t.diagnostic(`decisions: ${status.decisions.map((d) => `${d.from}->${d.to} (${d.reason})`).join('; ')}`);

  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});
