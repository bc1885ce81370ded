/**
 * JSON in and out for the admin API routes (the gateway's `/admin/keys`, `/admin/models/*` and the
 * controllers' `/admin/autoscalers`, `/admin/adapters`), so both answer bad bodies with the same
 * documented codes (docs/gateway.md "Error codes": 413 `request_too_large`, 400 `invalid_json`).
 */
import type { RequestLike, ResponseLike } from './http1.ts';
import { bodyTooLarge, invalidJson } from './errors.ts';

/** Sends `v` as a JSON response with `status` (a `node:http` response or the gateway's `Http1Response`). */
export function sendJson(res: ResponseLike, status: number, v: unknown): void {
  const b = JSON.stringify(v);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) });
  res.end(b);
}

/**
 * Reads a request body of at most `maxBytes` bytes that must be a JSON object (an empty body is `{}`).
 * @throws ApiError 413 `request_too_large` over the limit; 400 `invalid_json` when it is not JSON or not an object.
 */
export async function readJsonObject(req: RequestLike, maxBytes: number): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let n = 0;
  // Leaving a for-await loop early destroys the request and its socket, so an oversized body is
  // read to its end (and dropped) before the 413 is thrown.
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n <= maxBytes) chunks.push(c as Buffer);
  }
  if (n > maxBytes) throw bodyTooLarge(maxBytes);
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch (e) {
    throw invalidJson((e as Error).message);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw invalidJson('the body must be a JSON object');
  return v as Record<string, unknown>;
}
