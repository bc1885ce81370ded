/**
 * Limits through the gateway: per-key RPM and TPM (usage counted from streams too), per-model RPS,
 * and one RPM limit enforced exactly across two gateway processes sharing a real redis-server.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startFakeEngine } from './fake-engine.ts';
import { startGateway, post, chat } from './helpers.ts';
import { freePort } from '../../src/fleet/managed.ts';

/** Waits until at least `marginMs` remain in the current fixed window of `windowMs`. */
async function awayFromBoundary(windowMs: number, marginMs: number): Promise<void> {
  const left = windowMs - (Date.now() % windowMs);
  if (left < marginMs) await new Promise((r) => setTimeout(r, left + 20));
}

test('per-key RPM: exactly rpm requests pass, then 429 with retry-after', async (t) => {
  const eng = await startFakeEngine('a');
  const run = await startGateway([eng], { apiKeys: [{ name: 'k', key: 'sk-rpm-0001', rpm: 3 }] });
  t.after(async () => {
    await run.stop(0);
    await eng.close();
  });
  await awayFromBoundary(60_000, 5_000);
  const auth = { authorization: 'Bearer sk-rpm-0001' };
  const statuses = [];
  for (let i = 0; i < 5; i++) statuses.push(await post(`${run.url}/v1/chat/completions`, chat(), auth));
  assert.deepEqual(statuses.map((s) => s.status), [200, 200, 200, 429, 429]);
  const r = statuses[3]!;
  assert.equal(r.json().error.code, 'rate_limit_exceeded');
  assert.equal(r.json().error.type, 'rate_limit_error');
  const ra = Number(r.headers.get('retry-after'));
  assert.ok(ra >= 1 && ra <= 60, `retry-after ${ra}`);
  assert.equal(eng.received.length, 3, 'rejected requests never reach the engine');
  const m = await (await fetch(`${run.url}/metrics`)).text();
  assert.match(m, /inferplane_limit_rejections_total\{limit="rpm"\} 2/);
});

test('per-key TPM counts usage, streaming included', async (t) => {
  const eng = await startFakeEngine('a', { chunks: 3 }); // stream usage: 7 prompt + 3 completion = 10
  const run = await startGateway([eng], { apiKeys: [{ name: 'k', key: 'sk-tpm-0001', tpm: 19 }] });
  t.after(async () => {
    await run.stop(0);
    await eng.close();
  });
  await awayFromBoundary(60_000, 5_000);
  const auth = { authorization: 'Bearer sk-tpm-0001' };
  // Non-streaming: usage total 9 -> used 9 (< 19).
  assert.equal((await post(`${run.url}/v1/chat/completions`, chat(), auth)).status, 200);
  // Streaming without include_usage: the gateway asks for usage (10 tokens) -> used 19 (>= 19).
  const s = await post(`${run.url}/v1/chat/completions`, chat({ stream: true }), auth);
  assert.equal(s.status, 200);
  assert.ok(!s.text.includes('"usage"'), 'usage chunk stripped for the client');
  const r = await post(`${run.url}/v1/chat/completions`, chat(), auth);
  assert.equal(r.status, 429);
  assert.match(r.json().error.message, /tokens per minute/);
});

test('per-model RPS from the fleet file', async (t) => {
  const eng = await startFakeEngine('a');
  const run = await startGateway([eng], {}, { requestsPerSecond: 2 });
  t.after(async () => {
    await run.stop(0);
    await eng.close();
  });
  await awayFromBoundary(1_000, 700);
  const rs = await Promise.all([0, 1, 2, 3, 4].map(() => post(`${run.url}/v1/chat/completions`, chat())));
  const ok = rs.filter((r) => r.status === 200).length;
  assert.equal(ok, 2);
  const rejected = rs.find((r) => r.status === 429)!;
  assert.equal(rejected.headers.get('retry-after'), '1');
  assert.match(rejected.json().error.message, /requests per second/);
});

function waitForListening(child: ChildProcess, log: { out: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start:\n${log.out}`)), 30_000);
    const on = (d: Buffer) => {
      log.out += d;
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(log.out);
      if (m) (clearTimeout(timer), resolve(m[1]!));
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', (d) => (log.out += d));
    child.on('exit', (c) => reject(new Error(`gateway exited ${c}:\n${log.out}`)));
  });
}

test('two gateway processes sharing redis-server enforce one RPM limit exactly', async (t) => {
  const eng = await startFakeEngine('a');
  const port = await freePort();
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const dir = mkdtempSync(join(tmpdir(), 'inferplane-redis-'));
  const children: ChildProcess[] = [];
  t.after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    redis.kill('SIGKILL');
    await eng.close();
    rmSync(dir, { recursive: true, force: true });
  });
  // Wait for redis.
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  client.on('error', () => undefined);
  for (let i = 0; ; i++) {
    try {
      if (client.status !== 'ready') await client.connect().catch(() => undefined);
      if ((await client.ping()) === 'PONG') break;
    } catch {
      if (i > 100) throw new Error('redis-server did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const file = join(dir, 'fleet.yaml');
  writeFileSync(
    file,
    [
      'gateway: {port: 0, logLevel: silent}',
      `limits: {store: redis, redisUrl: "redis://127.0.0.1:${port}"}`,
      'apiKeys:',
      '  - {name: shared, key: sk-shared-0001, rpm: 10}',
      'models:',
      `  - {name: m, endpoints: ["${eng.url}"]}`,
      '',
    ].join('\n'),
  );
  const urls: string[] = [];
  for (let i = 0; i < 2; i++) {
    const c = spawn(process.execPath, ['bin/inferplane.js', 'gateway', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(c);
    urls.push(await waitForListening(c, { out: '' }));
  }
  await awayFromBoundary(60_000, 10_000);
  const auth = { authorization: 'Bearer sk-shared-0001' };
  const rs = await Promise.all(Array.from({ length: 30 }, (_, i) => post(`${urls[i % 2]}/v1/chat/completions`, chat(), auth)));
  const ok = rs.filter((r) => r.status === 200).length;
  const limited = rs.filter((r) => r.status === 429).length;
  assert.equal(ok, 10, 'exactly rpm requests pass across both gateways');
  assert.equal(limited, 20);
  assert.equal(eng.received.length, 10);
  // Both gateways served some and rejected some (the limit is shared, not per process).
  for (const u of urls) assert.ok(rs.some((r, i) => urls[i % 2] === u && r.status === 429));
  const keys = await client.keys('*rpm*');
  assert.ok(keys.length >= 1, 'the counter lives in redis');
  await client.quit();
});
