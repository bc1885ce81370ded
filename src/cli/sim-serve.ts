/**
 * `inferplane sim serve`: one simulated vLLM engine over HTTP, with flags named like `vllm serve`'s.
 * See docs/sim-server.md. Bad flag values fail with the flag's name.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { startSimServer, type LoraModule, type SimServerOptions } from '../sim/server/server.ts';

function int(flag: string, min = 0) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${flag} must be an integer >= ${min}, got "${v}"`);
    return n;
  };
}

function num(flag: string, { min = -Infinity, max = Infinity, exclusiveMin = false } = {}) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || (exclusiveMin && n === min) || n > max) throw new InvalidArgumentError(`${flag} must be a number in ${exclusiveMin ? '(' : '['}${min}, ${max}], got "${v}"`);
    return n;
  };
}

/**
 * Parses one `--lora-modules` item: `name=path` or JSON `{"name","path","base_model_name"?}` (vLLM's two forms).
 * @throws InvalidArgumentError naming the flag.
 */
export function parseLoraModule(v: string): LoraModule {
  const s = v.trim();
  if (s.startsWith('{')) {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(s) as Record<string, unknown>;
    } catch {
      throw new InvalidArgumentError(`--lora-modules: invalid JSON "${v}"`);
    }
    if (typeof o.name !== 'string' || !o.name || typeof o.path !== 'string' || !o.path) throw new InvalidArgumentError(`--lora-modules: JSON form needs "name" and "path", got ${v}`);
    return { name: o.name, path: o.path, ...(typeof o.base_model_name === 'string' && { baseModelName: o.base_model_name }) };
  }
  const eq = s.indexOf('=');
  if (eq <= 0 || eq === s.length - 1) throw new InvalidArgumentError(`--lora-modules: expected name=path, got "${v}"`);
  return { name: s.slice(0, eq), path: s.slice(eq + 1) };
}

/**
 * Reads vLLM's `--kv-events-config` JSON (`{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":...,"topic":...,"replay_endpoint":...}`).
 * @throws InvalidArgumentError naming the flag and field.
 */
export function parseKvEventsConfig(v: string): { endpoint?: string; topic?: string; replayEndpoint?: string } {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(v) as Record<string, unknown>;
  } catch {
    throw new InvalidArgumentError(`--kv-events-config: invalid JSON "${v}"`);
  }
  if (!o || typeof o !== 'object') throw new InvalidArgumentError('--kv-events-config: must be a JSON object');
  if (o.enable_kv_cache_events !== true) return {};
  if (o.publisher !== undefined && o.publisher !== 'zmq') throw new InvalidArgumentError(`--kv-events-config.publisher: only "zmq" is supported, got ${JSON.stringify(o.publisher)}`);
  for (const k of ['endpoint', 'topic', 'replay_endpoint'])
    if (o[k] !== undefined && o[k] !== null && typeof o[k] !== 'string') throw new InvalidArgumentError(`--kv-events-config.${k}: must be a string`);
  return {
    endpoint: (o.endpoint as string | undefined) ?? 'tcp://*:5557',
    ...(typeof o.topic === 'string' && { topic: o.topic }),
    ...(typeof o.replay_endpoint === 'string' && { replayEndpoint: o.replay_endpoint }),
  };
}

/**
 * Flags as commander parses them: `SimServerOptions` (same names, camelCase vLLM flags) except the
 * spelling of `--kv-offload-gib` and vLLM's `--kv-events-config` JSON, which `flagsToOptions` folds
 * into the KV-event options (explicit `--kv-events-*` flags win).
 */
type ServeFlags = Omit<SimServerOptions, 'kvOffloadGiB' | 'host' | 'port' | 'timeScale' | 'enablePrefixCaching' | 'enablePromptTokensDetails'> & {
  host: string;
  port: number;
  timeScale: number;
  enablePrefixCaching: boolean;
  enablePromptTokensDetails: boolean;
  kvOffloadGib?: number;
  kvEventsConfig?: { endpoint?: string; topic?: string; replayEndpoint?: string };
};

/** Converts parsed flags to `startSimServer` options (commander sets only the flags given or defaulted). */
export function flagsToOptions(f: ServeFlags): SimServerOptions {
  const { kvOffloadGib, kvEventsConfig: kv = {}, ...rest } = f;
  const endpoint = f.kvEventsEndpoint ?? kv.endpoint;
  const topic = f.kvEventsTopic ?? kv.topic;
  const replay = f.kvEventsReplayEndpoint ?? kv.replayEndpoint;
  return {
    ...rest,
    ...(kvOffloadGib !== undefined && { kvOffloadGiB: kvOffloadGib }),
    ...(endpoint !== undefined && { kvEventsEndpoint: endpoint }),
    ...(topic !== undefined && { kvEventsTopic: topic }),
    ...(replay !== undefined && { kvEventsReplayEndpoint: replay }),
  };
}

/** Registers `inferplane sim serve` on the `sim` command. */
export function registerSimServe(sim: Command): void {
  sim
    .command('serve')
    .description('Run one simulated vLLM engine over HTTP (OpenAI API, /metrics, LoRA routes, KV events)')
    .requiredOption('--model <name>', 'model (catalog id/alias, e.g. meta-llama/Llama-3.1-8B-Instruct)')
    .option('--served-model-name <names...>', 'names clients use in "model" (default: --model)')
    .option('--host <host>', 'listen address', '127.0.0.1')
    .option('--port <port>', 'listen port (0 = any free port)', int('--port'), 8000)
    .option('--gpu <type>', 'GPU type (H100, H200, A100-80GB, A100-40GB, L40S, L20, A10, L4, V100, ...)')
    .option('--tensor-parallel-size <n>', 'tensor parallel degree (1-8)', int('--tensor-parallel-size', 1))
    .option('--max-num-seqs <n>', 'max running requests', int('--max-num-seqs', 1))
    .option('--max-num-batched-tokens <n>', 'per-step token budget', int('--max-num-batched-tokens', 1))
    .option('--max-model-len <n>', 'context length (prompt + output tokens)', int('--max-model-len', 1))
    .option('--gpu-memory-utilization <f>', 'fraction of GPU memory for weights + KV cache', num('--gpu-memory-utilization', { min: 0, max: 1, exclusiveMin: true }))
    .option('--block-size <n>', 'KV cache block size (tokens)', int('--block-size', 1))
    .option('--enable-prefix-caching', 'enable prefix caching (default)')
    .option('--no-enable-prefix-caching', 'disable prefix caching')
    .option('--kv-offload-gib <gib>', 'CPU KV tier size in GiB (0 = off)', num('--kv-offload-gib', { min: 0 }))
    .option('--num-gpu-blocks-override <n>', 'force the number of GPU KV blocks', int('--num-gpu-blocks-override', 1))
    .option('--enable-lora', 'enable LoRA adapters')
    .option('--max-loras <n>', 'LoRA adapters per batch (GPU slots)', int('--max-loras', 1))
    .option('--max-cpu-loras <n>', 'LoRA adapters cached in CPU memory', int('--max-cpu-loras', 1))
    .option('--max-lora-rank <n>', 'max LoRA rank (1,8,16,32,64,128,256,320,512)', int('--max-lora-rank', 1))
    .option('--lora-modules <specs...>', 'adapters loaded at start: name=path or JSON {"name","path","base_model_name"}', (v: string, prev: LoraModule[] = []) => [...prev, parseLoraModule(v)])
    .option('--seed <n>', 'seed of generated text and output lengths', int('--seed'))
    .option('--time-scale <x>', 'simulated seconds per wall second (e.g. 10 = 10x faster)', num('--time-scale', { min: 0, exclusiveMin: true }), 1)
    .option('--kv-events-endpoint <endpoint>', 'ZMQ PUB endpoint for KV events, e.g. tcp://*:5557')
    .option('--kv-events-topic <topic>', 'topic frame of KV events (default "")')
    .option('--kv-events-replay-endpoint <endpoint>', 'ZMQ ROUTER endpoint replaying recent KV-event batches')
    .option('--kv-events-config <json>', "vLLM's KV-events config JSON (enable_kv_cache_events, endpoint, topic, replay_endpoint)", parseKvEventsConfig)
    .option('--v0-metrics', 'also export V0 / early-V1 metric names (vllm:gpu_cache_usage_perc, ...)')
    .option('--dialect <engine>', 'engine to impersonate: vllm (default) or sglang (SGLang metric names, LoRA routes, error shape)', (v: string) => {
      if (v !== 'vllm' && v !== 'sglang') throw new InvalidArgumentError(`--dialect must be vllm or sglang, got "${v}"`);
      return v;
    })
    .option('--enable-prompt-tokens-details', 'report prompt_tokens_details.cached_tokens in usage (default)')
    .option('--no-enable-prompt-tokens-details', 'omit prompt_tokens_details from usage')
    .action(async (flags: ServeFlags) => {
      const handle = await startSimServer(flagsToOptions(flags)).catch((e: Error) => {
        process.stderr.write(`inferplane sim serve: ${e.message}\n`);
        process.exit(2);
      });
      const c = handle.config;
      process.stderr.write(
        `INFO: simulated ${c.model.id} on ${c.gpu.id} x${c.tensorParallel}: ${c.numGpuBlocks} KV blocks of ${c.blockSize} tokens, max_model_len ${c.maxModelLen}, time scale ${flags.timeScale}x\n` +
          (handle.kvEventsEndpoint ? `INFO: KV events on ${handle.kvEventsEndpoint}\n` : '') +
          `INFO: Uvicorn running on ${handle.url} (Press CTRL+C to quit)\n`,
      );
      const stop = (): void => {
        void handle.close().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
