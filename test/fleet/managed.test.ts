/**
 * Managed engine processes from a command template: started, health-checked, restarted after a
 * crash, logged per replica, scaled through the registry, and stopped (SIGTERM) on exit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { validateFleet } from '../../src/fleet/config.ts';
import { runFleet } from '../../src/gateway/runtime.ts';
import type { ManagedSource } from '../../src/fleet/managed.ts';

const ENGINE = resolve('test/fleet/engine-proc.mjs');

async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('managed replicas: start, serve, restart after a crash, scale, stop', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'inferplane-managed-'));
  const cfg = validateFleet({
    gateway: { port: 0, logLevel: 'silent', healthIntervalMs: 50, scrapeIntervalMs: 100 },
    stateDir: dir,
    models: [{ name: 'm', command: `exec "${process.execPath}" "${ENGINE}" {port} {model}-{replica}`, replicas: 2, startupTimeoutMs: 20_000 }],
  });
  const run = await runFleet(cfg, { port: 0 });
  let stopped = false;
  t.after(async () => {
    if (!stopped) await run.stop(0);
    rmSync(dir, { recursive: true, force: true });
  });
  const src = run.fleet.source('m') as ManagedSource;
  await until(() => run.fleet.readyEndpoints('m').length === 2, 'two ready replicas');
  assert.deepEqual(run.fleet.endpointsOf('m').map((e) => e.id).sort(), ['m-0', 'm-1']);

  const r = await fetch(`${run.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }] }) });
  assert.equal(r.status, 200);
  assert.match(((await r.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content, /^pid \d+ m-[01]$/);

  // Crash replica 0: it leaves routing, is restarted on the same port, and comes back.
  const before = src.status().find((s) => s.id === 'm-0')!;
  process.kill(before.pid!, 'SIGKILL');
  await until(() => run.fleet.get('m-0')!.ready === false, 'm-0 not ready after the crash');
  await until(() => src.status().find((s) => s.id === 'm-0')!.restarts === 1 && run.fleet.get('m-0')!.ready, 'm-0 restarted and ready');
  const after = src.status().find((s) => s.id === 'm-0')!;
  assert.notEqual(after.pid, before.pid);
  assert.equal(after.port, before.port, 'the replica keeps its port (stable endpoint URL)');
  const log = readFileSync(after.log, 'utf8');
  assert.equal(log.match(/engine m-0 listening/g)?.length, 2, 'the log keeps both runs');

  // Scale through the registry.
  const removed: string[] = [];
  run.fleet.on('remove', (e) => removed.push(e.id));
  const pid1 = src.status().find((s) => s.id === 'm-1')!.pid!;
  await run.fleet.scaleModel('m', 1);
  assert.deepEqual(removed, ['m-1']);
  assert.equal(alive(pid1), false, 'the scaled-down replica was stopped');
  await run.fleet.scaleModel('m', 2);
  await until(() => run.fleet.readyEndpoints('m').length === 2, 'scaled back to two');

  // Stop: every process gets SIGTERM and exits.
  const pids = src.status().map((s) => s.pid!);
  await run.stop(0);
  stopped = true;
  for (const p of pids) assert.equal(alive(p), false, `pid ${p} stopped`);
  assert.match(readFileSync(join(dir, 'logs', 'm-1.log'), 'utf8'), /got SIGTERM/);
});

test('scaling a static model is refused', async () => {
  const cfg = validateFleet({ gateway: { port: 0, logLevel: 'silent' }, models: [{ name: 's', endpoints: ['http://127.0.0.1:9'] }] });
  const run = await runFleet(cfg, { port: 0 });
  try {
    await assert.rejects(run.fleet.scaleModel('s', 3), /static endpoints cannot be scaled/);
  } finally {
    await run.stop(0);
  }
});
