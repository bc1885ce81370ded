/**
 * The gateway's client-facing HTTP/1.1 server: `node:net` sockets parsed by Node's own llhttp
 * binding (the `HTTPParser` that `node:http` uses, from `node:_http_common`), without `node:http`'s
 * stream objects.
 *
 * Why: the gateway is bound by its one event-loop thread, and `node:http`'s `IncomingMessage` /
 * `ServerResponse` machinery (readable and writable streams, events, per-header validation on
 * every write) cost about 7 µs of CPU per proxied request out of ~75 µs, measured against this
 * approach with the same upstream client (docs/benchmarks/gateway.md). Parsing stays with llhttp, in
 * strict mode (no lenient flags), so what is rejected is exactly what `node:http` rejects:
 * request smuggling shapes (`content-length` with `transfer-encoding`, differing duplicate
 * `content-length`, bad chunk sizes), bare LF, invalid tokens, header blocks over `maxHeaderBytes`.
 *
 * What it does (RFC 9112):
 * - Keep-alive per llhttp's `shouldKeepAlive` (HTTP/1.1 unless `connection: close`; HTTP/1.0 only
 *   with `connection: keep-alive`). Pipelined requests are answered in order; at most
 *   `MAX_QUEUED` wait per connection, then the socket stops being read until they are served.
 * - Request bodies are read whole before `onRequest` (the gateway needs the whole JSON body to
 *   route): `req.body`. A declared `content-length` over `maxBodyBytes`, or a chunked body that grows
 *   past it, is answered 413 and the connection closed (the rest is not read).
 * - `expect: 100-continue` gets `100 Continue` (or 413 when the declared body is too large); any
 *   other expectation 417.
 * - Answered here, then the connection closed: a parse error 400 (431 for a header block over
 *   `maxHeaderBytes` or more than `MAX_HEADERS` fields), HTTP versions other than 1.x 505, `CONNECT`
 *   405, a request not complete within `requestTimeoutMs` or whose header block is not complete
 *   within `headersTimeoutMs` 408. Bodies come from `errorBody` (the gateway gives the OpenAI
 *   envelope).
 * - `upgrade` requests (e.g. `upgrade: h2c`) are served as plain HTTP/1.1 and the connection is
 *   closed after the response (as `node:http` does with no `upgrade` listener; no protocol switch).
 * - Responses: `content-length` framing when the handler sets it, else chunked (HTTP/1.1) or
 *   close-delimited (HTTP/1.0); none for HEAD, 204 and 304. The head is held until the first body
 *   write so that head and body leave in one system call. `date` and `connection` are added;
 *   header names and values are checked (tokens; no CR, LF or NUL) and a bad one throws before
 *   anything is written. A response that ends with fewer or more body bytes than its
 *   `content-length` destroys the connection instead of reusing it.
 * - Idle keep-alive connections close after `keepAliveTimeoutMs`; a connection the server ended is
 *   destroyed when the client has not closed its half that long after. Timeouts are checked by one
 *   sweep timer per server (period 1 s, unref'd), not a timer per request.
 *
 * `node:_http_common` is not a documented module; it is the parser `node:http` itself uses, with the
 * same API from Node 12 to 22. The import fails at start-up (never silently) if a Node release
 * drops it.
 */
import { createServer as netCreateServer, type Server as NetServer, type Socket, type AddressInfo } from 'node:net';
import { STATUS_CODES } from 'node:http';
import { corkUntilTurnEnd } from './write-batch.ts';
// @ts-expect-error: undocumented module without type declarations (see the module docs).
import { HTTPParser as NodeHTTPParser, methods as NODE_METHODS } from 'node:_http_common';

/** The part of Node's llhttp binding used here (`src/node_http_parser.cc`). */
interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenientFlags: number): void;
  execute(data: Buffer): number | (Error & { code: string; reason?: string; bytesParsed?: number });
  close(): void;
  [k: number]: unknown;
}
interface LlhttpParserClass {
  new (): LlhttpParser;
  REQUEST: number;
  kOnMessageBegin: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kLenientNone: number;
}
const HTTPParser = NodeHTTPParser as LlhttpParserClass;
const METHODS = NODE_METHODS as readonly string[];
if (typeof HTTPParser !== 'function' || typeof HTTPParser.kOnHeadersComplete !== 'number' || !Array.isArray(METHODS)) {
  throw new Error(`inferplane: Node ${process.version} lacks node:_http_common's HTTPParser, which the gateway's HTTP/1.1 server needs (tested on Node 20)`);
}
const K_BEGIN = HTTPParser.kOnMessageBegin | 0;
const K_HEADERS = HTTPParser.kOnHeaders | 0;
const K_HEADERS_COMPLETE = HTTPParser.kOnHeadersComplete | 0;
const K_BODY = HTTPParser.kOnBody | 0;
const K_COMPLETE = HTTPParser.kOnMessageComplete | 0;

/** Requests parsed ahead (pipelining) that may wait per connection before reading pauses. */
export const MAX_QUEUED = 16;
/** Most header fields in one request (more: 431). */
export const MAX_HEADERS = 1000;
/** Header names of which a second occurrence is dropped (as `node:http` does), instead of joined with ", ". */
const SINGLETON_HEADERS = new Set(['age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent']);
/** Response headers the server manages itself (a handler's values are ignored). */
const MANAGED_RESPONSE_HEADERS = new Set(['connection', 'transfer-encoding', 'keep-alive', 'date']);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\r\n\0]/;

/** Header values as the handler may give them. */
export type HeaderValue = string | number | readonly string[];

/** Request headers: names lowercased; `set-cookie` is an array, other repeats are joined with ", ". */
export type RequestHeaders = Record<string, string | string[] | undefined>;

/** The subset of a request that handlers shared with `node:http` servers use (admin routes). */
export interface RequestLike {
  method?: string;
  url?: string;
  headers: RequestHeaders;
  /** The body, chunk by chunk. */
  [Symbol.asyncIterator](): AsyncIterator<unknown>;
  /** Discards what is left of the body. */
  resume(): unknown;
}

/** The subset of a response that handlers shared with `node:http` servers use (admin routes). */
export interface ResponseLike {
  writeHead(status: number, headers?: Record<string, string | number>): unknown;
  end(body?: string | Buffer): unknown;
}

export interface Http1ServerOptions {
  /** Called once per complete request, in order per connection; must answer through `res`. */
  onRequest(req: Http1Request, res: Http1Response): void;
  /** Largest request body (bytes); larger: 413 and the connection closes. */
  maxBodyBytes: number;
  /** Bytes of one request's header block (llhttp's limit); 0 = Node's `--max-http-header-size` (16 KiB). */
  maxHeaderBytes?: number;
  /** ms from a request's first byte to its header block complete; 0 = none. Default 60 000. */
  headersTimeoutMs?: number;
  /** ms from a request's first byte to its body complete; 0 = none. Default 300 000. */
  requestTimeoutMs?: number;
  /**
   * ms an idle keep-alive connection is kept; also how long a connection the server has ended waits
   * for the client's FIN before it is destroyed. Default 65 000.
   */
  keepAliveTimeoutMs?: number;
  /**
   * The JSON body of an error answered by the server itself (`status`: 400, 405, 408, 413, 417,
   * 431, 505; `code`: a stable snake_case reason). Default `{"error":{"message","code","status"}}`.
   */
  errorBody?(status: number, message: string, code: string): string;
  /** Clock (ms), for the timeouts. Default `Date.now`. */
  now?: () => number;
}

/** One request, body complete. */
export class Http1Request implements RequestLike {
  constructor(
    readonly method: string,
    /** The request target as sent (origin form `/path?query`, or whatever the client sent). */
    readonly url: string,
    readonly headers: RequestHeaders,
    /** "1.1" or "1.0". */
    readonly httpVersion: string,
    /** The whole body (empty when there was none). */
    readonly body: Buffer,
    readonly remoteAddress: string | undefined,
  ) {}

  /** Yields the body once (for code written against `node:http`'s `for await (const c of req)`). */
  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    if (this.body.length) yield this.body;
  }

  /** No-op: the body was read before the request was dispatched. */
  resume(): this {
    return this;
  }
}

let dateCache = '';
let dateCacheSecond = -1;
/** The `date` header value (RFC 9110 IMF-fixdate), recomputed at most once per second. */
function httpDate(nowMs: number): string {
  const s = Math.floor(nowMs / 1000);
  if (s !== dateCacheSecond) {
    dateCacheSecond = s;
    dateCache = new Date(s * 1000).toUTCString();
  }
  return dateCache;
}

function headerLine(name: string, value: string | number): string {
  if (!TOKEN.test(name)) throw new TypeError(`invalid response header name ${JSON.stringify(name)}`);
  const v = typeof value === 'number' ? String(value) : value;
  if (BAD_VALUE.test(v)) throw new TypeError(`invalid characters in the value of response header ${JSON.stringify(name)}`);
  return `${name}: ${v}\r\n`;
}

/**
 * The response to one request. Methods mirror the `node:http` `ServerResponse` calls the gateway
 * makes (`writeHead`, `setHeader`, `write` with backpressure, `end`, `destroy`, `once('drain')`,
 * `on`/`off('close')`), with the framing rules of the module docs.
 */
export class Http1Response implements ResponseLike {
  /** True once `writeHead` ran (the head may still be held until the first body write). */
  headersSent = false;
  /** True once `end` ran. */
  writableFinished = false;
  statusCode = 200;
  private head: string | null = null;
  private extra: Record<string, HeaderValue> | null = null;
  private chunked = false;
  private noBody = false;
  /** Declared content-length, or -1. */
  private declared = -1;
  private written = 0;
  private closeListeners: (() => void)[] | null = null;
  /** The connection's socket went away before `end` (the client left). */
  private gone = false;

  constructor(
    private readonly conn: Connection,
    private readonly isHead: boolean,
    /** Whether the connection may be reused after this response. */
    private keepAlive: boolean,
    /** The request was HTTP/1.0 (no chunked framing). Its own, not the connection's latest parsed request's. */
    private readonly http10: boolean,
  ) {}

  /**
   * Sets a header for the coming `writeHead` (ignored after it).
   * @throws TypeError on an invalid header name or value (as `node:http` does), so that a bad value
   * cannot make every later `writeHead`, the 500 of a throwing handler included, throw.
   */
  setHeader(name: string, value: HeaderValue): this {
    if (this.headersSent) return this;
    if (typeof value === 'object') for (const x of value) headerLine(name, x);
    else headerLine(name, value);
    (this.extra ??= {})[name.toLowerCase()] = value;
    return this;
  }

  /**
   * Builds the head (status line and headers). `headers` names may be any case; `content-length`
   * selects length framing.
   * @throws TypeError on an invalid header name or value, RangeError on a status outside 100..999
   * (nothing is written).
   */
  writeHead(status: number, headers?: Record<string, HeaderValue>): this {
    if (this.headersSent) throw new Error('writeHead called twice');
    if (!Number.isInteger(status) || status < 100 || status > 999) throw new RangeError(`invalid status code ${status}`);
    const conn = this.conn;
    let h = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
    let length = -1;
    let all = headers;
    if (this.extra) {
      // `headers` override `setHeader` values whatever the case of their names (as in `node:http`).
      all = { ...this.extra };
      if (headers) for (const k in headers) all[k.toLowerCase()] = headers[k]!;
    }
    if (all) {
      for (const k in all) {
        const v = all[k]!;
        const lk = k.toLowerCase();
        if (lk === 'content-length') {
          length = Number(v);
          if (!Number.isSafeInteger(length) || length < 0) throw new TypeError(`invalid content-length ${String(v)}`);
          h += `content-length: ${length}\r\n`;
          continue;
        }
        if (MANAGED_RESPONSE_HEADERS.has(lk)) continue;
        if (typeof v === 'object') for (const x of v) h += headerLine(k, x);
        else h += headerLine(k, v);
      }
    }
    this.noBody = this.isHead || status === 204 || status === 304 || (status >= 100 && status < 200);
    if (!this.noBody && length < 0) {
      if (this.http10) this.keepAlive = false; // close-delimited
      else {
        this.chunked = true;
        h += 'transfer-encoding: chunked\r\n';
      }
    }
    if (conn.server.closing) this.keepAlive = false;
    this.declared = this.noBody ? -1 : length;
    h += `date: ${httpDate(conn.server.now())}\r\n${this.keepAlive ? 'connection: keep-alive\r\n' : 'connection: close\r\n'}\r\n`;
    this.statusCode = status;
    this.head = h;
    this.headersSent = true;
    return this;
  }

  /**
   * Writes a piece of the body (the held head goes with it). Returns false when the socket's
   * buffer is full: wait for `once('drain')` before writing more.
   */
  write(chunk: Buffer | string): boolean {
    if (this.writableFinished) throw new Error('write after end');
    if (!this.headersSent) this.writeHead(200);
    const sock = this.conn.socket;
    if (this.noBody || chunk.length === 0) {
      if (this.head !== null) this.flushHead();
      return !sock.writableNeedDrain;
    }
    const n = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    this.written += n;
    if (!sock.writable) return true;
    corkUntilTurnEnd(sock);
    const head = this.head;
    this.head = null;
    if (this.chunked) {
      sock.cork();
      sock.write(head === null ? `${n.toString(16)}\r\n` : `${head}${n.toString(16)}\r\n`, 'latin1');
      sock.write(chunk);
      const ok = sock.write('\r\n', 'latin1');
      sock.uncork();
      return ok;
    }
    if (head === null) return sock.write(chunk);
    sock.cork();
    sock.write(head, 'latin1');
    const ok = sock.write(chunk);
    sock.uncork();
    return ok;
  }

  /** Finishes the response (writing `body` first when given); the connection then serves its next request or closes. */
  end(body?: string | Buffer): this {
    if (this.writableFinished) return this;
    if (!this.headersSent) {
      if (body !== undefined && !this.extra?.['content-length']) this.setHeader('content-length', typeof body === 'string' ? Buffer.byteLength(body) : body.length);
      this.writeHead(this.statusCode);
    }
    if (body !== undefined && body.length > 0) this.write(body);
    const sock = this.conn.socket;
    if (sock.writable) {
      corkUntilTurnEnd(sock);
      if (this.chunked) sock.write(this.head === null ? '0\r\n\r\n' : `${this.head}0\r\n\r\n`, 'latin1');
      else if (this.head !== null) sock.write(this.head, 'latin1');
    }
    this.head = null;
    this.writableFinished = true;
    this.closeListeners = null;
    this.conn.responseDone(this, this.keepAlive, this.declared >= 0 && this.written !== this.declared);
    return this;
  }

  private flushHead(): void {
    const head = this.head!;
    this.head = null;
    const sock = this.conn.socket;
    if (!sock.writable) return;
    corkUntilTurnEnd(sock);
    sock.write(head, 'latin1');
  }

  /** Closes the connection now (the client sees the response cut). */
  destroy(): void {
    this.conn.destroy();
  }

  /** `once('drain', fn)`: `fn` runs when the socket can take more; `on`/`off('close', fn)`: the client left before `end`. */
  once(event: 'drain', fn: () => void): this {
    if (event === 'drain') this.conn.socket.once('drain', fn);
    return this;
  }

  on(event: 'close', fn: () => void): this {
    if (event !== 'close') return this;
    if (this.gone) queueMicrotask(fn);
    else if (!this.writableFinished) (this.closeListeners ??= []).push(fn);
    return this;
  }

  off(event: 'close', fn: () => void): this {
    const l = this.closeListeners;
    if (event === 'close' && l) {
      const i = l.indexOf(fn);
      if (i >= 0) l.splice(i, 1);
    }
    return this;
  }

  /** The socket closed before `end`: runs the `close` listeners once. */
  socketClosed(): void {
    if (this.writableFinished || this.gone) return;
    this.gone = true;
    const l = this.closeListeners;
    this.closeListeners = null;
    if (l) for (const f of l) f();
  }
}

/** Answers `status` with a JSON `body` (already serialized). */
function sendJsonBody(res: Http1Response, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** A request being parsed. */
interface Incoming {
  method: string;
  url: string;
  headers: RequestHeaders;
  http10: boolean;
  keepAlive: boolean;
  chunks: Buffer[];
  bytes: number;
}

/** A parsed request waiting for its turn, or an error answer the server decided (then the connection closes). */
type Queued = { req: Http1Request; keepAlive: boolean } | { reject: { status: number; body: string } };

/** One client connection: parser, pipelined queue, the response in progress. */
class Connection {
  readonly parser: LlhttpParser;
  /** ms: start of the request being received (0: none); its header block is done. */
  msgStart = 0;
  headersDone = false;
  /** ms the connection went idle (no request in progress, nothing queued). */
  idleSince: number;
  /** No more requests are read; the socket ends after the queued responses. */
  closing = false;
  /** ms the server ended its side of the socket (0: not yet). */
  endedAt = 0;
  private cur: Incoming | null = null;
  /** Header fields and URL given early by llhttp (more than 32 fields). */
  private partialHeaders: string[] | null = null;
  private partialUrl = '';
  private readonly queue: Queued[] = [];
  private active: Http1Response | null = null;
  private paused = false;
  /** A `100 Continue` owed to the request being received, sent once the responses before it are written. */
  private continuePending = false;

  constructor(
    readonly server: Http1Server,
    readonly socket: Socket,
  ) {
    this.idleSince = server.now();
    const p = new HTTPParser();
    p.initialize(HTTPParser.REQUEST, {}, server.maxHeaderBytes, HTTPParser.kLenientNone);
    p[K_BEGIN] = this.onBegin.bind(this);
    p[K_HEADERS] = this.onHeaders.bind(this);
    p[K_HEADERS_COMPLETE] = this.onHeadersComplete.bind(this);
    p[K_BODY] = this.onBody.bind(this);
    p[K_COMPLETE] = this.onComplete.bind(this);
    this.parser = p;
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', () => socket.destroy());
    socket.on('end', () => this.onEnd());
    socket.on('close', () => this.onClose());
  }

  private onData(d: Buffer): void {
    if (this.closing) return;
    const r = this.parser.execute(d);
    // A number: all parsed, or llhttp stopped after a request with `upgrade` (closing is set then).
    if (typeof r === 'number' || this.closing) return;
    if (r.code === 'HPE_HEADER_OVERFLOW') this.reject(431, 'request header block too large', 'header_too_large');
    else this.reject(400, `malformed HTTP request: ${r.reason ?? r.code}`, 'bad_http_request');
  }

  /**
   * The client half-closed: like `node:http`, the request in progress counts as abandoned (its
   * response's `close` listeners run) and the connection ends.
   */
  private onEnd(): void {
    this.closing = true;
    this.queue.length = 0;
    this.cur = null;
    this.msgStart = 0;
    const a = this.active;
    if (a) a.socketClosed();
    this.socket.end();
  }

  private onClose(): void {
    this.server.connections.delete(this);
    this.closing = true;
    this.active?.socketClosed();
    this.active = null;
    this.queue.length = 0;
    // Never from inside execute(): 'close' is emitted on a later tick.
    this.parser.close();
  }

  private onBegin(): void {
    this.msgStart = this.server.now();
    this.headersDone = false;
  }

  private onHeaders(headers: string[], url: string): void {
    if (this.partialHeaders) for (const x of headers) this.partialHeaders.push(x);
    else this.partialHeaders = headers.slice();
    this.partialUrl += url;
  }

  private onHeadersComplete(major: number, minor: number, rawHeaders: string[] | undefined, method: number, rawUrl: string | undefined, _s: unknown, _m: unknown, upgrade: boolean, shouldKeepAlive: boolean): number {
    this.headersDone = true;
    let raw = rawHeaders;
    let url = rawUrl;
    if (this.partialHeaders) {
      raw = rawHeaders ? this.partialHeaders.concat(rawHeaders) : this.partialHeaders;
      url = this.partialUrl + (rawUrl ?? '');
      this.partialHeaders = null;
      this.partialUrl = '';
    }
    raw ??= [];
    url ??= '';
    if (this.closing) return 1;
    const m = METHODS[method] ?? 'UNKNOWN';
    if (major !== 1) {
      this.reject(505, `HTTP version ${major}.${minor} is not supported`, 'http_version_not_supported');
      return 1;
    }
    if (raw.length > MAX_HEADERS * 2) {
      this.reject(431, `more than ${MAX_HEADERS} header fields`, 'header_too_large');
      return 1;
    }
    if (m === 'CONNECT') {
      this.reject(405, 'CONNECT is not supported', 'method_not_allowed');
      return 1;
    }
    const headers: RequestHeaders = {};
    for (let i = 0; i < raw.length; i += 2) {
      const k = raw[i]!.toLowerCase();
      const v = raw[i + 1]!;
      const prev = headers[k];
      // Own properties only: a field named `constructor` or `toString` is not joined to Object.prototype's.
      if (prev === undefined || !Object.hasOwn(headers, k)) headers[k] = k === 'set-cookie' ? [v] : v;
      else if (k === 'set-cookie') (prev as string[]).push(v);
      else if (!SINGLETON_HEADERS.has(k)) headers[k] = `${prev as string}, ${v}`;
    }
    const http10 = minor === 0;
    const max = this.server.maxBodyBytes;
    const cl = headers['content-length'];
    if (cl !== undefined && Number(cl) > max) {
      this.reject(413, `request body over ${max} bytes`, 'request_too_large');
      return 1;
    }
    const expect = headers.expect;
    if (expect !== undefined) {
      if (typeof expect === 'string' && expect.toLowerCase() === '100-continue') {
        // HTTP/1.0 has no interim responses. Not in the middle of (or before) the responses to
        // requests pipelined ahead of this one.
        if (!http10) {
          if (this.active || this.queue.length) this.continuePending = true;
          else this.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
        }
      } else {
        this.reject(417, `unsupported expectation ${JSON.stringify(expect)}`, 'expectation_failed');
        return 1;
      }
    }
    // An upgrade request is served as plain HTTP; the connection closes after it (no protocol switch).
    this.cur = { method: m, url, headers, http10, keepAlive: shouldKeepAlive && !upgrade, chunks: [], bytes: 0 };
    return 0;
  }

  private onBody(b: Buffer): void {
    const c = this.cur;
    if (!c || this.closing) return;
    c.bytes += b.length;
    if (c.bytes > this.server.maxBodyBytes) {
      this.reject(413, `request body over ${this.server.maxBodyBytes} bytes`, 'request_too_large');
      return;
    }
    c.chunks.push(b);
  }

  private onComplete(): void {
    const c = this.cur;
    this.cur = null;
    this.msgStart = 0;
    this.continuePending = false;
    // llhttp hands a chunked body's trailer fields (and the URL again) to kOnHeaders just before
    // this: they are not part of the next request's header block.
    this.partialHeaders = null;
    this.partialUrl = '';
    if (!c || this.closing) return;
    const body = c.chunks.length === 1 ? c.chunks[0]! : c.chunks.length === 0 ? EMPTY : Buffer.concat(c.chunks, c.bytes);
    this.queue.push({ req: new Http1Request(c.method, c.url, c.headers, c.http10 ? '1.0' : '1.1', body, this.socket.remoteAddress), keepAlive: c.keepAlive });
    if (!c.keepAlive) this.closing = true; // nothing after this request is read
    if (this.queue.length >= MAX_QUEUED && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    if (!this.active) this.next();
  }

  /**
   * Answers `status` from the server itself, after the responses already queued, and closes the
   * connection after it (nothing more is read).
   */
  reject(status: number, message: string, code: string): void {
    this.closing = true;
    this.cur = null;
    this.msgStart = 0;
    this.queue.push({ reject: { status, body: this.server.errorBody(status, message, code) } });
    if (!this.active) this.next();
  }

  /** Starts the next queued response, or goes idle. */
  private next(): void {
    const n = this.queue.shift();
    if (!n) {
      this.active = null;
      this.idleSince = this.server.now();
      if (this.continuePending) {
        this.continuePending = false;
        if (this.cur && !this.closing) this.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
      }
      if (this.closing) this.end();
      else if (this.paused) {
        this.paused = false;
        this.socket.resume();
      }
      return;
    }
    if ('reject' in n) {
      this.queue.length = 0;
      const res = new Http1Response(this, false, false, false);
      this.active = res;
      sendJsonBody(res, n.reject.status, n.reject.body);
      return;
    }
    const res = new Http1Response(this, n.req.method === 'HEAD', n.keepAlive && !this.server.closing, n.req.httpVersion === '1.0');
    this.active = res;
    try {
      this.server.onRequest(n.req, res);
    } catch (e) {
      this.server.handlerError(e, res);
    }
  }

  /** Called once by `Http1Response.end`: reuse the connection, or end it (`reuse` false), or cut it (`broken`). */
  responseDone(res: Http1Response, reuse: boolean, broken: boolean): void {
    if (res !== this.active) return;
    if (broken) {
      this.active = null;
      this.destroy();
      return;
    }
    if (!reuse) {
      this.closing = true;
      this.queue.length = 0;
    }
    this.next();
  }

  /**
   * Ends the server's side: nothing more is read or dispatched. With `allowHalfOpen` the socket then
   * waits for the client's FIN; the sweep destroys it if that has not come `keepAliveTimeoutMs` later.
   */
  end(): void {
    this.closing = true;
    if (this.endedAt === 0) this.endedAt = this.server.now();
    this.socket.end();
  }

  /**
   * Destroys the socket. Also from inside `parser.execute` (a handler that answers at once): requests
   * parsed after this one in the same read are not dispatched to a connection that is gone.
   */
  destroy(): void {
    this.closing = true;
    this.queue.length = 0;
    this.socket.destroy();
  }

  /** True when no request is being received or answered. */
  get idle(): boolean {
    return this.active === null && this.cur === null && this.msgStart === 0 && this.queue.length === 0;
  }
}

const EMPTY = Buffer.alloc(0);

/** The server: `listen`, `close` (stop accepting), `closeIdleConnections`, `destroyAll`. */
export class Http1Server {
  readonly connections = new Set<Connection>();
  readonly maxBodyBytes: number;
  readonly maxHeaderBytes: number;
  readonly now: () => number;
  /** Set by `close()`: responses then carry `connection: close`. */
  closing = false;
  private readonly net: NetServer;
  private readonly headersTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly keepAliveTimeoutMs: number;
  /** The handler (`Http1ServerOptions.onRequest`). */
  readonly onRequest: Http1ServerOptions['onRequest'];
  /** JSON body of an error the server answers itself (`Http1ServerOptions.errorBody`). */
  readonly errorBody: (status: number, message: string, code: string) => string;
  private sweepTimer: NodeJS.Timeout | null = null;

  constructor(opts: Http1ServerOptions) {
    this.onRequest = opts.onRequest;
    this.maxBodyBytes = opts.maxBodyBytes;
    this.maxHeaderBytes = opts.maxHeaderBytes ?? 0;
    this.headersTimeoutMs = opts.headersTimeoutMs ?? 60_000;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 300_000;
    this.keepAliveTimeoutMs = opts.keepAliveTimeoutMs ?? 65_000;
    this.now = opts.now ?? Date.now;
    this.errorBody = opts.errorBody ?? ((status, message, code) => JSON.stringify({ error: { message, code, status } }));
    this.net = netCreateServer({ allowHalfOpen: true }, (s) => this.connections.add(new Connection(this, s)));
  }

  /** A handler threw synchronously: 500 if nothing was sent, else the connection is cut. */
  handlerError(e: unknown, res: Http1Response): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendJsonBody(res, 500, this.errorBody(500, `internal error: ${(e as Error)?.message ?? String(e)}`, 'internal_error'));
  }

  /** Listens on `port` (0 = any free) and `host`; resolves with the bound port. */
  listen(port: number, host?: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.net.once('error', reject);
      this.net.listen(port, host, () => {
        this.net.off('error', reject);
        this.sweepTimer = setInterval(() => this.sweep(), 1000);
        this.sweepTimer.unref();
        resolve((this.net.address() as AddressInfo).port);
      });
    });
  }

  /** The bound address, or null before `listen`. */
  address(): AddressInfo | null {
    return this.net.address() as AddressInfo | null;
  }

  /** Stops accepting connections; open ones finish their responses, which carry `connection: close`. */
  close(): void {
    this.closing = true;
    if (this.net.listening) this.net.close();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }

  /** Closes connections with no request in progress. */
  closeIdleConnections(): void {
    for (const c of this.connections) if (c.idle) c.end();
  }

  /**
   * Closes every connection now: one with a request in progress is destroyed; an idle one is closed
   * after its last response's bytes leave (`destroySoon`: writes held by write coalescing are
   * flushed, not dropped).
   */
  destroyAll(): void {
    for (const c of this.connections) {
      if (c.idle) {
        c.closing = true;
        c.socket.destroySoon();
      } else c.destroy();
    }
  }

  /** Timeouts: headers / whole request (408), idle keep-alive (closed). */
  private sweep(): void {
    const now = this.now();
    for (const c of this.connections) {
      if (c.closing) {
        // Ended by the server, but the client keeps its half open: do not hold the socket forever.
        if (c.endedAt > 0 && now - c.endedAt > this.keepAliveTimeoutMs) c.socket.destroy();
        continue;
      }
      if (c.msgStart > 0) {
        const age = now - c.msgStart;
        if (!c.headersDone && this.headersTimeoutMs > 0 && age > this.headersTimeoutMs) c.reject(408, 'request header block not received in time', 'request_timeout');
        else if (this.requestTimeoutMs > 0 && age > this.requestTimeoutMs) c.reject(408, 'request body not received in time', 'request_timeout');
      } else if (c.idle && now - c.idleSince > this.keepAliveTimeoutMs) c.end();
    }
  }
}
