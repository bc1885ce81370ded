import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { startFakeUpstream } from '../../src/bench/fake-upstream.ts';
import { registerBench } from '../../src/cli/bench.ts';
import type { RequestRecord } from '../../src/bench/record.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/inferplane.js');

function cli(args: string[]): { child: ChildProcess; result: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c) => (stdout += c));
  child.stderr!.on('data', (c) => (stderr += c));
  const result = new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((res) =>
    child.on('close', (code, signal) => res({ code, signal, stdout, stderr })),
  );
  return { child, result };
}

function tmp(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ip-bench-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const lines = (p: string): RequestRecord[] =>
  readFileSync(p, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as RequestRecord);

test('bench run: Ctrl-C stops sending, in-flight requests finish, every result is kept, clean exit', async (t) => {
  const up = await startFakeUpstream({ record: true });
  t.after(() => up.close());
  const out = join(tmp(t), 'r.jsonl');
  const { child, result } = cli([
    'bench', 'run', '--base-url', up.url, '--model', 'm', '--out', out,
    '--synthetic', 'random', '--input-tokens', '16', '--output-tokens', '4',
    '--rate', '20', '--arrival', 'constant', '--max-requests', '2000',
    '--header', 'x-fake-ttft-ms: 300', '--no-progress',
  ]);
  t.after(() => child.kill('SIGKILL'));
  // Wait until the server has seen a few requests, then interrupt.
  for (let i = 0; i < 2400 && up.bodies.length < 10; i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(up.bodies.length >= 10, 'the run started');
  child.kill('SIGINT');
  const r = await result;
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /stopping \(Ctrl-C\)/);
  assert.match(r.stderr, /stopped early/);
  const recs = lines(out);
  assert.equal(recs.length, up.bodies.length, 'a record for every request the server received');
  assert.ok(recs.length < 2000);
  assert.ok(recs.every((x) => x.ok), 'in-flight requests were drained, not cut');
  assert.deepEqual(recs.map((x) => x.id).sort((a, b) => a - b), recs.map((_, i) => i));
  assert.match(r.stdout, /TTFT mean/);
});

test('bench run then bench report: Mooncake trace replay end to end, JSON and HTML', async (t) => {
  const up = await startFakeUpstream({ record: true, name: 'pod-x' });
  t.after(() => up.close());
  const dir = tmp(t);
  const out = join(dir, 'r.jsonl');
  const run = await cli([
    'bench', 'run', '--base-url', up.url, '--model', 'm', '--out', out,
    '--trace', join(ROOT, '../shared/data/traces/mooncake-conversation.jsonl'), '--trace-format', 'mooncake',
    '--max-requests', '12', '--time-scale', '0.01', '--api', 'completions', '--api-key', 'sk-test',
  ]).result;
  assert.equal(run.code, 0, run.stderr);
  const recs = lines(out);
  assert.equal(recs.length, 12);
  assert.ok(recs.every((x) => x.ok && x.endpoint === 'pod-x' && Array.isArray(x.spec.hashIds)));
  // Prompts were built from the trace's 512-token blocks: equal leading ids give equal leading text.
  const bodies = up.bodies as Array<{ prompt: string }>;
  assert.equal(bodies.length, 12);
  const byId = [...recs].sort((a, b) => a.id - b.id);
  for (const [i, r] of byId.entries()) assert.equal(r.promptTokensSent, r.spec.inputTokens, `request ${i}`);
  const firstBlocks = new Set(bodies.map((b) => b.prompt.split(' ').slice(1, 513).join(' ')));
  const firstIds = new Set(recs.map((r) => r.spec.hashIds![0]));
  assert.equal(firstBlocks.size, firstIds.size, 'one distinct first block of text per distinct first hash id');
  assert.equal(firstIds.size, 1, 'every conversation-trace request starts with block 0');

  const html = join(dir, 'report.html');
  const rep = await cli(['bench', 'report', out, out, '--json', '--html', html, '--slo', 'ttft=5s']).result;
  assert.equal(rep.code, 0, rep.stderr);
  const j = JSON.parse(rep.stdout) as { runs: Array<{ requests: { total: number } }>; ratiosToFirst: Array<{ ratios: Record<string, number | null> }> };
  assert.equal(j.runs.length, 2);
  assert.equal(j.runs[0]!.requests.total, 12);
  assert.equal(j.ratiosToFirst[0]!.ratios['Requests'], 1);
  assert.ok(existsSync(html));

  // Replay the results file as a dataset: same specs, same schedule.
  const out2 = join(dir, 'r2.jsonl');
  const replay = await cli(['bench', 'run', '--base-url', up.url, '--model', 'm', '--out', out2, '--dataset', out]).result;
  assert.equal(replay.code, 0, replay.stderr);
  assert.match(replay.stderr, /replay dataset/);
  const recs2 = lines(out2).sort((a, b) => a.id - b.id);
  assert.deepEqual(recs2.map((x) => x.spec), byId.map((x) => x.spec));
  assert.deepEqual(recs2.map((x) => x.scheduledMs), byId.map((x) => x.scheduledMs));
});

test('bench run / report: bad flags get an error naming the flag', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['bench', 'run', '--base-url', 'http://x', '--model', 'm', '--out', '/tmp/x', '--synthetic', 'random', '--rate', 'fast'], /--rate must be a number > 0/],
    [['bench', 'run', '--base-url', 'http://x', '--model', 'm', '--out', '/tmp/x', '--synthetic', 'nope'], /--synthetic.*Allowed choices/s],
    [['bench', 'run', '--base-url', 'http://x', '--model', 'm', '--out', '/tmp/x'], /exactly one workload source/],
    [['bench', 'run', '--base-url', 'http://x', '--model', 'm', '--out', '/tmp/x', '--trace', 'f.csv'], /--trace needs --trace-format/],
    [['bench', 'run', '--base-url', 'http://x', '--model', 'm', '--out', '/tmp/x', '--synthetic', 'random', '--header', 'nocolon'], /--header must look like/],
    [['bench', 'run', '--base-url', 'http://x', '--model', 'm', '--out', '/tmp/x', '--synthetic', 'shared-prefix'], /--rate is required/],
    [['bench', 'run', '--base-url', 'not a url', '--model', 'm', '--out', '/tmp/x', '--synthetic', 'random', '--rate', '1', '--max-requests', '1'], /--base-url must be an absolute URL/],
    [['bench', 'run', '--base-url', 'http://x', '--model', 'm', '--out', '/tmp/x', '--trace', '/nonexistent.csv', '--trace-format', 'azure'], /nonexistent\.csv: cannot read trace file/],
    [['bench', 'run', '--base-url', 'http://x', '--model', 'm', '--out', '/tmp/x', '--synthetic', 'random', '--max-requests', '0'], /--max-requests must be an integer > 0/],
    [['bench', 'report', '/nonexistent.jsonl'], /nonexistent\.jsonl: cannot read results file/],
    [['bench', 'report', '/nonexistent.jsonl', '--slo', 'ttft'], /--slo: cannot read/],
  ];
  // In-process (fast): commander's exit is turned into an exception.
  for (const [args, re] of cases) {
    let err = '';
    const program = new Command().exitOverride().configureOutput({ writeErr: (s) => (err += s), writeOut: () => {} });
    registerBench(program);
    await assert.rejects(program.parseAsync(args, { from: 'user' }), (e: unknown) => e instanceof CommanderError && e.exitCode !== 0, args.join(' '));
    assert.match(err, re, `${args.join(' ')}\nstderr: ${err}`);
  }
  // Through the real binary: a non-zero exit and no stack trace.
  for (const [args, re] of [cases[0]!, cases[9]!]) {
    const r = await cli(args).result;
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.stderr, re, `${args.join(' ')}\nstderr: ${r.stderr}`);
    assert.ok(!/\n\s+at .+\(.+:\d+:\d+\)/.test(r.stderr), `no stack trace for ${args.join(' ')}`);
  }
});
