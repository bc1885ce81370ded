import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineCore, EngineError, resolveEngineConfig, type EngineConfigInput, type KvEvent, type StepResult } from '../../../src/sim/core/engine.ts';
import { BlockPool } from '../../../src/sim/core/kv-cache.ts';
import { resolveGpu, resolveModel, knownGpuIds, knownModelIds } from '../../../src/sim/core/catalog.ts';

const base: EngineConfigInput = { model: 'meta-llama/Llama-3.1-8B-Instruct', gpu: 'H100', maxNumSeqs: 8, maxNumBatchedTokens: 64, maxModelLen: 1024 };

function engine(over: Partial<EngineConfigInput> = {}, opts: ConstructorParameters<typeof EngineCore>[1] = {}): EngineCore {
  return new EngineCore(resolveEngineConfig({ ...base, ...over }), opts);
}

function ids(n: number, offset = 0): number[] {
  return Array.from({ length: n }, (_, i) => 1000 + offset + i);
}

/** Steps on a fake clock until idle; returns all step results and the end time. */
function drain(e: EngineCore, limit = 100000): { steps: StepResult[]; t: number } {
  const steps: StepResult[] = [];
  let t = 0;
  while (e.hasWork() && steps.length < limit) {
    const r = e.step(t);
    steps.push(r);
    t += r.durationMs;
  }
  return { steps, t };
}

test('token budget is shared by decodes and prefill chunks (chunked prefill)', () => {
  const e = engine();
  e.addRequest({ id: 'a', promptTokenIds: ids(150), maxTokens: 3, arrivalMs: 0 }, 0);
  const s1 = e.step(0);
  assert.equal(s1.prefillTokens, 64, 'first chunk is the whole budget');
  assert.equal(s1.outputs[0]!.newTokens, 0, 'partial prefill emits nothing');
  e.addRequest({ id: 'b', promptTokenIds: ids(10, 5000), maxTokens: 2, arrivalMs: 0 }, 0);
  const s2 = e.step(1);
  assert.equal(s2.prefillTokens, 64, 'a continues with a 64-token chunk; b gets no budget');
  assert.equal(s2.batchSize, 1);
  const s3 = e.step(2);
  // a has 22 tokens left: it finishes its prefill (first token) and b gets the remaining 42 >= 10.
  assert.equal(s3.prefillTokens, 22 + 10);
  assert.deepEqual(s3.outputs.map((o) => [o.requestId, o.newTokens, o.firstToken]), [['a', 1, true], ['b', 1, true]]);
  const s4 = e.step(3);
  assert.equal(s4.decodeRequests, 2);
  assert.equal(s4.prefillTokens, 0);
  assert.ok(s4.durationMs > 0);
});

test('without chunked prefill a prompt larger than the remaining budget waits', () => {
  const e = engine({ enableChunkedPrefill: false, maxNumBatchedTokens: 1024 });
  e.addRequest({ id: 'a', promptTokenIds: ids(600), maxTokens: 2, arrivalMs: 0 }, 0);
  e.addRequest({ id: 'b', promptTokenIds: ids(600, 7000), maxTokens: 2, arrivalMs: 0 }, 0);
  const s = e.step(0);
  assert.equal(s.prefillTokens, 600);
  assert.equal(e.snapshot().waiting, 1);
});

test('the running set is capped by maxNumSeqs', () => {
  const e = engine({ maxNumSeqs: 3, maxNumBatchedTokens: 4096 });
  for (let i = 0; i < 5; i++) e.addRequest({ id: `r${i}`, promptTokenIds: ids(20, i * 100), maxTokens: 5, arrivalMs: 0 }, 0);
  const s = e.step(0);
  assert.equal(s.batchSize, 3);
  const snap = e.snapshot();
  assert.equal(snap.running, 3);
  assert.equal(snap.waiting, 2);
  const { steps } = drain(e);
  assert.ok(steps.every((r) => r.batchSize <= 3));
  assert.equal(e.snapshot().counters.requestSuccess.length, 5);
  assert.equal(e.snapshot().counters.generationTokens, 25);
});

test('maxModelLen: prompt + maxTokens above the limit is rejected with vLLM wording', () => {
  const e = engine();
  assert.throws(
    () => e.addRequest({ id: 'x', promptTokenIds: ids(1000), maxTokens: 100, arrivalMs: 0 }, 0),
    (err: unknown) => err instanceof EngineError && err.kind === 'context_length' && /maximum context length is 1024 tokens/.test(err.message) && /1100 tokens/.test(err.message),
  );
  assert.equal(e.hasWork(), false, 'nothing half-applied');
  assert.throws(() => e.addRequest({ id: 'y', promptTokenIds: [], maxTokens: 1, arrivalMs: 0 }, 0), /empty/);
});

test('KV blocks: usage follows allocation, preemption (newest first) when blocks run out, all freed at the end', () => {
  // 10 blocks of 16 tokens: two requests of 64-token prompts need 4 blocks each, then grow.
  const e = engine({ numGpuBlocksOverride: 10, maxNumBatchedTokens: 256, enablePrefixCaching: false });
  e.addRequest({ id: 'old', promptTokenIds: ids(64), maxTokens: 40, arrivalMs: 0 }, 0);
  e.addRequest({ id: 'new', promptTokenIds: ids(64, 500), maxTokens: 40, arrivalMs: 0 }, 0);
  const s1 = e.step(0);
  assert.equal(s1.batchSize, 2);
  assert.equal(e.snapshot().usedGpuBlocks, 8);
  assert.equal(e.snapshot().kvCacheUsage, 0.8);
  let t = s1.durationMs;
  let firstPreemptStep: StepResult | undefined;
  while (e.hasWork()) {
    const r = e.step(t);
    if (r.preemptions > 0 && !firstPreemptStep) firstPreemptStep = r;
    t += r.durationMs;
  }
  assert.ok(firstPreemptStep, 'a preemption happened');
  // The newest request was preempted, so the oldest kept running in that step.
  assert.ok(firstPreemptStep.outputs.some((o) => o.requestId === 'old'));
  assert.ok(!firstPreemptStep.outputs.some((o) => o.requestId === 'new'));
  const snap = e.snapshot();
  assert.ok(snap.counters.preemptions >= 1);
  assert.equal(snap.counters.requestSuccess.length, 2, 'both finish after recompute');
  assert.equal(snap.usedGpuBlocks, 0);
  assert.equal(snap.kvCacheUsage, 0);
});

test('prefix cache: hits in tokens for a shared prefix, full-prompt hit leaves the last token to compute', () => {
  const e = engine({ maxNumBatchedTokens: 1024 });
  const sys = ids(96); // 6 full blocks
  e.addRequest({ id: 'a', promptTokenIds: [...sys, ...ids(40, 9000)], maxTokens: 1, arrivalMs: 0 }, 0);
  drain(e);
  e.addRequest({ id: 'b', promptTokenIds: [...sys, ...ids(40, 8000)], maxTokens: 1, arrivalMs: 0 }, 0);
  const r = e.step(10);
  assert.equal(r.outputs[0]!.cachedPromptTokens, 96);
  assert.equal(r.prefillTokens, 40);
  const c = e.snapshot().counters;
  assert.equal(c.prefixCacheQueries, 136 * 2);
  assert.equal(c.prefixCacheHits, 96);
  // Same 128-token prompt twice: the second hits 7 of 8 blocks (the last token must be computed).
  const p = ids(128, 300);
  e.addRequest({ id: 'c', promptTokenIds: p, maxTokens: 1, arrivalMs: 0 }, 0);
  drain(e);
  e.addRequest({ id: 'd', promptTokenIds: p, maxTokens: 1, arrivalMs: 0 }, 0);
  const rd = e.step(20);
  assert.equal(rd.outputs[0]!.cachedPromptTokens, 112);
  assert.equal(rd.prefillTokens, 16);
});

test('prefix cache: LRU eviction among unreferenced blocks, with BlockStored/BlockRemoved events', () => {
  const events: KvEvent[] = [];
  const e = engine({ numGpuBlocksOverride: 8, maxNumBatchedTokens: 256 }, { onKvEvent: (ev) => events.push(ev) });
  const A = ids(64, 0);
  const B = ids(64, 10000);
  const C = ids(64, 20000);
  for (const [id, p] of [['A', A], ['B', B]] as const) {
    e.addRequest({ id, promptTokenIds: p, maxTokens: 1, arrivalMs: 0 }, 0);
    drain(e);
  }
  const stored = events.filter((x) => x.type === 'BlockStored');
  assert.equal(stored.length, 2);
  assert.equal(stored[0]!.type === 'BlockStored' && stored[0]!.blockHashes.length, 4);
  assert.equal(stored[0]!.type === 'BlockStored' && stored[0]!.tokenIds.length, 64);
  // A freed first, so A is least recently used: C (4 new blocks + 1 decode slot) evicts A's blocks, not B's.
  e.addRequest({ id: 'C', promptTokenIds: C, maxTokens: 1, arrivalMs: 0 }, 0);
  drain(e);
  const removed = events.filter((x) => x.type === 'BlockRemoved');
  assert.ok(removed.length >= 1);
  e.addRequest({ id: 'B2', promptTokenIds: B, maxTokens: 1, arrivalMs: 0 }, 0);
  const rb = e.step(0);
  assert.equal(rb.outputs[0]!.cachedPromptTokens, 48, 'B is still cached (3 of 4 blocks; last token recomputed)');
  drain(e);
  e.addRequest({ id: 'A2', promptTokenIds: A, maxTokens: 1, arrivalMs: 0 }, 0);
  const ra = e.step(0);
  assert.equal(ra.outputs[0]!.cachedPromptTokens, 0, 'A was evicted');
});

test('BlockPool: free queue order, touch of a cached free block, double release detection', () => {
  const p = new BlockPool(4, 0);
  const a = p.allocate();
  const b = p.allocate();
  assert.deepEqual([a, b], [0, 1]);
  assert.ok(p.cache(a, 11));
  assert.ok(!p.cache(b, 11), 'duplicate hash is not cached twice');
  p.release([a, b], true); // b then a go to the tail
  assert.equal(p.numFree, 4);
  assert.equal(p.lookup(11), a);
  p.touch(a);
  assert.equal(p.numFree, 3);
  assert.deepEqual([p.allocate(), p.allocate(), p.allocate()], [2, 3, 1]);
  assert.equal(p.lookup(11), a, 'referenced cached block is never evicted');
  p.release([a], false);
  assert.throws(() => p.release([a], false), /released twice/);
});

test('CPU tier: evicted blocks hit in DRAM and cost a PCIe transfer instead of recompute', () => {
  const run = (offload: number) => {
    const e = engine({ numGpuBlocksOverride: 8, maxNumBatchedTokens: 256, kvOffloadGiB: offload });
    const A = ids(112, 0); // 7 blocks
    e.addRequest({ id: 'A', promptTokenIds: A, maxTokens: 1, arrivalMs: 0 }, 0);
    drain(e);
    e.addRequest({ id: 'X', promptTokenIds: ids(128, 50000), maxTokens: 1, arrivalMs: 0 }, 0); // 8 blocks: evicts all of A from the GPU
    drain(e);
    e.addRequest({ id: 'A2', promptTokenIds: A, maxTokens: 1, arrivalMs: 0 }, 0);
    const r = e.step(0);
    return { r, c: e.snapshot().counters };
  };
  const off = run(0);
  const on = run(1);
  assert.equal(off.c.cpuCacheHits, 0);
  assert.equal(off.r.prefillTokens, 112);
  assert.equal(on.c.cpuCacheHits, 96);
  assert.equal(on.r.prefillTokens, 16);
  assert.equal(on.r.outputs[0]!.cachedPromptTokens, 96);
  // The hit is charged as a host->GPU copy of 96 tokens' KV at pcieGBps (default 50 GB/s).
  const cfg = resolveEngineConfig({ ...base, numGpuBlocksOverride: 8 });
  const transferMs = (96 * cfg.kvBytesPerTokenPerGpu) / (50 * 1e6);
  assert.ok(on.r.durationMs > transferMs, `${on.r.durationMs} > ${transferMs}`);
});

test('LoRA: maxLoras distinct adapters per batch, others wait for a slot and pay a load delay', () => {
  const e = engine({ enableLora: true, maxLoras: 1, maxCpuLoras: 2, maxNumBatchedTokens: 512 });
  assert.throws(() => e.addRequest({ id: 'q', promptTokenIds: ids(8), maxTokens: 1, adapter: 'nope', arrivalMs: 0 }, 0), (err: unknown) => err instanceof EngineError && err.kind === 'adapter_not_found');
  e.loadAdapter('a1');
  e.loadAdapter('a2');
  assert.throws(() => e.loadAdapter('a1'), /already been loaded/);
  e.addRequest({ id: 'x', promptTokenIds: ids(32), maxTokens: 3, adapter: 'a1', arrivalMs: 0 }, 0);
  e.addRequest({ id: 'y', promptTokenIds: ids(32, 100), maxTokens: 3, adapter: 'a2', arrivalMs: 0 }, 0);
  e.addRequest({ id: 'z', promptTokenIds: ids(32, 200), maxTokens: 3, arrivalMs: 0 }, 0);
  const s1 = e.step(0);
  assert.deepEqual(s1.outputs.map((o) => o.requestId).sort(), ['x', 'z'], 'y waits: its adapter would be a second one in the batch');
  const snap = e.snapshot();
  assert.deepEqual(snap.runningAdapters, ['a1']);
  assert.deepEqual(snap.waitingAdapters, ['a2']);
  const { steps } = drain(e);
  const yStep = steps.find((r) => r.outputs.some((o) => o.requestId === 'y' && o.firstToken))!;
  assert.ok(yStep, 'y runs once a1 has left the batch');
  assert.deepEqual(e.gpuAdapterSlots(), ['a2']);
  // A load costs time: the same one-request batch with an adapter already in its slot is faster.
  e.addRequest({ id: 'w', promptTokenIds: ids(32, 300), maxTokens: 1, adapter: 'a2', arrivalMs: 0 }, 0);
  const warm = e.step(0);
  e.addRequest({ id: 'v', promptTokenIds: ids(32, 300), maxTokens: 1, adapter: 'a1', arrivalMs: 0 }, 0);
  const cold = e.step(0);
  assert.ok(cold.durationMs > warm.durationMs, `load delay (${cold.durationMs} vs ${warm.durationMs})`);
  e.unloadAdapter('a1');
  assert.throws(() => e.unloadAdapter('a1'), /cannot be found/);
  assert.deepEqual(e.snapshot().loadedAdapters, ['a2']);
});

test('LoRA: more distinct adapters in a batch slow the step (published per-adapter factor)', () => {
  const mk = (adapters: string[]) => {
    const e = engine({ enableLora: true, maxLoras: 4, maxNumBatchedTokens: 512 });
    for (const a of new Set(adapters)) e.loadAdapter(a);
    adapters.forEach((a, i) => e.addRequest({ id: `r${i}`, promptTokenIds: ids(16, i * 50), maxTokens: 3, adapter: a, arrivalMs: 0 }, 0));
    e.step(0);
    e.step(1); // loads done; both batches are now pure decode with warm slots
    return e.step(2).durationMs;
  };
  const one = mk(['a', 'a', 'a', 'a']);
  const four = mk(['a', 'b', 'c', 'd']);
  assert.ok(four > one * 1.05, `${four} vs ${one}`);
});

test('abort frees blocks and is reported by the next step', () => {
  const e = engine();
  e.addRequest({ id: 'a', promptTokenIds: ids(40), maxTokens: 50, arrivalMs: 0 }, 0);
  e.step(0);
  assert.ok(e.snapshot().usedGpuBlocks > 0);
  assert.equal(e.abortRequest('a', 1), true);
  assert.equal(e.abortRequest('zz', 1), false);
  assert.equal(e.snapshot().usedGpuBlocks, 0);
  const r = e.step(2);
  assert.deepEqual(r.outputs.map((o) => [o.requestId, o.finishReason]), [['a', 'abort']]);
  assert.equal(e.hasWork(), false);
  assert.equal(e.snapshot().counters.requestSuccess.abort, 1);
});

test('latency: bigger batches and longer contexts take longer; TP4 70B is faster than TP2', () => {
  const dur = (over: Partial<EngineConfigInput>, n: number, len: number) => {
    const e = engine({ maxNumSeqs: 256, maxNumBatchedTokens: 1 << 16, maxModelLen: 8192, ...over });
    for (let i = 0; i < n; i++) e.addRequest({ id: `r${i}`, promptTokenIds: ids(len, i * 10000), maxTokens: 2, arrivalMs: 0 }, 0);
    e.step(0);
    return e.step(1).durationMs; // one decode step
  };
  assert.ok(dur({}, 64, 512) > dur({}, 8, 512));
  assert.ok(dur({}, 32, 4000) > dur({}, 32, 200));
  const m70 = { model: 'meta-llama/Llama-3.1-70B-Instruct', gpu: 'H200' };
  assert.ok(dur({ ...m70, tensorParallel: 4 }, 8, 512) < dur({ ...m70, tensorParallel: 2 }, 8, 512));
});

test('config and catalogs: defaults, validation errors name the field, unknown names list the known ones', () => {
  const c = resolveEngineConfig({ model: 'meta-llama/Llama-3.1-8B-Instruct', gpu: 'H100' });
  assert.equal(c.maxNumSeqs, 1024);
  assert.equal(c.maxNumBatchedTokens, 8192);
  assert.equal(c.blockSize, 16);
  assert.equal(c.maxModelLen, 131072);
  assert.ok(c.numGpuBlocks * 16 > 300_000 && c.numGpuBlocks * 16 < 600_000, `${c.numGpuBlocks} blocks`);
  const a10 = resolveEngineConfig({ model: 'mistralai/Mistral-7B-Instruct-v0.3', gpu: 'A10', maxModelLen: 4096 });
  assert.equal(a10.maxNumSeqs, 256);
  assert.throws(() => resolveEngineConfig({ model: 'nope/x', gpu: 'H100' }, 'engine.'), (e: Error) => /^engine\.model: unknown model "nope\/x"; known models: .*Qwen\/Qwen3-32B/.test(e.message));
  assert.throws(() => resolveEngineConfig({ model: 'Qwen/Qwen3-8B', gpu: 'TPU' }), (e: Error) => /gpu: unknown GPU "TPU"; known GPUs: H100-SXM, H200, A100-80GB, A100-40GB, L40S, L20, A10, A10G, L4, V100/.test(e.message));
  assert.throws(() => resolveEngineConfig({ model: 'Qwen/Qwen3-8B', maxNumSeqs: -1 } as EngineConfigInput, 'engine.'), /engine\.maxNumSeqs:/);
  assert.throws(() => resolveEngineConfig({ model: 'Qwen/Qwen3-8B', tensorParallel: 16 }), /tensorParallel/);
  assert.throws(() => resolveEngineConfig({ model: 'meta-llama/Llama-3.1-70B-Instruct', gpu: 'A10' }), /raise tensorParallel/);
  assert.throws(() => resolveEngineConfig({ model: { hidden_size: 1 } as never }), /field "num_hidden_layers" is required/);
  const custom = resolveEngineConfig({ model: { hidden_size: 2048, num_hidden_layers: 16, num_attention_heads: 16, num_key_value_heads: 4, intermediate_size: 8192, vocab_size: 32000 }, gpu: 'L4', maxModelLen: 2048 });
  assert.equal(custom.model.headDim, 128);
  for (const id of knownModelIds()) assert.ok(resolveModel(id).paramsTotal > 1e9, id);
  for (const id of knownGpuIds()) assert.equal(resolveGpu(id.toLowerCase()).id, id);
  // Published sizes: Mixtral 46.7B total / 12.9B active, Llama-3.1-8B 8.0B, Qwen2.5-72B 72.7B.
  const mix = resolveModel('mistralai/Mixtral-8x7B-Instruct-v0.1');
  assert.ok(Math.abs(mix.paramsTotal / 1e9 - 46.7) < 0.3 && Math.abs(mix.paramsActive / 1e9 - 12.9) < 0.3);
  assert.ok(Math.abs(resolveModel('llama-3.1-8b').paramsTotal / 1e9 - 8.03) < 0.05);
  assert.ok(Math.abs(resolveModel('Qwen/Qwen2.5-72B-Instruct').paramsTotal / 1e9 - 72.7) < 0.3);
});

test('injected block hasher: called per full block with the parent chain and the LoRA name; events carry its hashes', () => {
  const calls: [number, string | null, string | null][] = [];
  const events: KvEvent[] = [];
  const e = engine(
    { enableLora: true },
    {
      hashBlock: (toks, parent, extra) => {
        calls.push([toks.length, parent === null ? null : String(parent), extra]);
        return `h${toks[0]}-${parent ?? 'root'}`;
      },
      onKvEvent: (ev) => events.push(ev),
    },
  );
  e.loadAdapter('sql');
  e.addRequest({ id: 'a', promptTokenIds: ids(40), maxTokens: 1, adapter: 'sql', arrivalMs: 0 }, 0);
  assert.deepEqual(calls, [
    [16, null, 'sql'],
    [16, 'h1000-root', 'sql'],
  ]);
  drain(e);
  const st = events.find((x) => x.type === 'BlockStored');
  assert.ok(st && st.type === 'BlockStored');
  assert.deepEqual(st.blockHashes, ['h1000-root', 'h1016-h1000-root']);
  assert.equal(st.parentBlockHash, null);
  assert.equal(st.loraName, 'sql');
  assert.equal(st.loraId, 1);
  assert.deepEqual(st.tokenIds, ids(32));
  e.resetPrefixCache();
  assert.equal(events.at(-1)!.type, 'AllBlocksCleared');
});
