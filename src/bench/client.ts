/**
 * The load client: sends a schedule of requests to an OpenAI-compatible server (the gateway, the
 * simulator, a real vLLM) and records one {@link RequestRecord} per request.
 *
 * Open loop, without coordinated omission: every request has a planned send time, the client sends
 * it then whatever happened to earlier requests, and records how late the send actually was
 * (`lateMs`, which includes any wait for a free slot under the concurrency cap). The send loop sleeps
 * with `setTimeout` until ~2 ms before the next send and then polls with `setImmediate` (which still
 * lets socket I/O run), because Node timers only have ~1 ms resolution.
 *
 * HTTP: undici v6 with keep-alive. Streaming (SSE, parsed by `src/openai/sse.ts`) is the default;
 * TTFT is the time from send to the first chunk with non-empty content (`delta.content`,
 * `delta.reasoning_content` or completions `text`), ITL the gaps between later content chunks, E2E
 * the time to the end of the body. `stream_options.include_usage` asks for token counts.
 */
import { Agent, request, errors as undiciErrors, type Dispatcher } from 'undici';
import { SseParser, SSE_DONE } from '../openai/sse.ts';
import type { PromptFactory } from './prompt.ts';
import type { ErrorKind, RequestRecord } from './record.ts';
import type { RequestSpec, SessionSpec, WorkItem } from './workload.ts';

/** One planned unit of work: a request or a session, starting at `atMs` from the run start. */
export interface ScheduledItem {
  atMs: number;
  item: WorkItem;
}

/** Client settings. */
export interface ClientOptions {
  /** Server base URL, with or without a trailing `/v1` (e.g. `http://127.0.0.1:8000`). */
  baseUrl: string;
  model: string;
  /** `chat` (`/v1/chat/completions`, default) or `completions` (`/v1/completions`). */
  api?: 'chat' | 'completions';
  /** Stream the response (SSE). Default true; without it TTFT and ITL are not measured. */
  stream?: boolean;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Extra request headers (e.g. `routing-strategy`). */
  headers?: Record<string, string>;
  /** Send vLLM's `ignore_eos: true` so the output is exactly `max_tokens` (default true). */
  ignoreEos?: boolean;
  /** Most requests in flight at once (default: unlimited). Waiting for a slot counts as lateness. */
  concurrency?: number;
  /** Per-request timeout in ms, from send to the end of the body (default 600000). */
  timeoutMs?: number;
  /** After {@link BenchRun.stop}, how long to wait for in-flight requests before aborting them (ms, default 30000). */
  drainTimeoutMs?: number;
  /** Response header naming the endpoint that served the request (default `target-pod`). */
  endpointHeader?: string;
  /** Makes prompt text for specs without literal text. */
  prompts: PromptFactory;
  /** Called once per finished request, in completion order. */
  onRecord: (rec: RequestRecord) => void;
  /** Own undici dispatcher (tests); default a keep-alive Agent closed at the end. */
  dispatcher?: Dispatcher;
  /** Monotonic clock in ms (default `performance.now`). */
  now?: () => number;
}

/** Totals of a run. */
export interface RunSummary {
  /** Requests sent (records written). */
  sent: number;
  ok: number;
  failed: number;
  /** Planned requests not sent because the run was stopped. */
  notSent: number;
  /** True when {@link BenchRun.stop} ended the run early. */
  stopped: boolean;
  /** Wall time of the run, ms. */
  durationMs: number;
}

/** Live counters for a progress display. */
export interface RunProgress {
  sent: number;
  done: number;
  failed: number;
  inFlight: number;
  /** Requests planned in total (sessions count each turn once started). */
  planned: number;
  elapsedMs: number;
}

/** A running benchmark: await `done`, call `stop()` to end early (Ctrl-C). */
export interface BenchRun {
  done: Promise<RunSummary>;
  /** Stops sending; in-flight requests get `drainTimeoutMs` to finish, then are aborted and recorded. */
  stop(): void;
  progress(): RunProgress;
}

class Semaphore {
  private waiters: Array<(gotSlot: boolean) => void> = [];
  constructor(private free: number) {}
  /** Resolves true with a slot, or false when woken by {@link drain} (no slot). */
  acquire(): Promise<boolean> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(true);
    }
    return new Promise((res) => this.waiters.push(res));
  }
  release(): void {
    const w = this.waiters.shift();
    if (w) w(true);
    else this.free++;
  }
  /** Wakes every waiter without a slot (used on stop). */
  drain(): void {
    for (const w of this.waiters.splice(0)) w(false);
  }
}

/** The `usage` object of an OpenAI response (vLLM adds `prompt_tokens_details.cached_tokens`). */
interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number } | null;
}

interface ChatMsg {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

function apiRoot(baseUrl: string): string {
  const u = baseUrl.replace(/\/+$/, '');
  return u.endsWith('/v1') ? u : `${u}/v1`;
}

function errCode(e: unknown): string | undefined {
  let x = e as { code?: string; cause?: unknown } | undefined;
  for (let i = 0; i < 4 && x; i++) {
    if (typeof x.code === 'string' && x.code !== 'UND_ERR') return x.code;
    x = x.cause as typeof x;
  }
  return undefined;
}

/**
 * Starts a run over `schedule` (sorted by `atMs` or not; it is sorted here). Returns at once.
 */
export function startBench(schedule: readonly ScheduledItem[], opts: ClientOptions): BenchRun {
  const now = opts.now ?? (() => performance.now());
  const api = opts.api ?? 'chat';
  const stream = opts.stream ?? true;
  const ignoreEos = opts.ignoreEos ?? true;
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const drainTimeoutMs = opts.drainTimeoutMs ?? 30_000;
  const endpointHeader = (opts.endpointHeader ?? 'target-pod').toLowerCase();
  const url = `${apiRoot(opts.baseUrl)}/${api === 'chat' ? 'chat/completions' : 'completions'}`;
  const ownDispatcher = opts.dispatcher === undefined;
  const dispatcher = opts.dispatcher ?? new Agent({ keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000, connections: opts.concurrency ?? null, pipelining: 1 });
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: stream ? 'text/event-stream' : 'application/json', ...(opts.headers ?? {}) };
  if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;
  const sem = opts.concurrency !== undefined && Number.isFinite(opts.concurrency) ? new Semaphore(opts.concurrency) : undefined;

  const items = [...schedule].sort((a, b) => a.atMs - b.atMs);
  let nextId = 0;
  let sent = 0;
  let done = 0;
  let failed = 0;
  let inFlight = 0;
  /** Requests launched and not yet finished, including those waiting for a concurrency slot. */
  let pending = 0;
  let planned = items.reduce((n, s) => n + (s.item.kind === 'request' ? 1 : s.item.session.turns.length), 0);
  let stopped = false;
  let schedIndex = 0;
  let timer: NodeJS.Timeout | undefined;
  let immediate: NodeJS.Immediate | undefined;
  const controllers = new Set<{ ac: AbortController; stopAbort: boolean }>();
  const sessionsAlive = new Set<Promise<void>>();
  let t0 = 0;
  let finish!: (s: RunSummary) => void;
  const donePromise = new Promise<RunSummary>((res) => (finish = res));
  let schedulingDone = false;
  let drainTimer: NodeJS.Timeout | undefined;

  const maybeFinish = (): void => {
    if (!schedulingDone || pending > 0 || sessionsAlive.size > 0) return;
    if (drainTimer) clearTimeout(drainTimer);
    const summary: RunSummary = { sent, ok: done - failed, failed, notSent: Math.max(0, planned - sent), stopped, durationMs: now() - t0 };
    const close = ownDispatcher ? (dispatcher as Agent).close().catch(() => undefined) : Promise.resolve();
    void close.then(() => finish(summary));
  };

  /** Sends one request and resolves with its record (also passed to onRecord). */
  const send = async (spec: RequestSpec, scheduledMs: number, payload: string, promptTokensSent: number, session?: { id: string; turn: number }): Promise<{ rec: RequestRecord; text: string } | null> => {
    pending++; // synchronously, before any await, so the run cannot look finished meanwhile
    if (sem) {
      const got = await sem.acquire();
      if (stopped) {
        if (got) sem.release();
        pending--;
        return null;
      }
    }
    const id = nextId++;
    const ctl = { ac: new AbortController(), stopAbort: false };
    controllers.add(ctl);
    inFlight++;
    sent++;
    const sentAt = now();
    const sentMs = sentAt - t0;
    const { text: _text, ...specNoText } = spec;
    const rec: RequestRecord = {
      id,
      scheduledMs,
      sentMs,
      lateMs: sentMs - scheduledMs,
      ttftMs: null,
      itlMs: [],
      e2eMs: null,
      promptTokens: null,
      outputTokens: null,
      promptTokensSent,
      outputChunks: 0,
      status: null,
      ok: false,
      spec: specNoText,
    };
    if (session) {
      rec.sessionId = session.id;
      rec.turn = session.turn;
    }
    let text = '';
    const usageInto = (u: Usage): void => {
      if (typeof u.prompt_tokens === 'number') rec.promptTokens = u.prompt_tokens;
      if (typeof u.completion_tokens === 'number') rec.outputTokens = u.completion_tokens;
      const cached = u.prompt_tokens_details?.cached_tokens;
      if (typeof cached === 'number') rec.cachedTokens = cached;
    };
    let timedOut = false;
    const to = setTimeout(() => {
      timedOut = true;
      ctl.ac.abort();
    }, timeoutMs);
    let gotResponse = false;
    const fail = (kind: ErrorKind, message: string): void => {
      if (!rec.error) rec.error = { kind, message };
    };
    try {
      const res = await request(url, { method: 'POST', headers, body: payload, dispatcher, signal: ctl.ac.signal, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
      gotResponse = true;
      rec.status = res.statusCode;
      const ep = res.headers[endpointHeader];
      if (ep !== undefined) rec.endpoint = String(ep);
      const rid = res.headers['request-id'] ?? res.headers['x-request-id'];
      if (rid !== undefined) rec.requestId = String(rid);
      if (res.statusCode < 200 || res.statusCode >= 300) {
        const errText = await res.body.text();
        let msg = errText.slice(0, 300);
        try {
          const j = JSON.parse(errText) as { error?: { message?: string }; message?: string };
          msg = j.error?.message ?? j.message ?? msg;
        } catch {
          /* not JSON: keep the text */
        }
        rec.e2eMs = now() - sentAt;
        fail('http', `HTTP ${res.statusCode}: ${msg}`);
      } else if (stream && String(res.headers['content-type'] ?? '').includes('text/event-stream')) {
        const parser = new SseParser();
        let last = 0;
        let sawDone = false;
        const onEvent = (data: string, at: number): void => {
          if (data === SSE_DONE) {
            sawDone = true;
            return;
          }
          let j: {
            choices?: Array<{ delta?: { content?: string | null; reasoning_content?: string | null }; text?: string | null }>;
            usage?: Usage | null;
            error?: { message?: string } | string;
          };
          try {
            j = JSON.parse(data);
          } catch {
            fail('stream', `bad SSE data: ${data.slice(0, 100)}`);
            return;
          }
          if (j.error) {
            fail('stream', `error event: ${typeof j.error === 'string' ? j.error : (j.error.message ?? JSON.stringify(j.error))}`);
            return;
          }
          const c = j.choices?.[0];
          const piece = api === 'chat' ? (c?.delta?.content || c?.delta?.reasoning_content || '') : (c?.text ?? '');
          if (piece) {
            text += piece;
            if (rec.outputChunks === 0) rec.ttftMs = at - sentAt;
            else rec.itlMs.push(at - last);
            last = at;
            rec.outputChunks++;
          }
          if (j.usage) usageInto(j.usage);
        };
        for await (const chunk of res.body) {
          const at = now();
          for (const ev of parser.push(chunk as Buffer)) onEvent(ev.data, at);
        }
        const at = now();
        for (const ev of parser.end()) onEvent(ev.data, at);
        rec.e2eMs = at - sentAt;
        if (!sawDone) fail('stream', 'stream ended without [DONE]');
      } else {
        const bodyText = await res.body.text();
        rec.e2eMs = now() - sentAt;
        try {
          const j = JSON.parse(bodyText) as {
            choices?: Array<{ message?: { content?: string | null }; text?: string | null }>;
            usage?: Usage;
          };
          const c = j.choices?.[0];
          text = (api === 'chat' ? c?.message?.content : c?.text) ?? '';
          if (j.usage) usageInto(j.usage);
          if (!j.choices) fail('stream', 'response has no choices');
        } catch {
          fail('stream', `response is not JSON: ${bodyText.slice(0, 100)}`);
        }
      }
    } catch (e) {
      if (timedOut) fail('timeout', `no complete response within ${timeoutMs} ms`);
      else if (ctl.stopAbort) fail('aborted', 'aborted after the drain timeout of a stopped run');
      else {
        const code = errCode(e);
        const msg = `${code ? code + ': ' : ''}${(e as Error).message}`;
        if (!gotResponse && (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_SOCKET' || e instanceof undiciErrors.SocketError)) {
          fail('connect', msg);
        } else if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') fail('timeout', msg);
        else fail(gotResponse ? 'stream' : 'connect', msg);
      }
      if (gotResponse && rec.e2eMs === null && rec.error?.kind === 'stream') rec.e2eMs = now() - sentAt;
    } finally {
      clearTimeout(to);
      controllers.delete(ctl);
    }
    rec.ok = rec.error === undefined;
    inFlight--;
    pending--;
    done++;
    if (!rec.ok) failed++;
    sem?.release();
    opts.onRecord(rec);
    return { rec, text };
  };

  const bodyFor = (prompt: string | ChatMsg[], spec: RequestSpec): Record<string, unknown> => {
    const b: Record<string, unknown> = { model: opts.model, max_tokens: spec.outputTokens, stream, temperature: 0 };
    if (api === 'chat') b.messages = typeof prompt === 'string' ? [{ role: 'user', content: prompt }] : prompt;
    else b.prompt = typeof prompt === 'string' ? prompt : prompt.map((m) => m.content).join('');
    if (stream) b.stream_options = { include_usage: true };
    if (ignoreEos) b.ignore_eos = true;
    return b;
  };

  const promptOf = (spec: RequestSpec): string => {
    if (spec.text !== undefined) return spec.text;
    const p = opts.prompts;
    if (spec.hashIds && spec.hashIds.length > 0) return p.blocks(spec.hashIds, spec.inputTokens);
    const pre = spec.prefix ? p.prefix(spec.prefix.id, spec.prefix.tokens) : '';
    return pre + p.text(spec.inputTokens - (spec.prefix?.tokens ?? 0), spec.key);
  };

  // Think-time sleeps end early when the run is stopped.
  const sleepers = new Set<() => void>();
  const sleep = (ms: number): Promise<void> =>
    new Promise<void>((res) => {
      const wake = (): void => {
        clearTimeout(tm);
        sleepers.delete(wake);
        res();
      };
      const tm = setTimeout(wake, ms);
      sleepers.add(wake);
    });

  const runSession = async (session: SessionSpec, startMs: number): Promise<void> => {
    const history: ChatMsg[] = [];
    let ctxTokens = 0;
    if (session.systemTokens > 0) {
      history.push({ role: 'system', content: opts.prompts.prefix('system', session.systemTokens) });
      ctxTokens += session.systemTokens;
    }
    let at = startMs;
    for (const [k, turn] of session.turns.entries()) {
      if (stopped) return;
      if (k > 0) {
        at = now() - t0 + turn.thinkTimeMs;
        const wait = at - (now() - t0);
        if (wait > 0) await sleep(wait);
        if (stopped) return;
      }
      const user = promptOf(turn.request);
      history.push({ role: 'user', content: user });
      ctxTokens += turn.request.inputTokens;
      const r = await send(turn.request, at, JSON.stringify(bodyFor(history, turn.request)), ctxTokens, { id: session.id, turn: k });
      if (!r) return;
      const { rec, text } = r;
      // A failed turn ends the session: later turns would build on a reply that never came.
      if (!rec.ok) {
        planned -= session.turns.length - k - 1;
        return;
      }
      const reply = text || opts.prompts.text(turn.request.outputTokens, `${turn.request.key}/reply`);
      history.push({ role: 'assistant', content: reply });
      ctxTokens += rec.outputTokens ?? (text ? rec.outputChunks : turn.request.outputTokens);
    }
  };

  // Request bodies (prompt text + JSON) are built ahead of their send time while the loop is idle,
  // so the send path is only the HTTP call.
  const prepared = new Map<number, string>();
  let prepIndex = 0;
  const payloadOf = (spec: RequestSpec): string => JSON.stringify(bodyFor(promptOf(spec), spec));
  /** Prepares bodies due before `untilMs`, stopping at `deadlineMs` (run time) to stay on schedule. */
  const prepareAhead = (untilMs: number, deadlineMs: number): void => {
    if (prepIndex < schedIndex) prepIndex = schedIndex;
    while (prepIndex < items.length && prepared.size < 512 && items[prepIndex]!.atMs <= untilMs && now() - t0 < deadlineMs) {
      const s = items[prepIndex]!;
      if (s.item.kind === 'request') prepared.set(prepIndex, payloadOf(s.item.request));
      prepIndex++;
    }
  };

  const launch = (s: ScheduledItem, index: number): void => {
    if (s.item.kind === 'request') {
      const spec = s.item.request;
      const payload = prepared.get(index) ?? payloadOf(spec);
      prepared.delete(index);
      void send(spec, s.atMs, payload, spec.inputTokens).then(maybeFinish);
    } else {
      const p: Promise<void> = runSession(s.item.session, s.atMs).finally(() => {
        sessionsAlive.delete(p);
        maybeFinish();
      });
      sessionsAlive.add(p);
    }
  };

  const tick = (): void => {
    timer = undefined;
    immediate = undefined;
    if (stopped) return;
    const t = now() - t0;
    while (schedIndex < items.length && items[schedIndex]!.atMs <= t) {
      launch(items[schedIndex]!, schedIndex);
      schedIndex++;
    }
    if (schedIndex >= items.length) {
      schedulingDone = true;
      maybeFinish();
      return;
    }
    let wait = items[schedIndex]!.atMs - (now() - t0);
    if (wait > 0.5) {
      const nextAt = items[schedIndex]!.atMs;
      prepareAhead(nextAt + 50, nextAt - 0.5);
      wait = items[schedIndex]!.atMs - (now() - t0);
    }
    if (wait > 2) timer = setTimeout(tick, wait - 2);
    else immediate = setImmediate(tick);
  };

  t0 = now();
  if (items.length === 0) {
    schedulingDone = true;
    queueMicrotask(maybeFinish);
  } else tick();

  return {
    done: donePromise,
    stop() {
      if (stopped) return;
      stopped = true;
      if (timer) clearTimeout(timer);
      if (immediate) clearImmediate(immediate);
      prepared.clear();
      for (const wake of [...sleepers]) wake();
      sem?.drain();
      schedulingDone = true;
      if (inFlight > 0) {
        drainTimer = setTimeout(() => {
          for (const c of controllers) {
            c.stopAbort = true;
            c.ac.abort();
          }
        }, drainTimeoutMs);
      }
      maybeFinish();
    },
    progress: () => ({ sent, done, failed, inFlight, planned, elapsedMs: now() - t0 }),
  };
}
