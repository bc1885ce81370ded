/**
 * GPU and model catalogs for the simulator's latency and memory model.
 *
 * GPU peaks are vendor datasheet figures (dense tensor-core TFLOPS, HBM/GDDR bandwidth, memory), as
 * collected in `shared/data/calibration/gpus.json`. Model architectures are the values published in
 * each model's Hugging Face `config.json` (the nine in `shared/data/calibration/models.json`, plus
 * Llama-3.1-8B, Mistral-7B, Mixtral-8x22B, Qwen2.5-14B/72B and Qwen3-8B/14B/32B from their public
 * configs). Any other model can be given as an HF-style config object (`resolveModel`).
 */

/** One GPU type. */
export interface GpuSpec {
  /** Canonical id, e.g. `H100-SXM`. */
  id: string;
  name: string;
  /** Dense BF16 (or FP16 where BF16 is missing) tensor TFLOPS. */
  tflops16: number;
  /** Dense FP8 tensor TFLOPS, or null when the GPU has no FP8 tensor cores. */
  tflops8: number | null;
  /** Device memory (GiB, as the datasheet's "80 GB"). */
  memoryGiB: number;
  /** Memory bandwidth (TB/s = 1e12 bytes/s). */
  memBandwidthTBs: number;
  /** GPU-to-GPU bandwidth used by tensor-parallel all-reduce (GB/s, bidirectional aggregate). */
  interconnectGBs: number;
  /** Other accepted names (case-insensitive). */
  aliases: string[];
}

/** Datasheet catalog (source: shared/data/calibration/gpus.json, vendor datasheets). */
export const GPUS: readonly GpuSpec[] = [
  { id: 'H100-SXM', name: 'NVIDIA H100 SXM5 80GB', tflops16: 989.4, tflops8: 1978.9, memoryGiB: 80, memBandwidthTBs: 3.35, interconnectGBs: 900, aliases: ['H100', 'H100-80GB', 'H100-SXM5'] },
  { id: 'H200', name: 'NVIDIA H200 SXM 141GB', tflops16: 989.4, tflops8: 1978.9, memoryGiB: 141, memBandwidthTBs: 4.8, interconnectGBs: 900, aliases: ['H200-SXM'] },
  { id: 'A100-80GB', name: 'NVIDIA A100 SXM4 80GB', tflops16: 312, tflops8: null, memoryGiB: 80, memBandwidthTBs: 2.039, interconnectGBs: 600, aliases: ['A100', 'A100-SXM-80GB', 'A100-80G'] },
  { id: 'A100-40GB', name: 'NVIDIA A100 SXM4 40GB', tflops16: 312, tflops8: null, memoryGiB: 40, memBandwidthTBs: 1.555, interconnectGBs: 600, aliases: ['A100-40G', 'A100-SXM-40GB'] },
  { id: 'L40S', name: 'NVIDIA L40S 48GB', tflops16: 362.05, tflops8: 733, memoryGiB: 48, memBandwidthTBs: 0.864, interconnectGBs: 64, aliases: [] },
  { id: 'L20', name: 'NVIDIA L20 48GB', tflops16: 119.5, tflops8: 239, memoryGiB: 48, memBandwidthTBs: 0.864, interconnectGBs: 64, aliases: [] },
  { id: 'A10', name: 'NVIDIA A10 24GB', tflops16: 125, tflops8: null, memoryGiB: 24, memBandwidthTBs: 0.6, interconnectGBs: 64, aliases: [] },
  { id: 'A10G', name: 'NVIDIA A10G 24GB (AWS G5)', tflops16: 70, tflops8: null, memoryGiB: 24, memBandwidthTBs: 0.6, interconnectGBs: 64, aliases: [] },
  { id: 'L4', name: 'NVIDIA L4 24GB', tflops16: 121, tflops8: 242.5, memoryGiB: 24, memBandwidthTBs: 0.3, interconnectGBs: 64, aliases: [] },
  { id: 'V100', name: 'NVIDIA V100 SXM2 32GB', tflops16: 125, tflops8: null, memoryGiB: 32, memBandwidthTBs: 0.9, interconnectGBs: 300, aliases: ['V100-SXM2', 'V100-32GB'] },
];

/** Known GPU ids, for error messages. */
export function knownGpuIds(): string[] {
  return GPUS.map((g) => g.id);
}

/**
 * Looks up a GPU by id or alias (case-insensitive).
 * @throws Error `unknown GPU "X"; known GPUs: H100-SXM, ...` when not found.
 */
export function resolveGpu(name: string): GpuSpec {
  const key = name.trim().toLowerCase();
  const hit = GPUS.find((g) => g.id.toLowerCase() === key || g.aliases.some((a) => a.toLowerCase() === key));
  if (!hit) throw new Error(`unknown GPU "${name}"; known GPUs: ${knownGpuIds().join(', ')} (aliases: ${GPUS.flatMap((g) => g.aliases).join(', ')})`);
  return hit;
}

/**
 * An HF-style model config (the fields of `config.json` the simulator reads; snake_case as
 * published). Mixture-of-experts models set `num_local_experts` (Mixtral) or `num_experts` (Qwen-MoE)
 * and `num_experts_per_tok`; `moe_intermediate_size` when experts differ from `intermediate_size`.
 * Multimodal configs may nest the decoder under `text_config` (it is used when present).
 */
export interface HfModelConfig {
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads?: number;
  head_dim?: number;
  intermediate_size: number;
  vocab_size: number;
  max_position_embeddings?: number;
  tie_word_embeddings?: boolean;
  torch_dtype?: string;
  num_local_experts?: number;
  num_experts?: number;
  num_experts_per_tok?: number;
  moe_intermediate_size?: number;
  /** Shared experts per MoE layer (Llama-4, Qwen-MoE style); 0 when absent. */
  n_shared_experts?: number;
  /** Non-standard: bytes per weight as served (2 for BF16/FP16, 1 for FP8). Default from torch_dtype. */
  weight_dtype_bytes?: number;
  text_config?: HfModelConfig;
  [extra: string]: unknown;
}

/** The architecture facts the latency and memory models use (derived from an HF config). */
export interface ModelSpec {
  /** Model id (HF repo id), or `custom` for an inline config. */
  id: string;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Dense FFN intermediate size (per expert for MoE models). */
  intermediateSize: number;
  vocabSize: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** Bytes per weight as served (2 = BF16/FP16, 1 = FP8). */
  weightBytes: number;
  /** Mixture of experts: experts per layer, active per token, shared experts; null for dense models. */
  moe: { numExperts: number; expertsPerToken: number; sharedExperts: number } | null;
  /** Total parameters (text decoder; norms ignored) and parameters active per token. */
  paramsTotal: number;
  paramsActive: number;
  /** Other accepted names (case-insensitive). */
  aliases: string[];
}

interface CatalogEntry {
  id: string;
  aliases: string[];
  config: HfModelConfig;
}

/** Published configs (HF `config.json`; the first nine as in shared/data/calibration/models.json). */
const MODEL_ENTRIES: readonly CatalogEntry[] = [
  { id: 'meta-llama/Llama-2-7b-hf', aliases: ['meta-llama/Llama-2-7b-chat-hf', 'llama-2-7b'], config: { hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, head_dim: 128, intermediate_size: 11008, vocab_size: 32000, max_position_embeddings: 4096, tie_word_embeddings: false, torch_dtype: 'float16' } },
  { id: 'meta-llama/Llama-2-70b-hf', aliases: ['meta-llama/Llama-2-70b-chat-hf', 'llama-2-70b'], config: { hidden_size: 8192, num_hidden_layers: 80, num_attention_heads: 64, num_key_value_heads: 8, head_dim: 128, intermediate_size: 28672, vocab_size: 32000, max_position_embeddings: 4096, tie_word_embeddings: false, torch_dtype: 'float16' } },
  { id: 'meta-llama/Llama-3.1-8B-Instruct', aliases: ['meta-llama/Llama-3.1-8B', 'meta-llama/Meta-Llama-3.1-8B-Instruct', 'llama-3.1-8b'], config: { hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128, intermediate_size: 14336, vocab_size: 128256, max_position_embeddings: 131072, tie_word_embeddings: false, torch_dtype: 'bfloat16' } },
  { id: 'meta-llama/Llama-3.1-70B-Instruct', aliases: ['meta-llama/Llama-3.1-70B', 'meta-llama/Meta-Llama-3.1-70B-Instruct', 'llama-3.1-70b'], config: { hidden_size: 8192, num_hidden_layers: 80, num_attention_heads: 64, num_key_value_heads: 8, head_dim: 128, intermediate_size: 28672, vocab_size: 128256, max_position_embeddings: 131072, tie_word_embeddings: false, torch_dtype: 'bfloat16' } },
  { id: 'codellama/CodeLlama-34b-Instruct-hf', aliases: ['codellama/CodeLlama-34b-hf', 'codellama-34b'], config: { hidden_size: 8192, num_hidden_layers: 48, num_attention_heads: 64, num_key_value_heads: 8, head_dim: 128, intermediate_size: 22016, vocab_size: 32000, max_position_embeddings: 16384, tie_word_embeddings: false, torch_dtype: 'bfloat16' } },
  { id: 'mistralai/Mistral-7B-Instruct-v0.3', aliases: ['mistralai/Mistral-7B-v0.3', 'mistral-7b'], config: { hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128, intermediate_size: 14336, vocab_size: 32768, max_position_embeddings: 32768, tie_word_embeddings: false, torch_dtype: 'bfloat16' } },
  { id: 'mistralai/Mistral-7B-v0.1', aliases: ['mistralai/Mistral-7B-Instruct-v0.1', 'mistralai/Mistral-7B-Instruct-v0.2'], config: { hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128, intermediate_size: 14336, vocab_size: 32000, max_position_embeddings: 32768, tie_word_embeddings: false, torch_dtype: 'bfloat16' } },
  { id: 'mistralai/Mixtral-8x7B-v0.1', aliases: ['mistralai/Mixtral-8x7B-Instruct-v0.1', 'mixtral-8x7b'], config: { hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128, intermediate_size: 14336, vocab_size: 32000, max_position_embeddings: 32768, tie_word_embeddings: false, torch_dtype: 'bfloat16', num_local_experts: 8, num_experts_per_tok: 2 } },
  { id: 'mistralai/Mixtral-8x22B-v0.1', aliases: ['mistralai/Mixtral-8x22B-Instruct-v0.1', 'mixtral-8x22b'], config: { hidden_size: 6144, num_hidden_layers: 56, num_attention_heads: 48, num_key_value_heads: 8, head_dim: 128, intermediate_size: 16384, vocab_size: 32000, max_position_embeddings: 65536, tie_word_embeddings: false, torch_dtype: 'bfloat16', num_local_experts: 8, num_experts_per_tok: 2 } },
  { id: 'mistralai/Mistral-Nemo-Instruct-2407', aliases: ['mistral-nemo-12b'], config: { hidden_size: 5120, num_hidden_layers: 40, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128, intermediate_size: 14336, vocab_size: 131072, max_position_embeddings: 1024000, tie_word_embeddings: false, torch_dtype: 'bfloat16' } },
  { id: 'Qwen/Qwen2.5-7B-Instruct', aliases: ['Qwen/Qwen2.5-7B', 'qwen2.5-7b'], config: { hidden_size: 3584, num_hidden_layers: 28, num_attention_heads: 28, num_key_value_heads: 4, head_dim: 128, intermediate_size: 18944, vocab_size: 152064, max_position_embeddings: 32768, tie_word_embeddings: false, torch_dtype: 'bfloat16' } },
  { id: 'Qwen/Qwen2.5-14B-Instruct', aliases: ['Qwen/Qwen2.5-14B', 'qwen2.5-14b'], config: { hidden_size: 5120, num_hidden_layers: 48, num_attention_heads: 40, num_key_value_heads: 8, head_dim: 128, intermediate_size: 13824, vocab_size: 152064, max_position_embeddings: 32768, tie_word_embeddings: false, torch_dtype: 'bfloat16' } },
  { id: 'Qwen/Qwen2.5-72B-Instruct', aliases: ['Qwen/Qwen2.5-72B', 'qwen2.5-72b'], config: { hidden_size: 8192, num_hidden_layers: 80, num_attention_heads: 64, num_key_value_heads: 8, head_dim: 128, intermediate_size: 29568, vocab_size: 152064, max_position_embeddings: 32768, tie_word_embeddings: false, torch_dtype: 'bfloat16' } },
  { id: 'Qwen/Qwen3-8B', aliases: ['qwen3-8b'], config: { hidden_size: 4096, num_hidden_layers: 36, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128, intermediate_size: 12288, vocab_size: 151936, max_position_embeddings: 40960, tie_word_embeddings: false, torch_dtype: 'bfloat16' } },
  { id: 'Qwen/Qwen3-14B', aliases: ['qwen3-14b'], config: { hidden_size: 5120, num_hidden_layers: 40, num_attention_heads: 40, num_key_value_heads: 8, head_dim: 128, intermediate_size: 17408, vocab_size: 151936, max_position_embeddings: 40960, tie_word_embeddings: false, torch_dtype: 'bfloat16' } },
  { id: 'Qwen/Qwen3-32B', aliases: ['qwen3-32b'], config: { hidden_size: 5120, num_hidden_layers: 64, num_attention_heads: 64, num_key_value_heads: 8, head_dim: 128, intermediate_size: 25600, vocab_size: 151936, max_position_embeddings: 40960, tie_word_embeddings: false, torch_dtype: 'bfloat16' } },
  { id: '01-ai/Yi-34B', aliases: ['yi-34b'], config: { hidden_size: 7168, num_hidden_layers: 60, num_attention_heads: 56, num_key_value_heads: 8, head_dim: 128, intermediate_size: 20480, vocab_size: 64000, max_position_embeddings: 4096, tie_word_embeddings: false, torch_dtype: 'bfloat16' } },
  { id: 'RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic', aliases: ['llama-4-scout-fp8'], config: { hidden_size: 5120, num_hidden_layers: 48, num_attention_heads: 40, num_key_value_heads: 8, head_dim: 128, intermediate_size: 8192, vocab_size: 202048, max_position_embeddings: 10485760, tie_word_embeddings: false, torch_dtype: 'bfloat16', num_local_experts: 16, num_experts_per_tok: 1, n_shared_experts: 1, weight_dtype_bytes: 1 } },
];

/** Known model ids, for error messages. */
export function knownModelIds(): string[] {
  return MODEL_ENTRIES.map((m) => m.id);
}

function positiveInt(cfg: Record<string, unknown>, field: string, required: boolean): number | undefined {
  const v = cfg[field];
  if (v === undefined || v === null) {
    if (required) throw new Error(`model config: field "${field}" is required (a positive integer)`);
    return undefined;
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new Error(`model config: field "${field}" must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * Derives a `ModelSpec` from an HF-style config (validated; throws `Error` naming the bad field).
 * Parameter counts: attention q/k/v/o projections, gated FFN (3 matrices), experts and router for
 * MoE, embeddings and LM head (unless tied); norms and biases ignored.
 */
export function modelFromHfConfig(id: string, input: HfModelConfig, aliases: string[] = []): ModelSpec {
  if (input === null || typeof input !== 'object') throw new Error('model config: must be an object');
  const cfg = (input.text_config && typeof input.text_config === 'object' ? input.text_config : input) as Record<string, unknown>;
  const hidden = positiveInt(cfg, 'hidden_size', true)!;
  const layers = positiveInt(cfg, 'num_hidden_layers', true)!;
  const heads = positiveInt(cfg, 'num_attention_heads', true)!;
  const kvHeads = positiveInt(cfg, 'num_key_value_heads', false) ?? heads;
  const headDim = positiveInt(cfg, 'head_dim', false) ?? Math.floor(hidden / heads);
  const inter = positiveInt(cfg, 'intermediate_size', true)!;
  const vocab = positiveInt(cfg, 'vocab_size', true)!;
  const maxPos = positiveInt(cfg, 'max_position_embeddings', false) ?? 4096;
  const numExperts = positiveInt(cfg, 'num_local_experts', false) ?? positiveInt(cfg, 'num_experts', false);
  const perTok = positiveInt(cfg, 'num_experts_per_tok', false);
  const moeInter = positiveInt(cfg, 'moe_intermediate_size', false) ?? inter;
  const shared = (cfg.n_shared_experts as number | undefined) ?? 0;
  if (kvHeads > heads) throw new Error(`model config: field "num_key_value_heads" (${kvHeads}) must not exceed num_attention_heads (${heads})`);
  if (numExperts !== undefined && perTok === undefined) throw new Error('model config: field "num_experts_per_tok" is required for a mixture-of-experts model');
  if (numExperts !== undefined && perTok! > numExperts) throw new Error('model config: field "num_experts_per_tok" must not exceed the number of experts');
  const dtype = String(cfg.torch_dtype ?? (input as Record<string, unknown>).torch_dtype ?? 'bfloat16');
  const wb = (cfg.weight_dtype_bytes as number | undefined) ?? (input.weight_dtype_bytes as number | undefined) ?? (dtype.includes('float32') ? 4 : dtype.includes('8') ? 1 : 2);
  const tie = Boolean(cfg.tie_word_embeddings ?? false);
  const attn = hidden * heads * headDim * 2 + hidden * kvHeads * headDim * 2;
  let ffnTotal: number;
  let ffnActive: number;
  let moe: ModelSpec['moe'] = null;
  if (numExperts !== undefined) {
    moe = { numExperts, expertsPerToken: perTok!, sharedExperts: shared };
    ffnTotal = (numExperts + shared) * 3 * hidden * moeInter + hidden * numExperts;
    ffnActive = (perTok! + shared) * 3 * hidden * moeInter + hidden * numExperts;
  } else {
    ffnTotal = ffnActive = 3 * hidden * inter;
  }
  const emb = vocab * hidden * (tie ? 1 : 2);
  return {
    id,
    hiddenSize: hidden,
    numLayers: layers,
    numHeads: heads,
    numKvHeads: kvHeads,
    headDim,
    intermediateSize: moe ? moeInter : inter,
    vocabSize: vocab,
    maxPositionEmbeddings: maxPos,
    tieWordEmbeddings: tie,
    weightBytes: wb,
    moe,
    paramsTotal: layers * (attn + ffnTotal) + emb,
    paramsActive: layers * (attn + ffnActive) + emb,
    aliases,
  };
}

/**
 * Resolves a model by HF id or alias (case-insensitive), or from an inline HF-style config object.
 * @throws Error `unknown model "X"; known models: ...` for an unknown name; a field error for a bad config.
 */
export function resolveModel(model: string | HfModelConfig): ModelSpec {
  if (typeof model !== 'string') return modelFromHfConfig(typeof model.name_or_path === 'string' ? model.name_or_path : 'custom', model);
  const key = model.trim().toLowerCase();
  const hit = MODEL_ENTRIES.find((m) => m.id.toLowerCase() === key || m.aliases.some((a) => a.toLowerCase() === key));
  if (!hit) throw new Error(`unknown model "${model}"; known models: ${knownModelIds().join(', ')} (or give an HF-style config object)`);
  return modelFromHfConfig(hit.id, hit.config, hit.aliases);
}

/**
 * KV cache bytes per token on one GPU: layers x 2 (K and V) x kv_heads x head_dim x dtype bytes / TP
 * (vLLM shards KV heads across TP ranks; with fewer KV heads than ranks, heads are replicated, so
 * each rank holds at least one).
 */
export function kvBytesPerTokenPerGpu(m: ModelSpec, tp: number, kvDtypeBytes = 2): number {
  const kvHeadsPerGpu = Math.max(1, m.numKvHeads / tp);
  return m.numLayers * 2 * kvHeadsPerGpu * m.headDim * kvDtypeBytes;
}
