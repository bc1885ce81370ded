/**
 * OpenAI request parsing for `/v1/completions` and `/v1/chat/completions`, shared by the
 * simulator's server and the gateway. Pure: no I/O.
 *
 * Validation follows vLLM's behaviour (`vllm/entrypoints/openai/engine/protocol.py`, handler
 * `handlers/validation.py`): a schema failure is HTTP **400** (not FastAPI's 422) with
 * `type: "BadRequestError"` and `param` = the dotted path of the offending field
 * (e.g. `messages.0.role`, `stream_options.include_usage`). Unknown fields are kept (passthrough),
 * so a gateway can forward vLLM extensions (`cache_salt`, `priority`, `kv_transfer_params`, ...).
 */
import { z } from 'zod';
import { ApiError } from './errors.ts';

/** Error `type` used for request validation failures (vLLM's current main). */
export const BAD_REQUEST_TYPE = 'BadRequestError';

const streamOptionsSchema = z
  .object({
    include_usage: z.boolean().nullish(),
    continuous_usage_stats: z.boolean().nullish(),
  })
  .passthrough();

const tokenIds = z.array(z.number().int().nonnegative());

const commonFields = {
  model: z.string().min(1),
  stream: z.boolean().nullish(),
  stream_options: streamOptionsSchema.nullish(),
  max_tokens: z.number().int().positive().nullish(),
  ignore_eos: z.boolean().nullish(),
  n: z.number().int().positive().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  seed: z.number().int().nullish(),
  user: z.string().nullish(),
  stop: z.union([z.string(), z.array(z.string())]).nullish(),
  min_tokens: z.number().int().nonnegative().nullish(),
  cache_salt: z.string().nullish(),
};

const completionSchema = z
  .object({
    ...commonFields,
    prompt: z.union([z.string(), z.array(z.string()).min(1), tokenIds.min(1), z.array(tokenIds.min(1)).min(1)]),
    echo: z.boolean().nullish(),
  })
  .passthrough();

const contentPart = z.object({ type: z.string(), text: z.string().optional() }).passthrough();
const messageSchema = z
  .object({
    role: z.string().min(1),
    content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
    name: z.string().optional(),
  })
  .passthrough();

const chatSchema = z
  .object({
    ...commonFields,
    messages: z.array(messageSchema).min(1),
    max_completion_tokens: z.number().int().positive().nullish(),
  })
  .passthrough();

/** Prompt of a completion request: text, a batch of texts, token ids, or a batch of token-id lists. */
export type CompletionPrompt = string | string[] | number[] | number[][];

/** A parsed `/v1/completions` body. Unknown fields are kept as they came. */
export type CompletionRequest = z.infer<typeof completionSchema>;
/** A parsed `/v1/chat/completions` body. Unknown fields are kept as they came. */
export type ChatCompletionRequest = z.infer<typeof chatSchema>;
/** One chat message as parsed (content may be text, text parts, or null). */
export type ParsedChatMessage = z.infer<typeof messageSchema>;

function zodToApiError(err: z.ZodError): ApiError {
  const issue = err.issues[0]!;
  const param = issue.path.length > 0 ? issue.path.join('.') : null;
  const count = err.issues.length;
  const msg = `${count} validation error${count === 1 ? '' : 's'}: ${param ?? 'body'}: ${issue.message}`;
  return new ApiError(400, msg, BAD_REQUEST_TYPE, 400, param);
}

function requireObject(body: unknown): Record<string, unknown> {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError(400, 'Request body must be a JSON object.', BAD_REQUEST_TYPE, 400, null);
  }
  return body as Record<string, unknown>;
}

function checkCommon(r: { n?: number | null; stream?: boolean | null; stream_options?: unknown }): void {
  if (r.n != null && r.n !== 1) {
    throw new ApiError(400, `n=${r.n} is not supported: only n=1 is.`, BAD_REQUEST_TYPE, 400, 'n');
  }
  // vLLM's model validator: "Stream options can only be defined when `stream=True`."
  if (r.stream_options != null && r.stream !== true) {
    throw new ApiError(400, 'Stream options can only be defined when `stream=True`.', BAD_REQUEST_TYPE, 400, 'stream_options');
  }
}

/**
 * Parses a `/v1/completions` body (already JSON-decoded).
 * @throws ApiError 400 `BadRequestError` with `param` = dotted field path on any schema violation,
 *   for `n` other than 1 (only n=1 is supported) and for `stream_options` without `stream: true` (as vLLM).
 */
export function parseCompletionRequest(body: unknown): CompletionRequest {
  const r = completionSchema.safeParse(requireObject(body));
  if (!r.success) throw zodToApiError(r.error);
  checkCommon(r.data);
  return r.data;
}

/**
 * Parses a `/v1/chat/completions` body (already JSON-decoded).
 * @throws ApiError 400 `BadRequestError` with `param` = dotted field path on any schema violation,
 *   for `n` other than 1 and for `stream_options` without `stream: true`.
 */
export function parseChatCompletionRequest(body: unknown): ChatCompletionRequest {
  const r = chatSchema.safeParse(requireObject(body));
  if (!r.success) throw zodToApiError(r.error);
  checkCommon(r.data);
  return r.data;
}

/**
 * Decodes a JSON request body.
 * @throws ApiError 400 `BadRequestError` (param null) when the text is not valid JSON.
 */
export function parseJsonBody(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, `Malformed JSON in request body: ${(e as Error).message}`, BAD_REQUEST_TYPE, 400, null);
  }
}

/** The output-token limit a request asks for: `max_completion_tokens`, else `max_tokens`, else undefined. */
export function requestedMaxTokens(req: CompletionRequest | ChatCompletionRequest): number | undefined {
  const mct = 'max_completion_tokens' in req ? (req.max_completion_tokens as number | null | undefined) : undefined;
  return mct ?? req.max_tokens ?? undefined;
}

/** True when a streamed response must end with a usage chunk (`stream_options.include_usage`, default true once `stream_options` is given, as vLLM does). */
export function wantsStreamUsage(req: CompletionRequest | ChatCompletionRequest): boolean {
  if (!req.stream_options) return false;
  return req.stream_options.include_usage ?? true;
}

// ---------------------------------------------------------------------------------------------
// Response builders (shapes as vLLM returns them; `vllm/entrypoints/openai/engine/protocol.py`).
// ---------------------------------------------------------------------------------------------

/** Token usage of one response. `prompt_tokens_details.cached_tokens` = prompt tokens served from the prefix cache. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
}

/** Builds a usage object; `cachedTokens` adds `prompt_tokens_details` when given. */
export function buildUsage(promptTokens: number, completionTokens: number, cachedTokens?: number): Usage {
  const u: Usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
  if (cachedTokens !== undefined) u.prompt_tokens_details = { cached_tokens: cachedTokens };
  return u;
}

/** `finish_reason` values the simulator and the gateway produce. */
export type FinishReason = 'stop' | 'length' | 'abort' | 'error' | null;

/** Non-streaming `/v1/completions` response (`object: "text_completion"`, id prefix `cmpl-`). */
export interface CompletionResponse {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: Array<{ index: number; text: string; logprobs: null; finish_reason: FinishReason; stop_reason: null }>;
  usage: Usage;
}

/** Non-streaming `/v1/chat/completions` response (`object: "chat.completion"`, id prefix `chatcmpl-`). */
export interface ChatCompletionResponse {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: Array<{
    index: number;
    message: { role: 'assistant'; content: string };
    logprobs: null;
    finish_reason: FinishReason;
    stop_reason: null;
  }>;
  usage: Usage;
}

/** Builds a completion response. `createdS` is Unix seconds. */
export function buildCompletionResponse(id: string, model: string, createdS: number, text: string, finishReason: FinishReason, usage: Usage): CompletionResponse {
  return {
    id,
    object: 'text_completion',
    created: createdS,
    model,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason, stop_reason: null }],
    usage,
  };
}

/** Builds a chat completion response. `createdS` is Unix seconds. */
export function buildChatResponse(id: string, model: string, createdS: number, content: string, finishReason: FinishReason, usage: Usage): ChatCompletionResponse {
  return {
    id,
    object: 'chat.completion',
    created: createdS,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content }, logprobs: null, finish_reason: finishReason, stop_reason: null }],
    usage,
  };
}

/** One streamed `/v1/completions` chunk (same `object` as the non-streamed response, as vLLM sends). */
export interface CompletionChunk {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: Array<{ index: number; text: string; logprobs: null; finish_reason: FinishReason; stop_reason: null }>;
  usage?: Usage;
}

/** One streamed `/v1/chat/completions` chunk. */
export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: Array<{ index: number; delta: { role?: 'assistant'; content?: string }; logprobs: null; finish_reason: FinishReason; stop_reason?: null }>;
  usage?: Usage;
}

/** A completion chunk carrying `text`; `finishReason` non-null on the last content chunk. */
export function buildCompletionChunk(id: string, model: string, createdS: number, text: string, finishReason: FinishReason = null): CompletionChunk {
  return { id, object: 'text_completion', created: createdS, model, choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason, stop_reason: null }] };
}

/** A chat chunk; the first one of a stream carries `role: "assistant"` (pass `role: true`). */
export function buildChatChunk(id: string, model: string, createdS: number, content: string | undefined, finishReason: FinishReason = null, role = false): ChatCompletionChunk {
  const delta: { role?: 'assistant'; content?: string } = {};
  if (role) delta.role = 'assistant';
  if (content !== undefined) delta.content = content;
  return { id, object: 'chat.completion.chunk', created: createdS, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }] };
}

/** The final usage-only chunk of a stream: `choices: []` plus `usage` (sent when `include_usage`). */
export function buildUsageChunk(kind: 'completion' | 'chat', id: string, model: string, createdS: number, usage: Usage): CompletionChunk | ChatCompletionChunk {
  return kind === 'chat'
    ? { id, object: 'chat.completion.chunk', created: createdS, model, choices: [], usage }
    : { id, object: 'text_completion', created: createdS, model, choices: [], usage };
}

/**
 * A fast serializer for the common streamed chunk (content only, no finish reason, no usage):
 * returns `text => 'data: <json>\n\n'` whose JSON equals `buildCompletionChunk(...)` /
 * `buildChatChunk(..., text)` for that text, with the constant parts serialized once per stream.
 */
export function contentChunkFrame(kind: 'completion' | 'chat', id: string, model: string, createdS: number): (text: string) => string {
  const head = `data: {"id":${JSON.stringify(id)},"object":"${kind === 'chat' ? 'chat.completion.chunk' : 'text_completion'}","created":${createdS},"model":${JSON.stringify(model)},"choices":[{"index":0,`;
  if (kind === 'chat') {
    const pre = `${head}"delta":{"content":`;
    const post = '},"logprobs":null,"finish_reason":null}]}\n\n';
    return (text) => pre + JSON.stringify(text) + post;
  }
  const pre = `${head}"text":`;
  const post = ',"logprobs":null,"finish_reason":null,"stop_reason":null}]}\n\n';
  return (text) => pre + JSON.stringify(text) + post;
}
