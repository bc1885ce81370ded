/**
 * Request-trace loaders: the Azure LLM inference CSV (Splitwise, ISCA 2024) and the Mooncake JSONL
 * traces (FAST '25). Both return the same shape, {@link TraceRequest}, so the load client and the
 * discrete-event simulator replay either one.
 *
 * File formats (see `../shared/data/traces/README.md`):
 * - Azure: header `TIMESTAMP,ContextTokens,GeneratedTokens`, CRLF line endings, no trailing newline,
 *   timestamps `YYYY-MM-DD HH:MM:SS.fffffff` (7 fractional digits, no time zone). `Date` does not
 *   parse 7 fractional digits reliably, so the seconds field is split by hand and times are taken
 *   relative to the first row.
 * - Mooncake: one JSON object per line, `{timestamp (ms, relative), input_length, output_length,
 *   hash_ids}`; one hash id per 512-token block of the input (`len == ceil(input_length / 512)`).
 *
 * Bad rows throw an `Error` whose message starts with `FILE:LINE:` (1-based line numbers, the header
 * is line 1 for Azure), never a bare crash.
 */
import { readFileSync } from 'node:fs';

/** Block size of Mooncake `hash_ids`, in tokens (Mooncake FAST '25 trace release, README). */
export const MOONCAKE_BLOCK_TOKENS = 512;

/** Window and speed options shared by both loaders. All optional. */
export interface TraceOptions {
  /**
   * Multiplies inter-arrival times (and so every `arrivalMs`): 0.5 replays twice as fast, 2 half as
   * fast. Must be > 0. Default 1.
   */
  timeScale?: number;
  /** Window start, in seconds of trace time (before `timeScale`) from the trace's zero. Default 0. */
  startS?: number;
  /** Window length, in seconds of trace time (before `timeScale`). Default: to the end. */
  durationS?: number;
  /** Keep at most this many requests (the first ones in the window). Default: all. */
  maxRequests?: number;
}

/** One request of a trace, ready to replay. */
export interface TraceRequest {
  /** Arrival time in ms, relative to the window start (`startS`), after `timeScale`. */
  arrivalMs: number;
  /** Prompt (input) length in tokens. */
  inputTokens: number;
  /** Generated (output) length in tokens. */
  outputTokens: number;
  /**
   * Mooncake only: one id per 512-token block of the input; equal ids mean the same KV-cache prefix
   * block (the last block may be partial).
   */
  hashIds?: number[];
}

/** Thrown for a bad row or a bad option; the message names the file and, for rows, the line. */
export class TraceFormatError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly line?: number,
  ) {
    super(line === undefined ? `${file}: ${message}` : `${file}:${line}: ${message}`);
    this.name = 'TraceFormatError';
  }
}

interface Window {
  timeScale: number;
  startMs: number;
  endMs: number;
  maxRequests: number;
}

function windowOf(file: string, opts: TraceOptions = {}): Window {
  const timeScale = opts.timeScale ?? 1;
  if (!(Number.isFinite(timeScale) && timeScale > 0)) throw new TraceFormatError(`timeScale must be a number > 0, got ${opts.timeScale}`, file);
  const startS = opts.startS ?? 0;
  if (!(Number.isFinite(startS) && startS >= 0)) throw new TraceFormatError(`startS must be a number >= 0, got ${opts.startS}`, file);
  const durationS = opts.durationS ?? Infinity;
  if (!(durationS > 0)) throw new TraceFormatError(`durationS must be a number > 0, got ${opts.durationS}`, file);
  const maxRequests = opts.maxRequests ?? Infinity;
  if (!(maxRequests === Infinity || (Number.isInteger(maxRequests) && maxRequests > 0))) {
    throw new TraceFormatError(`maxRequests must be a positive integer, got ${opts.maxRequests}`, file);
  }
  return { timeScale, startMs: startS * 1000, endMs: startS * 1000 + durationS * 1000, maxRequests };
}

function tokenCount(v: unknown, what: string, file: string, line: number): number {
  const n = typeof v === 'string' ? (/^\s*\d+\s*$/.test(v) ? Number(v) : NaN) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    throw new TraceFormatError(`${what} must be a non-negative integer, got ${JSON.stringify(v)}`, file, line);
  }
  return n;
}

/** Splits text into lines, accepting LF and CRLF and a missing trailing newline. */
function lines(text: string): string[] {
  const out = text.split('\n');
  for (let i = 0; i < out.length; i++) {
    const l = out[i]!;
    if (l.endsWith('\r')) out[i] = l.slice(0, -1);
  }
  return out;
}

const AZURE_TS = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?$/;

/**
 * Parses an Azure timestamp to `[whole seconds as ms since the Unix epoch (read as UTC), fraction in
 * ms]`. The two parts are kept apart so that differences keep sub-microsecond precision (epoch ms
 * near 1.7e12 have a float resolution of ~0.24 us). Only differences matter.
 */
function azureTimestampMs(s: string): [number, number] | undefined {
  const m = AZURE_TS.exec(s);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, se, frac] = m;
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const min = Number(mi);
  const sec = Number(se);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) return undefined;
  const whole = Date.UTC(Number(y), month - 1, day, hour, min, sec);
  // Fraction of a second to ms without going through Date: "6805900" -> 680.59.
  const fracMs = frac ? (Number(frac) / 10 ** frac.length) * 1000 : 0;
  return [whole, fracMs];
}

/**
 * Keeps rows whose trace time `t` (ms) lies in the window, rebases and scales them. `rows` must be in
 * non-decreasing `t` order (the parsers check it).
 */
function applyWindow<T extends { t: number }>(rows: T[], w: Window, make: (r: T, arrivalMs: number) => TraceRequest): TraceRequest[] {
  const out: TraceRequest[] = [];
  for (const r of rows) {
    if (r.t < w.startMs) continue;
    if (r.t >= w.endMs || out.length >= w.maxRequests) break;
    out.push(make(r, (r.t - w.startMs) * w.timeScale));
  }
  return out;
}

/**
 * Parses Azure LLM inference CSV text (see the module doc). `file` is used in error messages only.
 * Trace time zero is the first row's timestamp.
 * @throws TraceFormatError on a missing column, a bad timestamp or token count, or a timestamp that
 *   goes backwards (message `FILE:LINE: ...`), and on bad options.
 */
export function parseAzureTrace(text: string, file = '<azure>', opts?: TraceOptions): TraceRequest[] {
  const w = windowOf(file, opts);
  const ls = lines(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  const header = (ls[0] ?? '').split(',').map((h) => h.trim());
  const iTs = header.indexOf('TIMESTAMP');
  const iIn = header.indexOf('ContextTokens');
  const iOut = header.indexOf('GeneratedTokens');
  if (iTs < 0 || iIn < 0 || iOut < 0) {
    throw new TraceFormatError(`header must have columns TIMESTAMP, ContextTokens, GeneratedTokens; got ${JSON.stringify(ls[0] ?? '')}`, file, 1);
  }
  const ncol = header.length;
  const rows: Array<{ t: number; i: number; o: number }> = [];
  let first: [number, number] | undefined;
  let prev = -Infinity;
  for (let k = 1; k < ls.length; k++) {
    const line = ls[k]!;
    if (line.trim() === '') continue;
    const lineNo = k + 1;
    const f = line.split(',');
    if (f.length !== ncol) throw new TraceFormatError(`expected ${ncol} fields, got ${f.length}: ${JSON.stringify(line)}`, file, lineNo);
    const tsText = f[iTs]!.trim();
    const abs = azureTimestampMs(tsText);
    if (abs === undefined) throw new TraceFormatError(`TIMESTAMP must look like YYYY-MM-DD HH:MM:SS.fffffff, got ${JSON.stringify(tsText)}`, file, lineNo);
    first ??= abs;
    const t = abs[0] - first[0] + (abs[1] - first[1]);
    if (t < prev) throw new TraceFormatError(`TIMESTAMP ${tsText} is earlier than the previous row's (rows must be in time order)`, file, lineNo);
    prev = t;
    rows.push({ t, i: tokenCount(f[iIn], 'ContextTokens', file, lineNo), o: tokenCount(f[iOut], 'GeneratedTokens', file, lineNo) });
  }
  return applyWindow(rows, w, (r, arrivalMs) => ({ arrivalMs, inputTokens: r.i, outputTokens: r.o }));
}

/**
 * Parses Mooncake JSONL text (see the module doc). Trace time zero is `timestamp` 0 (not the first
 * row). `hash_ids` is optional per row; when present it must hold `ceil(input_length / 512)`
 * non-negative integers.
 * @throws TraceFormatError on bad JSON, a missing or bad field, a wrong `hash_ids` length or a
 *   timestamp that goes backwards (message `FILE:LINE: ...`), and on bad options.
 */
export function parseMooncakeTrace(text: string, file = '<mooncake>', opts?: TraceOptions): TraceRequest[] {
  const w = windowOf(file, opts);
  const ls = lines(text);
  const rows: Array<{ t: number; i: number; o: number; h: number[] | undefined }> = [];
  let prev = -Infinity;
  for (let k = 0; k < ls.length; k++) {
    const line = ls[k]!;
    if (line.trim() === '') continue;
    const lineNo = k + 1;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch (e) {
      throw new TraceFormatError(`invalid JSON (${(e as Error).message})`, file, lineNo);
    }
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new TraceFormatError('expected a JSON object', file, lineNo);
    const r = o as Record<string, unknown>;
    const t = r.timestamp;
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) {
      throw new TraceFormatError(`timestamp must be a number of ms >= 0, got ${JSON.stringify(t)}`, file, lineNo);
    }
    if (t < prev) throw new TraceFormatError(`timestamp ${t} is earlier than the previous row's ${prev} (rows must be in time order)`, file, lineNo);
    prev = t;
    const input = tokenCount(r.input_length, 'input_length', file, lineNo);
    const output = tokenCount(r.output_length, 'output_length', file, lineNo);
    let h: number[] | undefined;
    if (r.hash_ids !== undefined) {
      const ids = r.hash_ids;
      if (!Array.isArray(ids) || !ids.every((x) => Number.isSafeInteger(x) && (x as number) >= 0)) {
        throw new TraceFormatError('hash_ids must be an array of non-negative integers', file, lineNo);
      }
      const want = Math.ceil(input / MOONCAKE_BLOCK_TOKENS);
      if (ids.length !== want) {
        throw new TraceFormatError(`hash_ids has ${ids.length} ids but input_length ${input} needs ceil(${input}/${MOONCAKE_BLOCK_TOKENS}) = ${want}`, file, lineNo);
      }
      h = ids as number[];
    }
    rows.push({ t, i: input, o: output, h });
  }
  return applyWindow(rows, w, (r, arrivalMs) => {
    const req: TraceRequest = { arrivalMs, inputTokens: r.i, outputTokens: r.o };
    if (r.h) req.hashIds = r.h;
    return req;
  });
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new TraceFormatError(`cannot read trace file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, path);
  }
}

/**
 * Loads an Azure LLM inference trace CSV (e.g. `../shared/data/traces/azure-llm-2023-conv.csv`).
 * Requests are in arrival order; `arrivalMs` is relative to the window start, after `timeScale`.
 * @throws TraceFormatError (`FILE:LINE: ...`) on an unreadable file or a bad row.
 */
export function loadAzureTrace(path: string, opts?: TraceOptions): TraceRequest[] {
  return parseAzureTrace(readText(path), path, opts);
}

/**
 * Loads a Mooncake trace JSONL (e.g. `../shared/data/traces/mooncake-conversation.jsonl`), keeping
 * `hash_ids` as `hashIds` (one id per 512-token block). Note the conversation trace's timestamps are
 * bucketed every ~3 s, so requests arrive in bursts.
 * @throws TraceFormatError (`FILE:LINE: ...`) on an unreadable file or a bad row.
 */
export function loadMooncakeTrace(path: string, opts?: TraceOptions): TraceRequest[] {
  return parseMooncakeTrace(readText(path), path, opts);
}

/**
 * Spreads requests that share a timestamp evenly over the following `bucketMs` ms: the k-th of n
 * requests at time t goes to `t + k * bucketMs / n`. For the Mooncake conversation trace, whose
 * timestamps are bucketed every ~3 s (README of `shared/data/traces`), `bucketMs = 3000 * timeScale`
 * turns its bursts into smooth arrivals. Pure; returns new rows in time order.
 * @throws Error when `bucketMs` is not a number > 0.
 */
export function spreadBuckets(rows: readonly TraceRequest[], bucketMs: number): TraceRequest[] {
  if (!(Number.isFinite(bucketMs) && bucketMs > 0)) throw new Error(`bucket width must be a number of ms > 0, got ${bucketMs}`);
  const out: TraceRequest[] = [];
  for (let i = 0; i < rows.length; ) {
    let j = i;
    while (j < rows.length && rows[j]!.arrivalMs === rows[i]!.arrivalMs) j++;
    const n = j - i;
    for (let k = 0; k < n; k++) out.push({ ...rows[i + k]!, arrivalMs: rows[i]!.arrivalMs + (k * bucketMs) / n });
    i = j;
  }
  return out.sort((a, b) => a.arrivalMs - b.arrivalMs);
}
