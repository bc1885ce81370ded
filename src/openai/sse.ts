/**
 * Server-sent events as OpenAI/vLLM stream them: each event is `data: <json>\n\n` and a stream
 * ends with `data: [DONE]\n\n` (also after an in-stream error; vLLM
 * `vllm/entrypoints/openai/*serving*`). Pure framing plus an incremental parser.
 *
 * The parser follows the WHATWG EventSource rules that matter for OpenAI streams: lines end with
 * `\n`, `\r\n` or `\r`; an empty line dispatches the event; `data:` lines of one event are joined by
 * `\n`; a single leading space after the colon is dropped; lines starting with `:` are comments;
 * `event:`/`id:` fields are recorded. Bytes may be split anywhere (even inside a UTF-8 sequence).
 */

/** The terminating data payload of an OpenAI stream. */
export const SSE_DONE = '[DONE]';

/** Frames one JSON value as an SSE event: `data: <json>\n\n`. */
export function sseData(value: unknown): string {
  return `data: ${JSON.stringify(value)}\n\n`;
}

/** Frames an already-serialized payload: `data: <text>\n\n` (text must not contain newlines). */
export function sseRaw(text: string): string {
  return `data: ${text}\n\n`;
}

/** The end-of-stream frame `data: [DONE]\n\n`. */
export const SSE_DONE_FRAME = 'data: [DONE]\n\n';

/** One parsed SSE event. `data` is the joined data lines (e.g. a JSON text or `[DONE]`). */
export interface SseEvent {
  data: string;
  event?: string;
  id?: string;
}

/**
 * Incremental SSE parser: `push(chunk)` with any byte/string chunks, get the complete events that
 * chunk finished. Call `end()` at end of stream to flush a final event not followed by a blank line.
 */
export class SseParser {
  private readonly decoder = new TextDecoder('utf-8');
  private buf = '';
  private dataLines: string[] = [];
  private event: string | undefined;
  private id: string | undefined;
  private sawCR = false;

  /** Feeds bytes (or text); returns the events completed by this chunk, in order. */
  push(chunk: Uint8Array | string): SseEvent[] {
    let text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    if (this.sawCR && text.startsWith('\n')) text = text.slice(1); // `\r\n` split across chunks
    this.sawCR = false;
    this.buf += text;
    const out: SseEvent[] = [];
    let start = 0;
    const b = this.buf;
    for (let i = 0; i < b.length; i++) {
      const c = b.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(b.slice(start, i), out);
      if (c === 13) {
        if (i + 1 < b.length) {
          if (b.charCodeAt(i + 1) === 10) i++;
        } else {
          this.sawCR = true;
        }
      }
      start = i + 1;
    }
    this.buf = b.slice(start);
    return out;
  }

  /** Flushes a pending event at end of stream (one whose blank line never came). */
  end(): SseEvent[] {
    const out: SseEvent[] = [];
    const tail = this.decoder.decode();
    if (tail) this.buf += tail;
    if (this.buf.length > 0) {
      this.line(this.buf, out);
      this.buf = '';
    }
    this.line('', out);
    return out;
  }

  private line(line: string, out: SseEvent[]): void {
    if (line.length === 0) {
      if (this.dataLines.length > 0) {
        const ev: SseEvent = { data: this.dataLines.join('\n') };
        if (this.event !== undefined) ev.event = this.event;
        if (this.id !== undefined) ev.id = this.id;
        out.push(ev);
      }
      this.dataLines = [];
      this.event = undefined;
      return;
    }
    if (line.charCodeAt(0) === 58 /* ':' */) return; // comment
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'data') this.dataLines.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id') this.id = value;
  }
}

/**
 * Parses a whole SSE body (e.g. a recorded stream) into events.
 */
export function parseSseText(text: string): SseEvent[] {
  const p = new SseParser();
  return [...p.push(text), ...p.end()];
}
