/**
 * What the gateway reads from an inference request body: one `JSON.parse`, then only the fields
 * routing, limits and accounting need. Full validation of sampling parameters is the engine's job
 * (it answers 400 with `param`, passed through); the gateway rejects what it cannot route:
 * a body that is not a JSON object, a missing/non-string `model`, chat without a non-empty
 * `messages` array, completions without `prompt`, embeddings without `input`, a non-boolean `stream`.
 *
 * Prompt length is estimated as characters / 4 (tokens) unless a strategy asks for the exact token
 * ids (`promptTokens()`, memoized, Llama 3 BPE from `src/engines/tokenizer.ts`).
 */
import { renderChat, tokenizerFor, type ChatMessage } from '../engines/tokenizer.ts';
import { badRequest, invalidJson } from './errors.ts';

export type InferenceKind = 'chat' | 'completion' | 'embedding' | 'other';

/** The routing-relevant view of one request body. */
export interface ParsedInference {
  kind: InferenceKind;
  body: Record<string, unknown>;
  model: string;
  stream: boolean;
  /** Client asked for the final usage chunk (`stream_options.include_usage: true`). */
  includeUsage: boolean;
  maxTokens?: number;
  /** Prompt length estimate, tokens (chars / 4, at least 1). */
  promptLengthEstimate: number;
  /** Memoized exact prompt token ids (call as a method: `parsed.promptTokens()`). */
  promptTokens(): readonly number[];
}

function textOfContent(c: unknown): string {
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) {
    let s = '';
    for (const p of c) if (p && typeof p === 'object' && typeof (p as { text?: unknown }).text === 'string') s += (p as { text: string }).text;
    return s;
  }
  return '';
}

/**
 * Parses and checks a request body.
 * @throws ApiError 400 (`invalid_json`, `invalid_request` with `param`).
 */
export function parseInference(kind: InferenceKind, raw: Buffer): ParsedInference {
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw invalidJson((e as Error).message);
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('request body must be a JSON object');
  const b = body as Record<string, unknown>;
  if (b.model === undefined) throw badRequest('you must provide a model parameter', 'model', 'missing_model');
  if (typeof b.model !== 'string' || b.model.length === 0) throw badRequest('model must be a non-empty string', 'model');
  if (b.stream !== undefined && b.stream !== null && typeof b.stream !== 'boolean') throw badRequest('stream must be a boolean', 'stream');
  const stream = b.stream === true;
  const so = b.stream_options as { include_usage?: unknown } | undefined | null;
  const includeUsage = !!so && typeof so === 'object' && so.include_usage === true;
  const mt = b.max_completion_tokens ?? b.max_tokens;
  if (mt !== undefined && mt !== null && (typeof mt !== 'number' || !Number.isInteger(mt) || mt < 0)) {
    throw badRequest('max_tokens must be a non-negative integer', b.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens');
  }
  let chars = 0;
  if (kind === 'chat') {
    const msgs = b.messages;
    if (!Array.isArray(msgs) || msgs.length === 0) throw badRequest('messages must be a non-empty array', 'messages');
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i] as { role?: unknown; content?: unknown } | null;
      if (!m || typeof m !== 'object' || typeof m.role !== 'string') throw badRequest('each message needs a string role', `messages.${i}.role`);
      chars += textOfContent(m.content).length;
    }
  } else if (kind === 'completion') {
    const p = b.prompt;
    if (p === undefined || p === null) throw badRequest('you must provide a prompt', 'prompt', 'missing_prompt');
    if (typeof p === 'string') chars = p.length;
    else if (Array.isArray(p)) {
      // string[], number[] or number[][]
      for (const x of p) chars += typeof x === 'string' ? x.length : Array.isArray(x) ? x.length * 4 : 4;
    } else throw badRequest('prompt must be a string or an array', 'prompt');
  } else if (kind === 'embedding') {
    const inp = b.input;
    if (inp === undefined || inp === null || (Array.isArray(inp) && inp.length === 0) || inp === '') throw badRequest('you must provide a non-empty input', 'input', 'missing_input');
    if (typeof inp === 'string') chars = inp.length;
    else if (Array.isArray(inp)) for (const x of inp) chars += typeof x === 'string' ? x.length : Array.isArray(x) ? x.length * 4 : 4;
  }
  return new Parsed(kind, b, b.model, stream, includeUsage, typeof mt === 'number' ? mt : undefined, Math.max(1, Math.ceil(chars / 4)));
}

/** The text whose tokens are the prompt (chat rendered with the Llama 3 template). */
function promptText(kind: InferenceKind, b: Record<string, unknown>): string {
  if (kind === 'chat') return renderChat(b.messages as ChatMessage[]);
  if (kind === 'completion') {
    const p = b.prompt;
    return typeof p === 'string' ? p : Array.isArray(p) && typeof p[0] === 'string' ? (p as string[]).join('') : '';
  }
  if (kind === 'embedding') return typeof b.input === 'string' ? b.input : '';
  return '';
}

/** `ParsedInference` as a class: `promptTokens` is a prototype method (no closures per request). */
class Parsed implements ParsedInference {
  private memo: readonly number[] | undefined;
  constructor(
    readonly kind: InferenceKind,
    readonly body: Record<string, unknown>,
    readonly model: string,
    readonly stream: boolean,
    readonly includeUsage: boolean,
    readonly maxTokens: number | undefined,
    readonly promptLengthEstimate: number,
  ) {}
  promptTokens(): readonly number[] {
    return (this.memo ??= tokenizerFor(this.model).encode(promptText(this.kind, this.body)));
  }
}
