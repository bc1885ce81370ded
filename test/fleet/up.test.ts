/** `inferplane up` (demo fleet) and `inferplane gateway` as real processes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function start(args: string[]) {
  const child = spawn(process.execPath, ['bin/inferplane.js', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = { out: '' };
  child.stdout.on('data', (d) => (log.out += d));
  child.stderr.on('data', (d) => (log.out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return { child, log, exited };
}

test('inferplane up: the demo fleet serves chat on a random port and stops on SIGTERM', async (t) => {
  const { child, log, exited } = start(['up', '--port', '0']);
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`up did not start:\n${log.out}`)), 60_000);
    child.stdout.on('data', () => {
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(log.out);
      if (m && /Ctrl-C/.test(log.out)) (clearTimeout(timer), resolve(m[1]!));
    });
    child.on('exit', () => reject(new Error(`up exited:\n${log.out}`)));
  });
  // The banner lists 5 endpoints and paste-ready examples.
  assert.match(log.out, /endpoints \(5\)/);
  assert.match(log.out, /curl http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions/);
  assert.match(log.out, /new OpenAI\(\{ baseURL: 'http:\/\/127\.0\.0\.1:\d+\/v1'/);
  const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
  assert.deepEqual(models.data.map((d) => d.id), ['meta-llama/Llama-3.1-8B-Instruct', 'Qwen/Qwen2.5-7B-Instruct']);
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'meta-llama/Llama-3.1-8B-Instruct', messages: [{ role: 'user', content: 'Hello!' }], max_tokens: 8 }),
  });
  assert.equal(r.status, 200);
  const body = (await r.json()) as { choices: { message: { content: string } }[]; usage: { completion_tokens: number } };
  assert.equal(typeof body.choices[0]!.message.content, 'string');
  assert.ok(body.usage.completion_tokens > 0 && body.usage.completion_tokens <= 8);
  assert.match(r.headers.get('target-pod')!, /^meta-llama\/Llama-3\.1-8B-Instruct-sim-[012]$/);
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});

test('inferplane gateway: an invalid fleet file exits 2 naming file, line and field', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'inferplane-bad-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'fleet.yaml');
  writeFileSync(file, 'gateway:\n  port: 8080\nmodels:\n  - name: m\n    endpoints: [nope]\n');
  const { log, exited } = start(['gateway', '-c', file]);
  assert.equal(await exited, 2);
  assert.ok(log.out.includes(`${file}:5:`), log.out);
  assert.match(log.out, /models\.0\.endpoints\.0/);
});

test('inferplane gateway refuses simulator models (static endpoints only)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'inferplane-sim-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'fleet.yaml');
  writeFileSync(file, 'models:\n  - name: m\n    simulator: {gpu: H100}\n');
  const { log, exited } = start(['gateway', '-c', file, '--port', '0']);
  assert.equal(await exited, 2);
  assert.match(log.out, /static endpoints only/);
});
