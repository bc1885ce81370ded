/**
 * The results file: one JSON object per line, one line per request, written by `inferplane bench
 * run` and read by `inferplane bench report` (and by `--dataset` for a replay). All times are ms.
 */
import type { RequestSpec } from './workload.ts';

/** Why a request failed. */
export type ErrorKind =
  /** The server answered with a non-2xx status (`status` holds it). */
  | 'http'
  /** The connection could not be made (refused, reset before a response, DNS). */
  | 'connect'
  /** The request ran past the request timeout. */
  | 'timeout'
  /** Stopped by Ctrl-C after the drain timeout. */
  | 'aborted'
  /** The response or stream was malformed or broke mid-way (including an in-stream error event). */
  | 'stream';

/** One request's result line. */
export interface RequestRecord {
  /** Request index in schedule order (0-based). */
  id: number;
  /** Session id and turn (0-based) for multi-turn workloads. */
  sessionId?: string;
  turn?: number;
  /** Planned send time, ms from the run start. */
  scheduledMs: number;
  /** Actual send time (when the request was handed to the HTTP client), ms from the run start. */
  sentMs: number;
  /** `sentMs - scheduledMs`: how late the client sent it (coordinated-omission check), ms. */
  lateMs: number;
  /** Time from send to the first streamed content token (null when none arrived or not streaming). */
  ttftMs: number | null;
  /** Gaps between consecutive content chunks after the first, ms (empty when not streaming). */
  itlMs: number[];
  /** Time from send to the end of the response (null when the request failed before an end). */
  e2eMs: number | null;
  /** Prompt tokens from the response's `usage` (null when the server gave none). */
  promptTokens: number | null;
  /** Prompt tokens served from the prefix cache (`usage.prompt_tokens_details.cached_tokens`), when the server reports it. */
  cachedTokens?: number;
  /** Completion tokens from `usage` (null when the server gave none). */
  outputTokens: number | null;
  /** Prompt content tokens the client sent, by its own count (chat adds the template's tokens). */
  promptTokensSent: number;
  /** Streamed chunks that carried content (usually one token each), or 0 when not streaming. */
  outputChunks: number;
  /** HTTP status (null when no response arrived). */
  status: number | null;
  ok: boolean;
  error?: { kind: ErrorKind; message: string };
  /** The endpoint that served it, from the `target-pod` response header (AIBrix convention). */
  endpoint?: string;
  /** The `request-id`/`x-request-id` response header, if any. */
  requestId?: string;
  /** The workload spec that produced the request, without literal text (for replays). */
  spec: Omit<RequestSpec, 'text'>;
}

/** Minimal runtime check that a parsed JSON value is a {@link RequestRecord}; returns a reason or null. */
export function recordProblem(o: unknown): string | null {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return 'expected a JSON object';
  const r = o as Record<string, unknown>;
  for (const k of ['id', 'scheduledMs', 'sentMs', 'lateMs', 'promptTokensSent'] as const) {
    if (typeof r[k] !== 'number') return `field ${k} must be a number`;
  }
  if (typeof r.ok !== 'boolean') return 'field ok must be a boolean';
  if (!Array.isArray(r.itlMs)) return 'field itlMs must be an array';
  for (const k of ['ttftMs', 'e2eMs', 'promptTokens', 'outputTokens', 'status'] as const) {
    if (r[k] !== null && typeof r[k] !== 'number') return `field ${k} must be a number or null`;
  }
  if (typeof r.spec !== 'object' || r.spec === null) return 'field spec must be an object';
  return null;
}
