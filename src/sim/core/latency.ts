/**
 * Step latency model in the BLIS "trained physics" form (inference-sim, `sim/latency/
 * trained_physics_model.go`; restated in shared/reference/sim-latency-model.md):
 *
 * ```
 * T_step(µs) = β1a·T_pf_compute + β1b·T_pf_kv + β2a·T_dc_compute + β2b·T_dc_kv + β3·T_weight
 *            + β4·T_tp + β5·L + β6·B + β7 + β8·nMoE + α2·(tokens emitted)
 * T_pf_compute = [Tpf·L·(proj + ffn)/tp + L·4·(H/tp)·Σ_i t_i·(s_i + t_i/2)·dH] / peakFLOP_per_µs
 * T_dc_compute = [B_dc·L·(proj + ffn)/tp + L·4·(H/tp)·Σctx·dH] / peakFLOP_per_µs
 * T_pf_kv = L·2·kvDimPerGpu·2B·Tpf / BW        T_dc_kv = L·2·kvDimPerGpu·2B·(Σctx + B_dc) / BW
 * T_weight = weight bytes per GPU streamed (MoE: only the experts the batch touches) / BW
 * T_tp = 2·L·tokens·d·2B·2·(tp−1)/tp / interconnect BW        (0 at tp = 1)
 * ```
 * proj = 4·d·(H·dH + KV·dH) FLOPs per token (q,k,v,o), ffn = 6·d·dFF per active expert (gated MLP),
 * L layers, B requests in the batch, t_i/s_i the chunk length and already-computed prefix of prefill
 * chunk i, Σctx the decodes' context lengths. Peaks are datasheet values (FP8 peak for 1-byte weights).
 * LoRA multiplies the step by `1 + k(rank)·distinct adapters in the batch` (Agullo et al.,
 * arXiv 2508.08343, as in BLIS `lora-adapter-costs.yaml`: k = 0.02/0.035/0.06 for ranks 8/16/32).
 *
 * Host costs (applied by the drivers, not inside a step): α0 per request between arrival and entry
 * into the engine queue (API server, tokenization), α1 once per request after its last token.
 */
import type { ModelSpec, GpuSpec } from './catalog.ts';
import defaultCoefficientsJson from './coefficients.json' with { type: 'json' };

/** Latency coefficients (β dimensionless multipliers of roofline times unless a unit is given; α in µs). */
export interface LatencyCoefficients {
  beta1a: number;
  beta1b: number;
  beta2a: number;
  beta2b: number;
  beta3: number;
  beta4: number;
  /** µs per layer per step. */
  beta5: number;
  /** µs per request in the batch per step. */
  beta6: number;
  /** µs per step. */
  beta7: number;
  /** µs per MoE layer per step. */
  beta8: number;
  /** µs per request, arrival -> engine queue. */
  alpha0: number;
  /** µs per request, after the last token. */
  alpha1: number;
  /** µs per emitted output token (added to the step). */
  alpha2: number;
}

/** The committed fit (see scripts/calibrate.ts); `coefficients` holds the values. */
export interface CoefficientsFile {
  coefficients: LatencyCoefficients;
  fit: Record<string, unknown>;
}

/** The fitted default coefficients (`src/sim/core/coefficients.json`, written by `npm run calibrate`). */
export const DEFAULT_COEFFICIENTS: LatencyCoefficients = Object.freeze({ ...(defaultCoefficientsJson as CoefficientsFile).coefficients });

/** The BLIS "iter29" bundled coefficients (reference only; the starting point of our fit). */
export const BLIS_ITER29_COEFFICIENTS: LatencyCoefficients = Object.freeze({
  beta1a: 0.152,
  beta1b: 0,
  beta2a: 0,
  beta2b: 1.947,
  beta3: 1.363,
  beta4: 0.752,
  beta5: 32.1,
  beta6: 4.42,
  beta7: 126.0,
  beta8: 0,
  alpha0: 15563,
  alpha1: 777,
  alpha2: 45.9,
});

/** LoRA per-step slowdown slope by rank (Agullo et al. digital twin; ranks in between are interpolated). */
export function loraStepFactorSlope(rank: number): number {
  const pts: [number, number][] = [
    [8, 0.02],
    [16, 0.035],
    [32, 0.06],
  ];
  if (rank <= 8) return 0.02 * Math.max(rank, 1) / 8;
  if (rank >= 32) return 0.06 * (rank / 32);
  for (let i = 1; i < pts.length; i++) {
    const [r1, k1] = pts[i]!;
    const [r0, k0] = pts[i - 1]!;
    if (rank <= r1) return k0 + ((k1 - k0) * (rank - r0)) / (r1 - r0);
  }
  return 0.06;
}

/** Aggregates of one scheduled step (tokens; Σ terms in tokens or token²). */
export interface StepShape {
  /** Prefill tokens (all chunks). */
  prefillTokens: number;
  /** Σ_i t_i·(s_i + t_i/2) over prefill chunks (token²). */
  prefillAttn: number;
  /** Decode requests (one token each). */
  decodeRequests: number;
  /** Σ context length of decode requests (tokens). */
  decodeContext: number;
  /** Requests in the batch. */
  batchSize: number;
  /** Output tokens emitted by the step. */
  emittedTokens: number;
  /** Distinct LoRA adapters in the batch. */
  distinctAdapters: number;
}

/** Per-model/GPU/TP constants of the step formula, precomputed once per engine. */
export class LatencyModel {
  private readonly flopsPerTokLinear: number; // L·(proj+ffn)/tp, FLOPs per token
  private readonly attnFlopsCoef: number; // L·4·(H/tp)·dH
  private readonly kvBytesPerTok: number; // L·2·kvDimPerGpu·2
  private readonly peakFlopsPerUs: number;
  private readonly bwBytesPerUs: number;
  private readonly icBytesPerUs: number;
  private readonly denseWeightBytes: number; // per GPU, non-expert
  private readonly expertBytes: number; // per GPU, one expert across all layers
  private readonly numExperts: number;
  private readonly expertsPerTok: number;
  private readonly tpCoef: number; // 2·L·d·2·2·(tp-1)/tp bytes per token
  private readonly numLayers: number;
  private readonly nMoeLayers: number;
  readonly loraSlope: number;
  readonly c: LatencyCoefficients;

  /**
   * @param loraRank max LoRA rank of the engine (sets the per-adapter slowdown slope).
   */
  constructor(model: ModelSpec, gpu: GpuSpec, tp: number, coefficients: LatencyCoefficients = DEFAULT_COEFFICIENTS, loraRank = 16) {
    this.c = coefficients;
    const d = model.hiddenSize;
    const L = model.numLayers;
    const qDim = model.numHeads * model.headDim;
    const kvDim = model.numKvHeads * model.headDim;
    const proj = 4 * d * (qDim + kvDim);
    const active = model.moe ? model.moe.expertsPerToken + model.moe.sharedExperts : 1;
    const ffn = 6 * d * model.intermediateSize * active;
    this.flopsPerTokLinear = (L * (proj + ffn)) / tp;
    this.attnFlopsCoef = L * 4 * (model.numHeads / tp) * model.headDim;
    const kvDimPerGpu = Math.max(1, model.numKvHeads / tp) * model.headDim;
    this.kvBytesPerTok = L * 2 * kvDimPerGpu * 2;
    const tflops = model.weightBytes === 1 && gpu.tflops8 ? gpu.tflops8 : gpu.tflops16;
    this.peakFlopsPerUs = tflops * 1e6;
    this.bwBytesPerUs = gpu.memBandwidthTBs * 1e6;
    this.icBytesPerUs = gpu.interconnectGBs * 1e3;
    const totalWeightBytes = (model.paramsTotal * model.weightBytes) / tp;
    if (model.moe) {
      const oneExpert = (L * 3 * d * model.intermediateSize * model.weightBytes) / tp;
      this.expertBytes = oneExpert;
      this.denseWeightBytes = totalWeightBytes - oneExpert * model.moe.numExperts;
      this.numExperts = model.moe.numExperts;
      this.expertsPerTok = model.moe.expertsPerToken;
      this.nMoeLayers = L;
    } else {
      this.expertBytes = 0;
      this.denseWeightBytes = totalWeightBytes;
      this.numExperts = 0;
      this.expertsPerTok = 0;
      this.nMoeLayers = 0;
    }
    this.tpCoef = tp > 1 ? (2 * L * d * 2 * 2 * (tp - 1)) / tp : 0;
    this.numLayers = L;
    this.loraSlope = loraStepFactorSlope(loraRank);
  }

  /** Modelled GPU time of one step (µs), including α2 per emitted token and the LoRA factor. 0 for an empty batch. */
  stepUs(s: StepShape): number {
    if (s.batchSize === 0) return 0;
    const c = this.c;
    const tokens = s.prefillTokens + s.decodeRequests;
    const pfCompute = (s.prefillTokens * this.flopsPerTokLinear + this.attnFlopsCoef * s.prefillAttn) / this.peakFlopsPerUs;
    const dcCompute = (s.decodeRequests * this.flopsPerTokLinear + this.attnFlopsCoef * s.decodeContext) / this.peakFlopsPerUs;
    const pfKv = (this.kvBytesPerTok * s.prefillTokens) / this.bwBytesPerUs;
    const dcKv = (this.kvBytesPerTok * (s.decodeContext + s.decodeRequests)) / this.bwBytesPerUs;
    let weightBytes = this.denseWeightBytes;
    if (this.numExperts > 0) {
      // Expected distinct experts touched by `tokens` tokens choosing k of E uniformly (per layer).
      const touched = this.numExperts * (1 - Math.pow(1 - this.expertsPerTok / this.numExperts, tokens));
      weightBytes += touched * this.expertBytes;
    }
    const weight = weightBytes / this.bwBytesPerUs;
    const tpT = this.tpCoef > 0 ? (this.tpCoef * tokens) / this.icBytesPerUs : 0;
    let t =
      c.beta1a * pfCompute +
      c.beta1b * pfKv +
      c.beta2a * dcCompute +
      c.beta2b * dcKv +
      c.beta3 * weight +
      c.beta4 * tpT +
      c.beta5 * this.numLayers +
      c.beta6 * s.batchSize +
      c.beta7 +
      c.beta8 * this.nMoeLayers +
      c.alpha2 * s.emittedTokens;
    if (s.distinctAdapters > 0) t *= 1 + this.loraSlope * s.distinctAdapters;
    return t;
  }
}
