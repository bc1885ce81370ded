/**
 * The gateway's upstream HTTP/1.1 client (`src/gateway/upstream.ts`) against raw TCP servers that
 * send exact bytes: framing (content-length, chunked split at every byte, close-delimited, 1xx,
 * 204), connection reuse and its limits, protocol errors, timeouts, abort, backpressure, the stale
 * keep-alive retry and the request queue.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { UpstreamPool, UpstreamError, type UpstreamHandler } from '../../src/gateway/upstream.ts';

interface Outcome {
  status?: number;
  headers?: string[];
  body: Buffer;
  error?: Error;
  completed: boolean;
  dataCalls: number;
}

/** A handler collecting everything; resolves when the exchange settles. */
function collect(opts: { pauseFirst?: boolean; onData?: (o: Outcome, abort: (e?: Error) => void) => void } = {}): { handler: UpstreamHandler; done: Promise<Outcome>; resume: () => void } {
  const o: Outcome = { body: Buffer.alloc(0), completed: false, dataCalls: 0 };
  let resolve!: (x: Outcome) => void;
  const done = new Promise<Outcome>((r) => (resolve = r));
  let abort: (e?: Error) => void = () => undefined;
  let resumeFn: () => void = () => undefined;
  let settled = 0;
  const handler: UpstreamHandler = {
    onConnect(a) {
      abort = a;
    },
    onHeaders(status, headers, resume) {
      o.status = status;
      o.headers = headers;
      resumeFn = resume;
      return true;
    },
    onData(chunk) {
      o.dataCalls++;
      o.body = Buffer.concat([o.body, chunk]);
      opts.onData?.(o, abort);
      if (opts.pauseFirst && o.dataCalls === 1) return false;
      return true;
    },
    onComplete() {
      settled++;
      o.completed = true;
      resolve(o);
    },
    onError(err) {
      settled++;
      o.error = err;
      resolve(o);
    },
  };
  void done.then(() => assert.equal(settled, 1, 'settled exactly once'));
  return { handler, done, resume: () => resumeFn() };
}

const servers: Server[] = [];
const pools: UpstreamPool[] = [];
after(async () => {
  await Promise.all(pools.map((p) => p.destroy()));
  for (const s of servers) s.close();
});

/**
 * A raw server: `onRequest(socket, requestText)` is called for each complete request (content-length
 * framed) so the test writes whatever bytes it wants. Counts connections.
 */
async function rawServer(onRequest: (s: Socket, req: string, n: number) => void): Promise<{ url: string; connections: () => number; requests: string[] }> {
  let conns = 0;
  const requests: string[] = [];
  const srv = createServer((s) => {
    conns++;
    let buf = Buffer.alloc(0);
    s.on('error', () => undefined);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const he = buf.indexOf('\r\n\r\n');
        if (he < 0) return;
        const head = buf.toString('latin1', 0, he);
        const m = /content-length: (\d+)/i.exec(head);
        const n = m ? Number(m[1]) : 0;
        if (buf.length < he + 4 + n) return;
        const text = buf.toString('latin1', 0, he + 4 + n);
        buf = buf.subarray(he + 4 + n);
        requests.push(text);
        onRequest(s, text, requests.length);
      }
    });
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, connections: () => conns, requests };
}

function pool(url: string, opts: ConstructorParameters<typeof UpstreamPool>[1] = {}): UpstreamPool {
  const p = new UpstreamPool(url, opts);
  pools.push(p);
  return p;
}

const REQ = { method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', 'x-request-id': 'r1' }, body: Buffer.from('{"model":"m"}') };

test('sends one well-formed request and reads a content-length response; the connection is reused', async () => {
  const srv = await rawServer((s) => s.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nX-Multi: a\r\nX-Multi: b\r\n\r\n{"ok":true}'));
  const p = pool(srv.url);
  const a = collect();
  p.dispatch(REQ, a.handler);
  const o = await a.done;
  assert.equal(o.error, undefined);
  assert.equal(o.status, 200);
  assert.equal(o.body.toString(), '{"ok":true}');
  assert.deepEqual(o.headers, ['content-type', 'application/json', 'content-length', '11', 'x-multi', 'a', 'x-multi', 'b']);
  const host = new URL(srv.url).host;
  assert.equal(srv.requests[0], `POST /v1/chat/completions HTTP/1.1\r\nhost: ${host}\r\ncontent-type: application/json\r\nx-request-id: r1\r\ncontent-length: 13\r\n\r\n{"model":"m"}`);
  const b = collect();
  p.dispatch(REQ, b.handler);
  assert.equal((await b.done).body.toString(), '{"ok":true}');
  assert.equal(srv.connections(), 1, 'second request on the same keep-alive connection');
});

test('chunked body delivered one byte per TCP write: data, extensions and trailers', async () => {
  const wire = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n' + '6;ext=1\r\ndata: \r\n' + 'a\r\n0123456789\r\n' + '0\r\nx-trailer: t\r\n\r\n';
  const srv = await rawServer(async (s) => {
    for (const ch of wire) {
      s.write(ch);
      await new Promise((r) => setImmediate(r));
    }
  });
  const p = pool(srv.url);
  const a = collect();
  p.dispatch(REQ, a.handler);
  const o = await a.done;
  assert.equal(o.error, undefined);
  assert.equal(o.body.toString(), 'data: 0123456789');
  assert.ok(o.headers!.includes('transfer-encoding'));
  // reusable after a chunked response
  const b = collect();
  p.dispatch(REQ, b.handler);
  assert.equal((await b.done).body.toString(), 'data: 0123456789');
  assert.equal(srv.connections(), 1);
});

test('close-delimited body ends at the close and the connection is not reused', async () => {
  const srv = await rawServer((s) => s.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end'));
  const p = pool(srv.url);
  for (let i = 0; i < 2; i++) {
    const a = collect();
    p.dispatch(REQ, a.handler);
    const o = await a.done;
    assert.equal(o.error, undefined);
    assert.equal(o.body.toString(), 'until the end');
  }
  assert.equal(srv.connections(), 2);
});

test('1xx interim responses are skipped; 204 has no body; connection: close is honoured', async () => {
  const srv = await rawServer((s, _r, n) => {
    if (n === 1) s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    else if (n === 2) s.write('HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n');
    else s.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n');
  });
  const p = pool(srv.url);
  const a = collect();
  p.dispatch(REQ, a.handler);
  const o = await a.done;
  assert.equal(o.status, 200);
  assert.equal(o.body.toString(), 'ok');
  const b = collect();
  p.dispatch(REQ, b.handler);
  const ob = await b.done;
  assert.equal(ob.status, 204);
  assert.equal(ob.completed, true);
  assert.equal(ob.dataCalls, 0);
  const c = collect();
  p.dispatch(REQ, c.handler);
  assert.equal((await c.done).status, 200);
  assert.equal(srv.connections(), 2, 'a new connection after connection: close');
});

test('protocol errors fail the exchange with UPSTREAM_PROTOCOL and never reuse the socket', async () => {
  const bad = [
    'HTTP/9 200 OK\r\n\r\n',
    'HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabc',
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n',
    'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA',
    'HTTP/1.1 200 OK\r\nbad header line\r\n\r\n',
  ];
  for (const wire of bad) {
    const srv = await rawServer((s) => s.write(wire));
    const p = pool(srv.url);
    const a = collect();
    p.dispatch(REQ, a.handler);
    const o = await a.done;
    assert.ok(o.error instanceof UpstreamError, `${JSON.stringify(wire)}: ${o.error}`);
    assert.equal((o.error as UpstreamError).code, 'UPSTREAM_PROTOCOL', wire);
    assert.equal(p.size, 0, 'connection destroyed');
  }
});

test('a header block over maxHeaderBytes is a protocol error', async () => {
  const srv = await rawServer((s) => s.write(`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(3000)}\r\n\r\n`));
  const p = pool(srv.url, { maxHeaderBytes: 1024 });
  const a = collect();
  p.dispatch(REQ, a.handler);
  const o = await a.done;
  assert.equal((o.error as UpstreamError).code, 'UPSTREAM_PROTOCOL');
});

test('headers timeout and body timeout', async () => {
  const silent = await rawServer(() => undefined);
  const p = pool(silent.url, { headersTimeoutMs: 80, bodyTimeoutMs: 80 });
  const a = collect();
  p.dispatch(REQ, a.handler);
  assert.equal(((await a.done).error as UpstreamError).code, 'UPSTREAM_HEADERS_TIMEOUT');
  const stalls = await rawServer((s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc'));
  const q = pool(stalls.url, { headersTimeoutMs: 80, bodyTimeoutMs: 80 });
  const b = collect();
  q.dispatch(REQ, b.handler);
  const ob = await b.done;
  assert.equal((ob.error as UpstreamError).code, 'UPSTREAM_BODY_TIMEOUT');
  assert.equal(ob.body.toString(), 'abc', 'bytes before the stall were delivered');
});

test('a refused connection reports the system error', async () => {
  const srv = await rawServer(() => undefined);
  const url = srv.url;
  await new Promise<void>((r) => servers.pop()!.close(() => r()));
  const p = pool(url);
  const a = collect();
  p.dispatch(REQ, a.handler);
  const o = await a.done;
  assert.equal((o.error as NodeJS.ErrnoException).code, 'ECONNREFUSED');
});

test('abort mid-body fails with UPSTREAM_ABORTED; the pool keeps working', async () => {
  const srv = await rawServer((s, _r, n) => {
    if (n === 1) s.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nfirst');
    else s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
  });
  const p = pool(srv.url);
  const a = collect({ onData: (_o, abort) => abort() });
  p.dispatch(REQ, a.handler);
  const o = await a.done;
  assert.equal((o.error as UpstreamError).code, 'UPSTREAM_ABORTED');
  const b = collect();
  p.dispatch(REQ, b.handler);
  assert.equal((await b.done).body.toString(), 'ok');
  assert.equal(srv.connections(), 2, 'the aborted connection was not reused');
});

test('backpressure: onData returning false pauses until resume()', async () => {
  const srv = await rawServer(async (s) => {
    s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\none\r\n');
    await new Promise((r) => setTimeout(r, 20));
    s.write('3\r\ntwo\r\n0\r\n\r\n');
  });
  const p = pool(srv.url);
  const a = collect({ pauseFirst: true });
  p.dispatch(REQ, a.handler);
  await new Promise((r) => setTimeout(r, 150));
  // paused after the first piece: nothing more was delivered
  const early = await Promise.race([a.done.then(() => 'settled'), new Promise((r) => setTimeout(() => r('pending'), 10))]);
  assert.equal(early, 'pending');
  a.resume();
  const o = await a.done;
  assert.equal(o.body.toString(), 'onetwo');
  assert.equal(o.completed, true);
});

test('a reused keep-alive socket the server closes before answering is replaced transparently (stale retry)', async () => {
  const perSocket = new WeakMap<Socket, number>();
  const srv = await rawServer((s) => {
    const k = (perSocket.get(s) ?? 0) + 1;
    perSocket.set(s, k);
    // the second request on a connection: the server closes it instead of answering (as a server
    // whose idle timeout fired just as the request arrived)
    if (k === 2) s.destroy();
    else s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
  });
  const p = pool(srv.url);
  const a = collect();
  p.dispatch(REQ, a.handler);
  assert.equal((await a.done).body.toString(), 'ok');
  const b = collect();
  p.dispatch(REQ, b.handler);
  const ob = await b.done;
  assert.equal(ob.error, undefined);
  assert.equal(ob.body.toString(), 'ok');
  assert.equal(srv.connections(), 2);
  assert.equal(srv.requests.length, 3, 'sent twice: on the stale socket, then on a new one');
  // a fresh connection that fails the same way is not retried
  const c = collect();
  const failing = await rawServer((s) => s.destroy());
  const r = pool(failing.url);
  r.dispatch(REQ, c.handler);
  assert.ok((await c.done).error, 'fresh connection failure reaches the handler');
  assert.equal(failing.requests.length, 1);
});

test('requests beyond `connections` wait in order and all complete', async () => {
  const srv = await rawServer((s, req) => {
    const id = /x-request-id: (\S+)/.exec(req)![1]!;
    setTimeout(() => s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${id.length}\r\n\r\n${id}`), 10);
  });
  const p = pool(srv.url, { connections: 1 });
  const outs = ['a', 'b', 'c'].map((id) => {
    const c = collect();
    p.dispatch({ ...REQ, headers: { ...REQ.headers, 'x-request-id': id } }, c.handler);
    return c.done;
  });
  const res = await Promise.all(outs);
  assert.deepEqual(
    res.map((o) => o.body.toString()),
    ['a', 'b', 'c'],
  );
  assert.equal(srv.connections(), 1);
});

test('bad request input is reported through onError, nothing is sent', async () => {
  const srv = await rawServer(() => undefined);
  const p = pool(srv.url);
  const a = collect();
  p.dispatch({ ...REQ, headers: { 'x-evil': 'a\r\nx-injected: 1' } }, a.handler);
  assert.equal(((await a.done).error as UpstreamError).code, 'UPSTREAM_BAD_REQUEST');
  const b = collect();
  p.dispatch({ ...REQ, path: '/a b' }, b.handler);
  assert.equal(((await b.done).error as UpstreamError).code, 'UPSTREAM_BAD_REQUEST');
  assert.equal(srv.connections(), 0);
  assert.throws(() => new UpstreamPool('ftp://x'), /http\(s\)/);
});

/** Self-signed test certificate for localhost / 127.0.0.1 (EC P-256, valid until 2126; test only). */
const TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg+M+fdWzo8olM5SAA
vWC6alVzaaQn+7ofXP9z91Z80r+hRANCAARMlCp44vZDxrw0Vfa6IhHcgHA0C2Nh
ZFzw9i8NRA/EwkqiOxXut5NGMGA0TK6M0czN/T+R7gKPsitGpOnJmx+0
-----END PRIVATE KEY-----`;
const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBmjCCAUGgAwIBAgIUOvUOxflOGp1TIh00seAcz2dpQiMwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyMTA4MjQzN1oYDzIxMjYxMDI4
MDgyNDM3WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAARMlCp44vZDxrw0Vfa6IhHcgHA0C2NhZFzw9i8NRA/EwkqiOxXut5NG
MGA0TK6M0czN/T+R7gKPsitGpOnJmx+0o28wbTAdBgNVHQ4EFgQU55l03zBzjtsi
6PsaPjzNvEfFn3QwHwYDVR0jBBgwFoAU55l03zBzjtsi6PsaPjzNvEfFn3QwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDRwAwRAIgSfYOBgADDV+djfvyDd7Oht1SDEPJL/YUTLa/FN4OnO8CIBYF
052DQBmHJTeWXvsLUZ4F+XH/eIkLPSPPZPIsaakW
-----END CERTIFICATE-----`;

test('https endpoints: TLS with the host verified against the given CA; an unknown CA is refused', async () => {
  const srv = createTlsServer({ key: TEST_KEY, cert: TEST_CERT }, (s) => {
    s.on('error', () => undefined);
    s.on('data', () => s.write('HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\ntls'));
  });
  servers.push(srv as unknown as Server);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  const p = pool(`https://localhost:${port}`, { tls: { ca: TEST_CERT } });
  const a = collect();
  p.dispatch(REQ, a.handler);
  const o = await a.done;
  assert.equal(o.error, undefined);
  assert.equal(o.body.toString(), 'tls');
  const q = pool(`https://localhost:${port}`);
  const b = collect();
  q.dispatch(REQ, b.handler);
  const ob = await b.done;
  assert.match(String((ob.error as NodeJS.ErrnoException)?.code), /SELF_SIGNED|UNABLE_TO_VERIFY|DEPTH_ZERO/);
});
