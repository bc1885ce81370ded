/**
 * Reading usage out of responses as they pass through the gateway.
 *
 * - `UsageTap` watches a streamed (SSE) response without changing a byte: the caller writes every
 *   upstream chunk to the client as is and hands a reference to the tap, which parses events with
 *   `SseParser` (`src/openai/sse.ts`) and keeps the last `usage` object seen (vLLM sends it in the
 *   final chunk with `choices: []` when `stream_options.include_usage` is set —
 *   `../shared/reference/vllm-api.md` §3.2).
 * - `UsageStripper` is used only when the gateway itself added `include_usage` (it needs the count
 *   for a TPM limit) and the client did not ask for it: it forwards whole events unchanged and drops
 *   the usage-only event (`"choices":[]` with `usage`). Events are held until their blank line, so a
 *   partial event is never emitted; the bytes of forwarded events are identical to upstream's.
 * - `usageFromJson` reads `usage` from a non-streamed JSON response.
 */
import { SseParser } from '../openai/sse.ts';

/** Token counts from an OpenAI `usage` object. */
export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  cachedTokens?: number;
}

/** Converts an OpenAI/vLLM `usage` object (or the Responses API `input/output_tokens` form). */
export function toTokenUsage(u: unknown): TokenUsage | undefined {
  if (!u || typeof u !== 'object') return undefined;
  const o = u as Record<string, unknown>;
  const p = typeof o.prompt_tokens === 'number' ? o.prompt_tokens : typeof o.input_tokens === 'number' ? o.input_tokens : undefined;
  const c = typeof o.completion_tokens === 'number' ? o.completion_tokens : typeof o.output_tokens === 'number' ? o.output_tokens : 0;
  if (p === undefined) return undefined;
  const det = o.prompt_tokens_details as { cached_tokens?: unknown } | undefined;
  return {
    promptTokens: p,
    completionTokens: c,
    totalTokens: typeof o.total_tokens === 'number' ? o.total_tokens : p + c,
    cachedTokens: det && typeof det.cached_tokens === 'number' ? det.cached_tokens : undefined,
  };
}

/** The needle, encoded once (a string needle is encoded on every search). */
const USAGE_KEY = Buffer.from('"usage"');

/**
 * Reads `usage` from a complete JSON response body; undefined when absent or not JSON.
 * Parses only the `usage` object (located by a byte search and brace matching), not the whole body.
 */
export function usageFromJson(buf: Buffer): TokenUsage | undefined {
  const i = buf.lastIndexOf(USAGE_KEY);
  if (i < 0) return undefined;
  const start = buf.indexOf(123 /* { */, i + 7);
  if (start < 0) return undefined;
  let depth = 0;
  for (let j = start; j < buf.length; j++) {
    const c = buf[j];
    if (c === 123) depth++;
    else if (c === 125 && --depth === 0) {
      try {
        return toTokenUsage(JSON.parse(buf.toString('utf8', start, j + 1)));
      } catch {
        return undefined;
      }
    } else if (c === 34 /* " */) {
      // skip a string (usage holds only numbers and keys, but be safe)
      for (j++; j < buf.length && buf[j] !== 34; j++) if (buf[j] === 92) j++;
    }
  }
  return undefined;
}

/** Observes an SSE stream (read-only): usage and the number of data events. */
export class UsageTap {
  private readonly parser = new SseParser();
  usage: TokenUsage | undefined;
  events = 0;

  push(chunk: Uint8Array): void {
    for (const ev of this.parser.push(chunk)) this.onData(ev.data);
  }
  end(): void {
    for (const ev of this.parser.end()) this.onData(ev.data);
  }
  private onData(data: string): void {
    if (data === '[DONE]') return;
    this.events++;
    if (data.includes('"usage"')) {
      try {
        const u = toTokenUsage((JSON.parse(data) as { usage?: unknown }).usage);
        if (u) this.usage = u;
      } catch {
        /* a non-JSON data line is the client's business; we only read usage */
      }
    }
  }
}

const LF2 = Buffer.from('\n\n');
const CRLF2 = Buffer.from('\r\n\r\n');

/**
 * Forwards whole SSE events, dropping the usage-only event; `push` returns the bytes to send now
 * (possibly empty), `end` the remainder.
 */
export class UsageStripper {
  private pending: Buffer = Buffer.alloc(0);
  usage: TokenUsage | undefined;
  events = 0;

  push(chunk: Buffer): Buffer {
    const buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const out: Buffer[] = [];
    let start = 0;
    for (;;) {
      const a = buf.indexOf(LF2, start);
      const b = buf.indexOf(CRLF2, start);
      let end: number;
      let sepLen: number;
      if (a < 0 && b < 0) break;
      if (b >= 0 && (a < 0 || b < a)) {
        end = b;
        sepLen = 4;
      } else {
        end = a;
        sepLen = 2;
      }
      const ev = buf.subarray(start, end + sepLen);
      if (!this.isUsageOnly(ev)) out.push(ev);
      start = end + sepLen;
    }
    this.pending = Buffer.from(buf.subarray(start));
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  end(): Buffer {
    const rest = this.pending;
    this.pending = Buffer.alloc(0);
    return rest.length && !this.isUsageOnly(rest) ? rest : Buffer.alloc(0);
  }

  private isUsageOnly(ev: Buffer): boolean {
    const text = ev.toString('utf8');
    const i = text.indexOf('data:');
    if (i < 0) return false;
    const data = text.slice(i + 5).trim();
    if (data === '[DONE]') return false;
    this.events++;
    if (!data.includes('"usage"')) return false;
    try {
      const o = JSON.parse(data) as { usage?: unknown; choices?: unknown[] };
      const u = toTokenUsage(o.usage);
      if (u) this.usage = u;
      return !!u && Array.isArray(o.choices) && o.choices.length === 0;
    } catch {
      return false;
    }
  }
}
