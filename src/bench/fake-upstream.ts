/**
 * A tiny OpenAI-compatible fake engine on `node:http`, for the client's tests and its ceiling
 * benchmark. It answers `/v1/chat/completions` and `/v1/completions` with `max_tokens` tokens
 * ("tok" each), streaming (SSE, usage in the last chunk) or not, at timings set per request by
 * headers:
 * - `x-fake-ttft-ms`: delay before the first token (default 0);
 * - `x-fake-itl-ms`: delay between tokens (default 0: all tokens in one write);
 * - `x-fake-status`: answer with this HTTP status and an OpenAI error body;
 * - `x-fake-hang: 1`: never answer (for timeouts); `x-fake-die-after`: destroy the socket after
 *   this many tokens (a broken stream).
 * Every response carries `target-pod: <name>`. Run as a script it listens on
 * `127.0.0.1:<argv[2] or 0>` and prints `PORT <n>` (the ceiling benchmark's child process).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { pathToFileURL } from 'node:url';

/** A started fake upstream. */
export interface FakeUpstream {
  server: Server;
  port: number;
  url: string;
  /** Parsed bodies of every request received, in arrival order. */
  bodies: Array<Record<string, unknown>>;
  /** Highest number of requests open at once. */
  maxOpen: number;
  close(): Promise<void>;
}

function num(h: string | string[] | undefined, def: number): number {
  const v = Array.isArray(h) ? h[0] : h;
  return v === undefined ? def : Number(v);
}

/** Starts the fake on 127.0.0.1 (port 0 = a free port). `record` keeps request bodies (tests). */
export async function startFakeUpstream(opts: { name?: string; port?: number; record?: boolean } = {}): Promise<FakeUpstream> {
  const name = opts.name ?? 'fake-0';
  const state = { bodies: [] as Array<Record<string, unknown>>, open: 0, maxOpen: 0 };
  const handle = (req: IncomingMessage, res: ServerResponse, raw: string): void => {
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":{"message":"bad json"}}');
      return;
    }
    if (opts.record) state.bodies.push(body);
    if (req.headers['x-fake-hang'] === '1') return;
    const status = num(req.headers['x-fake-status'], 200);
    if (status !== 200) {
      res.writeHead(status, { 'content-type': 'application/json', 'target-pod': name });
      res.end(JSON.stringify({ error: { message: `fake status ${status}`, type: 'FakeError', code: status } }));
      return;
    }
    const chat = (req.url ?? '').includes('chat');
    const n = Math.max(1, Number(body.max_tokens ?? 16));
    const ttft = num(req.headers['x-fake-ttft-ms'], 0);
    const itl = num(req.headers['x-fake-itl-ms'], 0);
    const dieAfter = num(req.headers['x-fake-die-after'], Infinity);
    const usage = { prompt_tokens: 7, completion_tokens: n, total_tokens: 7 + n };
    if (body.stream !== true) {
      setTimeout(() => {
        const choice = chat ? { index: 0, message: { role: 'assistant', content: 'tok'.repeat(n) }, finish_reason: 'length' } : { index: 0, text: 'tok'.repeat(n), finish_reason: 'length' };
        res.writeHead(200, { 'content-type': 'application/json', 'target-pod': name });
        res.end(JSON.stringify({ id: 'x', object: chat ? 'chat.completion' : 'text_completion', model: body.model, choices: [choice], usage }));
      }, ttft + itl * (n - 1));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'target-pod': name });
    const chunk = (i: number): string => {
      const c = chat ? { index: 0, delta: i === 0 ? { role: 'assistant', content: 'tok' } : { content: 'tok' }, finish_reason: i === n - 1 ? 'length' : null } : { index: 0, text: 'tok', finish_reason: i === n - 1 ? 'length' : null };
      return `data: ${JSON.stringify({ id: 'x', object: chat ? 'chat.completion.chunk' : 'text_completion', choices: [c] })}\n\n`;
    };
    const tail = `data: ${JSON.stringify({ id: 'x', choices: [], usage })}\n\ndata: [DONE]\n\n`;
    if (itl === 0 && dieAfter === Infinity) {
      const all = (): void => {
        let s = '';
        for (let i = 0; i < n; i++) s += chunk(i);
        res.end(s + tail);
      };
      if (ttft > 0) setTimeout(all, ttft);
      else all();
      return;
    }
    let i = 0;
    const step = (): void => {
      if (i >= dieAfter) {
        res.socket?.destroy();
        return;
      }
      res.write(chunk(i++));
      if (i < n) setTimeout(step, itl);
      else res.end(tail);
    };
    setTimeout(step, ttft);
  };
  const server = createServer((req, res) => {
    state.open++;
    state.maxOpen = Math.max(state.maxOpen, state.open);
    res.on('close', () => state.open--);
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => handle(req, res, Buffer.concat(parts).toString('utf8')));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((res) => server.listen(opts.port ?? 0, '127.0.0.1', res));
  const port = (server.address() as { port: number }).port;
  const up: FakeUpstream = {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    bodies: state.bodies,
    get maxOpen() {
      return state.maxOpen;
    },
    close: () =>
      new Promise<void>((res) => {
        server.closeAllConnections();
        server.close(() => res());
      }),
  };
  return up;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const up = await startFakeUpstream({ port: Number(process.argv[2] ?? 0) });
  process.stdout.write(`PORT ${up.port}\n`);
  process.on('SIGTERM', () => void up.close().then(() => process.exit(0)));
}
