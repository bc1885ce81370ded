/**
 * The gateway's own client-facing errors: one constructor per case, each with a stable HTTP status,
 * OpenAI `type` and string `code` (documented in docs/gateway.md "Error codes").
 *
 * Status choices: unknown model 404 as vLLM answers it (`NotFoundError`, "The model `x` does not
 * exist." — `../shared/reference/vllm-api.md` §3.4); AIBrix answers 400 there (aibrix-gateway.md §1.2).
 */
import { ApiError } from '../openai/errors.ts';

export const badRequest = (message: string, param: string | null = null, code = 'invalid_request') => new ApiError(400, message, 'invalid_request_error', code, param);
export const invalidJson = (detail: string) => new ApiError(400, `request body is not valid JSON: ${detail}`, 'invalid_request_error', 'invalid_json', null);
export const modelNotFound = (model: string) => new ApiError(404, `The model \`${model}\` does not exist.`, 'NotFoundError', 'model_not_found', 'model');
export const unknownStrategy = (spec: string, detail: string) => new ApiError(400, `unknown routing strategy "${spec}": ${detail}`, 'invalid_request_error', 'unknown_routing_strategy', 'routing-strategy');
export const unknownProfile = (name: string, model: string) => new ApiError(400, `routing profile "${name}" is not declared for model ${model}`, 'invalid_request_error', 'unknown_config_profile', 'config-profile');
export const badApiKey = (missing: boolean) =>
  new ApiError(401, missing ? 'Missing API key: pass it as "Authorization: Bearer <key>"' : 'Incorrect API key provided', 'authentication_error', 'invalid_api_key', 'api_key');
export const rateLimited = (what: string, retryAfterS: number, limit: string) =>
  new ApiError(429, what, 'rate_limit_error', 'rate_limit_exceeded', null, { 'retry-after': String(Math.max(1, Math.ceil(retryAfterS))), 'x-ratelimit-limit-kind': limit });
export const noReadyEndpoint = (model: string, why = '') => new ApiError(503, `no ready endpoint for model ${model}${why ? `: ${why}` : ''}`, 'service_unavailable_error', 'no_ready_endpoint', null, { 'retry-after': '1' });
export const coldStartQueueFull = (model: string, max: number) =>
  new ApiError(503, `model ${model} is starting from zero replicas and ${max} requests are already waiting for it; retry later`, 'service_unavailable_error', 'cold_start_queue_full', null, { 'retry-after': '5' });
export const coldStartTimeout = (model: string, ms: number) =>
  new ApiError(503, `model ${model} is starting from zero replicas and none became ready within ${ms} ms; retry later`, 'service_unavailable_error', 'cold_start_timeout', null, { 'retry-after': '5' });
export const adapterUnavailable = (adapter: string, detail: string) =>
  new ApiError(503, `LoRA adapter ${adapter} is not loaded on any ready endpoint and could not be loaded now: ${detail}`, 'service_unavailable_error', 'adapter_unavailable', 'model', { 'retry-after': '5' });
export const clientClosed = () => new ApiError(499, 'client closed the request', 'api_error', 'client_closed');
export const draining = () => new ApiError(503, 'the gateway is shutting down', 'service_unavailable_error', 'draining', null, { connection: 'close' });
export const upstreamUnreachable = (endpoint: string, detail: string) => new ApiError(502, `upstream ${endpoint} unreachable: ${detail}`, 'api_error', 'upstream_unreachable', null);
export const upstreamTimeout = (endpoint: string, ms: number) => new ApiError(504, `upstream ${endpoint} did not answer within ${ms} ms`, 'api_error', 'upstream_timeout', null);
export const bodyTooLarge = (limit: number) => new ApiError(413, `request body larger than ${limit} bytes`, 'invalid_request_error', 'request_too_large', null);
export const notFound = (path: string) => new ApiError(404, `Unknown request URL: ${path}`, 'invalid_request_error', 'not_found', null);
export const methodNotAllowed = (method: string, path: string) => new ApiError(405, `Method ${method} not allowed on ${path}`, 'invalid_request_error', 'method_not_allowed', null);
