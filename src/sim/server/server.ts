/**
 * A vLLM-compatible HTTP server around one simulated `EngineCore` (`inferplane sim serve`).
 *
 * Surface (reference vllm-api.md §1-§4): `POST /v1/completions`, `POST /v1/chat/completions`
 * (streaming SSE and not), `GET /v1/models`, `GET /health`, `GET /ping`, `GET /version`, `GET /load`,
 * `POST /tokenize`, `POST /detokenize`, `GET /metrics` (vLLM V1 names), `POST /v1/load_lora_adapter`
 * and `POST /v1/unload_lora_adapter` (only when `VLLM_ALLOW_RUNTIME_LORA_UPDATING` is 1/true), and KV
 * events on ZeroMQ PUB with `sha256_cbor` block hashes. Errors use the OpenAI envelope
 * `{"error":{"message","type","param","code"}}` with vLLM's statuses; unknown routes get FastAPI's
 * `{"detail":"Not Found"}`.
 *
 * Time: engine steps are timed by the core's latency model and played out on the wall clock divided
 * by `timeScale` (see `WallClockDriver`). All latencies in `/metrics` are in simulated seconds.
 */
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { ApiError } from '../../openai/errors.ts';
import {
  buildChatChunk,
  buildChatResponse,
  buildCompletionChunk,
  buildCompletionResponse,
  buildUsage,
  buildUsageChunk,
  contentChunkFrame,
  parseChatCompletionRequest,
  parseCompletionRequest,
  parseJsonBody,
  requestedMaxTokens,
  wantsStreamUsage,
  type ChatCompletionRequest,
  type CompletionRequest,
  type FinishReason,
  type Usage,
} from '../../openai/requests.ts';
import { SSE_DONE_FRAME, sseData } from '../../openai/sse.ts';
import { renderChat, tokenizerFor, type ChatMessage, type Tokenizer } from '../../engines/tokenizer.ts';
import { sha256CborBlockHasher, wireKvEvent } from '../core/kv-wire.ts';
import { KvEventPublisher, type KvCacheEvent } from '../../engines/vllm/kv-events.ts';
import { EngineCore, EngineError, resolveEngineConfig, type EngineConfig, type EngineConfigInput } from '../core/engine.ts';
import type { KvEvent, StepOutput } from '../core/types.ts';
import { SimMetrics, type EngineMetricsSink } from './metrics.ts';
import { SglangMetrics } from './sglang-metrics.ts';
import { WallClockDriver } from './driver.ts';
import { TextStream, naturalOutputLength, seedFor, wordVocab, type WordVocab } from './text-gen.ts';

/** vLLM API level the simulator reports on `/version`. */
export const SIM_VLLM_VERSION = '0.11.0';

/** A LoRA module given at startup (`--lora-modules name=path`). */
export interface LoraModule {
  name: string;
  path: string;
  baseModelName?: string;
}

/** Options of `startSimServer` (vLLM flag names in camelCase). */
export interface SimServerOptions {
  /** `--model`: catalog model id/alias or HF id known to the catalog (unknown names list the known ones). */
  model: string;
  /** `--served-model-name` (first is `model_name` in metrics); default `[model]`. */
  servedModelName?: string[];
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Listen port; 0 (default) picks a free one. */
  port?: number;
  /** `--gpu` (catalog id/alias), default H100. */
  gpu?: string;
  tensorParallelSize?: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  maxModelLen?: number;
  gpuMemoryUtilization?: number;
  blockSize?: number;
  enablePrefixCaching?: boolean;
  /** CPU KV tier size (GiB), 0 = none. */
  kvOffloadGiB?: number;
  /** Override the GPU KV block count (tests, what-if). */
  numGpuBlocksOverride?: number;
  enableLora?: boolean;
  maxLoras?: number;
  maxCpuLoras?: number;
  maxLoraRank?: number;
  loraModules?: LoraModule[];
  /** Seed of the generated text and output lengths; default 0. */
  seed?: number;
  /** Virtual ms per wall ms; default 1 (real time). */
  timeScale?: number;
  /** ZMQ endpoint of the KV-event PUB socket (e.g. `tcp://*:5557`); none = no KV events. */
  kvEventsEndpoint?: string;
  kvEventsTopic?: string;
  kvEventsReplayEndpoint?: string;
  /** `PYTHONHASHSEED` the hashes are seeded with (NONE_HASH); default env PYTHONHASHSEED or "0". */
  hashSeed?: string;
  /** Add the V0 / early-V1 metric names to `/metrics`. */
  v0Metrics?: boolean;
  /** Serve the runtime LoRA routes; default: env `VLLM_ALLOW_RUNTIME_LORA_UPDATING` is 1/true. */
  allowRuntimeLoraUpdating?: boolean;
  /** Put `prompt_tokens_details.cached_tokens` in usage (vLLM `--enable-prompt-tokens-details`); default true. */
  enablePromptTokensDetails?: boolean;
  /**
   * Which engine the server impersonates (default `vllm`). `sglang`: SGLang metric names on
   * `/metrics`, SGLang's LoRA routes (`/load_lora_adapter`, `/unload_lora_adapter`, JSON replies,
   * no env gate), adapter selection by the `lora_path` request field, flat error bodies
   * `{"object":"error",...}`, `owned_by: "sglang"`, `/get_model_info`, `/health_generate`.
   */
  dialect?: 'vllm' | 'sglang';
  /** Serve the dev routes (`POST /reset_prefix_cache`); default: env `VLLM_SERVER_DEV_MODE` is 1/true. */
  devMode?: boolean;
  /** Extra engine-config fields (see `engineConfigSchema`). */
  engine?: Partial<EngineConfigInput>;
}

/** Every key `startSimServer` accepts (others are rejected, so a typo is not silently ignored). */
export const SIM_SERVER_OPTION_KEYS: ReadonlyArray<keyof SimServerOptions> = [
  'model', 'servedModelName', 'host', 'port', 'gpu', 'tensorParallelSize', 'maxNumSeqs', 'maxNumBatchedTokens', 'maxModelLen',
  'gpuMemoryUtilization', 'blockSize', 'enablePrefixCaching', 'kvOffloadGiB', 'numGpuBlocksOverride', 'enableLora', 'maxLoras',
  'maxCpuLoras', 'maxLoraRank', 'loraModules', 'seed', 'timeScale', 'kvEventsEndpoint', 'kvEventsTopic', 'kvEventsReplayEndpoint',
  'hashSeed', 'v0Metrics', 'allowRuntimeLoraUpdating', 'enablePromptTokensDetails', 'dialect', 'devMode', 'engine',
];

/** A running simulated engine. */
export interface SimServerHandle {
  /** `http://host:port` (no trailing slash). */
  url: string;
  port: number;
  host: string;
  /** Name clients put in `model`. */
  modelName: string;
  /** The bound KV-event endpoint (e.g. `tcp://127.0.0.1:41234`), when enabled. */
  kvEventsEndpoint?: string;
  kvEventsReplayEndpoint?: string;
  config: EngineConfig;
  core: EngineCore;
  /** Stops listening, drops connections and closes the KV-event sockets. */
  close(): Promise<void>;
}

const BOS_LLAMA3 = 128000;

function envTrue(v: string | undefined): boolean {
  return v !== undefined && ['1', 'true'].includes(v.toLowerCase());
}

/** Maps an engine refusal to vLLM's HTTP error. */
export function engineErrorToApi(e: EngineError): ApiError {
  switch (e.kind) {
    case 'context_length':
      return new ApiError(400, e.message, 'BadRequestError', 400, 'input_tokens');
    case 'adapter_not_found':
      return new ApiError(404, e.message, 'NotFoundError', 404, null);
    case 'adapter_exists':
      return new ApiError(400, e.message, 'InvalidUserInput', 400, null);
    default:
      return new ApiError(400, e.message, 'BadRequestError', 400, null);
  }
}

/**
 * The ORCA load report vLLM adds to non-streaming responses when the request carries
 * `endpoint-load-metrics-format: TEXT|JSON` (`vllm/entrypoints/openai/orca_metrics.py`):
 * `TEXT named_metrics.kv_cache_usage_perc=<f>, named_metrics.num_requests_waiting=<n>` or
 * `JSON {"named_metrics":{...}}`.
 */
export function orcaHeader(format: 'TEXT' | 'JSON', s: { kvCacheUsage: number; waiting: number }): string {
  const m = { kv_cache_usage_perc: s.kvCacheUsage, num_requests_waiting: s.waiting };
  if (format === 'JSON') return `JSON ${JSON.stringify({ named_metrics: m })}`;
  return `TEXT ${Object.entries(m)
    .map(([k, v]) => `named_metrics.${k}=${v}`)
    .join(', ')}`;
}

function pyStr(v: unknown): string {
  if (v === undefined || v === null) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  return String(v);
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Sends an ApiError: `{"error":{...}}` (vLLM), or SGLang's flat `{"object":"error","message","type","param","code"}`. */
function sendError(res: http.ServerResponse, e: ApiError, flat = false): void {
  if (res.headersSent) {
    if (!res.writableEnded) res.end();
    return;
  }
  const body = flat ? { object: 'error', ...e.toBody().error } : e.toBody();
  sendJson(res, e.status, body, e.headers);
}

const MAX_BODY_BYTES = 64 * 1024 * 1024;

/**
 * Collects the SSE frames a response gets during one macrotask and writes them once (one socket
 * write per response per tick instead of one per token when several engine steps run back to back).
 */
class CoalescingWriter {
  private buf = '';
  constructor(
    private readonly res: http.ServerResponse,
    private readonly flusher: Flusher,
  ) {}
  push(s: string): void {
    if (this.buf === '') this.flusher.mark(this);
    this.buf += s;
  }
  end(s: string): void {
    this.flusher.unmark(this);
    const b = this.buf + s;
    this.buf = '';
    if (!this.res.writableEnded && !this.res.destroyed) this.res.end(b);
  }
  flush(): void {
    if (this.buf !== '' && !this.res.writableEnded && !this.res.destroyed) this.res.write(this.buf);
    this.buf = '';
  }
}

/** Flushes every marked writer on the next `setImmediate`. */
class Flusher {
  private readonly dirty = new Set<CoalescingWriter>();
  private scheduled = false;
  mark(w: CoalescingWriter): void {
    this.dirty.add(w);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flushAll());
    }
  }
  unmark(w: CoalescingWriter): void {
    this.dirty.delete(w);
  }
  flushAll(): void {
    this.scheduled = false;
    for (const w of this.dirty) w.flush();
    this.dirty.clear();
  }
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new ApiError(413, `Request body larger than ${MAX_BODY_BYTES} bytes.`, 'BadRequestError', 413));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * Starts one simulated vLLM engine over HTTP.
 * @throws Error naming the field for bad engine options (unknown model/GPU lists the known ones),
 *   or the listen/bind error.
 */
export async function startSimServer(options: SimServerOptions): Promise<SimServerHandle> {
  const unknown = Object.keys(options).filter((k) => !SIM_SERVER_OPTION_KEYS.includes(k as keyof SimServerOptions));
  if (unknown.length > 0) throw new Error(`unknown simulator option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}; known options: ${SIM_SERVER_OPTION_KEYS.join(', ')}`);
  if (typeof options.model !== 'string' || !options.model) throw new Error('model: required (a catalog model id or alias)');
  const servedNames = options.servedModelName && options.servedModelName.length > 0 ? options.servedModelName : [options.model];
  const modelName = servedNames[0]!;
  const hashSeed = options.hashSeed ?? process.env.PYTHONHASHSEED ?? '0';
  const timeScale = options.timeScale ?? 1;
  if (!(timeScale > 0)) throw new Error(`timeScale: must be > 0, got ${timeScale}`);
  const seed = options.seed ?? 0;
  const allowLoraRoutes = options.allowRuntimeLoraUpdating ?? envTrue(process.env.VLLM_ALLOW_RUNTIME_LORA_UPDATING);
  const promptDetails = options.enablePromptTokensDetails ?? true;
  const devMode = options.devMode ?? envTrue(process.env.VLLM_SERVER_DEV_MODE);
  const dialect = options.dialect ?? 'vllm';
  if (dialect !== 'vllm' && dialect !== 'sglang') throw new Error(`dialect: must be "vllm" or "sglang", got ${JSON.stringify(dialect)}`);
  const sglang = dialect === 'sglang';
  const input: EngineConfigInput = {
    model: options.model,
    ...(options.gpu !== undefined && { gpu: options.gpu }),
    ...(options.tensorParallelSize !== undefined && { tensorParallel: options.tensorParallelSize }),
    ...(options.maxNumSeqs !== undefined && { maxNumSeqs: options.maxNumSeqs }),
    ...(options.maxNumBatchedTokens !== undefined && { maxNumBatchedTokens: options.maxNumBatchedTokens }),
    ...(options.maxModelLen !== undefined && { maxModelLen: options.maxModelLen }),
    ...(options.gpuMemoryUtilization !== undefined && { gpuMemoryUtilization: options.gpuMemoryUtilization }),
    ...(options.blockSize !== undefined && { blockSize: options.blockSize }),
    ...(options.enablePrefixCaching !== undefined && { enablePrefixCaching: options.enablePrefixCaching }),
    ...(options.kvOffloadGiB !== undefined && { kvOffloadGiB: options.kvOffloadGiB }),
    ...(options.numGpuBlocksOverride !== undefined && { numGpuBlocksOverride: options.numGpuBlocksOverride }),
    ...(options.enableLora !== undefined && { enableLora: options.enableLora }),
    ...(options.maxLoras !== undefined && { maxLoras: options.maxLoras }),
    ...(options.maxCpuLoras !== undefined && { maxCpuLoras: options.maxCpuLoras }),
    ...(options.maxLoraRank !== undefined && { maxLoraRank: options.maxLoraRank }),
    seed,
    ...options.engine,
  };
  const config = resolveEngineConfig(input);
  const maxModelLen = config.maxModelLen;

  // KV events
  let publisher: KvEventPublisher | null = null;
  if (options.kvEventsEndpoint) {
    publisher = await KvEventPublisher.create({
      endpoint: options.kvEventsEndpoint,
      ...(options.kvEventsTopic !== undefined && { topic: options.kvEventsTopic }),
      ...(options.kvEventsReplayEndpoint !== undefined && { replayEndpoint: options.kvEventsReplayEndpoint }),
    });
  }
  let pendingEvents: KvCacheEvent[] = [];
  const flushEvents = (): void => {
    if (pendingEvents.length === 0) return;
    const events = pendingEvents;
    pendingEvents = [];
    publisher?.publish({ ts: Date.now() / 1000, events });
  };
  const core = new EngineCore(config, {
    hashBlock: sha256CborBlockHasher(hashSeed),
    ...(publisher && { onKvEvent: (e: KvEvent) => void pendingEvents.push(wireKvEvent(e)) }),
  });

  let driverRef: WallClockDriver | null = null;
  const metrics: EngineMetricsSink = sglang
    ? new SglangMetrics(modelName, () => driverRef?.nowMs() ?? 0)
    : new SimMetrics({
    modelName,
    maxModelLen,
    cacheConfigInfo: {
      block_size: String(config.blockSize),
      cache_dtype: 'auto',
      calculate_kv_scales: 'False',
      enable_prefix_caching: pyStr(config.enablePrefixCaching),
      gpu_memory_utilization: String(config.gpuMemoryUtilization),
      is_attention_free: 'False',
      num_cpu_blocks: config.numCpuBlocks > 0 ? String(config.numCpuBlocks) : 'None',
      num_gpu_blocks: String(config.numGpuBlocks),
      num_gpu_blocks_override: pyStr(options.numGpuBlocksOverride),
      prefix_caching_hash_algo: 'sha256_cbor',
      sliding_window: 'None',
      swap_space: '4',
    },
    ...(config.enableLora && { maxLoras: config.maxLoras }),
    ...(options.v0Metrics && { v0Metrics: true }),
      });

  const driver = new WallClockDriver(core, {
    timeScale,
    onStep: (res) => {
      metrics.observeStep(res.prefillTokens + res.decodeRequests);
      if (config.enableLora) metrics.refreshLora(core.snapshot(), Date.now() / 1000);
      flushEvents();
    },
  });
  driverRef = driver;

  // LoRA registry (served adapters), ids from a counter as vLLM's OpenAIServingModels does
  const loras = new Map<string, { path: string; id: number; baseModelName: string | undefined }>();
  let loraCounter = 0;
  const addLora = (m: LoraModule): void => {
    core.loadAdapter(m.name);
    loras.set(m.name, { path: m.path, id: ++loraCounter, baseModelName: m.baseModelName });
    flushEvents();
  };
  for (const m of options.loraModules ?? []) {
    if (!config.enableLora) throw new Error('loraModules: --lora-modules needs --enable-lora');
    addLora(m);
  }

  const tokenizer: Tokenizer = tokenizerFor(typeof options.model === 'string' ? options.model : modelName);
  const vocab: WordVocab = wordVocab(tokenizer);
  const createdS = Math.floor(Date.now() / 1000);
  let reqCounter = 0;
  const flusher = new Flusher();

  const resolveModelName = (name: string | undefined): { adapter?: string } => {
    if (name === undefined || servedNames.includes(name)) return {};
    if (loras.has(name)) return { adapter: name };
    throw new ApiError(404, `The model \`${name}\` does not exist.`, 'NotFoundError', 404, 'model');
  };

  const encodePrompt = (text: string, addSpecial: boolean): number[] => {
    const ids = tokenizer.encode(text);
    return addSpecial && tokenizer.name === 'llama3' ? [BOS_LLAMA3, ...ids] : ids;
  };

  const contextError = (promptLen: number, maxTokens: number | undefined): ApiError => {
    const msg =
      maxTokens === undefined
        ? `This model's maximum context length is ${maxModelLen} tokens. However, your request has ${promptLen} input tokens. Please reduce the length of the input messages.`
        : `This model's maximum context length is ${maxModelLen} tokens. However, you requested ${maxTokens} output tokens and your prompt contains ${promptLen} input tokens, for a total of ${promptLen + maxTokens} tokens. Please reduce the length of the input prompt or the number of requested output tokens.`;
    return new ApiError(400, msg, 'BadRequestError', 400, 'input_tokens');
  };

  async function handleGenerate(kind: 'completion' | 'chat', req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = parseJsonBody(await readBody(req));
    const parsed: CompletionRequest | ChatCompletionRequest = kind === 'chat' ? parseChatCompletionRequest(body) : parseCompletionRequest(body);
    let { adapter } = resolveModelName(parsed.model);
    const loraPath = (parsed as Record<string, unknown>).lora_path;
    if (sglang && typeof loraPath === 'string' && loraPath) {
      const byName = loras.has(loraPath) ? loraPath : [...loras].find(([, l]) => l.path === loraPath)?.[0];
      if (byName === undefined) throw new ApiError(400, `LoRA adapter ${loraPath} is not loaded.`, 'BadRequestError', 400, 'lora_path');
      adapter = byName;
    }
    let promptIds: number[];
    if (kind === 'chat') {
      promptIds = tokenizer.encode(renderChat((parsed as ChatCompletionRequest).messages as ChatMessage[]));
    } else {
      const p = (parsed as CompletionRequest).prompt;
      if (typeof p === 'string') promptIds = encodePrompt(p, true);
      else if (p.length === 1 && typeof p[0] === 'string') promptIds = encodePrompt(p[0], true);
      else if (p.length === 1 && Array.isArray(p[0])) promptIds = p[0];
      else if (typeof p[0] === 'number') promptIds = p as number[];
      else throw new ApiError(400, 'Batched prompts (more than one prompt per request) are not supported by the simulator; send one request per prompt.', 'BadRequestError', 400, 'prompt');
      if (promptIds.length === 0) throw new ApiError(400, 'The prompt is empty.', 'BadRequestError', 400, 'prompt');
    }
    const promptLen = promptIds.length;
    const maxTokParam = requestedMaxTokens(parsed);
    if (maxTokParam !== undefined ? promptLen + maxTokParam > maxModelLen : promptLen >= maxModelLen) throw contextError(promptLen, maxTokParam);
    const maxTokens = maxTokParam ?? maxModelLen - promptLen;
    const rseed = seedFor(parsed.seed ?? seed, promptIds);
    const natural = parsed.ignore_eos ? Infinity : Math.max(parsed.min_tokens ?? 0, naturalOutputLength(rseed));
    const coreMax = Math.min(maxTokens, natural);
    const endReason: 'stop' | 'length' = natural <= maxTokens ? 'stop' : 'length';
    const stream = parsed.stream === true;
    const includeUsage = stream && wantsStreamUsage(parsed);
    const continuousUsage = stream && parsed.stream_options?.continuous_usage_stats === true;
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replace(/-/g, '')}`;
    const coreId = `r${++reqCounter}`;
    const model = parsed.model;
    const text = new TextStream(vocab, rseed);
    const frame = contentChunkFrame(kind, id, model, createdS);
    const orcaHdr = String(req.headers['endpoint-load-metrics-format'] ?? '').toUpperCase();
    const orcaFormat = orcaHdr === 'TEXT' || orcaHdr === 'JSON' ? orcaHdr : null;
    const writer = new CoalescingWriter(res, flusher);
    let out = '';
    let generated = 0;
    let cached = 0;
    let arrival = 0;
    let firstScheduled: number | undefined;
    let firstTokenAt: number | undefined;
    let lastTokenAt = 0;
    let done = false;
    const usage = (): Usage => buildUsage(promptLen, generated, promptDetails ? cached : undefined);

    const finish = (reason: 'stop' | 'length' | 'abort', atMs: number): void => {
      done = true;
      metrics.observeFinished({
        reason,
        promptTokens: promptLen,
        generationTokens: generated,
        cachedTokens: cached,
        ...(maxTokParam !== undefined && { maxTokensParam: maxTokParam }),
        maxGenerationTokens: maxTokens,
        e2eS: (atMs - arrival) / 1000,
        ...(firstScheduled !== undefined && { queueS: Math.max(0, firstScheduled - arrival) / 1000, inferenceS: (atMs - firstScheduled) / 1000 }),
        ...(firstTokenAt !== undefined && firstScheduled !== undefined && { prefillS: (firstTokenAt - firstScheduled) / 1000, decodeS: (atMs - firstTokenAt) / 1000 }),
      });
    };

    const onOutput = (o: StepOutput, stepStart: number, at: number): void => {
      if (firstScheduled === undefined) firstScheduled = stepStart;
      let piece = '';
      if (o.newTokens > 0) {
        piece = text.next(o.newTokens).text;
        if (o.firstToken || firstTokenAt === undefined) {
          firstTokenAt = at;
          cached = o.cachedPromptTokens ?? 0;
          metrics.observeFirstToken((at - arrival) / 1000, promptLen);
        } else {
          metrics.observeItl((at - lastTokenAt) / 1000);
        }
        lastTokenAt = at;
        generated += o.newTokens;
        metrics.observeGenerated(o.newTokens);
      }
      const reason: FinishReason = o.finished ? (o.finishReason === 'abort' ? 'abort' : endReason) : null;
      if (stream) {
        let frames = '';
        if (kind === 'chat' && piece && generated === o.newTokens) frames += sseData(buildChatChunk(id, model, createdS, '', null, true));
        if (piece && !reason && !continuousUsage) frames += frame(piece);
        else if (piece || reason) {
          const chunk = kind === 'chat' ? buildChatChunk(id, model, createdS, piece, reason) : buildCompletionChunk(id, model, createdS, piece, reason);
          if (continuousUsage) chunk.usage = usage();
          frames += sseData(chunk);
        }
        if (o.finished) {
          finish(reason === 'abort' ? 'abort' : endReason, at);
          if (includeUsage) frames += sseData(buildUsageChunk(kind, id, model, createdS, usage()));
          writer.end(frames + SSE_DONE_FRAME);
        } else if (frames) writer.push(frames);
        return;
      }
      out += piece;
      if (o.finished) {
        finish(reason === 'abort' ? 'abort' : endReason, at);
        const u = usage();
        const extra: Record<string, string> = {};
        if (orcaFormat) extra['endpoint-load-metrics'] = orcaHeader(orcaFormat, core.snapshot());
        sendJson(res, 200, kind === 'chat' ? buildChatResponse(id, model, createdS, out, reason, u) : buildCompletionResponse(id, model, createdS, out, reason, u), extra);
      }
    };

    try {
      arrival = driver.submit({ id: coreId, promptTokenIds: promptIds, maxTokens: coreMax, ...(adapter !== undefined && { adapter }) }, { onOutput });
    } catch (e) {
      if (e instanceof EngineError) throw engineErrorToApi(e);
      throw e;
    }
    res.on('close', () => {
      if (done) return;
      driver.abort(coreId);
      finish('abort', Math.max(arrival, driver.nowMs()));
    });
    if (stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-request-id': id });
      res.flushHeaders();
    }
  }

  async function handleTokenize(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = parseJsonBody(await readBody(req)) as Record<string, unknown>;
    if (!body || typeof body !== 'object') throw new ApiError(400, 'Request body must be a JSON object.', 'BadRequestError', 400);
    resolveModelName(typeof body.model === 'string' ? body.model : undefined);
    let tokens: number[];
    if (Array.isArray(body.messages)) {
      tokens = tokenizer.encode(renderChat(body.messages as ChatMessage[]));
    } else if (typeof body.prompt === 'string') {
      tokens = encodePrompt(body.prompt, body.add_special_tokens !== false);
    } else throw new ApiError(400, "Either 'prompt' (string) or 'messages' must be given.", 'BadRequestError', 400, 'prompt');
    const reply: Record<string, unknown> = { count: tokens.length, max_model_len: maxModelLen, tokens };
    if (body.return_token_strs === true) reply.token_strs = tokens.map((t) => tokenizer.decode([t]));
    sendJson(res, 200, reply);
  }

  async function handleDetokenize(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = parseJsonBody(await readBody(req)) as Record<string, unknown>;
    if (!body || typeof body !== 'object') throw new ApiError(400, 'Request body must be a JSON object.', 'BadRequestError', 400);
    resolveModelName(typeof body.model === 'string' ? body.model : undefined);
    const toks = body.tokens;
    if (!Array.isArray(toks) || !toks.every((t) => Number.isInteger(t) && t >= 0 && t < tokenizer.vocabSize))
      throw new ApiError(400, `'tokens' must be a list of token ids in [0, ${tokenizer.vocabSize}).`, 'BadRequestError', 400, 'tokens');
    sendJson(res, 200, { prompt: tokenizer.decode(toks as number[]) });
  }

  function requireJson(req: http.IncomingMessage): void {
    const ct = (req.headers['content-type'] ?? '').toLowerCase();
    if (!ct.startsWith('application/json')) throw new ApiError(415, 'Unsupported Media Type: Only \'application/json\' is allowed', 'Unsupported Media Type', 415);
  }

  async function handleLoadLora(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    requireJson(req);
    const body = parseJsonBody(await readBody(req)) as Record<string, unknown>;
    const name = typeof body?.lora_name === 'string' ? body.lora_name : '';
    const path = typeof body?.lora_path === 'string' ? body.lora_path : '';
    if (!name || !path) throw new ApiError(400, "Both 'lora_name' and 'lora_path' must be provided.", 'InvalidUserInput', 400);
    const inplace = body.load_inplace === true;
    if (loras.has(name) && !inplace)
      throw new ApiError(400, `The lora adapter '${name}' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True.`, 'InvalidUserInput', 400);
    if (loras.has(name)) {
      loras.get(name)!.path = path; // in-place reload keeps the id (vLLM reuses it)
    } else {
      if (!config.enableLora) throw new ApiError(400, 'LoRA is not enabled. Use --enable-lora to enable LoRA.', 'BadRequestError', 400);
      try {
        addLora({ name, path });
      } catch (e) {
        if (e instanceof EngineError) throw engineErrorToApi(e);
        throw e;
      }
    }
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(`Success: LoRA adapter '${name}' added successfully.`);
  }

  async function handleUnloadLora(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    requireJson(req);
    const body = parseJsonBody(await readBody(req)) as Record<string, unknown>;
    const name = typeof body?.lora_name === 'string' ? body.lora_name : '';
    if (!name) throw new ApiError(400, "'lora_name' needs to be provided to unload a LoRA adapter.", 'InvalidUserInput', 400);
    if (!loras.has(name)) throw new ApiError(404, `The lora adapter '${name}' cannot be found.`, 'NotFoundError', 404);
    try {
      core.unloadAdapter(name);
    } catch (e) {
      if (e instanceof EngineError) throw engineErrorToApi(e);
      throw e;
    }
    loras.delete(name);
    flushEvents();
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(`Success: LoRA adapter '${name}' removed successfully.`);
  }

  /** SGLang `LoRAUpdateOutput` reply: `{success, error_message, loaded_adapters}` with 200 or 400. */
  function sglangLoraReply(res: http.ServerResponse, error: string | null): void {
    const loaded: Record<string, string> = {};
    for (const [n, l] of loras) loaded[n] = l.path;
    sendJson(res, error === null ? 200 : 400, { success: error === null, error_message: error, loaded_adapters: loaded });
  }

  async function handleSglangLora(op: 'load' | 'unload', req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = parseJsonBody(await readBody(req)) as Record<string, unknown>;
    const name = typeof body?.lora_name === 'string' ? body.lora_name : '';
    if (!name) return sglangLoraReply(res, "'lora_name' must be provided.");
    if (op === 'load') {
      const path = typeof body.lora_path === 'string' ? body.lora_path : '';
      if (!path) return sglangLoraReply(res, "'lora_path' must be provided.");
      if (!config.enableLora) return sglangLoraReply(res, 'LoRA is not enabled; start the server with --enable-lora.');
      if (loras.has(name)) return sglangLoraReply(res, `The LoRA adapter ${name} is already loaded.`);
      try {
        addLora({ name, path });
      } catch (e) {
        return sglangLoraReply(res, (e as Error).message);
      }
      return sglangLoraReply(res, null);
    }
    if (!loras.has(name)) return sglangLoraReply(res, `The LoRA adapter ${name} is not loaded.`);
    try {
      core.unloadAdapter(name);
    } catch (e) {
      return sglangLoraReply(res, (e as Error).message);
    }
    loras.delete(name);
    flushEvents();
    return sglangLoraReply(res, null);
  }

  function modelsList(): unknown {
    const perm = (): unknown => ({
      id: `modelperm-${randomUUID().replace(/-/g, '')}`,
      object: 'model_permission',
      created: createdS,
      allow_create_engine: false,
      allow_sampling: true,
      allow_logprobs: true,
      allow_search_indices: false,
      allow_view: true,
      allow_fine_tuning: false,
      organization: '*',
      group: null,
      is_blocking: false,
    });
    const owner = sglang ? 'sglang' : 'vllm';
    const data: unknown[] = servedNames.map((n) => ({ id: n, object: 'model', created: createdS, owned_by: owner, root: options.model, parent: null, max_model_len: maxModelLen, permission: [perm()] }));
    for (const [name, l] of loras) data.push({ id: name, object: 'model', created: createdS, owned_by: owner, root: l.path, parent: l.baseModelName ?? modelName, max_model_len: null, permission: [perm()] });
    return { object: 'list', data };
  }

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const m = req.method ?? 'GET';
    const only = (...methods: string[]): boolean => {
      if (methods.includes(m)) return true;
      sendJson(res, 405, { detail: 'Method Not Allowed' });
      return false;
    };
    if (sglang) {
      switch (path) {
        case '/load_lora_adapter':
          if (only('POST')) await handleSglangLora('load', req, res);
          return;
        case '/unload_lora_adapter':
          if (only('POST')) await handleSglangLora('unload', req, res);
          return;
        case '/get_model_info':
          if (only('GET')) sendJson(res, 200, { model_path: options.model, tokenizer_path: options.model, is_generation: true });
          return;
        case '/health_generate':
          if (only('GET')) {
            res.writeHead(200, { 'content-length': 0 });
            res.end();
          }
          return;
        case '/version':
        case '/load':
        case '/reset_prefix_cache':
        case '/v1/load_lora_adapter':
        case '/v1/unload_lora_adapter':
          sendJson(res, 404, { detail: 'Not Found' });
          return;
      }
    }
    switch (path) {
      case '/v1/completions':
        if (only('POST')) await handleGenerate('completion', req, res);
        return;
      case '/v1/chat/completions':
        if (only('POST')) await handleGenerate('chat', req, res);
        return;
      case '/v1/models':
        if (only('GET')) sendJson(res, 200, modelsList());
        return;
      case '/health':
        if (only('GET')) {
          res.writeHead(200, { 'content-length': 0 });
          res.end();
        }
        return;
      case '/ping':
        if (only('GET', 'POST')) {
          res.writeHead(200, { 'content-length': 0 });
          res.end();
        }
        return;
      case '/version':
        if (only('GET')) sendJson(res, 200, { version: SIM_VLLM_VERSION });
        return;
      case '/load':
        if (only('GET')) sendJson(res, 200, { server_load: driver.inflight });
        return;
      case '/tokenize':
        if (only('POST')) await handleTokenize(req, res);
        return;
      case '/detokenize':
        if (only('POST')) await handleDetokenize(req, res);
        return;
      case '/metrics':
        if (only('GET')) {
          metrics.refresh(core.snapshot(), Date.now() / 1000, config.blockSize);
          const text = await metrics.render();
          res.writeHead(200, { 'content-type': metrics.contentType });
          res.end(text);
        }
        return;
      case '/reset_prefix_cache':
        if (!devMode) break;
        if (only('POST')) {
          core.resetPrefixCache();
          flushEvents();
          res.writeHead(200, { 'content-length': 0 });
          res.end();
        }
        return;
      case '/v1/load_lora_adapter':
        if (!allowLoraRoutes) break;
        if (only('POST')) await handleLoadLora(req, res);
        return;
      case '/v1/unload_lora_adapter':
        if (!allowLoraRoutes) break;
        if (only('POST')) await handleUnloadLora(req, res);
        return;
    }
    sendJson(res, 404, { detail: 'Not Found' });
  }

  const server = http.createServer((req, res) => {
    route(req, res).catch((e: unknown) => {
      const err = e instanceof ApiError ? e : new ApiError(500, `Internal server error: ${(e as Error)?.message ?? String(e)}`, 'InternalServerError', 500);
      sendError(res, err, sglang);
    });
  });
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 0;
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  let closed = false;
  const handle: SimServerHandle = {
    url: `http://${urlHost}:${port}`,
    port,
    host,
    modelName,
    config,
    core,
    close: async () => {
      if (closed) return;
      closed = true;
      driver.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await publisher?.close();
    },
  };
  if (publisher) {
    handle.kvEventsEndpoint = publisher.lastEndpoint;
    if (publisher.replayLastEndpoint) handle.kvEventsReplayEndpoint = publisher.replayLastEndpoint;
  }
  return handle;
}
