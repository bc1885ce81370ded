/**
 * A minimal fake vLLM engine for gateway tests: exact control over /metrics, /health, status codes,
 * delays and the streamed bytes, which a realistic simulator does not give.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface FakeEngineState {
  running?: number;
  waiting?: number;
  kvCacheUsage?: number;
  loras?: string[];
  maxLoras?: number;
}

export interface FakeEngine {
  id: string;
  url: string;
  port: number;
  /** Requests received (path, parsed body, headers). */
  received: { path: string; body: Record<string, unknown>; headers: IncomingMessage['headers'] }[];
  state: FakeEngineState;
  healthy: boolean;
  /** Answer the next N inference requests with this status (then back to normal). */
  failNext: { status: number; count: number };
  /** Delay before response headers, ms. */
  headerDelayMs: number;
  /** Delay between stream chunks, ms. */
  chunkDelayMs: number;
  /** Number of content chunks in a stream. */
  chunks: number;
  /** Count of upstream requests aborted by the client (the gateway) before completion. */
  aborted: number;
  close(): Promise<void>;
}

/** The exact SSE bytes the fake engine sends for a stream (so tests can compare byte for byte). */
export function fakeStreamEvents(id: string, n: number, includeUsage: boolean): string[] {
  const ev: string[] = [];
  ev.push(`data: {"id":"chatcmpl-${id}","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n`);
  for (let i = 0; i < n; i++) ev.push(`data: {"id":"chatcmpl-${id}","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tok${i} é "},"finish_reason":null}]}\n\n`);
  ev.push(`data: {"id":"chatcmpl-${id}","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n`);
  if (includeUsage) ev.push(`data: {"id":"chatcmpl-${id}","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":7,"total_tokens":${7 + n},"completion_tokens":${n}}}\n\n`);
  ev.push('data: [DONE]\n\n');
  return ev;
}

export async function startFakeEngine(id: string, init: Partial<FakeEngine> = {}): Promise<FakeEngine> {
  const sockets = new Set<Socket>();
  const eng = {
    id,
    url: '',
    port: 0,
    received: [],
    state: {},
    healthy: true,
    failNext: { status: 500, count: 0 },
    headerDelayMs: 0,
    chunkDelayMs: 0,
    chunks: 3,
    aborted: 0,
    ...init,
  } as FakeEngine;
  const metrics = () => {
    const s = eng.state;
    const l = `{model_name="m",engine="0"}`;
    let t = '';
    if (s.running !== undefined) t += `# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running${l} ${s.running}\n`;
    if (s.waiting !== undefined) t += `# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting${l} ${s.waiting}\n`;
    if (s.kvCacheUsage !== undefined) t += `# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc${l} ${s.kvCacheUsage}\n`;
    if (s.loras !== undefined)
      t += `# TYPE vllm:lora_requests_info gauge\nvllm:lora_requests_info{max_lora="${s.maxLoras ?? 4}",running_lora_adapters="${s.loras.join(',')}",waiting_lora_adapters=""} 1.7e9\n`;
    return t;
  };
  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/health') {
      res.writeHead(eng.healthy ? 200 : 503);
      return res.end();
    }
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      return res.end(metrics());
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    } catch {
      /* keep {} */
    }
    eng.received.push({ path, body, headers: req.headers });
    let finished = false;
    res.on('close', () => {
      if (!finished) eng.aborted++;
    });
    if (eng.headerDelayMs) await new Promise((r) => setTimeout(r, eng.headerDelayMs));
    if (eng.failNext.count > 0) {
      eng.failNext.count--;
      const b = JSON.stringify({ error: { message: `engine ${id} failed`, type: 'InternalServerError', param: null, code: eng.failNext.status } });
      res.writeHead(eng.failNext.status, { 'content-type': 'application/json', 'x-engine-id': id });
      finished = true;
      return res.end(b);
    }
    if (path === '/v1/bad') {
      res.writeHead(400, { 'content-type': 'application/json', 'x-engine-id': id });
      finished = true;
      return res.end(JSON.stringify({ error: { message: 'bad thing', type: 'BadRequestError', param: 'temperature', code: 400 } }));
    }
    if (body.stream === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-engine-id': id });
      const so = body.stream_options as { include_usage?: boolean } | undefined;
      for (const ev of fakeStreamEvents(id, eng.chunks, so?.include_usage === true)) {
        if (res.destroyed) return;
        res.write(ev);
        if (eng.chunkDelayMs) await new Promise((r) => setTimeout(r, eng.chunkDelayMs));
      }
      finished = true;
      return res.end();
    }
    const out =
      path === '/v1/embeddings'
        ? { object: 'list', data: [{ object: 'embedding', index: 0, embedding: [0.1, 0.2] }], model: body.model, usage: { prompt_tokens: 3, total_tokens: 3 } }
        : {
            id: `cmpl-${id}`,
            object: path === '/v1/completions' ? 'text_completion' : 'chat.completion',
            created: 1,
            model: body.model,
            choices: [{ index: 0, message: { role: 'assistant', content: `hello from ${id}` }, text: `hello from ${id}`, finish_reason: 'stop' }],
            usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 },
          };
    const b = JSON.stringify(out);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b), 'x-engine-id': id });
    finished = true;
    res.end(b);
  };
  const server: Server = createServer((req, res) => {
    handler(req, res).catch(() => res.destroy());
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(init.port ?? 0, '127.0.0.1', r));
  eng.port = (server.address() as AddressInfo).port;
  eng.url = `http://127.0.0.1:${eng.port}`;
  eng.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return eng;
}
