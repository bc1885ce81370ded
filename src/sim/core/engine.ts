/**
 * The simulated vLLM V1 engine core: one implementation driven by both the real-time server
 * (`src/sim/server`, wall clock) and the discrete-event cluster (`src/sim/des`, virtual clock).
 *
 * Driving model: the caller owns the clock. It adds requests (`addRequest`), and while `hasWork()`
 * it calls `step(nowMs)`, which schedules one vLLM V1 step (continuous batching, chunked prefill,
 * preemption by recompute, prefix caching, LoRA slots) and returns the step's modelled duration;
 * the caller emits the step's tokens at `nowMs + durationMs` and calls `step` again then. The core
 * never reads a clock or sets a timer.
 */
export type {
  BlockHash,
  BlockHasher,
  KvEvent,
  BlockStoredEvent,
  BlockRemovedEvent,
  AllBlocksClearedEvent,
  KvMedium,
  EngineRequest,
  StepOutput,
  StepResult,
  EngineCounters,
  EngineSnapshot,
} from './types.ts';
export { resolveEngineConfig, engineConfigSchema, type EngineConfig, type EngineConfigInput } from './config.ts';
import type { BlockHash, BlockHasher, EngineRequest, EngineSnapshot, KvEvent, StepOutput, StepResult, EngineCounters } from './types.ts';
import type { EngineConfig } from './config.ts';
import { BlockPool } from './kv-cache.ts';
import { LatencyModel, DEFAULT_COEFFICIENTS, type LatencyCoefficients, type StepShape } from './latency.ts';
import { fmix32, fnv1a32 } from '../../common/hash32.ts';
export { DEFAULT_COEFFICIENTS, BLIS_ITER29_COEFFICIENTS, LatencyModel, type LatencyCoefficients } from './latency.ts';

/** Why `addRequest`/`loadAdapter`/`unloadAdapter` refused; the server maps `kind` to an HTTP status. */
export type EngineErrorKind =
  /** prompt + maxTokens > maxModelLen (vLLM: 400 BadRequestError, param `input_tokens`). */
  | 'context_length'
  /** bad request fields (empty prompt, maxTokens < 1, duplicate id): 400. */
  | 'invalid_request'
  /** the adapter named by a request or an unload is not loaded: 404 NotFoundError. */
  | 'adapter_not_found'
  /** loadAdapter of a name already loaded: 400 ("The lora adapter '<name>' has already been loaded."). */
  | 'adapter_exists'
  /** LoRA is disabled on this engine: 400. */
  | 'lora_disabled';

/** An error the engine raises for a bad request or adapter operation (message as vLLM words it). */
export class EngineError extends Error {
  constructor(
    readonly kind: EngineErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}

/** Injected collaborators of a core. */
export interface EngineCoreOptions {
  /** Block hasher for prefix caching (default: `defaultBlockHasher`, a fast chained 52-bit hash). */
  hashBlock?: BlockHasher;
  /** Receives KV events (BlockStored / BlockRemoved / AllBlocksCleared) synchronously, in order, during `step`/`resetPrefixCache`. */
  onKvEvent?: (e: KvEvent) => void;
  /** Latency model coefficients (default: the fitted ones in `coefficients.json`). */
  coefficients?: LatencyCoefficients;
}

const SEED_A = 0x2545f491;
const SEED_B = 0x6c8e9cf5;

/**
 * Fast chained hash of tokens [start, start + blockSize) of `tokens`, seeded by the parent's hash and
 * an optional extra key: two 32-bit multiply-rotate lanes folded into a non-negative 52-bit integer
 * (not vLLM-compatible; inject `hashBlock` for `sha256_cbor`).
 */
export function chainHash(tokens: ArrayLike<number>, start: number, blockSize: number, parent: number | null, extra: string | null): number {
  let a = SEED_A;
  let b = SEED_B;
  if (parent !== null) {
    a ^= parent % 4294967296;
    b ^= Math.floor(parent / 4294967296);
  }
  if (extra !== null) {
    const e = fnv1a32(extra);
    a ^= e;
    b = Math.imul(b ^ e, 0x9e3779b1);
  }
  const end = start + blockSize;
  for (let i = start; i < end; i++) {
    const t = tokens[i]! | 0;
    a = Math.imul(a ^ t, 0x9e3779b1);
    a = (a << 13) | (a >>> 19);
    b = Math.imul(b ^ (t + 0x7f4a7c15), 0x85ebca77);
    b = (b << 17) | (b >>> 15);
  }
  a = fmix32(a ^ Math.imul(b, 0x27d4eb2f));
  b = fmix32(b ^ a);
  return a + (b & 0xfffff) * 4294967296;
}

/** The default `BlockHasher` (see `chainHash`). */
export const defaultBlockHasher: BlockHasher = (blockTokenIds, parentHash, extraKey) =>
  chainHash(blockTokenIds, 0, blockTokenIds.length, typeof parentHash === 'number' ? parentHash : parentHash === null ? null : fnv1a32(String(parentHash)), extraKey);

const WAITING = 0;
const RUNNING = 1;
const DONE = 2;

/** Internal per-request state. */
class Req {
  numComputed = 0;
  numOutput = 0;
  blocks: number[] = [];
  numCachedBlocks = 0;
  state = WAITING;
  cachedPromptTokens = 0;
  queried = false;
  preemptions = 0;
  constructor(
    readonly id: string,
    readonly promptLen: number,
    readonly maxTokens: number,
    readonly adapter: string | null,
    readonly loraId: number | null,
    readonly arrivalMs: number,
    readonly hashes: BlockHash[],
    readonly tokens: ArrayLike<number> | null,
  ) {}
}

interface AdapterInfo {
  id: number;
  rank: number;
}

/**
 * One simulated engine. See the module docstring for the driving model.
 *
 * Scheduling follows vLLM V1 `vllm/v1/core/sched/scheduler.py` (`schedule()`):
 * 1. running requests first, in order, each gets `min(remaining tokens, budget)` new tokens (1 for a
 *    decode, a chunk for an unfinished prefill); when KV blocks run out the newest running request is
 *    preempted (recompute: its blocks are freed, it goes back to the front of the waiting queue);
 * 2. if nothing was preempted, waiting requests in FCFS order while the token budget lasts and the
 *    running set is below `maxNumSeqs`: prefix-cache lookup (GPU, then CPU tier), then a chunk of the
 *    remaining prompt; a request whose LoRA adapter would exceed `maxLoras` distinct adapters in the
 *    batch is skipped (it waits for a slot);
 * 3. the step's duration comes from `LatencyModel` plus CPU-tier transfers and LoRA loads.
 */
export class EngineCore {
  readonly config: EngineConfig;
  /** Host overheads the drivers apply (ms): arrival -> queue (α0) and after the last token (α1). */
  readonly hostOverheads: { arrivalDelayMs: number; finishDelayMs: number };
  private readonly latency: LatencyModel;
  private readonly pool: BlockPool;
  private readonly hashBlock: BlockHasher | undefined;
  private readonly emit: ((e: KvEvent) => void) | undefined;
  private readonly byId = new Map<string, Req>();
  private waitingQ: Req[] = [];
  private waitingHead = 0;
  private running: Req[] = [];
  private pendingAborts: StepOutput[] = [];
  private readonly runningAdapters = new Map<string, number>();
  private readonly waitingAdapters = new Map<string, number>();
  private readonly adapters = new Map<string, AdapterInfo>();
  private nextLoraId = 1;
  /** GPU LoRA slots (insertion order = LRU) and CPU LoRA cache (LRU). */
  private readonly gpuLoras = new Map<string, true>();
  private readonly cpuLoras = new Map<string, true>();
  private readonly counters: EngineCounters = {
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
    cpuCacheHits: 0,
    promptTokensComputed: 0,
    promptTokens: 0,
    generationTokens: 0,
    preemptions: 0,
    requestSuccess: { length: 0, abort: 0 },
    steps: 0,
    busyMs: 0,
  };
  // Scratch buffers reused by every step (no per-step allocation besides outputs).
  private readonly schedReqs: Req[] = [];
  private readonly schedTokens: number[] = [];
  private readonly hitScratch: number[] = [];
  private readonly skipped: Req[] = [];
  private readonly shape: StepShape = { prefillTokens: 0, prefillAttn: 0, decodeRequests: 0, decodeContext: 0, batchSize: 0, emittedTokens: 0, distinctAdapters: 0 };
  private stepCpuBlocks = 0;
  private readonly blockBytesPerGpu: number;
  private readonly adapterBytesPerRank: number;

  constructor(config: EngineConfig, options: EngineCoreOptions = {}) {
    this.config = config;
    const coef = options.coefficients ?? DEFAULT_COEFFICIENTS;
    this.latency = new LatencyModel(config.model, config.gpu, config.tensorParallel, coef, config.maxLoraRank);
    this.hostOverheads = { arrivalDelayMs: coef.alpha0 / 1000, finishDelayMs: coef.alpha1 / 1000 };
    this.emit = options.onKvEvent;
    this.hashBlock = options.hashBlock;
    this.pool = new BlockPool(config.numGpuBlocks, config.enablePrefixCaching ? config.numCpuBlocks : 0, options.onKvEvent);
    this.blockBytesPerGpu = config.kvBytesPerTokenPerGpu * config.blockSize;
    // LoRA A and B matrices on q,k,v,o of every layer: L x 4 x rank x 2d x 2 bytes (per GPU: / TP).
    const m = config.model;
    this.adapterBytesPerRank = (m.numLayers * 4 * 2 * m.hiddenSize * 2) / config.tensorParallel;
  }

  /** Requests waiting in the queue. */
  private get numWaiting(): number {
    return this.waitingQ.length - this.waitingHead;
  }

  /**
   * Queues a request (FCFS). The prompt's full blocks are hashed now (when prefix caching is on).
   * @throws EngineError `context_length` when prompt + maxTokens > maxModelLen (vLLM's message
   *   "This model's maximum context length is N tokens. However, you requested M output tokens and
   *   your prompt contains P input tokens, for a total of T tokens. Please reduce the length of the
   *   input prompt or the number of requested output tokens."), `invalid_request` (empty prompt,
   *   maxTokens < 1, duplicate id), `adapter_not_found` (adapter not loaded), `lora_disabled`.
   */
  addRequest(req: EngineRequest, nowMs: number): void {
    void nowMs;
    const c = this.config;
    const p = req.promptTokenIds.length;
    if (this.byId.has(req.id)) throw new EngineError('invalid_request', `request id '${req.id}' is already in use`);
    if (p < 1) throw new EngineError('invalid_request', 'The prompt cannot be empty.');
    if (!Number.isInteger(req.maxTokens) || req.maxTokens < 1) throw new EngineError('invalid_request', `max_tokens must be at least 1, got ${req.maxTokens}.`);
    if (p + req.maxTokens > c.maxModelLen) {
      throw new EngineError(
        'context_length',
        `This model's maximum context length is ${c.maxModelLen} tokens. However, you requested ${req.maxTokens} output tokens and your prompt contains ${p} input tokens, for a total of ${p + req.maxTokens} tokens. Please reduce the length of the input prompt or the number of requested output tokens.`,
      );
    }
    let loraId: number | null = null;
    if (req.adapter !== undefined) {
      if (!c.enableLora) throw new EngineError('lora_disabled', `LoRA is not enabled; cannot serve adapter '${req.adapter}'.`);
      const a = this.adapters.get(req.adapter);
      if (!a) throw new EngineError('adapter_not_found', `The lora adapter '${req.adapter}' cannot be found.`);
      loraId = a.id;
    }
    const adapter = req.adapter ?? null;
    const hashes: BlockHash[] = [];
    if (c.enablePrefixCaching) {
      const bs = c.blockSize;
      const full = Math.floor(p / bs);
      const toks = req.promptTokenIds;
      let parent: BlockHash | null = null;
      if (this.hashBlock) {
        for (let i = 0; i < full; i++) {
          const blk: number[] = new Array<number>(bs);
          for (let k = 0; k < bs; k++) blk[k] = toks[i * bs + k]!;
          parent = this.hashBlock(blk, parent, adapter);
          hashes.push(parent);
        }
      } else {
        let ph: number | null = null;
        for (let i = 0; i < full; i++) {
          ph = chainHash(toks, i * bs, bs, ph, adapter);
          hashes.push(ph);
        }
      }
    }
    const r = new Req(req.id, p, req.maxTokens, adapter, loraId, req.arrivalMs, hashes, this.emit ? req.promptTokenIds : null);
    this.byId.set(r.id, r);
    this.waitingQ.push(r);
    if (adapter !== null) this.waitingAdapters.set(adapter, (this.waitingAdapters.get(adapter) ?? 0) + 1);
  }

  /** Aborts a waiting or running request: its blocks are freed now and the next `step` reports it (`finishReason: 'abort'`). Returns false if unknown. */
  abortRequest(id: string, nowMs: number): boolean {
    void nowMs;
    const r = this.byId.get(id);
    if (!r) return false;
    if (r.state === WAITING) {
      const i = this.waitingQ.indexOf(r, this.waitingHead);
      if (i >= 0) this.waitingQ.splice(i, 1);
      this.decAdapter(this.waitingAdapters, r.adapter);
    } else if (r.state === RUNNING) {
      const i = this.running.indexOf(r);
      if (i >= 0) this.running.splice(i, 1);
      this.decAdapter(this.runningAdapters, r.adapter);
    }
    this.finish(r);
    this.counters.requestSuccess.abort++;
    this.pendingAborts.push({ requestId: id, newTokens: 0, finished: true, finishReason: 'abort', firstToken: false, outputTokens: r.numOutput });
    return true;
  }

  /** True while requests are waiting or running, or aborts are pending report. */
  hasWork(): boolean {
    return this.running.length > 0 || this.numWaiting > 0 || this.pendingAborts.length > 0;
  }

  private decAdapter(m: Map<string, number>, a: string | null): void {
    if (a === null) return;
    const n = (m.get(a) ?? 1) - 1;
    if (n <= 0) m.delete(a);
    else m.set(a, n);
  }

  private finish(r: Req): void {
    if (r.blocks.length) this.pool.release(r.blocks, true);
    r.blocks.length = 0;
    r.state = DONE;
    this.byId.delete(r.id);
  }

  private pushFrontWaiting(r: Req): void {
    if (this.waitingHead > 0) this.waitingQ[--this.waitingHead] = r;
    else this.waitingQ.unshift(r);
  }

  private preempt(r: Req): void {
    this.pool.release(r.blocks, true);
    r.blocks.length = 0;
    r.numComputed = 0;
    r.numCachedBlocks = 0;
    r.state = WAITING;
    r.preemptions++;
    this.counters.preemptions++;
    this.decAdapter(this.runningAdapters, r.adapter);
    if (r.adapter !== null) this.waitingAdapters.set(r.adapter, (this.waitingAdapters.get(r.adapter) ?? 0) + 1);
    this.pushFrontWaiting(r);
  }

  /** Allocates blocks so that `r` can hold numComputed + numNew tokens. False when too few free blocks. */
  private allocateSlots(r: Req, numNew: number): boolean {
    const bs = this.config.blockSize;
    const need = Math.ceil((r.numComputed + numNew) / bs) - r.blocks.length;
    if (need > 0) {
      if (need > this.pool.numFree) return false;
      for (let k = 0; k < need; k++) r.blocks.push(this.pool.allocate());
    }
    return true;
  }

  /** Registers the request's newly full prompt blocks in the prefix cache (vLLM `cache_full_blocks`). */
  private cacheFullBlocks(r: Req, upToTokens: number): void {
    const full = Math.min(r.hashes.length, Math.floor(upToTokens / this.config.blockSize));
    if (full <= r.numCachedBlocks) return;
    const from = r.numCachedBlocks;
    if (this.emit && r.tokens) {
      let runStart = -1;
      for (let i = from; i < full; i++) {
        const ok = this.pool.cache(r.blocks[i]!, r.hashes[i]!);
        if (ok && runStart < 0) runStart = i;
        if ((!ok || i === full - 1) && runStart >= 0) {
          this.emitStored(r, runStart, ok ? i + 1 : i);
          runStart = -1;
        }
      }
    } else {
      for (let i = from; i < full; i++) this.pool.cache(r.blocks[i]!, r.hashes[i]!);
    }
    r.numCachedBlocks = full;
  }

  private emitStored(r: Req, from: number, to: number): void {
    const bs = this.config.blockSize;
    const tokenIds: number[] = [];
    for (let k = from * bs; k < to * bs; k++) tokenIds.push(r.tokens![k]!);
    this.emit!({
      type: 'BlockStored',
      blockHashes: r.hashes.slice(from, to),
      parentBlockHash: from > 0 ? r.hashes[from - 1]! : null,
      tokenIds,
      blockSize: bs,
      loraId: r.loraId,
      loraName: r.adapter,
      medium: 'GPU',
    });
  }

  /**
   * Tries to admit the waiting request `r` with `budget` tokens: prefix lookup, allocation, and
   * caching. Returns the tokens scheduled, or 0 when it does not fit (nothing changed).
   */
  private admit(r: Req, budget: number): number {
    const c = this.config;
    const bs = c.blockSize;
    const numTokens = r.promptLen + r.numOutput;
    const hits = this.hitScratch;
    hits.length = 0;
    let cpuBlocks = 0;
    if (c.enablePrefixCaching && r.hashes.length > 0) {
      const maxBlocks = Math.min(r.hashes.length, Math.floor((numTokens - 1) / bs));
      let i = 0;
      for (; i < maxBlocks; i++) {
        const b = this.pool.lookup(r.hashes[i]!);
        if (b < 0) break;
        hits.push(b);
      }
      if (this.pool.numCpuBlocks > 0) for (; i < maxBlocks && this.pool.cpuHas(r.hashes[i]!, false); i++) cpuBlocks++;
    }
    const computed = (hits.length + cpuBlocks) * bs;
    let numNew = numTokens - computed;
    if (!c.enableChunkedPrefill && numNew > budget) return 0;
    if (numNew > budget) numNew = budget;
    const totalBlocks = Math.ceil((computed + numNew) / bs);
    let needFree = totalBlocks - hits.length;
    for (let k = 0; k < hits.length; k++) if (this.pool.refCount(hits[k]!) === 0) needFree++;
    if (needFree > this.pool.numFree) return 0;
    for (let k = 0; k < hits.length; k++) {
      this.pool.touch(hits[k]!);
      r.blocks.push(hits[k]!);
    }
    r.numCachedBlocks = hits.length;
    for (let k = hits.length; k < totalBlocks; k++) r.blocks.push(this.pool.allocate());
    if (cpuBlocks > 0) {
      for (let k = hits.length; k < hits.length + cpuBlocks; k++) this.pool.cpuHas(r.hashes[k]!, true);
      this.stepCpuBlocks += cpuBlocks;
    }
    r.numComputed = computed;
    if (!r.queried) {
      r.queried = true;
      r.cachedPromptTokens = computed;
      this.counters.prefixCacheQueries += numTokens;
      this.counters.prefixCacheHits += hits.length * bs;
      this.counters.cpuCacheHits += cpuBlocks * bs;
    }
    return numNew;
  }

  /**
   * Schedules and "executes" one step at `nowMs`. Returns its modelled duration and per-request
   * outputs; the caller emits them at `nowMs + durationMs`. Aborts since the last step are reported
   * first. Never throws for a valid state; returns `durationMs: 0` and no outputs when idle.
   */
  step(nowMs: number): StepResult {
    void nowMs;
    const c = this.config;
    const outputs: StepOutput[] = this.pendingAborts.length ? this.pendingAborts : [];
    if (this.pendingAborts.length) this.pendingAborts = [];
    const sr = this.schedReqs;
    const st = this.schedTokens;
    sr.length = 0;
    st.length = 0;
    this.stepCpuBlocks = 0;
    let budget = c.maxNumBatchedTokens;
    let preemptions = 0;
    // 1. Running requests.
    const running = this.running;
    let i = 0;
    while (i < running.length && budget > 0) {
      const r = running[i]!;
      let numNew = r.promptLen + r.numOutput - r.numComputed;
      if (numNew > budget) numNew = budget;
      let selfPreempted = false;
      while (!this.allocateSlots(r, numNew)) {
        const victim = running.pop()!;
        this.preempt(victim);
        preemptions++;
        if (victim === r) {
          selfPreempted = true;
          break;
        }
      }
      if (selfPreempted) break;
      this.cacheFullBlocks(r, r.numComputed + numNew);
      sr.push(r);
      st.push(numNew);
      budget -= numNew;
      i++;
    }
    // 2. Waiting requests (only when nothing was preempted this step, as vLLM V1).
    if (preemptions === 0) {
      const skipped = this.skipped;
      skipped.length = 0;
      while (this.numWaiting > 0 && budget > 0 && running.length < c.maxNumSeqs) {
        const r = this.waitingQ[this.waitingHead]!;
        if (r.adapter !== null && !this.runningAdapters.has(r.adapter) && this.runningAdapters.size >= c.maxLoras) {
          skipped.push(r);
          this.waitingHead++;
          continue;
        }
        const numNew = this.admit(r, budget);
        if (numNew === 0) break;
        this.waitingHead++;
        r.state = RUNNING;
        running.push(r);
        if (r.adapter !== null) {
          this.decAdapter(this.waitingAdapters, r.adapter);
          this.runningAdapters.set(r.adapter, (this.runningAdapters.get(r.adapter) ?? 0) + 1);
        }
        this.cacheFullBlocks(r, r.numComputed + numNew);
        sr.push(r);
        st.push(numNew);
        budget -= numNew;
      }
      for (let k = skipped.length - 1; k >= 0; k--) this.pushFrontWaiting(skipped[k]!);
      if (this.waitingHead > 4096 && this.waitingHead * 2 > this.waitingQ.length) {
        this.waitingQ = this.waitingQ.slice(this.waitingHead);
        this.waitingHead = 0;
      }
    }
    this.pool.flushEvents();
    // A request that cannot fit even in an empty cache would wait forever: fail it (vLLM refuses such configs at start-up).
    if (sr.length === 0 && running.length === 0 && this.numWaiting > 0 && preemptions === 0) {
      const r = this.waitingQ[this.waitingHead++]!;
      this.decAdapter(this.waitingAdapters, r.adapter);
      this.finish(r);
      this.counters.requestSuccess.abort++;
      outputs.push({ requestId: r.id, newTokens: 0, finished: true, finishReason: 'abort', firstToken: false, outputTokens: r.numOutput });
    }
    // 3. Model the step and advance request state.
    const shape = this.shape;
    shape.prefillTokens = 0;
    shape.prefillAttn = 0;
    shape.decodeRequests = 0;
    shape.decodeContext = 0;
    shape.batchSize = sr.length;
    shape.emittedTokens = 0;
    shape.distinctAdapters = 0;
    let anyFinished = false;
    let loraMs = 0;
    if (this.runningAdapters.size > 0) loraMs = this.loadLoras(sr);
    for (let k = 0; k < sr.length; k++) {
      const r = sr[k]!;
      const n = st[k]!;
      const numTokens = r.promptLen + r.numOutput;
      const isDecode = r.numOutput > 0 && n === 1 && r.numComputed === numTokens - 1;
      if (isDecode) {
        shape.decodeRequests++;
        shape.decodeContext += r.numComputed;
      } else {
        shape.prefillTokens += n;
        shape.prefillAttn += n * (r.numComputed + n / 2);
        this.counters.promptTokensComputed += n;
      }
      r.numComputed += n;
      if (r.numComputed >= numTokens) {
        r.numOutput++;
        shape.emittedTokens++;
        this.counters.generationTokens++;
        const first = r.numOutput === 1;
        if (first) this.counters.promptTokens += r.promptLen;
        const done = r.numOutput >= r.maxTokens;
        const o: StepOutput = { requestId: r.id, newTokens: 1, finished: done, firstToken: first, outputTokens: r.numOutput };
        if (first) o.cachedPromptTokens = r.cachedPromptTokens;
        if (done) {
          o.finishReason = 'length';
          this.counters.requestSuccess.length++;
          anyFinished = true;
        }
        outputs.push(o);
      } else {
        outputs.push({ requestId: r.id, newTokens: 0, finished: false, firstToken: false, outputTokens: r.numOutput });
      }
    }
    shape.distinctAdapters = this.runningAdapters.size > 0 ? this.countDistinctAdapters(sr) : 0;
    if (anyFinished) {
      let w = 0;
      for (let k = 0; k < running.length; k++) {
        const r = running[k]!;
        if (r.numOutput >= r.maxTokens) {
          this.decAdapter(this.runningAdapters, r.adapter);
          this.finish(r);
        } else running[w++] = r;
      }
      running.length = w;
    }
    let durationMs = this.latency.stepUs(shape) / 1000;
    if (this.stepCpuBlocks > 0) durationMs += (this.stepCpuBlocks * this.blockBytesPerGpu) / (c.pcieGBps * 1e6);
    durationMs += loraMs;
    if (sr.length > 0) {
      this.counters.steps++;
      this.counters.busyMs += durationMs;
    }
    return { durationMs, outputs, prefillTokens: shape.prefillTokens, decodeRequests: shape.decodeRequests, preemptions, batchSize: sr.length };
  }

  private countDistinctAdapters(sr: readonly Req[]): number {
    let first: string | null = null;
    let set: Set<string> | null = null;
    for (const r of sr) {
      if (r.adapter === null) continue;
      if (first === null) first = r.adapter;
      else if (r.adapter !== first) (set ??= new Set([first])).add(r.adapter);
    }
    return set ? set.size : first !== null ? 1 : 0;
  }

  /**
   * Puts the batch's adapters into GPU slots (LRU eviction of adapters not in the batch) and returns
   * the load delay (ms): from the CPU LoRA cache a PCIe copy of the adapter weights; otherwise a cold
   * load of 1500 µs + rank µs (BLIS `lora-adapter-costs.yaml`) plus the copy.
   */
  private loadLoras(sr: readonly Req[]): number {
    let ms = 0;
    for (const r of sr) {
      const a = r.adapter;
      if (a === null) continue;
      if (this.gpuLoras.has(a)) {
        this.gpuLoras.delete(a);
        this.gpuLoras.set(a, true);
        continue;
      }
      const info = this.adapters.get(a);
      const rank = info ? info.rank : this.config.maxLoraRank;
      const copyMs = (rank * this.adapterBytesPerRank) / (this.config.pcieGBps * 1e6);
      if (this.cpuLoras.has(a)) {
        this.cpuLoras.delete(a);
        ms += copyMs;
      } else ms += (1500 + rank) / 1000 + copyMs;
      this.cpuLoras.set(a, true);
      this.trimLru(this.cpuLoras, this.config.maxCpuLoras, null);
      if (this.gpuLoras.size >= this.config.maxLoras) this.trimLru(this.gpuLoras, this.config.maxLoras - 1, this.runningAdapters);
      this.gpuLoras.set(a, true);
    }
    return ms;
  }

  private trimLru(m: Map<string, true>, cap: number, keep: Map<string, number> | null): void {
    if (m.size <= cap) return;
    for (const k of m.keys()) {
      if (m.size <= cap) break;
      if (keep && keep.has(k)) continue;
      m.delete(k);
    }
  }

  /** Current state for metrics and routing (O(adapters)). */
  snapshot(): EngineSnapshot {
    const c = this.counters;
    return {
      running: this.running.length,
      waiting: this.numWaiting,
      kvCacheUsage: this.pool.numBlocks > 0 ? this.pool.numUsed / this.pool.numBlocks : 0,
      numGpuBlocks: this.pool.numBlocks,
      usedGpuBlocks: this.pool.numUsed,
      numCpuBlocks: this.pool.numCpuBlocks,
      usedCpuBlocks: this.pool.numCpuUsed,
      counters: { ...c, requestSuccess: { ...c.requestSuccess } },
      loadedAdapters: [...this.adapters.keys()],
      runningAdapters: [...this.runningAdapters.keys()],
      waitingAdapters: [...this.waitingAdapters.keys()],
      maxLoras: this.config.enableLora ? this.config.maxLoras : 0,
    };
  }

  /** KV cache usage 0..1 without building a snapshot (hot path of the DES). */
  kvCacheUsage(): number {
    return this.pool.numBlocks > 0 ? this.pool.numUsed / this.pool.numBlocks : 0;
  }

  /** Running and waiting counts without building a snapshot. */
  queueDepths(): { running: number; waiting: number } {
    return { running: this.running.length, waiting: this.numWaiting };
  }

  /** Cumulative counters (live object; do not mutate). */
  liveCounters(): Readonly<EngineCounters> {
    return this.counters;
  }

  /**
   * Registers a LoRA adapter (vLLM `/v1/load_lora_adapter` -> `add_lora`, which loads it into the
   * CPU LoRA cache). `rank` defaults to `maxLoraRank`.
   * @throws EngineError `lora_disabled`, `adapter_exists` ("The lora adapter '<name>' has already been
   *   loaded."), `invalid_request` (rank above `maxLoraRank`).
   */
  loadAdapter(name: string, rank?: number): void {
    if (!this.config.enableLora) throw new EngineError('lora_disabled', 'LoRA is not enabled on this engine (start it with --enable-lora).');
    if (!name) throw new EngineError('invalid_request', "Both 'lora_name' and 'lora_path' must be provided.");
    if (this.adapters.has(name)) throw new EngineError('adapter_exists', `The lora adapter '${name}' has already been loaded.`);
    const r = rank ?? this.config.maxLoraRank;
    if (r > this.config.maxLoraRank) throw new EngineError('invalid_request', `LoRA rank ${r} is greater than max_lora_rank ${this.config.maxLoraRank}.`);
    this.adapters.set(name, { id: this.nextLoraId++, rank: r });
    this.cpuLoras.delete(name);
    this.cpuLoras.set(name, true);
    this.trimLru(this.cpuLoras, this.config.maxCpuLoras, null);
  }

  /**
   * Unregisters an adapter (vLLM `/v1/unload_lora_adapter`); requests already queued with it still complete.
   * @throws EngineError `adapter_not_found` ("The lora adapter '<name>' cannot be found.").
   */
  unloadAdapter(name: string): void {
    if (!this.adapters.has(name)) throw new EngineError('adapter_not_found', `The lora adapter '${name}' cannot be found.`);
    this.adapters.delete(name);
    this.gpuLoras.delete(name);
    this.cpuLoras.delete(name);
  }

  /** Adapters currently in GPU slots (LRU order, oldest first). */
  gpuAdapterSlots(): string[] {
    return [...this.gpuLoras.keys()];
  }

  /** Drops every cached, unreferenced block and the CPU tier (vLLM `/reset_prefix_cache`); emits AllBlocksCleared. Returns the number of GPU blocks uncached. */
  resetPrefixCache(): number {
    const n = this.pool.reset();
    this.emit?.({ type: 'AllBlocksCleared' });
    return n;
  }
}
