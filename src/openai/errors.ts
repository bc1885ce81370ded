/**
 * The OpenAI error envelope, shared by the simulator's server and the gateway.
 *
 * Shape (as vLLM's current main returns it, `vllm/entrypoints/openai/engine/protocol.py`):
 *   `{"error": {"message": string, "type": string, "param": string|null, "code": number|string|null}}`
 * vLLM puts the HTTP status in `code`; the gateway uses stable string codes for its own errors
 * (`model_not_found`, `rate_limit_exceeded`, ...), as OpenAI does. Parsers must accept both, and the
 * flat legacy form `{"object":"error","message",...}` of vLLM <= 0.9.
 */

/** Body of an OpenAI-style error response. */
export interface OpenAIErrorBody {
  error: {
    message: string;
    type: string;
    param: string | null;
    code: string | number | null;
  };
}

/**
 * An error that maps to one HTTP response with an OpenAI error envelope.
 * Throw it anywhere in a request handler; the HTTP layer turns it into `status` + `toBody()`.
 * `headers` carries extra response headers (e.g. `retry-after` for 429).
 */
export class ApiError extends Error {
  constructor(
    /** HTTP status code, e.g. 400, 404, 429, 503. */
    readonly status: number,
    message: string,
    /** OpenAI `type`, e.g. `invalid_request_error`, `NotFoundError`. */
    readonly type: string,
    /** Stable machine code, e.g. `model_not_found`; vLLM uses the numeric status. */
    readonly code: string | number | null = null,
    /** Dotted path of the offending request field, when one is to blame. */
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toBody(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** Builds an error body without throwing (for passing through or logging). */
export function errorBody(message: string, type: string, code: string | number | null = null, param: string | null = null): OpenAIErrorBody {
  return { error: { message, type, param, code } };
}

/**
 * Reads an upstream error body in either the current or the legacy vLLM shape.
 * Returns null when the text is not JSON or not an error object.
 */
export function parseErrorBody(text: string): OpenAIErrorBody['error'] | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!v || typeof v !== 'object') return null;
  const o = v as Record<string, unknown>;
  const inner = (o.error && typeof o.error === 'object' ? o.error : o.object === 'error' ? o : null) as Record<string, unknown> | null;
  if (!inner || typeof inner.message !== 'string') return null;
  return {
    message: inner.message,
    type: typeof inner.type === 'string' ? inner.type : 'error',
    param: typeof inner.param === 'string' ? inner.param : null,
    code: typeof inner.code === 'string' || typeof inner.code === 'number' ? inner.code : null,
  };
}
