/**
 * The gateway's admission interface for limits (per-key RPM/TPM, per-model RPS). The concrete
 * implementation sits on the counter stores of `src/limits` (in-memory or Redis) and is built by
 * `createLimitsGate` in `./limits-store.ts`; the pipeline only sees this interface.
 */
import type { ApiKeyInfo } from './keys.ts';

export interface LimitsGate {
  /**
   * Checks and counts one request: the key's RPM (current minute count >= rpm rejects), the key's
   * TPM (tokens already used this minute >= tpm rejects; tokens are added when the response ends),
   * and the model's RPS (count this second > rps rejects).
   * @throws ApiError 429 with `retry-after` (seconds until the window resets).
   */
  admit(key: ApiKeyInfo | undefined, model: string, modelRps: number | undefined, nowMs: number): Promise<void>;
  /** Gives back a model-RPS slot counted by `admit` at `acquiredAtMs` (the request could not be routed). */
  release(model: string, acquiredAtMs: number): Promise<void>;
  /** Adds `tokens` (prompt + completion) to the key's TPM window. */
  addTokens(key: ApiKeyInfo, tokens: number, nowMs: number): Promise<void>;
  close(): Promise<void>;
}
