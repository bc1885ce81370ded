import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAzureTrace, loadMooncakeTrace, parseAzureTrace, parseMooncakeTrace, spreadBuckets, TraceFormatError } from '../../src/bench/traces.ts';

const DATA = fileURLToPath(new URL('../../../shared/data/traces/', import.meta.url));

function tmpFile(t: { after(fn: () => void): void }, name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'ip-traces-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const AZURE = [
  'TIMESTAMP,ContextTokens,GeneratedTokens',
  '2023-11-16 18:15:46.6805900,374,44',
  '2023-11-16 18:15:50.9951690,396,109',
  '2023-11-16 18:15:51.0000000,1020,7',
  '2023-11-16 18:16:00.5000000,2,1000',
].join('\r\n'); // CRLF, no trailing newline, like the real file

test('azure: CRLF, no trailing newline, 7 fractional digits, times relative to the first row', (t) => {
  const p = tmpFile(t, 'a.csv', AZURE);
  const r = loadAzureTrace(p);
  assert.equal(r.length, 4);
  assert.deepEqual(r.map((x) => x.inputTokens), [374, 396, 1020, 2]);
  assert.deepEqual(r.map((x) => x.outputTokens), [44, 109, 7, 1000]);
  assert.equal(r[0]!.arrivalMs, 0);
  assert.ok(Math.abs(r[1]!.arrivalMs - 4314.579) < 1e-6, String(r[1]!.arrivalMs));
  assert.ok(Math.abs(r[2]!.arrivalMs - 4319.41) < 1e-6);
  assert.ok(Math.abs(r[3]!.arrivalMs - 13819.41) < 1e-6);
  assert.equal(r[0]!.hashIds, undefined);
});

test('azure: window, timeScale and maxRequests', () => {
  const w = parseAzureTrace(AZURE, 'x', { startS: 4, durationS: 5 });
  assert.equal(w.length, 2);
  assert.ok(Math.abs(w[0]!.arrivalMs - 314.579) < 1e-6);
  const s = parseAzureTrace(AZURE, 'x', { timeScale: 0.5 });
  assert.ok(Math.abs(s[3]!.arrivalMs - 13819.41 / 2) < 1e-6);
  assert.equal(parseAzureTrace(AZURE, 'x', { maxRequests: 3 }).length, 3);
  assert.equal(parseAzureTrace(AZURE, 'x', { startS: 100 }).length, 0);
  assert.throws(() => parseAzureTrace(AZURE, 'x', { timeScale: 0 }), /timeScale/);
  assert.throws(() => parseAzureTrace(AZURE, 'x', { maxRequests: 1.5 }), /maxRequests/);
});

test('azure: bad rows name the file and the line', (t) => {
  const bad = (row: string, at: number, re: RegExp) => {
    const rows = AZURE.split('\r\n');
    rows.splice(at - 1, 0, row);
    const p = tmpFile(t, 'bad.csv', rows.join('\r\n'));
    assert.throws(
      () => loadAzureTrace(p),
      (e: unknown) => e instanceof TraceFormatError && e.message.startsWith(`${p}:${at}: `) && re.test(e.message) && e.line === at,
    );
  };
  bad('2023-11-16 18:15:47.0000000,abc,3', 3, /ContextTokens/);
  bad('2023-11-16 18:15:47.0000000,3,-1', 3, /GeneratedTokens/);
  bad('2023/11/16 18:15:47,3,4', 4, /TIMESTAMP/);
  bad('2023-11-16 18:15:47.0000000,3', 2, /expected 3 fields/);
  bad('2023-11-16 18:15:40.0000000,3,3', 4, /earlier/);
  const noHeader = tmpFile(t, 'nh.csv', 'a,b,c\r\n');
  assert.throws(() => loadAzureTrace(noHeader), /nh\.csv:1: header/);
  assert.throws(() => loadAzureTrace(join(tmpdir(), 'does-not-exist-ip.csv')), /does-not-exist-ip\.csv: cannot read trace file \(ENOENT\)/);
});

const MOON = [
  '{"timestamp": 0, "input_length": 1024, "output_length": 5, "hash_ids": [0, 1]}',
  '{"timestamp": 0, "input_length": 1025, "output_length": 6, "hash_ids": [0, 1, 2]}',
  '',
  '{"timestamp": 3001, "input_length": 10, "output_length": 1, "hash_ids": [3]}',
  '{"timestamp": 6000, "input_length": 600, "output_length": 2}',
  '',
].join('\n');

test('mooncake: parses timestamps (ms), lengths and hash ids; skips blank lines', (t) => {
  const p = tmpFile(t, 'm.jsonl', MOON);
  const r = loadMooncakeTrace(p);
  assert.deepEqual(r, [
    { arrivalMs: 0, inputTokens: 1024, outputTokens: 5, hashIds: [0, 1] },
    { arrivalMs: 0, inputTokens: 1025, outputTokens: 6, hashIds: [0, 1, 2] },
    { arrivalMs: 3001, inputTokens: 10, outputTokens: 1, hashIds: [3] },
    { arrivalMs: 6000, inputTokens: 600, outputTokens: 2 },
  ]);
  const w = parseMooncakeTrace(MOON, 'm', { startS: 3, durationS: 3, timeScale: 2 });
  assert.deepEqual(w.map((x) => x.arrivalMs), [2]);
});

test('mooncake: bad rows name the file and the line', (t) => {
  const cases: Array<[string, RegExp]> = [
    ['{"timestamp": 7000, "input_length": 10, "output_length": 1', /invalid JSON/],
    ['[1,2]', /expected a JSON object/],
    ['{"timestamp": "x", "input_length": 10, "output_length": 1}', /timestamp must be/],
    ['{"timestamp": 7000, "input_length": 10.5, "output_length": 1}', /input_length/],
    ['{"timestamp": 7000, "input_length": 10, "output_length": null}', /output_length/],
    ['{"timestamp": 7000, "input_length": 1024, "output_length": 1, "hash_ids": [1]}', /hash_ids has 1 ids but input_length 1024 needs ceil\(1024\/512\) = 2/],
    ['{"timestamp": 7000, "input_length": 10, "output_length": 1, "hash_ids": ["a"]}', /hash_ids must be/],
    ['{"timestamp": 5, "input_length": 10, "output_length": 1}', /earlier/],
  ];
  for (const [row, re] of cases) {
    const p = tmpFile(t, 'bad.jsonl', MOON.replace(/\n$/, '') + '\n' + row + '\n');
    assert.throws(
      () => loadMooncakeTrace(p),
      (e: unknown) => e instanceof TraceFormatError && e.message.startsWith(`${p}:6: `) && re.test(e.message),
      row,
    );
  }
});

test('real Azure conversation trace: 19,366 rows, span 3,501.7 s, token totals as in the README', () => {
  const r = loadAzureTrace(join(DATA, 'azure-llm-2023-conv.csv'));
  assert.equal(r.length, 19366);
  assert.equal(r[0]!.arrivalMs, 0);
  assert.ok(Math.abs(r.at(-1)!.arrivalMs / 1000 - 3501.7) < 0.05, String(r.at(-1)!.arrivalMs));
  const inSum = r.reduce((a, x) => a + x.inputTokens, 0);
  const outSum = r.reduce((a, x) => a + x.outputTokens, 0);
  assert.ok(Math.abs(inSum / 1e6 - 22.36) < 0.005, String(inSum));
  assert.ok(Math.abs(outSum / 1e6 - 4.09) < 0.005, String(outSum));
  for (let i = 1; i < r.length; i++) assert.ok(r[i]!.arrivalMs > r[i - 1]!.arrivalMs, `row ${i}`);
  const tenMin = loadAzureTrace(join(DATA, 'azure-llm-2023-conv.csv'), { startS: 600, durationS: 600, timeScale: 0.5 });
  assert.ok(tenMin.length > 2000 && tenMin.length < 5000, String(tenMin.length));
  assert.ok(tenMin.at(-1)!.arrivalMs < 300_000 && tenMin[0]!.arrivalMs >= 0);
});

test('real Mooncake traces: row counts, spans and hash-id block counts', () => {
  const conv = loadMooncakeTrace(join(DATA, 'mooncake-conversation.jsonl'));
  assert.equal(conv.length, 12031);
  assert.equal(conv.at(-1)!.arrivalMs, 3536999);
  const blocks = conv.reduce((a, x) => a + x.hashIds!.length, 0);
  assert.equal(blocks, 288500);
  const syn = loadMooncakeTrace(join(DATA, 'mooncake-synthetic.jsonl'), { maxRequests: 100 });
  assert.equal(syn.length, 100);
  assert.equal(loadMooncakeTrace(join(DATA, 'mooncake-synthetic.jsonl')).length, 3993);
});

test('spreadBuckets: requests sharing a timestamp are spread evenly over the bucket', () => {
  const rows = [0, 0, 0, 0, 3000, 6000, 6000].map((arrivalMs, i) => ({ arrivalMs, inputTokens: i + 1, outputTokens: 1 }));
  const s = spreadBuckets(rows, 3000);
  assert.deepEqual(s.map((r) => r.arrivalMs), [0, 750, 1500, 2250, 3000, 6000, 7500]);
  assert.deepEqual(s.map((r) => r.inputTokens), [1, 2, 3, 4, 5, 6, 7]);
  assert.throws(() => spreadBuckets(rows, 0), /bucket width/);
  const conv = spreadBuckets(loadMooncakeTrace(join(DATA, 'mooncake-conversation.jsonl')), 3000);
  assert.equal(conv.length, 12031);
  assert.ok(new Set(conv.map((r) => r.arrivalMs)).size > 11000, 'almost every request has its own time');
});
