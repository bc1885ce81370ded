/**
 * Engine configuration of a simulated vLLM engine: the schema (zod), its defaults (vLLM's), and the
 * resolver that turns it into everything the core needs (model and GPU specs, KV block counts).
 */
import { z } from 'zod';
import { kvBytesPerTokenPerGpu, resolveGpu, resolveModel, type GpuSpec, type HfModelConfig, type ModelSpec } from './catalog.ts';

const GiB = 1024 ** 3;

/** Allowed `--max-lora-rank` values (vLLM `vllm/config/lora.py`). */
export const LORA_RANKS = [1, 8, 16, 32, 64, 128, 256, 320, 512] as const;

/**
 * Engine flags, named like vLLM's (camelCase). Every field but `model` and `gpu` is optional.
 *
 * Defaults (vLLM V1, `vllm/engine/arg_utils.py` `_set_default_args` for the OpenAI API server):
 * `maxNumSeqs` 1024 and `maxNumBatchedTokens` 8192 on GPUs with >= 70 GiB that are not A100
 * (H100, H200), else 256 and 2048; `maxModelLen` = the model's `max_position_embeddings`;
 * `blockSize` 16; `gpuMemoryUtilization` 0.9; prefix caching and chunked prefill on;
 * `maxLoras` 1, `maxCpuLoras` = maxLoras, `maxLoraRank` 16 (`vllm/config/lora.py`).
 */
export const engineConfigSchema = z
  .object({
    /** HF model id / alias from the catalog, or an HF-style `config.json` object. */
    model: z.union([z.string().min(1), z.record(z.unknown())]),
    /** GPU type (catalog id or alias, e.g. `H100`). */
    gpu: z.string().min(1).default('H100-SXM'),
    tensorParallel: z.number().int().min(1).max(8).default(1),
    maxNumSeqs: z.number().int().min(1).optional(),
    maxNumBatchedTokens: z.number().int().min(1).optional(),
    maxModelLen: z.number().int().min(1).optional(),
    blockSize: z.number().int().min(1).max(256).default(16),
    gpuMemoryUtilization: z.number().gt(0).max(1).default(0.9),
    enablePrefixCaching: z.boolean().default(true),
    enableChunkedPrefill: z.boolean().default(true),
    /** CPU (DRAM) KV offload tier size (GiB); 0 disables it. */
    kvOffloadGiB: z.number().min(0).default(0),
    /** Host-device bandwidth for CPU-tier hits and LoRA swaps (GB/s = 1e9 bytes/s); PCIe Gen5 x16 effective ~ 50. */
    pcieGBps: z.number().positive().default(50),
    enableLora: z.boolean().default(false),
    maxLoras: z.number().int().min(1).default(1),
    maxCpuLoras: z.number().int().min(1).optional(),
    maxLoraRank: z.number().int().refine((r) => (LORA_RANKS as readonly number[]).includes(r), { message: `must be one of ${LORA_RANKS.join(', ')}` }).default(16),
    /** Override the number of GPU KV blocks (tests, what-if); derived from memory when absent. */
    numGpuBlocksOverride: z.number().int().min(1).optional(),
    /** Seed for anything random in the core (currently nothing is; kept for the server's text generator). */
    seed: z.number().int().default(0),
  })
  .strict();

/** Engine flags as written by a user (before defaults). */
export type EngineConfigInput = z.input<typeof engineConfigSchema>;

/** Engine flags with defaults applied and derived quantities (all validated). */
export interface EngineConfig {
  model: ModelSpec;
  gpu: GpuSpec;
  tensorParallel: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  maxModelLen: number;
  blockSize: number;
  gpuMemoryUtilization: number;
  enablePrefixCaching: boolean;
  enableChunkedPrefill: boolean;
  kvOffloadGiB: number;
  pcieGBps: number;
  enableLora: boolean;
  maxLoras: number;
  maxCpuLoras: number;
  maxLoraRank: number;
  seed: number;
  /** Bytes of KV cache per token on one GPU (see `kvBytesPerTokenPerGpu`). */
  kvBytesPerTokenPerGpu: number;
  /** Model weight bytes held by one GPU (total / TP). */
  weightBytesPerGpu: number;
  /** GPU KV blocks (per engine; every TP rank holds the same block table). */
  numGpuBlocks: number;
  /** CPU-tier KV blocks (0 when `kvOffloadGiB` is 0). */
  numCpuBlocks: number;
}

/**
 * Memory vLLM reserves besides weights and KV cache, per GPU (bytes): activations of the profiling
 * run, CUDA graphs and the non-torch allocations. An assumption (about 2 GiB at TP1, measured
 * `gpu_memory_utilization` profiles typically show 1-3 GiB), not a fitted value.
 */
export function reservedBytesPerGpu(m: ModelSpec, maxNumBatchedTokens: number): number {
  const activations = maxNumBatchedTokens * (m.hiddenSize * 4 + m.intermediateSize * 2) * 2;
  return 1.25 * GiB + activations;
}

function formatZodError(prefix: string, err: z.ZodError): string {
  return err.issues.map((i) => `${prefix}${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
}

/**
 * Validates engine flags and derives the KV block counts.
 *
 * GPU blocks = floor((memory x gpuMemoryUtilization - weights/TP - reserved) / (blockSize x KV bytes
 * per token per GPU)), as vLLM's `determine_available_memory` + `get_kv_cache_config` do.
 *
 * @param fieldPrefix prefix for error paths (e.g. `engine.` when nested in an experiment file).
 * @throws Error naming the field (e.g. `engine.maxNumSeqs: Expected number`), listing the known
 *   models/GPUs for unknown names, or explaining why the model does not fit the GPU memory.
 */
export function resolveEngineConfig(input: EngineConfigInput, fieldPrefix = ''): EngineConfig {
  const parsed = engineConfigSchema.safeParse(input);
  if (!parsed.success) throw new Error(formatZodError(fieldPrefix, parsed.error));
  const c = parsed.data;
  let model: ModelSpec;
  try {
    model = resolveModel(c.model as string | HfModelConfig);
  } catch (e) {
    throw new Error(`${fieldPrefix}model: ${(e as Error).message}`);
  }
  let gpu: GpuSpec;
  try {
    gpu = resolveGpu(c.gpu);
  } catch (e) {
    throw new Error(`${fieldPrefix}gpu: ${(e as Error).message}`);
  }
  const tp = c.tensorParallel;
  if (model.numHeads % tp !== 0) throw new Error(`${fieldPrefix}tensorParallel: ${tp} does not divide the model's ${model.numHeads} attention heads`);
  const big = gpu.memoryGiB >= 70 && !gpu.id.startsWith('A100');
  const maxNumSeqs = c.maxNumSeqs ?? (big ? 1024 : 256);
  const maxModelLen = c.maxModelLen ?? model.maxPositionEmbeddings;
  const maxNumBatchedTokens = c.maxNumBatchedTokens ?? (c.enableChunkedPrefill ? (big ? 8192 : 2048) : Math.max(maxModelLen, 2048));
  if (!c.enableChunkedPrefill && maxNumBatchedTokens < maxModelLen)
    throw new Error(`${fieldPrefix}maxNumBatchedTokens: ${maxNumBatchedTokens} is smaller than maxModelLen (${maxModelLen}) with chunked prefill disabled (vLLM rejects this)`);
  if (maxNumBatchedTokens < maxNumSeqs) throw new Error(`${fieldPrefix}maxNumBatchedTokens: ${maxNumBatchedTokens} must be >= maxNumSeqs (${maxNumSeqs}) (vLLM rejects this)`);
  const maxCpuLoras = c.maxCpuLoras ?? c.maxLoras;
  if (maxCpuLoras < c.maxLoras) throw new Error(`${fieldPrefix}maxCpuLoras: ${maxCpuLoras} must be >= maxLoras (${c.maxLoras})`);
  const kvPerTok = kvBytesPerTokenPerGpu(model, tp);
  const weightBytesPerGpu = (model.paramsTotal * model.weightBytes) / tp;
  const blockBytes = kvPerTok * c.blockSize;
  let numGpuBlocks: number;
  if (c.numGpuBlocksOverride !== undefined) numGpuBlocks = c.numGpuBlocksOverride;
  else {
    const avail = gpu.memoryGiB * GiB * c.gpuMemoryUtilization - weightBytesPerGpu - reservedBytesPerGpu(model, maxNumBatchedTokens);
    numGpuBlocks = Math.floor(avail / blockBytes);
    if (numGpuBlocks <= 0)
      throw new Error(
        `${fieldPrefix}gpu: ${model.id} needs ${(weightBytesPerGpu / GiB).toFixed(1)} GiB of weights plus ${(reservedBytesPerGpu(model, maxNumBatchedTokens) / GiB).toFixed(1)} GiB of activations/overhead per GPU at tensorParallel=${tp} (maxNumBatchedTokens=${maxNumBatchedTokens}), more than ${gpu.id} offers at gpuMemoryUtilization=${c.gpuMemoryUtilization} (${(gpu.memoryGiB * c.gpuMemoryUtilization).toFixed(1)} GiB); raise tensorParallel`,
      );
  }
  if (numGpuBlocks * c.blockSize < Math.min(maxModelLen, 16 * c.blockSize) && c.numGpuBlocksOverride === undefined)
    throw new Error(`${fieldPrefix}maxModelLen: the KV cache (${numGpuBlocks * c.blockSize} tokens) is too small`);
  const numCpuBlocks = Math.floor((c.kvOffloadGiB * GiB) / (kvPerTok * tp * c.blockSize));
  return {
    model,
    gpu,
    tensorParallel: tp,
    maxNumSeqs,
    maxNumBatchedTokens,
    maxModelLen,
    blockSize: c.blockSize,
    gpuMemoryUtilization: c.gpuMemoryUtilization,
    enablePrefixCaching: c.enablePrefixCaching,
    enableChunkedPrefill: c.enableChunkedPrefill,
    kvOffloadGiB: c.kvOffloadGiB,
    pcieGBps: c.pcieGBps,
    enableLora: c.enableLora,
    maxLoras: c.maxLoras,
    maxCpuLoras,
    maxLoraRank: c.maxLoraRank,
    seed: c.seed,
    kvBytesPerTokenPerGpu: kvPerTok,
    weightBytesPerGpu,
    numGpuBlocks,
    numCpuBlocks,
  };
}
