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
import type { BlockHasher, EngineRequest, EngineSnapshot, KvEvent, StepResult } from './types.ts';
import type { EngineConfig } from './config.ts';

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
  /** Block hasher for prefix caching (default: a fast internal chained 52-bit hash). */
  hashBlock?: BlockHasher;
  /** Receives KV events (BlockStored / BlockRemoved / AllBlocksCleared) synchronously, in order. */
  onKvEvent?: (e: KvEvent) => void;
  /** Latency model coefficients (default: the fitted ones in `coefficients.json`). */
  coefficients?: unknown;
}

/** One simulated engine. See the module docstring for the driving model. */
export class EngineCore {
  readonly config: EngineConfig;

  constructor(config: EngineConfig, _options: EngineCoreOptions = {}) {
    this.config = config;
  }

  /**
   * Queues a request (FCFS). Blocks of the prompt are hashed now.
   * @throws EngineError `context_length` when prompt + maxTokens > maxModelLen (vLLM's message
   *   "This model's maximum context length is N tokens. However, you requested M output tokens and
   *   your prompt contains P input tokens, for a total of T tokens. Please reduce the length of the
   *   input prompt or the number of requested output tokens."), `invalid_request`, `adapter_not_found`.
   */
  addRequest(_req: EngineRequest, _nowMs: number): void {
    throw new Error('EngineCore.addRequest: not implemented yet');
  }

  /** Aborts a waiting or running request; it is reported as finished with reason `abort` by the next `step`. Returns false if unknown. */
  abortRequest(_id: string, _nowMs: number): boolean {
    throw new Error('EngineCore.abortRequest: not implemented yet');
  }

  /** True while requests are waiting or running (or aborts are pending report). */
  hasWork(): boolean {
    throw new Error('EngineCore.hasWork: not implemented yet');
  }

  /** Schedules and "executes" one step at `nowMs`; returns its duration and per-request outputs. */
  step(_nowMs: number): StepResult {
    throw new Error('EngineCore.step: not implemented yet');
  }

  /** Current state for metrics and routing. */
  snapshot(): EngineSnapshot {
    throw new Error('EngineCore.snapshot: not implemented yet');
  }

  /** Registers a LoRA adapter (vLLM `/v1/load_lora_adapter`). @throws EngineError `adapter_exists`, `lora_disabled`. */
  loadAdapter(_name: string, _rank?: number): void {
    throw new Error('EngineCore.loadAdapter: not implemented yet');
  }

  /** Unregisters an adapter (vLLM `/v1/unload_lora_adapter`). @throws EngineError `adapter_not_found`. */
  unloadAdapter(_name: string): void {
    throw new Error('EngineCore.unloadAdapter: not implemented yet');
  }

  /** Drops every cached, unreferenced block (vLLM `/reset_prefix_cache`); emits AllBlocksCleared. */
  resetPrefixCache(): void {
    throw new Error('EngineCore.resetPrefixCache: not implemented yet');
  }
}
