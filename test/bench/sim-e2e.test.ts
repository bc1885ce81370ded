import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSimServer } from '../../src/sim/server/server.ts';
import { startBench } from '../../src/bench/client.ts';
import { PromptFactory } from '../../src/bench/prompt.ts';
import type { RequestRecord } from '../../src/bench/record.ts';
import { summarize } from '../../src/bench/report.ts';
import { createRng } from '../../src/bench/rng.ts';
import { sharedPrefixRequests } from '../../src/bench/workload.ts';

const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';

test('end to end against the simulated vLLM engine: exact lengths, usage, streaming metrics, prefix-cache hits', async (t) => {
  const sim = await startSimServer({ model: MODEL, maxModelLen: 4096, timeScale: 50 });
  t.after(() => sim.close());
  const reqs = sharedPrefixRequests(
    { numPrefixes: 2, samplesPerPrefix: 4, totalTokens: { mean: 600, std: 50 }, sharedFraction: { mean: 0.9, std: 0 }, outputTokens: 8, shuffle: false },
    createRng(3),
  );
  const recs: RequestRecord[] = [];
  // One request at a time, so each prefix is cached before the next request that shares it.
  const run = startBench(
    reqs.map((request, i) => ({ atMs: i * 2, item: { kind: 'request' as const, request } })),
    { baseUrl: sim.url, model: sim.modelName, api: 'completions', concurrency: 1, prompts: new PromptFactory(MODEL, 5), onRecord: (r) => recs.push(r) },
  );
  const s = await run.done;
  assert.equal(s.ok, 8, JSON.stringify(recs.map((r) => r.error)));
  for (const r of recs) {
    assert.equal(r.outputTokens, 8, 'ignore_eos + max_tokens pin the output length');
    assert.ok(r.outputChunks >= 1 && r.outputChunks <= 8);
    assert.equal(r.itlMs.length, r.outputChunks - 1);
    assert.ok(r.ttftMs !== null && r.e2eMs !== null && r.ttftMs <= r.e2eMs);
    // The engine counts the prompt the client built (plus the BOS token it prepends).
    assert.ok(r.promptTokens === r.promptTokensSent || r.promptTokens === r.promptTokensSent + 1, `${r.promptTokens} vs ${r.promptTokensSent}`);
  }
  const byId = [...recs].sort((a, b) => a.id - b.id);
  // Requests 1..3 share prefix 0 with request 0; 5..7 share prefix 1 with request 4.
  for (const i of [1, 2, 3, 5, 6, 7]) assert.ok((byId[i]!.cachedTokens ?? 0) >= 256, `request ${i} cached ${byId[i]!.cachedTokens}`);
  const rep = summarize(recs, 'sim');
  assert.ok(rep.prefixCache !== null && rep.prefixCache.hitRate > 0.5, JSON.stringify(rep.prefixCache));
});
