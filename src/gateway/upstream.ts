/**
 * The gateway's upstream HTTP/1.1 client: one keep-alive connection pool per endpoint, built for the
 * proxy's hot path.
 *
 * Why not undici (which the gateway used before, and which the scraper and health checker still
 * use): on the proxy path every request pays undici's generic machinery (request object and header
 * validation, the dispatcher/interceptor chain, the wasm llhttp parser with its callbacks). Measured
 * with `autocannon` against an nginx upstream on 2 cores, a bare `node:http` proxy forwarding through
 * undici's `dispatch` served ~22.5k req/s, the same proxy through this module's approach ~29.5k
 * (docs/benchmarks/gateway.md). The gateway needs only a narrow slice of HTTP/1.1 towards engines
 * it knows (vLLM, SGLang, the simulator), and that slice is implemented here in full:
 *
 * - Requests: one write per request (request line, headers, `content-length`, body), HTTP/1.1,
 *   keep-alive, no pipelining (one exchange per connection at a time: an LLM response can take
 *   minutes and must not block another).
 * - Responses (RFC 9112): status line; header fields (`name: value`, names lowercased); 1xx interim
 *   responses skipped; body framed by `transfer-encoding: chunked` (chunk extensions and trailers
 *   accepted and dropped), by `content-length`, or by the connection closing; none for 204/304.
 *   Duplicate differing `content-length` values, bad chunk sizes, a header block over
 *   `maxHeaderBytes`, or bytes after a complete response are protocol errors (the socket is
 *   destroyed, never reused).
 * - Connection reuse: a socket is reused when the response was fully read, was not framed by close,
 *   and neither side said `connection: close`. Idle sockets expire after `keepAliveTimeoutMs`, or
 *   after the server's `keep-alive: timeout=N` hint minus 1 s when that is shorter (uvicorn, which
 *   vLLM runs on, closes idle connections after 5 s). A reused socket that fails before any byte of
 *   the response arrived (the server closed it while idle) is retried once on a new connection.
 * - Timeouts (ms, 0 = none): `connectTimeoutMs`, `headersTimeoutMs` (request sent -> header block
 *   complete), `bodyTimeoutMs` (longest silence between body bytes). They are checked by one
 *   coarse sweep timer per pool (period about 1/8 of the shortest timeout, 10..1000 ms), not a timer
 *   per request.
 * - Backpressure: a handler's `onData`/`onHeaders` returning false pauses reading from the socket
 *   until the `resume` callback given to `onHeaders` is called.
 * - Abort: the `abort` given to `onConnect` destroys the connection (it cannot be reused mid-response)
 *   and the handler gets `onError` with an `UpstreamError` of code `UPSTREAM_ABORTED` (or the error
 *   passed to `abort`).
 * - TLS when the endpoint URL is `https:`.
 *
 * Errors reach the handler's `onError` exactly once, or `onComplete` is called exactly once; never
 * both. System errors (`ECONNREFUSED`, `ECONNRESET`, ...) are passed as Node gives them.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { corkUntilTurnEnd } from './write-batch.ts';

/** Error codes of `UpstreamError`. */
export type UpstreamErrorCode =
  | 'UPSTREAM_CONNECT_TIMEOUT'
  | 'UPSTREAM_HEADERS_TIMEOUT'
  | 'UPSTREAM_BODY_TIMEOUT'
  | 'UPSTREAM_ABORTED'
  | 'UPSTREAM_CLOSED'
  | 'UPSTREAM_PROTOCOL'
  | 'UPSTREAM_DESTROYED'
  | 'UPSTREAM_BAD_REQUEST';

/** An upstream failure that is not a system error: timeouts, abort, early close, protocol errors. */
export class UpstreamError extends Error {
  constructor(
    readonly code: UpstreamErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }
}

/**
 * Receives one exchange's events, in this order: `onConnect` (once, before anything is sent), then
 * either `onError` (once), or `onHeaders` (once, after any 1xx), `onData` (0..n, body bytes after
 * de-chunking, as views into the socket's buffers: copy them to keep them past the call) and
 * `onComplete` (once); `onError` may also follow `onHeaders`/`onData` when the exchange breaks.
 */
export interface UpstreamHandler {
  /** `abort(err?)` cancels the exchange at any time (no-op once it settled). */
  onConnect(abort: (err?: Error) => void): void;
  /**
   * The final (non-1xx) response head. `headers` is flat `[name, value, name, value, ...]` with names
   * lowercased and values as sent (latin1). Return false to pause until `resume()` is called.
   */
  onHeaders(status: number, headers: string[], resume: () => void): boolean;
  /** A piece of the body. Return false to pause until `resume()` is called. */
  onData(chunk: Buffer): boolean;
  onComplete(): void;
  onError(err: Error): void;
}

/** One upstream request. `headers` must not contain `host`, `content-length` or `connection`. */
export interface UpstreamRequest {
  method: string;
  /** Path and query, e.g. `/v1/chat/completions`. */
  path: string;
  headers: Readonly<Record<string, string>>;
  body: Buffer;
}

export interface UpstreamPoolOptions {
  /** Most connections open at once; further requests wait in FIFO order. Default 256. */
  connections?: number;
  /** ms; 0 = none. Default 10 000. */
  connectTimeoutMs?: number;
  /** ms from the request written to the response's header block complete; 0 = none. Default 300 000. */
  headersTimeoutMs?: number;
  /** ms of silence allowed between body bytes; 0 = none. Default 300 000. */
  bodyTimeoutMs?: number;
  /** ms an idle connection is kept (shortened by a server's `keep-alive: timeout` hint). Default 4 000. */
  keepAliveTimeoutMs?: number;
  /** Bytes of one response header block. Default 65 536. */
  maxHeaderBytes?: number;
  /** Clock (ms), for the timeouts. Default `Date.now`. */
  now?: () => number;
  /**
   * Extra TLS options for `https:` endpoints (e.g. `ca` for a private CA). Default: Node's trust
   * store (plus `NODE_EXTRA_CA_CERTS`), certificate and host name verified.
   */
  tls?: Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'>;
}

const INVALID_HEADER_VALUE = /[\r\n\0]/;
const INVALID_PATH = /[\s\0]/;
const CRLF2 = Buffer.from('\r\n\r\n');

/** Body framing of the response being read. */
const enum Framing {
  None,
  Length,
  Chunked,
  Close,
}

/** Where the chunked decoder is. */
const enum ChunkState {
  Size,
  Data,
  DataCrlf,
  Trailers,
}

const EMPTY = Buffer.alloc(0);
const noop = (): void => undefined;
/** Handler of a settled exchange (drops the references to the request's objects at once). */
const SETTLED: UpstreamHandler = { onConnect: noop, onHeaders: () => true, onData: () => true, onComplete: noop, onError: noop };

/**
 * Marks `ex` settled and returns its handler for the one final callback. The exchange then drops
 * its references to the request (handler, wire bytes): without that, settled exchanges kept whole
 * requests alive across scavenges and old space grew under load.
 */
function settle(ex: Exchange): UpstreamHandler {
  const h = ex.handler;
  ex.settled = true;
  ex.handler = SETTLED;
  ex.wire = EMPTY;
  return h;
}

/** One exchange: the request, its handler and its progress. */
class Exchange {
  settled = false;
  /** Response bytes received so far (0 = the connection may have been stale). */
  bytesIn = 0;
  /** Retried once already on a fresh connection after a stale keep-alive socket failed. */
  retried = false;
  readonly abort: (err?: Error) => void;
  constructor(
    readonly pool: UpstreamPool,
    public wire: Buffer,
    public handler: UpstreamHandler,
  ) {
    this.abort = (err?: Error) => this.pool.abortExchange(this, err ?? new UpstreamError('UPSTREAM_ABORTED', 'request aborted'));
  }
  /** The connection it is on, while on one. */
  conn: Connection | null = null;
}

/** One keep-alive connection and its response parser. */
class Connection {
  readonly socket: Socket;
  ex: Exchange | null = null;
  /** Exchanges served (0 = fresh). */
  served = 0;
  /** Absolute ms when the running phase times out (0 = no deadline). */
  deadline = 0;
  deadlineCode: UpstreamErrorCode = 'UPSTREAM_HEADERS_TIMEOUT';
  connected = false;
  dead = false;
  /** Idle keep-alive expiry hint from the server (ms), 0 = none. */
  serverKeepAliveMs = 0;
  /** When the connection last became idle (pool clock, ms); read only while it is in the idle list. */
  idleSinceMs = 0;
  // parser state
  private head: Buffer | null = null;
  private inBody = false;
  private framing = Framing.None;
  private remaining = 0;
  private chunkState = ChunkState.Size;
  private lineBuf = '';
  private reusable = true;
  private paused = false;
  private pending: Buffer | null = null;
  private readonly resumeFn: () => void;
  private connectTimer: NodeJS.Timeout | null = null;

  constructor(readonly pool: UpstreamPool) {
    const u = pool.target;
    this.socket = u.tls ? tlsConnect({ ...pool.tlsOptions, host: u.host, port: u.port, servername: u.servername }) : netConnect({ host: u.host, port: u.port });
    this.socket.setNoDelay(true);
    this.resumeFn = () => this.resume();
    const onConnect = () => {
      this.connected = true;
      if (this.connectTimer) clearTimeout(this.connectTimer);
      this.connectTimer = null;
    };
    this.socket.once(u.tls ? 'secureConnect' : 'connect', onConnect);
    if (pool.connectTimeoutMs > 0) {
      this.connectTimer = setTimeout(() => {
        this.connectTimer = null;
        if (!this.connected) this.fail(new UpstreamError('UPSTREAM_CONNECT_TIMEOUT', `connect to ${u.origin} timed out after ${pool.connectTimeoutMs} ms`));
      }, pool.connectTimeoutMs);
      this.connectTimer.unref();
    }
    this.socket.on('data', (b: Buffer) => this.feed(b));
    this.socket.on('end', () => this.onEnd());
    this.socket.on('error', (e: Error) => this.fail(e));
    this.socket.on('close', () => this.fail(new UpstreamError('UPSTREAM_CLOSED', `connection to ${u.origin} closed before the response completed`)));
  }

  /** Sends `ex` on this connection (idle or connecting). */
  send(ex: Exchange): void {
    this.ex = ex;
    ex.conn = this;
    this.head = null;
    this.inBody = false;
    this.reusable = true;
    this.paused = false;
    this.pending = null;
    this.setDeadline(this.pool.headersTimeoutMs, 'UPSTREAM_HEADERS_TIMEOUT');
    corkUntilTurnEnd(this.socket);
    this.socket.write(ex.wire);
  }

  private setDeadline(ms: number, code: UpstreamErrorCode): void {
    this.deadline = ms > 0 ? this.pool.now() + ms : 0;
    this.deadlineCode = code;
  }

  /** Called by the pool's sweep when `deadline` passed. */
  timeout(): void {
    const ms = this.deadlineCode === 'UPSTREAM_HEADERS_TIMEOUT' ? this.pool.headersTimeoutMs : this.pool.bodyTimeoutMs;
    this.fail(new UpstreamError(this.deadlineCode, `${this.deadlineCode === 'UPSTREAM_HEADERS_TIMEOUT' ? 'no response headers' : 'no response body bytes'} from ${this.pool.target.origin} for ${ms} ms`));
  }

  /** Closes a connection that carries no exchange (idle, or done and not reusable); no callbacks. */
  discard(): void {
    this.dead = true;
    this.socket.destroy();
  }

  /** Destroys the connection; the exchange on it (if any) fails with `err`. */
  fail(err: Error): void {
    if (this.dead) return;
    this.dead = true;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.socket.destroy();
    const ex = this.ex;
    this.ex = null;
    this.pool.connectionGone(this, ex, err);
  }

  private onEnd(): void {
    // The server closed its side. A close-framed body ends here; otherwise an exchange in progress broke.
    const ex = this.ex;
    if (ex && this.inBody && this.framing === Framing.Close) {
      this.reusable = false;
      this.finish(ex);
      return;
    }
    this.fail(new UpstreamError('UPSTREAM_CLOSED', `${this.pool.target.origin} closed the connection before the response completed`));
  }

  private resume(): void {
    if (!this.paused || this.dead) return;
    this.paused = false;
    const p = this.pending;
    this.pending = null;
    if (p) this.feed(p);
    if (!this.paused && !this.dead) this.socket.resume();
  }

  private pause(rest: Buffer | null): void {
    this.paused = true;
    this.pending = rest && rest.length ? rest : null;
    this.socket.pause();
  }

  /** Parses response bytes. */
  feed(b: Buffer): void {
    const ex = this.ex;
    if (!ex) {
      // Bytes with no exchange in flight: the server is misbehaving; never reuse this socket.
      if (b.length) this.fail(new UpstreamError('UPSTREAM_PROTOCOL', `unexpected bytes from ${this.pool.target.origin} on an idle connection`));
      return;
    }
    if (this.paused) {
      this.pending = this.pending ? Buffer.concat([this.pending, b]) : b;
      return;
    }
    ex.bytesIn += b.length;
    let off = 0;
    while (off < b.length && this.ex === ex && !this.dead) {
      if (!this.inBody) {
        off = this.readHead(ex, b, off);
        if (off < 0) return; // need more bytes, or failed
        if (this.paused) return this.pause(b.subarray(off));
        continue;
      }
      off = this.readBody(ex, b, off);
      if (off < 0) return;
      if (this.paused) return this.pause(b.subarray(off));
    }
  }

  /** Reads the header block from `b[off..]`; returns the offset after it, or -1 when incomplete/failed. */
  private readHead(ex: Exchange, b: Buffer, off: number): number {
    let buf = b;
    let start = off;
    if (this.head) {
      buf = Buffer.concat([this.head, b.subarray(off)]);
      start = 0;
    }
    // Search from a few bytes before the new data (the terminator may straddle two reads).
    const from = this.head ? Math.max(0, this.head.length - 3) : start;
    const end = buf.indexOf(CRLF2, from);
    if (end < 0) {
      if (buf.length - start > this.pool.maxHeaderBytes) {
        this.fail(new UpstreamError('UPSTREAM_PROTOCOL', `response header block from ${this.pool.target.origin} exceeds ${this.pool.maxHeaderBytes} bytes`));
        return -1;
      }
      this.head = start === 0 ? buf : buf.subarray(start);
      return -1;
    }
    const headLen = end + 4 - start;
    if (headLen > this.pool.maxHeaderBytes) {
      this.fail(new UpstreamError('UPSTREAM_PROTOCOL', `response header block from ${this.pool.target.origin} exceeds ${this.pool.maxHeaderBytes} bytes`));
      return -1;
    }
    const text = buf.toString('latin1', start, end);
    // The part of `b` after the head (when the head was split, `buf` is a copy: map back to `b`).
    const next = this.head ? b.length - (buf.length - (end + 4)) : end + 4;
    this.head = null;
    if (!this.parseHead(ex, text)) return -1;
    return next;
  }

  /** Parses one header block; returns false when it failed the exchange or was a 1xx to skip (then true). */
  private parseHead(ex: Exchange, text: string): boolean {
    const lines = text.split('\r\n');
    const sl = lines[0]!;
    if (sl.length < 12 || !sl.startsWith('HTTP/1.') || sl.charCodeAt(12) !== 32 && sl.length > 12 || sl.charCodeAt(8) !== 32) {
      this.fail(new UpstreamError('UPSTREAM_PROTOCOL', `bad status line from ${this.pool.target.origin}: ${JSON.stringify(sl.slice(0, 80))}`));
      return false;
    }
    const status = Number(sl.slice(9, 12));
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      this.fail(new UpstreamError('UPSTREAM_PROTOCOL', `bad status code from ${this.pool.target.origin}: ${JSON.stringify(sl.slice(0, 80))}`));
      return false;
    }
    if (sl.charCodeAt(7) === 48 /* HTTP/1.0 */) this.reusable = false;
    const headers: string[] = [];
    let length = -1;
    let chunked = false;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const c = line.indexOf(':');
      if (c <= 0) {
        this.fail(new UpstreamError('UPSTREAM_PROTOCOL', `bad header line from ${this.pool.target.origin}: ${JSON.stringify(line.slice(0, 80))}`));
        return false;
      }
      const name = line.slice(0, c).toLowerCase();
      if (name.charCodeAt(name.length - 1) === 32 || name.charCodeAt(0) === 32 || name.charCodeAt(0) === 9) {
        this.fail(new UpstreamError('UPSTREAM_PROTOCOL', `bad header name from ${this.pool.target.origin}: ${JSON.stringify(line.slice(0, 80))}`));
        return false;
      }
      const value = line.slice(c + 1).trim();
      headers.push(name, value);
      switch (name) {
        case 'content-length': {
          if (!/^\d{1,15}$/.test(value)) {
            this.fail(new UpstreamError('UPSTREAM_PROTOCOL', `bad content-length from ${this.pool.target.origin}: ${JSON.stringify(value)}`));
            return false;
          }
          const n = Number(value);
          if (length >= 0 && n !== length) {
            this.fail(new UpstreamError('UPSTREAM_PROTOCOL', `conflicting content-length values from ${this.pool.target.origin}`));
            return false;
          }
          length = n;
          break;
        }
        case 'transfer-encoding': {
          const codings = value.toLowerCase().split(',').map((s) => s.trim());
          if (codings[codings.length - 1] === 'chunked') chunked = true;
          else {
            // Not chunked last: the body runs to the close (RFC 9112 6.3).
            this.reusable = false;
          }
          break;
        }
        case 'connection':
          if (/(^|,)\s*close\s*(,|$)/i.test(value)) this.reusable = false;
          break;
        case 'keep-alive': {
          const m = /timeout\s*=\s*(\d+)/i.exec(value);
          if (m) this.serverKeepAliveMs = Number(m[1]) * 1000;
          break;
        }
      }
    }
    if (status < 200) {
      // Interim response (100 Continue, 103 Early Hints): skip, the final one follows.
      if (status === 101) {
        this.fail(new UpstreamError('UPSTREAM_PROTOCOL', `unexpected 101 Switching Protocols from ${this.pool.target.origin}`));
        return false;
      }
      return true;
    }
    this.inBody = true;
    if (status === 204 || status === 304) this.framing = Framing.None;
    else if (chunked) {
      this.framing = Framing.Chunked;
      this.chunkState = ChunkState.Size;
      this.lineBuf = '';
      if (length >= 0) this.reusable = false; // both: chunked wins, and the connection is not trusted after
    } else if (length >= 0) {
      this.framing = Framing.Length;
      this.remaining = length;
    } else {
      this.framing = Framing.Close;
      this.reusable = false;
    }
    this.setDeadline(this.pool.bodyTimeoutMs, 'UPSTREAM_BODY_TIMEOUT');
    const goOn = ex.handler.onHeaders(status, headers, this.resumeFn);
    if (this.ex !== ex || this.dead) return false;
    if (!goOn) this.paused = true;
    if (this.framing === Framing.None || (this.framing === Framing.Length && this.remaining === 0)) {
      this.finish(ex);
      return false;
    }
    return true;
  }

  /** Reads body bytes from `b[off..]`; returns the new offset, or -1 when the exchange ended or failed. */
  private readBody(ex: Exchange, b: Buffer, off: number): number {
    if (this.pool.bodyTimeoutMs > 0) this.deadline = this.pool.now() + this.pool.bodyTimeoutMs;
    switch (this.framing) {
      case Framing.Length: {
        const n = Math.min(this.remaining, b.length - off);
        const piece = off === 0 && n === b.length ? b : b.subarray(off, off + n);
        this.remaining -= n;
        const goOn = ex.handler.onData(piece);
        if (this.ex !== ex || this.dead) return -1;
        if (this.remaining === 0) {
          if (off + n < b.length) {
            this.fail(new UpstreamError('UPSTREAM_PROTOCOL', `${this.pool.target.origin} sent bytes after a complete response`));
            return -1;
          }
          this.finish(ex);
          return -1;
        }
        if (!goOn) this.paused = true;
        return off + n;
      }
      case Framing.Close: {
        const goOn = ex.handler.onData(off === 0 ? b : b.subarray(off));
        if (this.ex !== ex || this.dead) return -1;
        if (!goOn) this.paused = true;
        return b.length;
      }
      case Framing.Chunked:
        return this.readChunked(ex, b, off);
      default:
        return -1;
    }
  }

  /** The chunked decoder (RFC 9112 7.1). */
  private readChunked(ex: Exchange, b: Buffer, off: number): number {
    while (off < b.length) {
      switch (this.chunkState) {
        case ChunkState.Size:
        case ChunkState.Trailers: {
          const nl = b.indexOf(10, off);
          const part = b.toString('latin1', off, nl < 0 ? b.length : nl);
          if (nl < 0) {
            this.lineBuf += part;
            if (this.lineBuf.length > 4096) {
              this.fail(new UpstreamError('UPSTREAM_PROTOCOL', `chunk-size line from ${this.pool.target.origin} too long`));
              return -1;
            }
            return b.length;
          }
          let line = this.lineBuf + part;
          this.lineBuf = '';
          off = nl + 1;
          if (line.endsWith('\r')) line = line.slice(0, -1);
          if (this.chunkState === ChunkState.Trailers) {
            if (line.length === 0) {
              if (off < b.length) {
                this.fail(new UpstreamError('UPSTREAM_PROTOCOL', `${this.pool.target.origin} sent bytes after a complete response`));
                return -1;
              }
              this.finish(ex);
              return -1;
            }
            continue; // a trailer field: dropped
          }
          const semi = line.indexOf(';');
          const hex = (semi < 0 ? line : line.slice(0, semi)).trim();
          if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) {
            this.fail(new UpstreamError('UPSTREAM_PROTOCOL', `bad chunk size from ${this.pool.target.origin}: ${JSON.stringify(line.slice(0, 40))}`));
            return -1;
          }
          const size = parseInt(hex, 16);
          if (size === 0) this.chunkState = ChunkState.Trailers;
          else {
            this.remaining = size;
            this.chunkState = ChunkState.Data;
          }
          continue;
        }
        case ChunkState.Data: {
          const n = Math.min(this.remaining, b.length - off);
          const piece = b.subarray(off, off + n);
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) this.chunkState = ChunkState.DataCrlf;
          const goOn = ex.handler.onData(piece);
          if (this.ex !== ex || this.dead) return -1;
          if (!goOn) {
            this.paused = true;
            return off;
          }
          continue;
        }
        case ChunkState.DataCrlf: {
          // CRLF after the chunk data (a bare LF is tolerated).
          const c = b[off]!;
          if (c === 13) {
            off++;
            continue;
          }
          if (c === 10) {
            off++;
            this.chunkState = ChunkState.Size;
            continue;
          }
          this.fail(new UpstreamError('UPSTREAM_PROTOCOL', `missing CRLF after a chunk from ${this.pool.target.origin}`));
          return -1;
        }
      }
    }
    return off;
  }

  /** The response is complete: tell the handler, then give the connection back (or close it). */
  private finish(ex: Exchange): void {
    this.ex = null;
    ex.conn = null;
    this.deadline = 0;
    this.inBody = false;
    this.served++;
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    const reuse = this.reusable && !this.dead && this.framing !== Framing.Close;
    if (!reuse) this.discard();
    this.pool.exchangeDone(this, ex, reuse);
  }
}

/** Parsed endpoint URL. */
interface Target {
  origin: string;
  host: string;
  port: number;
  tls: boolean;
  servername?: string;
  /** `host` header value. */
  hostHeader: string;
}

/**
 * Keep-alive connection pool to one endpoint (see the module docstring).
 * @throws Error from the constructor when `url` is not an absolute http(s) URL.
 */
export class UpstreamPool {
  readonly target: Target;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly maxHeaderBytes: number;
  readonly now: () => number;
  readonly tlsOptions: UpstreamPoolOptions['tls'];
  private readonly maxConnections: number;
  private readonly conns = new Set<Connection>();
  /** Idle connections, most recently used last (LIFO reuse keeps few sockets warm). */
  private readonly idle: Connection[] = [];
  private readonly queue: Exchange[] = [];
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly sweepMs: number;
  private closed = false;
  private closeWaiters: (() => void)[] = [];

  constructor(url: string, opts: UpstreamPoolOptions = {}) {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`upstream URL must be http(s): ${url}`);
    const tls = u.protocol === 'https:';
    const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    const port = u.port ? Number(u.port) : tls ? 443 : 80;
    this.target = { origin: u.origin, host, port, tls, ...(tls && isIP(host) === 0 ? { servername: host } : {}), hostHeader: u.host };
    this.maxConnections = opts.connections ?? 256;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.headersTimeoutMs = opts.headersTimeoutMs ?? 300_000;
    this.bodyTimeoutMs = opts.bodyTimeoutMs ?? 300_000;
    this.keepAliveTimeoutMs = opts.keepAliveTimeoutMs ?? 4_000;
    this.maxHeaderBytes = opts.maxHeaderBytes ?? 65_536;
    this.now = opts.now ?? Date.now;
    this.tlsOptions = opts.tls;
    const shortest = Math.min(...[this.headersTimeoutMs, this.bodyTimeoutMs, this.keepAliveTimeoutMs].filter((x) => x > 0), 8_000);
    this.sweepMs = Math.max(10, Math.min(1_000, Math.floor(shortest / 8)));
  }

  /** Connections open now (busy + idle). */
  get size(): number {
    return this.conns.size;
  }

  /**
   * Starts one exchange. Never throws: bad input (a header value with CR/LF, a path with spaces) and
   * a closed pool are reported through `handler.onError`.
   */
  dispatch(req: UpstreamRequest, handler: UpstreamHandler): void {
    let wire: Buffer;
    try {
      wire = this.serialize(req);
    } catch (e) {
      handler.onConnect(() => undefined);
      handler.onError(e as Error);
      return;
    }
    const ex = new Exchange(this, wire, handler);
    handler.onConnect(ex.abort);
    if (ex.settled) return; // aborted inside onConnect
    if (this.closed) return this.settleError(ex, new UpstreamError('UPSTREAM_DESTROYED', 'upstream pool is closed'));
    this.assign(ex);
  }

  private serialize(req: UpstreamRequest): Buffer {
    if (INVALID_PATH.test(req.path) || req.path[0] !== '/') throw new UpstreamError('UPSTREAM_BAD_REQUEST', `invalid request path ${JSON.stringify(req.path)}`);
    let head = `${req.method} ${req.path} HTTP/1.1\r\nhost: ${this.target.hostHeader}\r\n`;
    const h = req.headers;
    for (const k in h) {
      const v = h[k]!;
      if (INVALID_HEADER_VALUE.test(v) || INVALID_HEADER_VALUE.test(k)) throw new UpstreamError('UPSTREAM_BAD_REQUEST', `invalid value for header ${JSON.stringify(k)}`);
      head += `${k}: ${v}\r\n`;
    }
    head += `content-length: ${req.body.length}\r\n\r\n`;
    const hl = Buffer.byteLength(head, 'latin1');
    const wire = Buffer.allocUnsafe(hl + req.body.length);
    wire.write(head, 0, hl, 'latin1');
    req.body.copy(wire, hl);
    return wire;
  }

  private assign(ex: Exchange): void {
    const c = this.idle.pop();
    if (c) {
      c.send(ex);
      return;
    }
    if (this.conns.size < this.maxConnections) {
      const n = new Connection(this);
      this.conns.add(n);
      this.ensureSweep();
      n.send(ex);
      return;
    }
    this.queue.push(ex);
  }

  /** Called by a connection when its exchange completed. */
  exchangeDone(c: Connection, ex: Exchange, reuse: boolean): void {
    if (!reuse) this.conns.delete(c);
    if (!ex.settled) settle(ex).onComplete();
    if (reuse && !c.dead) this.release(c);
    else this.next();
  }

  /** A connection that can take another exchange. */
  private release(c: Connection): void {
    if (this.closed) {
      c.discard();
      this.conns.delete(c);
      this.checkClosed();
      return;
    }
    const ex = this.queue.shift();
    if (ex) return c.send(ex);
    this.idle.push(c);
    c.idleSinceMs = this.now();
  }

  private next(): void {
    if (this.closed) return this.checkClosed();
    const ex = this.queue.shift();
    if (ex) this.assign(ex);
  }

  /** Called by a connection that died (error, close, timeout, abort), with the exchange it carried. */
  connectionGone(c: Connection, ex: Exchange | null, err: Error): void {
    this.conns.delete(c);
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    if (ex && !ex.settled) {
      ex.conn = null;
      const stale = c.served > 0 && ex.bytesIn === 0 && !ex.retried && !(err instanceof UpstreamError && (err.code === 'UPSTREAM_ABORTED' || err.code.endsWith('TIMEOUT')));
      if (stale && !this.closed) {
        // The server closed an idle keep-alive connection as we reused it: once more on a new one.
        ex.retried = true;
        this.assign(ex);
        return;
      }
      this.settleError(ex, err);
    }
    this.next();
  }

  /** `abort` of an exchange: fail it now; a connection carrying it is destroyed. */
  abortExchange(ex: Exchange, err: Error): void {
    if (ex.settled) return;
    const c = ex.conn;
    if (c) {
      c.ex = null;
      ex.conn = null;
      c.fail(err);
    } else {
      const i = this.queue.indexOf(ex);
      if (i >= 0) this.queue.splice(i, 1);
    }
    this.settleError(ex, err);
  }

  private settleError(ex: Exchange, err: Error): void {
    if (!ex.settled) settle(ex).onError(err);
  }

  private ensureSweep(): void {
    if (this.sweepTimer) return;
    this.sweepTimer = setInterval(() => this.sweep(), this.sweepMs);
    this.sweepTimer.unref();
  }

  /** Fails exchanges past their deadline and closes expired idle connections. */
  private sweep(): void {
    const now = this.now();
    for (const c of this.conns) if (c.ex && c.deadline > 0 && now >= c.deadline) c.timeout();
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const c = this.idle[i]!;
      const ttl = c.serverKeepAliveMs > 0 ? Math.min(this.keepAliveTimeoutMs, Math.max(0, c.serverKeepAliveMs - 1_000)) : this.keepAliveTimeoutMs;
      if (now - c.idleSinceMs >= ttl) {
        this.idle.splice(i, 1);
        this.conns.delete(c);
        c.discard();
      }
    }
    if (this.conns.size === 0 && this.sweepTimer) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = null;
    }
  }

  /** Graceful close: no new exchanges; idle connections close now, busy ones after their exchange. */
  close(): Promise<void> {
    this.closed = true;
    for (const ex of this.queue.splice(0)) this.settleError(ex, new UpstreamError('UPSTREAM_DESTROYED', 'upstream pool is closed'));
    for (const c of this.idle.splice(0)) {
      this.conns.delete(c);
      c.discard();
    }
    return new Promise((resolve) => {
      this.closeWaiters.push(resolve);
      this.checkClosed();
    });
  }

  /** Immediate close: every exchange in flight fails with `UPSTREAM_DESTROYED`. */
  destroy(): Promise<void> {
    const p = this.close();
    for (const c of [...this.conns]) c.fail(new UpstreamError('UPSTREAM_DESTROYED', 'upstream pool destroyed'));
    return p;
  }

  private checkClosed(): void {
    if (!this.closed || this.conns.size > 0) return;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    const w = this.closeWaiters;
    this.closeWaiters = [];
    for (const f of w) f();
  }
}
