/**
 * The gateway's client-facing HTTP/1.1 server (`src/gateway/http1.ts`) over loopback, with raw TCP
 * clients that send exact bytes and read exact bytes: request parsing (content-length, chunked,
 * many and duplicate header fields, trailers), response framing (content-length, chunked,
 * close-delimited, HEAD, 204/304), keep-alive and pipelining, the errors it answers itself
 * (400, 405, 408, 413, 417, 431, 505, 500), `expect: 100-continue`, backpressure, client
 * disconnects, timeouts and graceful close.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { createHash } from 'node:crypto';
import { Http1Server, MAX_HEADERS, MAX_QUEUED, type Http1Request, type Http1Response, type Http1ServerOptions } from '../../src/gateway/http1.ts';

const EMPTY = Buffer.alloc(0);
const DATE_RE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const ticks = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
};

/** Polls `cond` until it returns a value (not undefined/null/false); fails after `ms` (a safety net, not a speed assertion). */
async function waitFor<T>(cond: () => T | undefined | null | false, what: string, detail?: () => string, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = cond();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${detail ? `; received so far: ${JSON.stringify(detail().slice(0, 3000))}` : ''}`);
    await sleep(5);
  }
}

type Handler = (req: Http1Request, res: Http1Response) => void;

interface Served {
  server: Http1Server;
  port: number;
  /** Every request the handler received, in order. */
  calls: Http1Request[];
}

/** Starts a server on a free loopback port; stopped when the test ends. */
async function serve(t: TestContext, onRequest: Handler, opts: Partial<Omit<Http1ServerOptions, 'onRequest'>> = {}): Promise<Served> {
  const calls: Http1Request[] = [];
  const server = new Http1Server({
    maxBodyBytes: 1 << 20,
    ...opts,
    onRequest(req, res) {
      calls.push(req);
      onRequest(req, res);
    },
  });
  const port = await server.listen(0, '127.0.0.1');
  assert.equal(server.address()?.port, port);
  t.after(() => {
    server.close();
    server.destroyAll();
  });
  return { server, port, calls };
}

/** One parsed response. */
interface Resp {
  /** The response's bytes (head and framed body), latin1. */
  raw: string;
  statusLine: string;
  status: number;
  /** Header lines as sent ("name: value"). */
  headerLines: string[];
  /** Lowercased names; repeats joined with ", ". */
  headers: Record<string, string>;
  /** The body, decoded from its framing. */
  body: Buffer;
  /** Chunk sizes when chunked (the terminating 0 excluded), else null. */
  chunkSizes: number[] | null;
}

/**
 * Parses the responses in `buf` strictly (RFC 9112 §6.3 framing). Stops at the first incomplete one.
 * `head[i]`: the i-th final (non-1xx) response answers a HEAD request. `closed`: the server closed,
 * so a close-delimited body is complete.
 */
function parseResponses(buf: Buffer, closed: boolean, head: boolean[] = []): Resp[] {
  const out: Resp[] = [];
  let off = 0;
  let finals = 0;
  while (off < buf.length) {
    const he = buf.indexOf('\r\n\r\n', off, 'latin1');
    if (he < 0) break;
    const [statusLine, ...headerLines] = buf.toString('latin1', off, he).split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3}) ([^\r\n]*)$/.exec(statusLine!);
    if (!m) throw new Error(`bad status line ${JSON.stringify(statusLine)} at ${off} in ${JSON.stringify(buf.toString('latin1').slice(0, 2000))}`);
    const status = Number(m[1]);
    const headers: Record<string, string> = {};
    for (const l of headerLines) {
      const i = l.indexOf(': ');
      if (i <= 0) throw new Error(`bad header line ${JSON.stringify(l)}`);
      const k = l.slice(0, i).toLowerCase();
      const v = l.slice(i + 2);
      headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
    }
    let p = he + 4;
    let body: Buffer = EMPTY;
    let chunkSizes: number[] | null = null;
    const interim = status >= 100 && status < 200;
    const noBody = interim || status === 204 || status === 304 || head[finals] === true;
    if (noBody) {
      // head only
    } else if (headers['transfer-encoding'] !== undefined) {
      assert.equal(headers['transfer-encoding'], 'chunked');
      assert.equal(headers['content-length'], undefined, 'content-length with transfer-encoding');
      chunkSizes = [];
      const parts: Buffer[] = [];
      let done = false;
      for (;;) {
        const le = buf.indexOf('\r\n', p, 'latin1');
        if (le < 0) break;
        const line = buf.toString('latin1', p, le);
        if (!/^[0-9a-f]+$/.test(line)) throw new Error(`bad chunk size line ${JSON.stringify(line)}`);
        const size = parseInt(line, 16);
        if (size === 0) {
          if (buf.length < le + 4) break;
          if (buf.toString('latin1', le + 2, le + 4) !== '\r\n') throw new Error('unexpected bytes after the last chunk');
          p = le + 4;
          done = true;
          break;
        }
        if (buf.length < le + 2 + size + 2) break;
        if (buf.toString('latin1', le + 2 + size, le + 4 + size) !== '\r\n') throw new Error('chunk data not followed by CRLF');
        chunkSizes.push(size);
        parts.push(buf.subarray(le + 2, le + 2 + size));
        p = le + 4 + size;
      }
      if (!done) break;
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (buf.length < p + n) break;
      body = buf.subarray(p, p + n);
      p += n;
    } else {
      if (!closed) break;
      body = buf.subarray(p);
      p = buf.length;
    }
    out.push({ raw: buf.toString('latin1', off, p), statusLine: statusLine!, status, headerLines, headers, body, chunkSizes });
    if (!interim) finals++;
    off = p;
  }
  return out;
}

/** A raw TCP client that records everything it receives. */
class Client {
  private chunks: Buffer[] = [];
  private joined: Buffer | null = EMPTY;
  received = 0;
  /** The server ended its side (FIN received). */
  ended = false;
  /** The socket closed. */
  closed = false;
  error: Error | null = null;

  constructor(readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.received += d.length;
      this.joined = null;
    });
    sock.on('end', () => (this.ended = true));
    sock.on('close', () => (this.closed = true));
    sock.on('error', (e) => (this.error = e));
  }

  get data(): Buffer {
    return (this.joined ??= Buffer.concat(this.chunks));
  }

  get text(): string {
    return this.data.toString('latin1');
  }

  send(b: string | Buffer): void {
    this.sock.write(typeof b === 'string' ? Buffer.from(b, 'latin1') : b);
  }

  responses(head: boolean[] = []): Resp[] {
    return parseResponses(this.data, this.ended || this.closed, head);
  }

  /** Waits for `n` complete responses (interim ones count). */
  waitResponses(n: number, head: boolean[] = []): Promise<Resp[]> {
    return waitFor(
      () => {
        const r = this.responses(head);
        return r.length >= n ? r : undefined;
      },
      `${n} response(s)`,
      () => this.text,
    );
  }

  /** Waits until the server has closed the connection (FIN or reset). */
  async waitServerClose(): Promise<void> {
    await waitFor(() => this.ended || this.closed, 'the server to close the connection', () => this.text);
  }
}

async function open(t: TestContext, port: number, opts: { allowHalfOpen?: boolean } = {}): Promise<Client> {
  const sock = connect({ port, host: '127.0.0.1', allowHalfOpen: opts.allowHalfOpen ?? false });
  const c = new Client(sock);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  t.after(() => sock.destroy());
  return c;
}

/** The JSON error body the server writes by default. */
function errorJson(r: Resp): { message: string; code: string; status: number } {
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(Number(r.headers['content-length']), r.body.length);
  return (JSON.parse(r.body.toString()) as { error: { message: string; code: string; status: number } }).error;
}

const GET = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: test\r\n${extra}\r\n`;

// ---------------------------------------------------------------------------------------------

test('POST with content-length: the handler gets method, url, lowercased headers and the exact body; the response arrives byte for byte; keep-alive', async (t) => {
  const reqBody = Buffer.concat([Buffer.from('{"model":"m","x":"é"}'), Buffer.from([0x00, 0x01, 0xff, 0x0d, 0x0a])]);
  const resBody = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x0d, 0x0a, 0x00, 0x41]);
  const { port, calls } = await serve(t, (req, res) => {
    if (req.url === '/second') {
      res.writeHead(200, { 'content-length': 2 });
      res.end('ok');
      return;
    }
    res.writeHead(201, { 'Content-Type': 'application/octet-stream', 'X-Reply': 'yes', 'content-length': resBody.length });
    res.end(resBody);
  });
  const c = await open(t, port);
  c.send(Buffer.concat([Buffer.from(`POST /v1/chat/completions?stream=false&a=%20b HTTP/1.1\r\nHost: example.test\r\nContent-Type: application/json\r\nX-Mixed-Case: Value With Spaces\r\nContent-Length: ${reqBody.length}\r\n\r\n`, 'latin1'), reqBody]));
  const [r] = await c.waitResponses(1);
  assert.equal(calls.length, 1);
  const req = calls[0]!;
  assert.equal(req.method, 'POST');
  assert.equal(req.url, '/v1/chat/completions?stream=false&a=%20b');
  assert.equal(req.httpVersion, '1.1');
  assert.equal(req.remoteAddress, '127.0.0.1');
  assert.deepEqual(req.headers, { host: 'example.test', 'content-type': 'application/json', 'x-mixed-case': 'Value With Spaces', 'content-length': String(reqBody.length) });
  assert.deepEqual(req.body, reqBody);
  const pieces: Buffer[] = [];
  for await (const p of req) pieces.push(p);
  assert.deepEqual(pieces, [reqBody], 'the async iterator yields the body once');
  assert.match(r!.headers.date!, DATE_RE);
  const expected = Buffer.concat([
    Buffer.from(`HTTP/1.1 201 Created\r\nContent-Type: application/octet-stream\r\nX-Reply: yes\r\ncontent-length: ${resBody.length}\r\ndate: ${r!.headers.date}\r\nconnection: keep-alive\r\n\r\n`, 'latin1'),
    resBody,
  ]);
  assert.deepEqual(c.data, expected);

  c.send(GET('/second'));
  const rs = await c.waitResponses(2);
  assert.equal(rs[1]!.status, 200);
  assert.equal(rs[1]!.body.toString(), 'ok');
  assert.equal(rs[1]!.headers.connection, 'keep-alive');
  assert.equal(calls.length, 2);
  assert.equal(calls[1]!.method, 'GET');
  assert.equal(calls[1]!.body.length, 0);
  assert.equal(c.ended, false, 'the connection stays open');
});

test('chunked request body (split across TCP writes, chunk extensions, trailer) is reassembled exactly', async (t) => {
  const { port, calls } = await serve(t, (req, res) => res.end(`got ${req.body.length}`));
  const c = await open(t, port);
  const wire = 'POST /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n' + '5;name=value\r\nhello\r\n' + '1;a;b=c\r\n \r\n' + 'C\r\nworld, again\r\n' + '0\r\nX-Trailer: t\r\n\r\n';
  for (let i = 0; i < wire.length; i += 7) {
    c.send(wire.slice(i, i + 7));
    await ticks(1);
  }
  const [r] = await c.waitResponses(1);
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.body.toString(), 'hello world, again');
  assert.equal(calls[0]!.headers['transfer-encoding'], 'chunked');
  assert.equal(calls[0]!.headers['content-length'], undefined);
  assert.equal(r!.status, 200);
  assert.equal(r!.body.toString(), 'got 18');
  assert.equal(r!.headers['content-length'], '6');
});

test('trailer fields of a chunked body do not leak into the next request on the connection', async (t) => {
  const { port, calls } = await serve(t, (_req, res) => res.end('ok'));
  const c = await open(t, port);
  c.send('POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\nAuthorization: Bearer smuggled\r\n\r\n' + 'GET /b HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer real\r\n\r\n');
  await c.waitResponses(2);
  assert.equal(calls.length, 2);
  assert.equal(calls[0]!.url, '/a');
  assert.deepEqual(calls[0]!.headers, { host: 'a', 'transfer-encoding': 'chunked' });
  assert.equal(calls[0]!.body.toString(), 'abc');
  assert.equal(calls[1]!.url, '/b');
  assert.deepEqual(calls[1]!.headers, { host: 'b', authorization: 'Bearer real' });
});

test('a response without content-length is chunked on HTTP/1.1 and close-delimited on HTTP/1.0', async (t) => {
  const { port, calls } = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('abc');
    res.write(Buffer.from('defgh'));
    res.write('');
    res.end('ij');
  });
  const c = await open(t, port);
  c.send(GET('/one'));
  const [r] = await c.waitResponses(1);
  assert.equal(r!.headers['transfer-encoding'], 'chunked');
  assert.equal(r!.headers['content-length'], undefined);
  assert.equal(r!.headers.connection, 'keep-alive');
  assert.deepEqual(r!.chunkSizes, [3, 5, 2]);
  assert.equal(r!.body.toString(), 'abcdefghij');
  assert.ok(r!.raw.endsWith('\r\n\r\n3\r\nabc\r\n5\r\ndefgh\r\n2\r\nij\r\n0\r\n\r\n'), r!.raw);
  c.send(GET('/two'));
  const rs = await c.waitResponses(2);
  assert.equal(rs[1]!.body.toString(), 'abcdefghij', 'the connection is reused after a chunked response');
  assert.equal(c.ended, false);

  const c10 = await open(t, port);
  c10.send('GET /old HTTP/1.0\r\nHost: test\r\n\r\n');
  await c10.waitServerClose();
  const [r10] = c10.responses();
  assert.equal(calls.at(-1)!.httpVersion, '1.0');
  assert.equal(r10!.status, 200);
  assert.equal(r10!.headers['transfer-encoding'], undefined);
  assert.equal(r10!.headers['content-length'], undefined);
  assert.equal(r10!.headers.connection, 'close');
  assert.equal(r10!.body.toString(), 'abcdefghij');
  assert.ok(c10.text.endsWith('\r\n\r\nabcdefghij'));
});

test('HTTP/1.0 with connection: keep-alive and a content-length response keeps the connection', async (t) => {
  const { port, calls } = await serve(t, (req, res) => res.end(`v${req.httpVersion} ${req.url}`));
  const c = await open(t, port);
  c.send('GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
  const [r] = await c.waitResponses(1);
  assert.equal(r!.headers.connection, 'keep-alive');
  assert.equal(r!.headers['content-length'], '7');
  assert.equal(r!.body.toString(), 'v1.0 /a');
  c.send('GET /b HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n');
  const rs = await c.waitResponses(2);
  assert.equal(rs[1]!.body.toString(), 'v1.0 /b');
  assert.equal(rs[1]!.headers.connection, 'keep-alive');
  assert.equal(c.ended, false);
  // without keep-alive the third closes it
  c.send('GET /c HTTP/1.0\r\n\r\n');
  await c.waitServerClose();
  const all = c.responses();
  assert.equal(all.length, 3);
  assert.equal(all[2]!.headers.connection, 'close');
  assert.equal(all[2]!.body.toString(), 'v1.0 /c');
  assert.equal(calls.length, 3);
});

test('connection: close: the response says so, the server closes, and a request pipelined after it is not served', async (t) => {
  const { port, calls } = await serve(t, (req, res) => res.end(req.url));
  const c = await open(t, port);
  c.send(GET('/first', 'Connection: close\r\n') + GET('/after'));
  await c.waitServerClose();
  const rs = c.responses();
  assert.equal(rs.length, 1);
  assert.equal(rs[0]!.headers.connection, 'close');
  assert.equal(rs[0]!.body.toString(), '/first');
  assert.deepEqual(
    calls.map((r) => r.url),
    ['/first'],
  );
});

test('pipelining: three requests in one write are answered in order although the first is answered last', async (t) => {
  const order: string[] = [];
  let firstDoneWhenSecondStarted: boolean | undefined;
  let first: Http1Response | undefined;
  const { port } = await serve(t, (req, res) => {
    order.push(req.url);
    if (req.url === '/1') {
      first = res;
      setTimeout(() => res.end('r1'), 30);
      return;
    }
    if (req.url === '/2') firstDoneWhenSecondStarted = first?.writableFinished;
    res.end(`r${req.url.slice(1)}`);
  });
  const c = await open(t, port);
  c.send(GET('/1') + GET('/2') + GET('/3'));
  const rs = await c.waitResponses(3);
  assert.deepEqual(
    rs.map((r) => r.body.toString()),
    ['r1', 'r2', 'r3'],
  );
  assert.deepEqual(order, ['/1', '/2', '/3']);
  assert.equal(firstDoneWhenSecondStarted, true, 'the second handler runs only after the first response ended');
  assert.ok(rs.every((r) => r.headers.connection === 'keep-alive'));
  assert.equal(c.data.length, rs.reduce((n, r) => n + r.raw.length, 0), 'no stray bytes');
});

test(`more than MAX_QUEUED (${MAX_QUEUED}) pipelined requests: reading pauses and resumes, all are answered in order`, async (t) => {
  const n = MAX_QUEUED * 2 + 3;
  const { port, calls } = await serve(t, (req, res) => {
    if (req.url === '/0') setTimeout(() => res.end('0'), 30);
    else res.end(req.url.slice(1));
  });
  const c = await open(t, port);
  let wire = '';
  for (let i = 0; i < n; i++) wire += GET(`/${i}`);
  c.send(wire);
  const rs = await c.waitResponses(n);
  assert.deepEqual(
    rs.map((r) => r.body.toString()),
    Array.from({ length: n }, (_, i) => String(i)),
  );
  assert.equal(calls.length, n);
  c.send(GET('/again'));
  assert.equal((await c.waitResponses(n + 1))[n]!.body.toString(), 'again', 'reading resumed');
});

test('pipelined HTTP/1.0 then HTTP/1.1: the HTTP/1.0 response is not chunked, whatever was parsed after it', async (t) => {
  const { port, calls } = await serve(t, (req, res) => {
    if (req.url === '/old') {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('late ');
        res.end('body');
      }, 30);
      return;
    }
    res.end('new');
  });
  const c = await open(t, port);
  c.send('GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n' + GET('/new'));
  await c.waitServerClose();
  const rs = c.responses();
  assert.equal(rs.length, 1);
  assert.equal(rs[0]!.headers['transfer-encoding'], undefined, 'no chunked framing for an HTTP/1.0 client');
  assert.equal(rs[0]!.headers.connection, 'close');
  assert.equal(rs[0]!.body.toString(), 'late body');
  assert.deepEqual(
    calls.map((r) => r.url),
    ['/old'],
    'the connection closes after the close-delimited response',
  );
});

test('request smuggling shapes and malformed requests: 400, connection closed, handler never called', async (t) => {
  const cases: [string, string][] = [
    ['content-length with transfer-encoding', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['two differing content-length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!'],
    ['bare LF ending a header line', 'GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n'],
    ['bare LF line endings throughout', 'GET / HTTP/1.1\nHost: a\n\n'],
    ['invalid method token', 'G@T / HTTP/1.1\r\nHost: a\r\n\r\n'],
    ['invalid chunk size', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
    ['whitespace before the colon', 'GET / HTTP/1.1\r\nHost : a\r\n\r\n'],
    ['obsolete line folding', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n'],
    ['NUL in a header value', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n'],
    ['HTTP/1.2', 'GET / HTTP/1.2\r\nHost: a\r\n\r\n'],
  ];
  const { port, calls } = await serve(t, (_req, res) => res.end('should not happen'));
  for (const [name, wire] of cases) {
    const c = await open(t, port);
    c.send(wire);
    await c.waitServerClose();
    const rs = c.responses();
    assert.equal(rs.length, 1, name);
    assert.equal(rs[0]!.statusLine, 'HTTP/1.1 400 Bad Request', name);
    assert.equal(rs[0]!.headers.connection, 'close', name);
    const e = errorJson(rs[0]!);
    assert.equal(e.code, 'bad_http_request', name);
    assert.match(e.message, /^malformed HTTP request: /, name);
    assert.equal(calls.length, 0, name);
  }
  // a good request ahead of a bad one in the same write is answered first
  const c = await open(t, port);
  c.send(GET('/ok') + 'G@T / HTTP/1.1\r\nHost: a\r\n\r\n');
  await c.waitServerClose();
  const rs = c.responses();
  assert.deepEqual(
    rs.map((r) => r.status),
    [200, 400],
  );
  assert.equal(rs[0]!.headers.connection, 'keep-alive');
  assert.deepEqual(
    calls.map((r) => r.url),
    ['/ok'],
  );
});

test('a header block over maxHeaderBytes gets 431 and the connection closes; one under it is served', async (t) => {
  const { port, calls } = await serve(t, (_req, res) => res.end('ok'), { maxHeaderBytes: 1024 });
  const small = await open(t, port);
  small.send(GET('/small', `X-Pad: ${'a'.repeat(600)}\r\n`));
  assert.equal((await small.waitResponses(1))[0]!.status, 200);

  const c = await open(t, port);
  c.send(GET('/big', `X-Big: ${'a'.repeat(2000)}\r\n`));
  await c.waitServerClose();
  const rs = c.responses();
  assert.equal(rs.length, 1);
  assert.equal(rs[0]!.statusLine, 'HTTP/1.1 431 Request Header Fields Too Large');
  assert.equal(rs[0]!.headers.connection, 'close');
  assert.equal(errorJson(rs[0]!).code, 'header_too_large');
  assert.deepEqual(
    calls.map((r) => r.url),
    ['/small'],
  );
});

test(`more than MAX_HEADERS (${MAX_HEADERS}) header fields: 431`, async (t) => {
  const { port, calls } = await serve(t, (_req, res) => res.end('ok'), { maxHeaderBytes: 64 * 1024 });
  const c = await open(t, port);
  let h = '';
  for (let i = 0; i <= MAX_HEADERS; i++) h += `x${i}: v\r\n`;
  c.send(GET('/', h));
  await c.waitServerClose();
  const rs = c.responses();
  assert.equal(rs.length, 1);
  assert.equal(rs[0]!.status, 431);
  assert.equal(errorJson(rs[0]!).code, 'header_too_large');
  assert.equal(calls.length, 0);
});

test('HTTP/2.0 request line: 505; CONNECT: 405; both close and never reach the handler', async (t) => {
  const { port, calls } = await serve(t, (_req, res) => res.end('no'));
  const a = await open(t, port);
  a.send('GET / HTTP/2.0\r\nHost: a\r\n\r\n');
  await a.waitServerClose();
  const [r505] = a.responses();
  assert.equal(r505!.statusLine, 'HTTP/1.1 505 HTTP Version Not Supported');
  assert.equal(r505!.headers.connection, 'close');
  assert.equal(errorJson(r505!).code, 'http_version_not_supported');

  const b = await open(t, port);
  b.send('CONNECT host:443 HTTP/1.1\r\nHost: host:443\r\n\r\n');
  await b.waitServerClose();
  const [r405] = b.responses();
  assert.equal(r405!.statusLine, 'HTTP/1.1 405 Method Not Allowed');
  assert.equal(r405!.headers.connection, 'close');
  assert.equal(errorJson(r405!).code, 'method_not_allowed');
  assert.equal(calls.length, 0);
});

test('body limit: exactly maxBodyBytes is served; a declared content-length over it and a chunked body growing past it get 413 and close', async (t) => {
  const { port, calls } = await serve(t, (req, res) => res.end(String(req.body.length)), { maxBodyBytes: 100 });
  const ok = await open(t, port);
  ok.send(`POST /ok HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n${'x'.repeat(100)}`);
  assert.equal((await ok.waitResponses(1))[0]!.body.toString(), '100');

  const cl = await open(t, port);
  cl.send(`POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n${'x'.repeat(101)}`);
  await cl.waitServerClose();
  const [r1] = cl.responses();
  assert.equal(r1!.statusLine, 'HTTP/1.1 413 Payload Too Large');
  assert.equal(r1!.headers.connection, 'close');
  assert.equal(errorJson(r1!).code, 'request_too_large');

  const ch = await open(t, port);
  ch.send(`POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3c\r\n${'y'.repeat(60)}\r\n`);
  await ticks();
  ch.send(`3c\r\n${'z'.repeat(60)}\r\n0\r\n\r\n`);
  await ch.waitServerClose();
  const [r2] = ch.responses();
  assert.equal(r2!.status, 413);
  assert.equal(r2!.headers.connection, 'close');
  assert.equal(errorJson(r2!).code, 'request_too_large');
  assert.deepEqual(
    calls.map((r) => r.url),
    ['/ok'],
  );
});

test('expect: 100-continue gets an interim 100 before the body is sent; too large a body gets 413 instead; other expectations 417', async (t) => {
  const { port, calls } = await serve(t, (req, res) => res.end(`echo ${req.body.toString()}`), { maxBodyBytes: 100 });
  const c = await open(t, port);
  c.send('POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n');
  await waitFor(() => c.text.includes('\r\n\r\n'), 'the interim response', () => c.text);
  assert.equal(c.text, 'HTTP/1.1 100 Continue\r\n\r\n');
  assert.equal(calls.length, 0);
  c.send('hello');
  const rs = await c.waitResponses(2);
  assert.equal(rs[0]!.status, 100);
  assert.equal(rs[1]!.status, 200);
  assert.equal(rs[1]!.body.toString(), 'echo hello');
  assert.equal(rs[1]!.headers.connection, 'keep-alive');

  const big = await open(t, port);
  big.send('POST /big HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 101\r\n\r\n');
  await big.waitServerClose();
  const br = big.responses();
  assert.equal(br.length, 1, 'no 100 Continue before the 413');
  assert.equal(br[0]!.status, 413);

  const other = await open(t, port);
  other.send('POST /other HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\nContent-Length: 5\r\n\r\nhello');
  await other.waitServerClose();
  const or = other.responses();
  assert.equal(or.length, 1);
  assert.equal(or[0]!.statusLine, 'HTTP/1.1 417 Expectation Failed');
  assert.equal(or[0]!.headers.connection, 'close');
  assert.equal(errorJson(or[0]!).code, 'expectation_failed');
  assert.equal(calls.length, 1);
});

test('expect: 100-continue on a pipelined request: the 100 comes after the response to the request ahead of it', async (t) => {
  const { port } = await serve(t, (req, res) => {
    if (req.url === '/slow') {
      setTimeout(() => {
        res.writeHead(200, { 'content-length': 4 });
        res.end('slow');
      }, 50);
      return;
    }
    res.end(`echo ${req.body.toString()}`);
  });
  const c = await open(t, port);
  c.send(GET('/slow') + 'POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n');
  const first = await c.waitResponses(2);
  assert.equal(first[0]!.status, 200, `the first bytes are the first request's response: ${JSON.stringify(c.text)}`);
  assert.equal(first[0]!.body.toString(), 'slow');
  assert.equal(first[1]!.status, 100);
  c.send('hello');
  const rs = await c.waitResponses(3);
  assert.equal(rs[2]!.body.toString(), 'echo hello');
});

test('more than 32 header fields (handed over by llhttp in pieces) and a long URL all reach the handler; the next request is clean', async (t) => {
  const { port, calls } = await serve(t, (_req, res) => res.end('ok'));
  const c = await open(t, port);
  const url = `/v1/models?q=${'u'.repeat(3000)}`;
  let h = '';
  for (let i = 0; i < 50; i++) h += `X-H-${i}: value ${i}\r\n`;
  const wire = `GET ${url} HTTP/1.1\r\nHost: test\r\n${h}\r\n`;
  for (let i = 0; i < wire.length; i += 100) {
    c.send(wire.slice(i, i + 100));
    await ticks(1);
  }
  await c.waitResponses(1);
  const expected: Record<string, string> = { host: 'test' };
  for (let i = 0; i < 50; i++) expected[`x-h-${i}`] = `value ${i}`;
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.url, url);
  assert.deepEqual(calls[0]!.headers, expected);
  c.send(GET('/next', 'X-Only: 1\r\n'));
  await c.waitResponses(2);
  assert.equal(calls[1]!.url, '/next');
  assert.deepEqual(calls[1]!.headers, { host: 'test', 'x-only': '1' });
});

test('duplicate header fields: joined with ", ", singletons keep the first, set-cookie is an array', async (t) => {
  const { port, calls } = await serve(t, (_req, res) => res.end('ok'));
  const c = await open(t, port);
  c.send(GET('/dup', 'X-A: 1\r\nx-a: 2\r\nAuthorization: Bearer first\r\nauthorization: Bearer second\r\nSet-Cookie: c1=1\r\nset-cookie: c2=2\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n') + GET('/one', 'Set-Cookie: only=1\r\n'));
  await c.waitResponses(2);
  assert.deepEqual(calls[0]!.headers, { host: 'test', 'x-a': '1, 2', authorization: 'Bearer first', 'set-cookie': ['c1=1', 'c2=2'], 'content-type': 'a/b' });
  assert.deepEqual(calls[1]!.headers, { host: 'test', 'set-cookie': ['only=1'] });
});

test('header fields named like Object.prototype members get their own values', async (t) => {
  const { port, calls } = await serve(t, (_req, res) => res.end('ok'));
  const c = await open(t, port);
  c.send(GET('/', 'Constructor: c\r\ntoString: s\r\nhasOwnProperty: h\r\n'));
  await c.waitResponses(1);
  const h = calls[0]!.headers;
  assert.equal(h.constructor, 'c');
  assert.equal(h.tostring, 's');
  assert.equal(h.hasownproperty, 'h');
});

test('HEAD: the head carries content-length but no body bytes follow; the connection stays usable', async (t) => {
  const { port } = await serve(t, (req, res) => {
    if (req.url === '/explicit') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 11 });
      res.end('hello world');
    } else res.end('hello');
  });
  const c = await open(t, port);
  c.send('HEAD /explicit HTTP/1.1\r\nHost: a\r\n\r\nHEAD /implicit HTTP/1.1\r\nHost: a\r\n\r\n' + GET('/implicit'));
  const rs = await c.waitResponses(3, [true, true, false]);
  assert.equal(rs[0]!.headers['content-length'], '11');
  assert.equal(rs[0]!.body.length, 0);
  assert.ok(rs[0]!.raw.endsWith('connection: keep-alive\r\n\r\n'));
  assert.equal(rs[1]!.headers['content-length'], '5');
  assert.equal(rs[1]!.headers['transfer-encoding'], undefined);
  assert.equal(rs[1]!.body.length, 0);
  assert.equal(rs[2]!.body.toString(), 'hello');
  assert.equal(c.data.length, rs.reduce((n, r) => n + r.raw.length, 0), 'no body bytes after the HEAD responses');
  assert.equal(c.ended, false);
});

test('204 and 304 responses: no body and no framing headers, even when the handler writes one', async (t) => {
  const { port } = await serve(t, (req, res) => {
    if (req.url === '/204') {
      res.writeHead(204, { 'x-k': 'v' });
      res.write('ignored');
      res.end();
    } else if (req.url === '/304') {
      res.writeHead(304, { etag: '"e"' });
      res.end();
    } else res.end('after');
  });
  const c = await open(t, port);
  c.send(GET('/204') + GET('/304') + GET('/after'));
  const rs = await c.waitResponses(3);
  assert.equal(rs[0]!.statusLine, 'HTTP/1.1 204 No Content');
  assert.equal(rs[0]!.headers['x-k'], 'v');
  assert.equal(rs[1]!.statusLine, 'HTTP/1.1 304 Not Modified');
  assert.equal(rs[1]!.headers.etag, '"e"');
  for (const r of rs.slice(0, 2)) {
    assert.equal(r.headers['transfer-encoding'], undefined);
    assert.equal(r.headers['content-length'], undefined);
    assert.equal(r.headers.connection, 'keep-alive');
    assert.ok(r.raw.endsWith('\r\n\r\n'));
  }
  assert.equal(rs[2]!.body.toString(), 'after');
  assert.equal(c.data.length, rs.reduce((n, r) => n + r.raw.length, 0));
});

test('an invalid response header name or value makes writeHead throw TypeError with nothing written; the handler can then answer 500', async (t) => {
  const errors: unknown[] = [];
  let sentAfterErrors: boolean | undefined;
  const { port } = await serve(t, (_req, res) => {
    const bad: Record<string, string | number | string[]>[] = [{ 'x-bad': 'a\r\nb' }, { 'x-bad': 'a\nb' }, { 'x-bad': 'nul\0' }, { 'bad name': 'v' }, { 'x-arr': ['ok', 'b\r\nad'] }, { 'content-length': -1 }, { 'content-length': 'abc' }];
    for (const h of bad) {
      try {
        res.writeHead(200, h);
        errors.push(null);
      } catch (e) {
        errors.push(e);
      }
    }
    sentAfterErrors = res.headersSent;
    res.writeHead(500, { 'content-length': 4 });
    res.end('oops');
  });
  const c = await open(t, port);
  c.send(GET('/'));
  const [r] = await c.waitResponses(1);
  assert.equal(errors.length, 7);
  for (const e of errors) assert.ok(e instanceof TypeError, String(e));
  assert.equal(sentAfterErrors, false);
  assert.equal(r!.statusLine, 'HTTP/1.1 500 Internal Server Error');
  assert.equal(r!.body.toString(), 'oops');
  assert.ok(c.text.startsWith('HTTP/1.1 500 '), 'nothing was written before the 500');
  assert.ok(!c.text.includes('x-bad') && !c.text.includes('x-arr'));
});

test('setHeader with an invalid value throws at once; a handler that lets it escape gets a clean 500 (no crash)', async (t) => {
  let caught: unknown;
  const { port } = await serve(t, (req, res) => {
    if (req.url === '/caught') {
      try {
        res.setHeader('x-bad', 'a\r\nb');
      } catch (e) {
        caught = e;
      }
      res.setHeader('x-good', '1');
      res.end('fine');
      return;
    }
    res.setHeader('x-bad', ['ok', 'a\r\nb']);
    res.end('never');
  });
  const c = await open(t, port);
  c.send(GET('/caught') + GET('/uncaught'));
  const rs = await c.waitResponses(2);
  assert.ok(caught instanceof TypeError);
  assert.equal(rs[0]!.status, 200);
  assert.equal(rs[0]!.headers['x-good'], '1');
  assert.equal(rs[0]!.headers['x-bad'], undefined);
  assert.equal(rs[0]!.body.toString(), 'fine');
  assert.equal(rs[1]!.status, 500);
  assert.equal(rs[1]!.headers['x-bad'], undefined);
  const e = errorJson(rs[1]!);
  assert.equal(e.code, 'internal_error');
  assert.match(e.message, /invalid characters/);
});

test('writeHead headers override setHeader values whatever the case of their names', async (t) => {
  const { port } = await serve(t, (_req, res) => {
    res.setHeader('Content-Type', 'text/plain');
    res.setHeader('content-length', 10);
    res.setHeader('x-routing-strategy', 'kv');
    res.writeHead(200, { 'content-type': 'application/json', 'Content-Length': 2 });
    res.end('{}');
  });
  const c = await open(t, port);
  c.send(GET('/a') + GET('/b'));
  const rs = await c.waitResponses(2);
  for (const r of rs) {
    assert.deepEqual(
      r.headerLines.filter((l) => /^content-(type|length):/i.test(l)).map((l) => l.toLowerCase()),
      ['content-type: application/json', 'content-length: 2'],
    );
    assert.equal(r.headers['x-routing-strategy'], 'kv');
    assert.equal(r.body.toString(), '{}');
  }
  assert.equal(c.ended, false);
});

test('content-length mismatch: fewer or more body bytes than declared destroys the connection instead of reusing it', async (t) => {
  const { port, calls } = await serve(t, (req, res) => {
    if (req.url === '/short') {
      res.writeHead(200, { 'content-length': 10 });
      res.write('12345');
      res.end();
    } else if (req.url === '/long') {
      res.writeHead(200, { 'content-length': 3 });
      res.write('abcdef');
      res.end();
    } else res.end('next');
  });
  for (const path of ['/short', '/long']) {
    const c = await open(t, port);
    c.send(GET(path) + GET('/next'));
    await waitFor(() => c.closed, `the server to cut the connection after ${path}`, () => c.text);
    assert.ok(!c.text.includes('next'), `${path}: the pipelined request was not served`);
  }
  assert.deepEqual(
    calls.map((r) => r.url),
    ['/short', '/long'],
  );
  // the short one never completes its declared length
  const c = await open(t, port);
  c.send(GET('/short'));
  await waitFor(() => c.closed, 'close', () => c.text);
  assert.equal(c.responses().length, 0);
});

test('client disconnect before the response: close listeners run once (also one added after), removed ones do not; end afterwards is harmless', async (t) => {
  let held: Http1Response | undefined;
  let closes = 0;
  let removedRan = 0;
  let lateRan = 0;
  const { port, server } = await serve(t, (_req, res) => {
    held = res;
    res.on('close', () => closes++);
    const removed = () => removedRan++;
    res.on('close', removed);
    res.off('close', removed);
  });
  const c = await open(t, port);
  c.send(GET('/wait'));
  await waitFor(() => held, 'the handler');
  c.sock.destroy();
  await waitFor(() => closes === 1, 'the close listener');
  await waitFor(() => server.connections.size === 0, 'the server to drop the connection');
  held!.on('close', () => lateRan++);
  await ticks();
  assert.equal(closes, 1);
  assert.equal(removedRan, 0);
  assert.equal(lateRan, 1, 'a listener added after the client left runs');
  assert.doesNotThrow(() => {
    held!.writeHead(200, { 'content-length': 4 });
    held!.end('late');
  });
  await ticks();
  assert.equal(closes, 1);
});

test('after a normal end, close listeners do not run when the client leaves', async (t) => {
  let closes = 0;
  const { port, server } = await serve(t, (_req, res) => {
    res.on('close', () => closes++);
    res.end('done');
    res.on('close', () => closes++);
  });
  const c = await open(t, port);
  c.send(GET('/'));
  await c.waitResponses(1);
  c.sock.destroy();
  await waitFor(() => server.connections.size === 0, 'the server to drop the connection');
  await ticks();
  assert.equal(closes, 0);
});

test('backpressure: write returns false to a paused client, drain fires after it resumes, every byte arrives', async (t) => {
  const piece = 1 << 20;
  const pieces = 64;
  const total = piece * pieces;
  const pieceBuf = (i: number) => Buffer.alloc(piece, (i * 37 + 11) & 0xff);
  let falses = 0;
  let drains = 0;
  let written = 0;
  const { port } = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
    const pump = () => {
      while (written < pieces) {
        const ok = res.write(pieceBuf(written));
        written++;
        if (!ok) {
          falses++;
          res.once('drain', () => {
            drains++;
            pump();
          });
          return;
        }
      }
      res.end();
    };
    pump();
  });
  const c = await open(t, port);
  c.sock.pause();
  c.send(GET('/big'));
  await waitFor(() => falses >= 1, 'write to return false');
  assert.ok(written < pieces, 'the handler is waiting for drain');
  const drainsBeforeResume = drains;
  c.sock.resume();
  await waitFor(() => {
    const he = c.received > 0 ? c.data.indexOf('\r\n\r\n') : -1;
    return he >= 0 && c.received >= he + 4 + total;
  }, 'the whole body');
  const data = c.data;
  const he = data.indexOf('\r\n\r\n');
  assert.match(data.toString('latin1', 0, he), /^HTTP\/1\.1 200 OK\r\n[^]*content-length: 67108864\r\n/);
  const body = data.subarray(he + 4);
  assert.equal(body.length, total);
  const want = createHash('sha256');
  for (let i = 0; i < pieces; i++) want.update(pieceBuf(i));
  assert.equal(createHash('sha256').update(body).digest('hex'), want.digest('hex'));
  assert.equal(written, pieces);
  assert.ok(drains > drainsBeforeResume, 'drain fired after the client resumed');
  assert.equal(drains, falses, 'every false was followed by a drain');
  assert.equal(c.ended, false);
});

test('headersTimeoutMs: a header block that stops half-way gets 408 and the connection closes', async (t) => {
  const { port, calls } = await serve(t, (_req, res) => res.end('no'), { headersTimeoutMs: 300 });
  const c = await open(t, port);
  c.send('GET /slow HTTP/1.1\r\nHost: a\r\n');
  await c.waitServerClose();
  const rs = c.responses();
  assert.equal(rs.length, 1);
  assert.equal(rs[0]!.statusLine, 'HTTP/1.1 408 Request Timeout');
  assert.equal(rs[0]!.headers.connection, 'close');
  const e = errorJson(rs[0]!);
  assert.equal(e.code, 'request_timeout');
  assert.match(e.message, /header/);
  assert.equal(calls.length, 0);
});

test('requestTimeoutMs: a body that stops half-way gets 408 and the connection closes', async (t) => {
  const { port, calls } = await serve(t, (_req, res) => res.end('no'), { requestTimeoutMs: 300 });
  const c = await open(t, port);
  c.send('POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc');
  await c.waitServerClose();
  const rs = c.responses();
  assert.equal(rs.length, 1);
  assert.equal(rs[0]!.status, 408);
  const e = errorJson(rs[0]!);
  assert.equal(e.code, 'request_timeout');
  assert.match(e.message, /body/);
  assert.equal(calls.length, 0);
});

test('keepAliveTimeoutMs: idle connections are closed by the server (after a response, and one that never sent anything)', async (t) => {
  const { port, server, calls } = await serve(t, (_req, res) => res.end('ok'), { keepAliveTimeoutMs: 300 });
  const used = await open(t, port);
  const silent = await open(t, port);
  used.send(GET('/'));
  assert.equal((await used.waitResponses(1))[0]!.headers.connection, 'keep-alive');
  await used.waitServerClose();
  await silent.waitServerClose();
  assert.equal(used.responses().length, 1);
  assert.equal(silent.received, 0);
  assert.equal(calls.length, 1);
  await waitFor(() => server.connections.size === 0, 'the server to drop both connections');
});

test('a connection the server ended is destroyed when the client keeps its half open', async (t) => {
  const { port, server } = await serve(t, (_req, res) => res.end('no'), { keepAliveTimeoutMs: 300 });
  const c = await open(t, port, { allowHalfOpen: true });
  c.send('G@T / HTTP/1.1\r\n\r\n');
  await waitFor(() => c.ended, 'the FIN after the 400', () => c.text);
  assert.equal(c.responses()[0]!.status, 400);
  assert.equal(c.closed, false, 'the client keeps its half open');
  await waitFor(() => server.connections.size === 0, 'the server to give up the half-open connection');
});

test('close() then closeIdleConnections(): idle connections end, a request in progress completes with connection: close, new connections are refused', async (t) => {
  let held: Http1Response | undefined;
  const { port, server, calls } = await serve(t, (req, res) => {
    if (req.url === '/hold') held = res;
    else res.end(req.url);
  });
  const idle = await open(t, port);
  idle.send(GET('/idle'));
  assert.equal((await idle.waitResponses(1))[0]!.headers.connection, 'keep-alive');
  const busy = await open(t, port);
  busy.send(GET('/hold'));
  await waitFor(() => held, 'the held request');

  server.close();
  server.closeIdleConnections();
  idle.send(GET('/late')); // crosses the server's FIN: must not be dispatched
  await idle.waitServerClose();
  assert.equal(idle.responses().length, 1);

  held!.writeHead(200, { 'content-length': 4 });
  held!.end('done');
  await busy.waitServerClose();
  const rs = busy.responses();
  assert.equal(rs.length, 1);
  assert.equal(rs[0]!.headers.connection, 'close');
  assert.equal(rs[0]!.body.toString(), 'done');
  assert.deepEqual(
    calls.map((r) => r.url),
    ['/idle', '/hold'],
  );

  const refused = connect(port, '127.0.0.1');
  const err = await new Promise<NodeJS.ErrnoException>((resolve) => refused.once('error', resolve));
  assert.equal(err.code, 'ECONNREFUSED');
});

test('a handler that throws: 500 JSON, the connection is reused; after the head was sent the connection is cut', async (t) => {
  const { port, calls } = await serve(t, (req, res) => {
    if (req.url === '/throw') throw new Error('boom');
    if (req.url === '/throw-late') {
      res.writeHead(200);
      res.write('partial');
      throw new Error('late boom');
    }
    res.end('fine');
  });
  const c = await open(t, port);
  c.send(GET('/throw') + GET('/ok'));
  const rs = await c.waitResponses(2);
  assert.equal(rs[0]!.statusLine, 'HTTP/1.1 500 Internal Server Error');
  const e = errorJson(rs[0]!);
  assert.equal(e.code, 'internal_error');
  assert.equal(e.message, 'internal error: boom');
  assert.equal(rs[0]!.headers.connection, 'keep-alive');
  assert.equal(rs[1]!.body.toString(), 'fine');

  const late = await open(t, port);
  late.send(GET('/throw-late') + GET('/ok'));
  await waitFor(() => late.closed, 'the cut', () => late.text);
  assert.equal(late.responses().length, 0, 'the chunked response never terminates');
  assert.ok(!late.text.includes('fine'));
  assert.deepEqual(
    calls.map((r) => r.url),
    ['/throw', '/ok', '/throw-late'],
    'the request pipelined after the cut one is not dispatched',
  );
});

test('errorBody customises the JSON of server-generated errors (413, and the 500 of a throwing handler)', async (t) => {
  const seen: [number, string, string][] = [];
  const { port } = await serve(
    t,
    () => {
      throw new Error('x');
    },
    {
      maxBodyBytes: 10,
      errorBody(status, message, code) {
        seen.push([status, message, code]);
        return JSON.stringify({ custom: { status, code } });
      },
    },
  );
  const c = await open(t, port);
  c.send('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n01234567890');
  await c.waitServerClose();
  const [r] = c.responses();
  assert.equal(r!.status, 413);
  assert.equal(r!.body.toString(), '{"custom":{"status":413,"code":"request_too_large"}}');
  assert.equal(r!.headers['content-length'], String(r!.body.length));
  assert.equal(r!.headers['content-type'], 'application/json');

  const d = await open(t, port);
  d.send(GET('/'));
  const [r500] = await d.waitResponses(1);
  assert.equal(r500!.status, 500);
  assert.equal(r500!.body.toString(), '{"custom":{"status":500,"code":"internal_error"}}');
  assert.deepEqual(
    seen.map((s) => [s[0], s[2]]),
    [
      [413, 'request_too_large'],
      [500, 'internal_error'],
    ],
  );
});

test('upgrade: h2c is served as plain HTTP/1.1 and the connection closes after the response', async (t) => {
  const { port, calls } = await serve(t, (req, res) => res.end(`plain ${req.url}`));
  const c = await open(t, port);
  c.send(GET('/u', 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n') + GET('/after'));
  await c.waitServerClose();
  const rs = c.responses();
  assert.equal(rs.length, 1);
  assert.equal(rs[0]!.statusLine, 'HTTP/1.1 200 OK');
  assert.equal(rs[0]!.headers.connection, 'close');
  assert.equal(rs[0]!.headers.upgrade, undefined);
  assert.equal(rs[0]!.body.toString(), 'plain /u');
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.headers.upgrade, 'h2c');
});
