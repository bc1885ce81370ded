/**
 * Endpoint failures: retries after an endpoint is killed, 502/503/504, health-based readiness, and
 * drain on SIGTERM of a real `inferplane gateway` process.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeEngine, fakeStreamEvents } from './fake-engine.ts';
import { startGateway, post, chat } from './helpers.ts';

test('an endpoint killed mid-run: requests are retried on the others and it leaves routing', async (t) => {
  const engines = [await startFakeEngine('a'), await startFakeEngine('b'), await startFakeEngine('c')];
  const run = await startGateway(engines, { gateway: { maxAttempts: 3 } });
  t.after(async () => {
    await run.stop(0);
    await Promise.all(engines.map((e) => e.close()));
  });
  // Route to "a" first (the others look busy), then kill "a".
  run.fleet.get('b')!.inflightRequests += 10;
  run.fleet.get('c')!.inflightRequests += 20;
  await engines[0]!.close();
  const r = await post(`${run.url}/v1/chat/completions`, chat());
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('target-pod'), 'b', 'retried on the next best endpoint');
  assert.equal(run.fleet.get('a')!.ready, false, 'a refused connection marks it not ready');
  run.fleet.get('b')!.inflightRequests -= 10;
  run.fleet.get('c')!.inflightRequests -= 20;
  for (let i = 0; i < 10; i++) {
    const x = await post(`${run.url}/v1/chat/completions`, chat({ stream: true }));
    assert.equal(x.status, 200);
    assert.notEqual(x.headers.get('target-pod'), 'a');
    assert.equal(x.text, fakeStreamEvents(x.headers.get('target-pod')!, 3, false).join(''));
  }
  const m = await (await fetch(`${run.url}/metrics`)).text();
  assert.match(m, /inferplane_upstream_errors_total\{endpoint="a",kind="connect"\} 1/);
  assert.match(m, /inferplane_retries_total\{model="m"\} 1/);
  assert.match(m, /inferplane_endpoint_ready\{endpoint="a",model="m"\} 0/);
});

test('502 when the only endpoint is unreachable, then 503 while it is not ready, 200 once healthy again', async (t) => {
  const eng = await startFakeEngine('solo');
  const port = eng.port;
  const run = await startGateway([eng]);
  t.after(async () => {
    await run.stop(0);
  });
  await eng.close();
  const r1 = await post(`${run.url}/v1/chat/completions`, chat());
  assert.equal(r1.status, 502);
  assert.equal(r1.json().error.code, 'upstream_unreachable');
  const r2 = await post(`${run.url}/v1/chat/completions`, chat());
  assert.equal(r2.status, 503);
  assert.equal(r2.json().error.code, 'no_ready_endpoint');
  assert.equal(r2.headers.get('retry-after'), '1');
  // The engine comes back on the same port; the next health check restores it.
  const back = await startFakeEngine('solo', { port });
  t.after(() => back.close());
  await run.health.checkAll();
  const r3 = await post(`${run.url}/v1/chat/completions`, chat());
  assert.equal(r3.status, 200);
});

test('an endpoint failing its health check leaves routing until healthy', async (t) => {
  const engines = [await startFakeEngine('a'), await startFakeEngine('b')];
  const run = await startGateway(engines);
  t.after(async () => {
    await run.stop(0);
    await Promise.all(engines.map((e) => e.close()));
  });
  engines[0]!.healthy = false;
  await run.health.checkAll();
  for (let i = 0; i < 6; i++) assert.equal((await post(`${run.url}/v1/chat/completions`, chat())).headers.get('target-pod'), 'b');
  engines[1]!.healthy = false;
  await run.health.checkAll();
  const r = await post(`${run.url}/v1/chat/completions`, chat());
  assert.equal(r.status, 503);
  assert.match(r.json().error.message, /all endpoints are unhealthy/);
  engines[0]!.healthy = true;
  await run.health.checkAll();
  assert.equal((await post(`${run.url}/v1/chat/completions`, chat())).headers.get('target-pod'), 'a');
});

test('504 when the upstream does not answer in time (not retried)', async (t) => {
  const engines = [await startFakeEngine('slow', { headerDelayMs: 1500 }), await startFakeEngine('slow2', { headerDelayMs: 1500 })];
  const run = await startGateway(engines, { gateway: { upstreamTimeoutMs: 200 } });
  t.after(async () => {
    await run.stop(0);
    await Promise.all(engines.map((e) => e.close()));
  });
  const r = await post(`${run.url}/v1/chat/completions`, chat());
  assert.equal(r.status, 504);
  assert.equal(r.json().error.code, 'upstream_timeout');
  assert.equal(engines[0]!.received.length + engines[1]!.received.length, 1, 'a timed-out request is not re-sent');
});

test('503 for a model whose endpoints are all unhealthy at start', async (t) => {
  const eng = await startFakeEngine('down', { healthy: false });
  const run = await startGateway([eng]);
  t.after(async () => {
    await run.stop(0);
    await eng.close();
  });
  const r = await post(`${run.url}/v1/chat/completions`, chat());
  assert.equal(r.status, 503);
  assert.equal(r.json().error.code, 'no_ready_endpoint');
});

test('SIGTERM drains: the in-flight stream completes, new connections are refused, exit 0', async (t) => {
  const eng = await startFakeEngine('e', { chunkDelayMs: 150, chunks: 8 });
  const dir = mkdtempSync(join(tmpdir(), 'inferplane-drain-'));
  t.after(async () => {
    await eng.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const file = join(dir, 'fleet.yaml');
  writeFileSync(file, `gateway:\n  port: 0\n  drainGraceMs: 10000\n  logLevel: silent\nmodels:\n  - name: m\n    endpoints: [${eng.url}]\n`);
  const child = spawn(process.execPath, ['bin/inferplane.js', 'gateway', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start:\n${out}`)), 30_000);
    child.stdout.on('data', () => {
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(out);
      if (m) (clearTimeout(timer), resolve(m[1]!));
    });
    child.on('exit', () => reject(new Error(`gateway exited:\n${out}`)));
  });
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat({ stream: true })) });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const first = await reader.read(); // the stream has started
  assert.ok(first.value && first.value.length > 0);
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  child.kill('SIGTERM');
  for (let i = 0; i < 300 && !/SIGTERM: draining/.test(out); i++) await new Promise((r) => setTimeout(r, 20));
  assert.match(out, /SIGTERM: draining/);
  await assert.rejects(fetch(`${url}/health`), 'new connections are refused while draining');
  const chunks: Uint8Array[] = [first.value!];
  for (;;) {
    const x = await reader.read();
    if (x.done) break;
    chunks.push(x.value);
  }
  assert.equal(Buffer.concat(chunks).toString('utf8'), fakeStreamEvents('e', 8, false).join(''), 'the in-flight stream finished intact');
  assert.equal(await exited, 0);
  assert.match(out, /SIGTERM: draining/);
});
