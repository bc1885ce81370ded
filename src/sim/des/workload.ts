/**
 * Turns an experiment's workload spec into the request list the DES replays, with synthetic prompt
 * token ids whose sharing follows the workload:
 * - `sharedPrefix`: group g's requests share g's system-prompt ids; the G x P prompts (system +
 *   question) are sent in round-robin order, so a prompt repeats every G x P requests
 *   (`questionReuse: 'cycle'`), or every request gets a fresh question (`'unique'`);
 * - `poisson` and Azure traces: unique ids per request (no sharing beyond chance);
 * - Mooncake traces: each `hash_id` becomes 512 deterministic ids, so equal ids share KV blocks;
 * - `preble`: the Preble presets' shared prefixes (`sharedPrefixRequests`): a request's first
 *   `shared` tokens are its prefix's ids, the rest unique to the request.
 * Token ids are generated lazily per request (`tokens()`), so a one-hour trace does not hold all
 * prompts in memory at once.
 */
import { resolve } from 'node:path';
import { createRng, type Rng } from '../../bench/rng.ts';
import { loadAzureTrace, loadMooncakeTrace, MOONCAKE_BLOCK_TOKENS, type TraceRequest } from '../../bench/traces.ts';
import type { LengthDist, WorkloadSpec } from './experiment.ts';
import { fmix32 } from '../../common/hash32.ts';
import { PREBLE_PRESETS, sharedPrefixRequests } from '../../bench/workload.ts';

/** One request to replay. */
export interface SimRequestSpec {
  /** Arrival at the router (ms from the start of the run). */
  arrivalMs: number;
  /** Index of the workload stage it belongs to. */
  stage: number;
  promptLen: number;
  outputTokens: number;
  /** Builds the prompt's token ids (length `promptLen`). */
  tokens: () => ArrayLike<number>;
  /** User identity (`user-K`) when the workload defines `users`. */
  userId?: string;
}

/** A stage of the workload (for per-stage results). */
export interface StageInfo {
  index: number;
  /** Offered rate (req/s) when the stage has one. */
  rate?: number;
  startMs: number;
  durationMs: number;
}

export interface BuiltWorkload {
  requests: SimRequestSpec[];
  stages: StageInfo[];
}

/** Deterministic synthetic token ids for (kind, key): `n` ids in [100, vocab). */
export function syntheticIds(kind: number, key: number, n: number, vocab: number, out?: Int32Array, offset = 0): Int32Array {
  const a = out ?? new Int32Array(n);
  const base = fmix32(Math.imul(kind + 1, 0x9e3779b1) ^ fmix32(key + 0x6d2b79f5));
  const span = Math.max(1, vocab - 100);
  for (let i = 0; i < n; i++) a[offset + i] = 100 + (fmix32(base ^ Math.imul(i + 1, 0x27d4eb2f)) % span);
  return a;
}

/** Draws one length from a distribution (tokens, >= 1). */
export function drawLength(d: LengthDist, rng: Rng): number {
  if (typeof d === 'number') return d;
  let v: number;
  switch (d.type) {
    case 'uniform':
      v = rng.int(Math.min(d.min, d.max), Math.max(d.min, d.max));
      return v;
    case 'normal':
      v = Math.round(d.mean + d.std * rng.normal());
      break;
    case 'exponential':
      v = Math.round(rng.exponential(1 / d.mean));
      break;
  }
  v = Math.max(d.min, v);
  if (d.max !== undefined) v = Math.min(d.max, v);
  return Math.max(1, v);
}

function stageArrivals(stages: readonly { rate: number; durationS: number }[], kind: 'constant' | 'poisson', rng: Rng, out: { t: number; stage: number }[], infos: StageInfo[]): void {
  let start = 0;
  stages.forEach((s, idx) => {
    const dur = s.durationS * 1000;
    infos.push({ index: idx, rate: s.rate, startMs: start, durationMs: dur });
    if (kind === 'constant') {
      const gap = 1000 / s.rate;
      const n = Math.floor(s.durationS * s.rate + 1e-9);
      for (let k = 0; k < n; k++) out.push({ t: start + k * gap, stage: idx });
    } else {
      let t = start + rng.exponential(s.rate / 1000);
      while (t < start + dur) {
        out.push({ t, stage: idx });
        t += rng.exponential(s.rate / 1000);
      }
    }
    start += dur;
  });
}

/** Fits prompt + output into maxModelLen (output first clipped by `maxOutput`). */
function clip(promptLen: number, output: number, maxModelLen: number, maxOutput?: number): [number, number] {
  let o = maxOutput !== undefined ? Math.min(output, maxOutput) : output;
  o = Math.max(1, Math.min(o, maxModelLen - 1));
  const p = Math.max(1, Math.min(promptLen, maxModelLen - o));
  return [p, o];
}

/**
 * Builds the request list of a workload.
 * @param baseDir directory trace paths are resolved against (the experiment file's directory).
 * @param maxModelLen the engines' limit: prompts and outputs are clipped to fit it.
 * @param vocabSize the model's vocabulary (synthetic ids stay below it).
 */
export function buildWorkload(w: WorkloadSpec, opts: { seed: number; baseDir: string; maxModelLen: number; vocabSize: number }): BuiltWorkload {
  const rng = createRng(opts.seed >>> 0);
  const vocab = opts.vocabSize;
  const stages: StageInfo[] = [];
  const requests: SimRequestSpec[] = [];
  if (w.type === 'sharedPrefix') {
    const arr: { t: number; stage: number }[] = [];
    stageArrivals(w.stages, w.arrival, rng, arr, stages);
    const nPrompts = w.prefixGroups * w.promptsPerGroup;
    const [pLen, oLen] = clip(w.systemPromptTokens + w.questionTokens, w.outputTokens, opts.maxModelLen);
    const prompts: (Int32Array | undefined)[] = new Array(nPrompts);
    const promptAt = (k: number): Int32Array => {
      let p = prompts[k];
      if (!p) {
        const g = Math.floor(k / w.promptsPerGroup);
        p = new Int32Array(pLen);
        const sys = Math.min(w.systemPromptTokens, pLen);
        syntheticIds(1, g + opts.seed * 7919, sys, vocab, p, 0);
        syntheticIds(2, k + opts.seed * 7919, pLen - sys, vocab, p, sys);
        prompts[k] = p;
      }
      return p;
    };
    arr.forEach((a, i) => {
      const k = i % nPrompts;
      if (w.questionReuse === 'unique') {
        const g = Math.floor(k / w.promptsPerGroup);
        requests.push({
          arrivalMs: a.t,
          stage: a.stage,
          promptLen: pLen,
          outputTokens: oLen,
          tokens: () => {
            const p = new Int32Array(pLen);
            const sys = Math.min(w.systemPromptTokens, pLen);
            syntheticIds(1, g + opts.seed * 7919, sys, vocab, p, 0);
            syntheticIds(6, i + opts.seed * 1_000_003, pLen - sys, vocab, p, sys);
            return p;
          },
        });
      } else requests.push({ arrivalMs: a.t, stage: a.stage, promptLen: pLen, outputTokens: oLen, tokens: () => promptAt(k) });
    });
  } else if (w.type === 'poisson') {
    const arr: { t: number; stage: number }[] = [];
    stageArrivals(w.stages, w.arrival, rng, arr, stages);
    const lrng = rng.fork();
    arr.forEach((a, i) => {
      const [p, o] = clip(drawLength(w.inputTokens, lrng), drawLength(w.outputTokens, lrng), opts.maxModelLen);
      const key = i + opts.seed * 1_000_003;
      requests.push({ arrivalMs: a.t, stage: a.stage, promptLen: p, outputTokens: o, tokens: () => syntheticIds(3, key, p, vocab) });
    });
  } else if (w.type === 'preble') {
    buildPreble(w, rng, opts, requests, stages);
  } else {
    const path = resolve(opts.baseDir, w.path);
    const topts = { timeScale: w.timeScale, startS: w.startS, durationS: w.durationS, maxRequests: w.maxRequests };
    const rows: TraceRequest[] = w.format === 'azure' ? loadAzureTrace(path, topts) : loadMooncakeTrace(path, topts);
    const last = rows.length ? rows[rows.length - 1]!.arrivalMs : 0;
    const durationMs = w.durationS !== undefined ? w.durationS * 1000 * w.timeScale : last;
    stages.push({ index: 0, startMs: 0, durationMs: Math.max(durationMs, 1) });
    const copies = w.copies;
    rows.forEach((row, i) => {
      const [p, o] = clip(row.inputTokens, row.outputTokens, opts.maxModelLen, w.maxOutputTokens);
      const ids = row.hashIds;
      const gap = copies > 1 && i + 1 < rows.length ? rows[i + 1]!.arrivalMs - row.arrivalMs : 0;
      for (let c = 0; c < copies; c++) {
        const key = i * copies + c; // = i without copies
        const tokens =
          w.format === 'mooncake' && ids && ids.length > 0
            ? () => {
                const a = new Int32Array(p);
                for (let j = 0; j * MOONCAKE_BLOCK_TOKENS < p && j < ids.length; j++) {
                  const n = Math.min(MOONCAKE_BLOCK_TOKENS, p - j * MOONCAKE_BLOCK_TOKENS);
                  syntheticIds(5, ids[j]!, n, vocab, a, j * MOONCAKE_BLOCK_TOKENS);
                }
                return a;
              }
            : () => syntheticIds(4, key + opts.seed * 1_000_003, p, vocab);
        requests.push({ arrivalMs: row.arrivalMs + (c * gap) / copies, stage: 0, promptLen: p, outputTokens: o, tokens });
      }
    });
  }
  if ('users' in w && w.users) assignUsers(requests, w.users, opts.seed);
  return { requests, stages };
}

/**
 * The `preble` workload: per preset, `prefixes x requestsPerPrefix` requests from
 * `sharedPrefixRequests` (prefix ids made distinct across presets), pooled and shuffled, then
 * arrivals at `rate` req/s (Poisson or constant). One stage spanning the arrivals.
 */
function buildPreble(w: Extract<WorkloadSpec, { type: 'preble' }>, rng: Rng, opts: { seed: number; maxModelLen: number; vocabSize: number }, requests: SimRequestSpec[], stages: StageInfo[]): void {
  type Spec = { input: number; output: number; prefixId: number; shared: number };
  const specs: Spec[] = [];
  let pid = 0;
  for (const name of w.presets) {
    const p = PREBLE_PRESETS[name];
    const reqs = sharedPrefixRequests({ numPrefixes: w.prefixes, samplesPerPrefix: w.requestsPerPrefix, totalTokens: p.totalTokens, sharedFraction: p.sharedFraction, outputTokens: w.outputTokens, shuffle: false }, rng);
    for (const r of reqs) specs.push({ input: r.inputTokens, output: r.outputTokens, prefixId: pid + (r.prefix?.id ?? 0), shared: r.prefix?.tokens ?? 0 });
    pid += w.prefixes;
  }
  rng.shuffle(specs);
  const arr = rng.fork();
  const gap = 1000 / w.rate;
  let t = 0;
  const seedKey = Math.imul(opts.seed, 7919);
  specs.forEach((s, i) => {
    t = w.arrival === 'constant' ? i * gap : t + arr.exponential(w.rate / 1000);
    const [pLen, oLen] = clip(s.input, s.output, opts.maxModelLen);
    const shared = Math.min(s.shared, pLen - 1);
    const prefixKey = s.prefixId + seedKey;
    const key = i + opts.seed * 1_000_003;
    requests.push({
      arrivalMs: t,
      stage: 0,
      promptLen: pLen,
      outputTokens: oLen,
      tokens: () => {
        const a = new Int32Array(pLen);
        if (shared > 0) syntheticIds(7, prefixKey, shared, opts.vocabSize, a, 0);
        syntheticIds(8, key, pLen - shared, opts.vocabSize, a, shared);
        return a;
      },
    });
  });
  stages.push({ index: 0, rate: w.rate, startMs: 0, durationMs: Math.max(t, 1) });
}

/**
 * Gives each request a user `user-K`, K in 1..count with P(K) ∝ 1 / K^zipf, drawn in arrival order
 * from a stream seeded by `seed` alone (so adding users changes nothing else in the workload).
 */
export function assignUsers(requests: SimRequestSpec[], users: { count: number; zipf: number }, seed: number): void {
  const n = users.count;
  const cdf = new Float64Array(n);
  let acc = 0;
  for (let k = 0; k < n; k++) cdf[k] = acc += users.zipf === 0 ? 1 : 1 / Math.pow(k + 1, users.zipf);
  const rng = createRng(((seed >>> 0) ^ 0x75736572) >>> 0);
  const names = new Map<number, string>();
  for (const r of requests) {
    const u = rng.next() * acc;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    let name = names.get(lo);
    if (name === undefined) names.set(lo, (name = `user-${lo + 1}`));
    r.userId = name;
  }
}
