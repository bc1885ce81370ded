import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cdfPoints, renderHtml } from '../../src/bench/html.ts';
import type { RequestRecord } from '../../src/bench/record.ts';
import { parseSlo, percentile, readResults, reportJson, reportText, summarize } from '../../src/bench/report.ts';

function rec(p: Partial<RequestRecord> & { id: number; sentMs: number }): RequestRecord {
  return {
    scheduledMs: p.sentMs,
    lateMs: 0,
    ttftMs: null,
    itlMs: [],
    e2eMs: null,
    promptTokens: 10,
    outputTokens: null,
    promptTokensSent: 10,
    outputChunks: 0,
    status: 200,
    ok: true,
    spec: { inputTokens: 10, outputTokens: 5, key: `r/${p.id}` },
    ...p,
  };
}

const RUN: RequestRecord[] = [
  rec({ id: 0, sentMs: 0, ttftMs: 100, e2eMs: 300, outputTokens: 5, outputChunks: 5, itlMs: [50, 50, 50, 50], endpoint: 'a', lateMs: 0.2 }),
  rec({ id: 1, sentMs: 1000, ttftMs: 200, e2eMs: 600, outputTokens: 3, outputChunks: 3, itlMs: [200, 200], endpoint: 'b', lateMs: 0.4 }),
  rec({ id: 2, sentMs: 500, e2eMs: 10, status: 503, ok: false, error: { kind: 'http', message: 'HTTP 503' }, endpoint: 'a', outputTokens: null }),
];

test('percentiles interpolate linearly (numpy default)', () => {
  assert.equal(percentile([1, 2, 3, 4], 50), 2.5);
  assert.equal(percentile([100, 200], 90), 190);
  assert.equal(percentile([7], 99), 7);
  assert.equal(percentile([], 50), null);
});

test('metrics from known per-request timings', () => {
  const r = summarize(RUN, 'a.jsonl', parseSlo('ttft=150ms'));
  assert.deepEqual(r.requests, { total: 3, ok: 2, failed: 1 });
  assert.deepEqual(r.ttftMs, { mean: 150, p50: 150, p90: 190, p99: 199 });
  // TPOT: (300-100)/(5-1) = 50 and (600-200)/(3-1) = 200
  assert.equal(r.tpotMs.mean, 125);
  assert.equal(r.tpotMs.p50, 125);
  // ITL pooled: 50 x4, 200 x2
  assert.equal(r.itlMs.mean, 100);
  assert.equal(r.itlMs.p50, 50);
  assert.equal(r.e2eMs.mean, 450);
  assert.equal(r.e2eFromScheduleMs.mean, (300.2 + 600.4) / 2, 'E2E plus lateness');
  // span: first send 0 to last end 1600 ms
  assert.equal(r.durationS, 1.6);
  assert.equal(r.throughput.requestsPerS, 2 / 1.6);
  assert.equal(r.throughput.outputTokensPerS, 8 / 1.6);
  assert.deepEqual(r.errors, { http: 1, 'http 503': 1 });
  assert.deepEqual(r.goodput, { slo: { ttft: 150 }, requestsPerS: 1 / 1.6, fraction: 1 / 3 });
  assert.equal(r.endpoints.a!.requests, 2);
  assert.equal(r.endpoints.a!.ok, 1);
  assert.equal(r.endpoints.b!.share, 1 / 3);
  assert.equal(r.lateMs.max, 0.4);
  // no SLO: success only
  assert.equal(summarize(RUN, 'x').goodput.fraction, 2 / 3);
  // a TPOT SLO of 100 ms excludes the second request
  assert.equal(summarize(RUN, 'x', parseSlo('tpot=0.1s')).goodput.fraction, 1 / 3);
});

test('--slo parsing and errors', () => {
  assert.deepEqual(parseSlo('ttft=500ms, tpot=50ms,e2e=2s,itl=30'), { ttft: 500, tpot: 50, e2e: 2000, itl: 30 });
  assert.throws(() => parseSlo('ttft=fast'), /--slo: cannot read "ttft=fast"/);
  assert.throws(() => parseSlo('latency=5ms'), /--slo/);
});

test('JSON shape and ratios against the first run', () => {
  const slower = RUN.map((r) => ({ ...r, ttftMs: r.ttftMs === null ? null : r.ttftMs * 2 }));
  const j = reportJson([summarize(RUN, 'a.jsonl'), summarize(slower, 'b.jsonl')]);
  assert.equal(j.runs.length, 2);
  for (const run of j.runs) {
    for (const k of ['ttftMs', 'tpotMs', 'itlMs', 'e2eMs'] as const) assert.deepEqual(Object.keys(run[k]).sort(), ['mean', 'p50', 'p90', 'p99']);
    assert.deepEqual(Object.keys(run.throughput).sort(), ['inputTokensPerS', 'outputTokensPerS', 'requestsPerS']);
    assert.deepEqual(Object.keys(run.requests).sort(), ['failed', 'ok', 'total']);
    assert.ok('goodput' in run);
  }
  assert.equal(j.ratiosToFirst.length, 1);
  assert.equal(j.ratiosToFirst[0]!.file, 'b.jsonl');
  assert.equal(j.ratiosToFirst[0]!.ratios['TTFT mean (ms)'], 2);
  assert.equal(j.ratiosToFirst[0]!.ratios['E2E mean (ms)'], 1);
  const text = reportText(j.runs);
  assert.match(text, /TTFT mean \(ms\)\s+150\s+300 \(x2\.00\)/);
  assert.match(text, /errors: http: 1, http 503: 1/);
});

test('results files: line-numbered errors, a torn last line is tolerated', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ip-report-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'good.jsonl');
  writeFileSync(good, RUN.map((r) => JSON.stringify(r)).join('\n') + '\n{"id": 3, "sched');
  assert.equal(readResults(good).length, 3);
  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, JSON.stringify(RUN[0]) + '\n{"id": 1}\n' + JSON.stringify(RUN[1]) + '\n');
  assert.throws(() => readResults(bad), /bad\.jsonl:2: not a result record: field scheduledMs must be a number/);
});

test('HTML report is self-contained and carries every run', () => {
  const reps = [summarize(RUN, 'first.jsonl'), summarize(RUN.slice(0, 2), 'second.jsonl')];
  const html = renderHtml(reps, [RUN, RUN.slice(0, 2)]);
  assert.match(html, /^<!doctype html>/);
  assert.ok(!/<script[^>]+src=/i.test(html), 'no external scripts');
  assert.ok(!/<link[^>]+href=/i.test(html), 'no external stylesheets');
  assert.match(html, /Chart\.js v\d/, 'Chart.js bundle inlined');
  for (const id of ['cdf-ttft', 'cdf-e2e', 'cdf-tpot', 'cdf-itl', 'ts-ttft', 'ts-req', 'ts-tok', 'ts-late', 'endpoints']) assert.ok(html.includes(`id="${id}"`), id);
  const m = /const RUNS = (.*);\n/.exec(html);
  assert.ok(m);
  const runs = JSON.parse(m[1]!) as Array<{ name: string; cdf: { ttft: Array<[number, number]> }; endpoints: Record<string, number> }>;
  assert.equal(runs.length, 2);
  assert.equal(runs[0]!.name, 'run 1: first.jsonl');
  assert.deepEqual(runs[0]!.cdf.ttft, [[100, 0.5], [200, 1]]);
  assert.deepEqual(runs[0]!.endpoints, { a: 2, b: 1 });
  assert.deepEqual(cdfPoints([3, 1, 2]), [[1, 1 / 3], [2, 2 / 3], [3, 1]]);
  // Both scripts parse, and the page script builds every chart (Chart and document stubbed).
  const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((x) => x[1]!);
  assert.equal(scripts.length, 2);
  for (const src of scripts) new Function(src);
  const made: string[] = [];
  const Chart = function (el: { id: string }, cfg: { type: string; data: { datasets: unknown[] } }) {
    assert.equal(cfg.data.datasets.length, 2, el.id);
    made.push(el.id);
  };
  new Function('Chart', 'document', scripts[1]!)(Chart, { getElementById: (id: string) => ({ id }) });
  assert.deepEqual(made.sort(), ['cdf-e2e', 'cdf-itl', 'cdf-tpot', 'cdf-ttft', 'endpoints', 'ts-e2e', 'ts-late', 'ts-req', 'ts-tok', 'ts-ttft']);
});
