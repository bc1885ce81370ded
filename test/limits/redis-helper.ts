/** Starts a throw-away `redis-server` on a free loopback port for tests (no persistence). */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A running redis-server; `stop()` kills it and waits for exit. */
export interface TestRedis {
  port: number;
  url: string;
  stop(): Promise<void>;
}

/** Starts redis-server (`--port N --save '' --appendonly no`), resolving when it accepts connections. */
export async function startRedis(): Promise<TestRedis> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const proc: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const ready = await new Promise<boolean>((resolve, reject) => {
      let out = '';
      const onData = (b: Buffer) => {
        out += b.toString();
        if (out.includes('Ready to accept connections')) resolve(true);
      };
      proc.stdout!.on('data', onData);
      proc.once('error', reject);
      proc.once('exit', () => resolve(false)); // e.g. port taken in between: retry
    });
    if (!ready) continue;
    proc.stdout!.resume();
    proc.stderr!.resume();
    return {
      port,
      url: `redis://127.0.0.1:${port}`,
      stop: () =>
        new Promise<void>((resolve) => {
          if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
          proc.once('exit', () => resolve());
          proc.kill('SIGKILL');
        }),
    };
  }
  throw new Error('could not start redis-server');
}
