import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tokenizerFor } from '../../src/engines/tokenizer.ts';
import { PromptFactory } from '../../src/bench/prompt.ts';
import { buildSchedule } from '../../src/bench/schedule.ts';

const tokenizer = tokenizerFor('m');
const AZURE = fileURLToPath(new URL('../../../shared/data/traces/azure-llm-2023-conv.csv', import.meta.url));

test('synthetic random: rate x duration, time scale, deterministic for a seed', () => {
  const a = buildSchedule({ source: { kind: 'synthetic', type: 'random' }, rate: 10, arrival: 'constant', durationS: 30, inputTokens: 64, outputTokens: 16, tokenizer });
  assert.equal(a.items.length, 300);
  assert.equal(a.items[1]!.atMs, 100);
  const b = buildSchedule({ source: { kind: 'synthetic', type: 'random' }, rate: 10, arrival: 'constant', durationS: 30, timeScale: 0.5, tokenizer });
  assert.equal(b.items[1]!.atMs, 50);
  const p1 = buildSchedule({ source: { kind: 'synthetic', type: 'random' }, rate: 10, durationS: 30, seed: 4, tokenizer });
  const p2 = buildSchedule({ source: { kind: 'synthetic', type: 'random' }, rate: 10, durationS: 30, seed: 4, tokenizer });
  assert.deepEqual(p1.items, p2.items);
  assert.ok(Math.abs(p1.items.length - 300) < 70, String(p1.items.length)); // Poisson, 4 sigma
  const inf = buildSchedule({ source: { kind: 'synthetic', type: 'random' }, rate: Infinity, maxRequests: 5, tokenizer });
  assert.deepEqual(inf.items.map((i) => i.atMs), [0, 0, 0, 0, 0]);
  assert.throws(() => buildSchedule({ source: { kind: 'synthetic', type: 'random' }, rate: 10, tokenizer }), /needs --max-requests/);
});

test('shared-prefix and multi-turn: every item once by default, cycled with --duration', () => {
  const sp = buildSchedule({ source: { kind: 'synthetic', type: 'shared-prefix' }, rate: 100, numPrefixes: 3, samplesPerPrefix: 5, preset: 'agents', tokenizer });
  assert.equal(sp.items.length, 15);
  assert.ok(sp.items.every((i) => i.item.kind === 'request' && i.item.request.prefix!.id < 3));
  const cyc = buildSchedule({ source: { kind: 'synthetic', type: 'shared-prefix' }, rate: 10, arrival: 'constant', durationS: 3, numPrefixes: 1, samplesPerPrefix: 4, tokenizer });
  assert.equal(cyc.items.length, 30);
  const keys = cyc.items.map((i) => (i.item.kind === 'request' ? i.item.request.key : ''));
  assert.equal(new Set(keys).size, 30, 'cycled items get distinct keys (distinct text)');
  const mt = buildSchedule({ source: { kind: 'synthetic', type: 'multi-turn' }, rate: 2, sessions: 7, turns: 3, tokenizer });
  assert.equal(mt.items.length, 7);
  assert.ok(mt.items.every((i) => i.item.kind === 'session'));
});

test('trace: timestamps by default, --rate overrides them; dataset without timestamps needs --rate', (t) => {
  const tr = buildSchedule({ source: { kind: 'trace', file: AZURE, format: 'azure' }, startS: 600, durationS: 60, tokenizer });
  assert.ok(tr.items.length > 200 && tr.items.length < 500);
  assert.ok(tr.items.every((i) => i.atMs >= 0 && i.atMs < 60_000));
  const fixed = buildSchedule({ source: { kind: 'trace', file: AZURE, format: 'azure' }, maxRequests: 20, rate: 4, arrival: 'constant', tokenizer });
  assert.deepEqual(fixed.items.slice(0, 3).map((i) => i.atMs), [0, 250, 500]);
  assert.equal(fixed.items.length, 20);
  const dir = mkdtempSync(join(tmpdir(), 'ip-sched-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const ds = join(dir, 'd.jsonl');
  writeFileSync(ds, '{"prompt": "hello there", "output_length": 5}\n{"prompt": "general kenobi"}\n');
  assert.throws(() => buildSchedule({ source: { kind: 'dataset', file: ds }, tokenizer }), /--rate is required/);
  const d = buildSchedule({ source: { kind: 'dataset', file: ds }, rate: 1, arrival: 'constant', durationS: 5, tokenizer });
  assert.equal(d.items.length, 5);
});

test('prompt salt changes the text, not its length', () => {
  const a = new PromptFactory('m', 0).text(40, 'k');
  const b = new PromptFactory('m', '0/run-b').text(40, 'k');
  assert.notEqual(a, b);
  assert.equal(tokenizer.encode(b).length, 40);
});

test('--max-input-tokens clips trace prompts and their Mooncake blocks', () => {
  const file = fileURLToPath(new URL('../../../shared/data/traces/mooncake-conversation.jsonl', import.meta.url));
  const s = buildSchedule({ source: { kind: 'trace', file, format: 'mooncake' }, maxRequests: 300, maxInputTokens: 4000, tokenizer });
  assert.match(s.description, /prompts clipped to 4000 tokens/);
  for (const i of s.items) {
    assert.ok(i.item.kind === 'request');
    const r = i.item.request;
    assert.ok(r.inputTokens <= 4000);
    assert.equal(r.hashIds!.length, Math.ceil(r.inputTokens / 512));
  }
  assert.throws(() => buildSchedule({ source: { kind: 'trace', file, format: 'mooncake' }, maxRequests: 3, maxInputTokens: 0, tokenizer }), /--max-input-tokens/);
});

test('--time-scale scales multi-turn think times with the session starts', () => {
  const base = buildSchedule({ source: { kind: 'synthetic', type: 'multi-turn' }, rate: 1, arrival: 'constant', sessions: 3, turns: 3, thinkTimeS: 2, seed: 1, tokenizer });
  const fast = buildSchedule({ source: { kind: 'synthetic', type: 'multi-turn' }, rate: 1, arrival: 'constant', sessions: 3, turns: 3, thinkTimeS: 2, seed: 1, timeScale: 0.5, tokenizer });
  assert.deepEqual(fast.items.map((i) => i.atMs), base.items.map((i) => i.atMs / 2));
  const think = (b: typeof base) => b.items.flatMap((i) => (i.item.kind === 'session' ? i.item.session.turns.map((t) => t.thinkTimeMs) : []));
  assert.deepEqual(think(fast), think(base).map((x) => x / 2));
  assert.ok(think(base).some((x) => x > 0));
});
