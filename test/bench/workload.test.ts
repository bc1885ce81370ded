import { test } from 'node:test';
import assert from 'node:assert/strict';
import { arrivalTimes } from '../../src/bench/arrivals.ts';
import { createRng } from '../../src/bench/rng.ts';
import { PromptFactory, randomText } from '../../src/bench/prompt.ts';
import { tokenizerFor } from '../../src/engines/tokenizer.ts';
import { hashIdPrefixHits, multiTurnSessions, PREBLE_PRESETS, sessionContextTokens, sharedPrefixRequests, traceRequests } from '../../src/bench/workload.ts';
import { parseDataset } from '../../src/bench/datasets.ts';

const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
const gapsOf = (ts: number[]) => ts.slice(1).map((t, i) => t - ts[i]!);
const cv = (xs: number[]) => {
  const m = mean(xs);
  return Math.sqrt(mean(xs.map((x) => (x - m) ** 2))) / m;
};

test('rng: deterministic for a seed, different across seeds, uniform mean', () => {
  const a = createRng(42);
  const b = createRng(42);
  const xs = Array.from({ length: 5 }, () => a.next());
  assert.deepEqual(xs, Array.from({ length: 5 }, () => b.next()));
  assert.notDeepEqual(xs, Array.from({ length: 5 }, () => createRng(43).next()));
  const r = createRng(1);
  const u = Array.from({ length: 20000 }, () => r.next());
  assert.ok(u.every((x) => x >= 0 && x < 1));
  assert.ok(Math.abs(mean(u) - 0.5) < 0.01); // std of the mean: 0.289/sqrt(20000) = 0.002
  const g = Array.from({ length: 20000 }, () => r.gamma(0.5, 4)); // mean 2, var 8
  assert.ok(Math.abs(mean(g) - 2) < 0.12, String(mean(g))); // std of the mean 0.02
});

test('arrivals: constant rate is exact', () => {
  const ts = arrivalTimes({ kind: 'constant', rate: 4 }, { durationS: 10 }, createRng(1));
  assert.equal(ts.length, 40);
  assert.deepEqual(ts.slice(0, 3), [0, 250, 500]);
  assert.equal(arrivalTimes({ kind: 'constant', rate: 4 }, { maxRequests: 7 }, createRng(1)).length, 7);
});

test('arrivals: Poisson count and gap statistics within bounds (fixed seeds)', () => {
  for (const seed of [1, 2, 3]) {
    const ts = arrivalTimes({ kind: 'poisson', rate: 20 }, { durationS: 100 }, createRng(seed));
    // Expected 2000 (+1 at t=0); std sqrt(2000) = 45: allow 4 sigma.
    assert.ok(Math.abs(ts.length - 2001) < 180, `count ${ts.length}`);
    const g = gapsOf(ts);
    assert.ok(Math.abs(mean(g) - 50) < 4, `mean gap ${mean(g)}`);
    assert.ok(Math.abs(cv(g) - 1) < 0.1, `cv ${cv(g)}`);
    assert.ok(ts.every((t, i) => t < 100_000 && (i === 0 || t >= ts[i - 1]!)));
  }
  assert.deepEqual(
    arrivalTimes({ kind: 'poisson', rate: 5 }, { maxRequests: 50 }, createRng(9)),
    arrivalTimes({ kind: 'poisson', rate: 5 }, { maxRequests: 50 }, createRng(9)),
    'same seed, same schedule',
  );
});

test('arrivals: gamma burstiness sets the CV (1/sqrt(k)) at the same mean rate', () => {
  for (const [k, wantCv] of [
    [0.25, 2],
    [1, 1],
    [4, 0.5],
  ] as const) {
    const ts = arrivalTimes({ kind: 'gamma', rate: 10, burstiness: k }, { maxRequests: 8000 }, createRng(5));
    const g = gapsOf(ts);
    assert.ok(Math.abs(mean(g) - 100) < 8, `k=${k} mean gap ${mean(g)}`);
    assert.ok(Math.abs(cv(g) - wantCv) / wantCv < 0.12, `k=${k} cv ${cv(g)}`);
  }
});

test('arrivals: sine, stages and trace shapes', () => {
  const sine = arrivalTimes({ kind: 'sine', meanRate: 10, amplitude: 8, periodS: 60, noise: 1 }, { durationS: 600 }, createRng(3));
  assert.ok(Math.abs(sine.length - 6000) < 400, `sine count ${sine.length}`);
  const firstHalf = sine.filter((t) => t % 60000 < 30000).length; // sine > 0 there
  const secondHalf = sine.length - firstHalf;
  assert.ok(firstHalf > 1.5 * secondHalf, `${firstHalf} vs ${secondHalf}`);
  const st = arrivalTimes({ kind: 'stages', stages: [{ durationS: 10, rate: 2 }, { durationS: 10, rate: 0 }, { durationS: 10, rate: 5 }], process: 'constant' }, {}, createRng(1));
  assert.equal(st.filter((t) => t < 10_000).length, 20);
  assert.equal(st.filter((t) => t >= 10_000 && t < 20_000).length, 0);
  assert.equal(st.filter((t) => t >= 20_000).length, 50);
  assert.deepEqual(arrivalTimes({ kind: 'trace', timesMs: [5, 1, 3] }, { maxRequests: 2 }, createRng(1)), [1, 3]);
  assert.throws(() => arrivalTimes({ kind: 'poisson', rate: 1 }, {}, createRng(1)), /needs a duration or a max-requests/);
  assert.throws(() => arrivalTimes({ kind: 'gamma', rate: 1, burstiness: 0 }, { durationS: 1 }, createRng(1)), /burstiness/);
  assert.throws(() => arrivalTimes({ kind: 'constant', rate: -1 }, { durationS: 1 }, createRng(1)), /rate/);
});

test('prompts: exact token counts (re-encoded), deterministic per seed and key, prefixes and blocks compose', () => {
  const tok = tokenizerFor('meta-llama/Llama-3.1-8B-Instruct');
  const f = new PromptFactory('meta-llama/Llama-3.1-8B-Instruct', 7);
  for (const n of [0, 1, 2, 17, 128, 1000, 3000]) {
    const s = f.text(n, `k${n}`);
    assert.equal(tok.encode(s).length, n, `n=${n}`);
  }
  assert.equal(f.text(50, 'a'), new PromptFactory('x', 7).text(50, 'a'));
  assert.notEqual(f.text(50, 'a'), f.text(50, 'b'));
  assert.notEqual(f.text(50, 'a'), new PromptFactory('x', 8).text(50, 'a'));
  assert.equal(randomText(30, createRng(2), tok), randomText(30, createRng(2), tok));
  // prefix + suffix is exact and the shorter prefix is the start of the longer one
  const p = f.prefix(3, 300);
  assert.ok(p.startsWith(f.prefix(3, 100)));
  assert.equal(tok.encode(p + f.text(57, 'suffix')).length, 357);
  // Mooncake blocks: 2 full blocks + 100 tokens
  const b = f.blocks([4, 9, 2], 1124);
  assert.equal(tok.encode(b).length, 1124);
  assert.ok(b.startsWith(f.block(4)));
  assert.ok(f.blocks([4, 9], 700).startsWith(f.block(4)), 'same id, same block text');
  f.verify(b, 1124);
  assert.throws(() => f.verify(b, 1125), /encodes to 1124 tokens, expected 1125/);
});

test('shared-prefix workload: N x M requests, shared fraction and lengths follow the preset', () => {
  const reqs = sharedPrefixRequests({ numPrefixes: 10, samplesPerPrefix: 200, ...PREBLE_PRESETS.programming, outputTokens: 64 }, createRng(11));
  assert.equal(reqs.length, 2000);
  const groups = new Map<number, number>();
  for (const r of reqs) groups.set(r.prefix?.id ?? -1, (groups.get(r.prefix?.id ?? -1) ?? 0) + 1);
  assert.equal(groups.size, 10);
  assert.ok([...groups.values()].every((c) => c === 200));
  const frac = mean(reqs.map((r) => (r.prefix?.tokens ?? 0) / r.inputTokens));
  assert.ok(frac > 0.85 && frac <= 1, `shared fraction ${frac}`);
  const len = mean(reqs.map((r) => r.inputTokens));
  assert.ok(Math.abs(len - 3871) < 800, `mean length ${len}`); // 10 prefixes: the group draws dominate
  assert.ok(reqs.every((r) => r.outputTokens === 64 && r.inputTokens > (r.prefix?.tokens ?? 0)));
  assert.deepEqual(reqs, sharedPrefixRequests({ numPrefixes: 10, samplesPerPrefix: 200, ...PREBLE_PRESETS.programming, outputTokens: 64 }, createRng(11)));
});

test('multi-turn sessions: turns, think time and growing context', () => {
  const ss = multiTurnSessions({ sessions: 200, turns: { mean: 4, std: 1 }, promptTokens: 50, outputTokens: 20, thinkTimeS: 2, systemTokens: 10 }, createRng(4));
  assert.equal(ss.length, 200);
  const turns = mean(ss.map((s) => s.turns.length));
  assert.ok(Math.abs(turns - 4) < 0.3, String(turns));
  const thinks = ss.flatMap((s) => s.turns.slice(1).map((t) => t.thinkTimeMs));
  assert.ok(Math.abs(mean(thinks) - 2000) < 250, String(mean(thinks)));
  assert.ok(ss.every((s) => s.turns[0]!.thinkTimeMs === 0));
  const s = ss.find((x) => x.turns.length >= 3)!;
  assert.equal(sessionContextTokens(s, 0), 60);
  assert.equal(sessionContextTokens(s, 2), 10 + 2 * 70 + 50);
});

test('trace rows to specs and Mooncake prefix hits', () => {
  const specs = traceRequests([
    { arrivalMs: 0, inputTokens: 1000, outputTokens: 5, hashIds: [0, 1] },
    { arrivalMs: 1, inputTokens: 1500, outputTokens: 0, hashIds: [0, 1, 2] },
    { arrivalMs: 2, inputTokens: 600, outputTokens: 5, hashIds: [0, 3] },
  ]);
  assert.equal(specs[1]!.outputTokens, 1, 'output clipped to >= 1');
  assert.deepEqual(hashIdPrefixHits(specs), [0, 1024, 512]); // blocks 0 and 1 are full 512-token blocks in the second request
});

test('datasets: ShareGPT, AIBrix JSONL (plain and sessioned) and replay of a results file', () => {
  const tok = tokenizerFor('m');
  const sg = JSON.stringify([
    { id: 'c1', conversations: [{ from: 'human', value: 'Hello there' }, { from: 'gpt', value: 'Hi! How can I help you today?' }, { from: 'human', value: 'Tell me a joke' }, { from: 'gpt', value: 'No.' }] },
    { id: 'c2', conversations: [{ from: 'human', value: 'only a question' }] },
  ]);
  const single = parseDataset(sg, 'sg.json', { tokenizer: tok });
  assert.equal(single.format, 'sharegpt');
  assert.equal(single.items.length, 1);
  const r0 = single.items[0]!;
  assert.ok(r0.kind === 'request');
  assert.equal(r0.request.text, 'Hello there');
  assert.equal(r0.request.inputTokens, tok.encode('Hello there').length);
  assert.equal(r0.request.outputTokens, tok.encode('Hi! How can I help you today?').length);
  const multi = parseDataset(sg, 'sg.json', { tokenizer: tok, multiTurn: true });
  assert.ok(multi.items[0]!.kind === 'session' && multi.items[0]!.session.turns.length === 2);
  assert.throws(() => parseDataset('[{"conversations": [{"from": "human"}]}]', 'bad.json', { tokenizer: tok }), /bad\.json: \[0\]\.conversations\[0\]/);

  const jl = ['{"prompt": "a b c", "output_length": 9}', '{"session_id": 7, "prompts": ["x", "y"], "completions": ["one two", "three"]}'].join('\n');
  const d = parseDataset(jl, 'd.jsonl', { tokenizer: tok });
  assert.equal(d.items.length, 2);
  assert.ok(d.items[0]!.kind === 'request' && d.items[0]!.request.outputTokens === 9);
  assert.ok(d.items[1]!.kind === 'session' && d.items[1]!.session.id === '7' && d.items[1]!.session.turns[0]!.request.outputTokens === tok.encode('one two').length);
  assert.throws(() => parseDataset('{"prompt": "a"}\n{"nope": 1}\n', 'e.jsonl', { tokenizer: tok }), /e\.jsonl:2: a dataset line needs/);
  assert.throws(() => parseDataset('{"prompt": "a"}\n{oops\n', 'e.jsonl', { tokenizer: tok }), /e\.jsonl:2: invalid JSON/);

  const rec = (id: number, at: number) =>
    JSON.stringify({ id, scheduledMs: at, sentMs: at, lateMs: 0, ttftMs: 1, itlMs: [], e2eMs: 2, promptTokens: 5, outputTokens: 3, promptTokensSent: 5, outputChunks: 3, status: 200, ok: true, spec: { inputTokens: 5, outputTokens: 3, key: `r/${id}` } });
  const rp = parseDataset([rec(1, 500), rec(0, 100)].join('\n'), 'res.jsonl', { tokenizer: tok });
  assert.equal(rp.format, 'replay');
  assert.deepEqual(rp.arrivalsMs, [100, 500]);
  assert.ok(rp.items[0]!.kind === 'request' && rp.items[0]!.request.key === 'r/0');

  const aw = parseDataset(['{"timestamp": 0, "requests": [{"prompt": "one two", "prompt_length": 2, "output_length": 7}]}', '{"timestamp": 250, "requests": [{"prompt": "three", "output_length": null}, {"prompt": "four five six"}]}'].join('\n'), 'w.jsonl', { tokenizer: tok, defaultOutputTokens: 33 });
  assert.equal(aw.format, 'aibrix-workload');
  assert.deepEqual(aw.arrivalsMs, [0, 250, 250]);
  assert.deepEqual(aw.items.map((i) => (i.kind === 'request' ? i.request.outputTokens : -1)), [7, 33, 33]);
  assert.throws(() => parseDataset('{"timestamp": -1, "requests": []}', 'w.jsonl', { tokenizer: tok }), /w\.jsonl:1: timestamp must be/);
});
