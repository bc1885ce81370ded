/**
 * Managed engine processes: a model declared with a command template
 * (`command: "vllm serve {model} --port {port}"`, `replicas: 3`) gets that many supervised processes.
 *
 * Each replica:
 * - gets a free loopback port (kept across restarts, so its URL and endpoint id stay stable),
 *   `{model}`, `{port}`, `{replica}` and `{host}` substituted in the template, run through `sh -c`
 *   in its own process group;
 * - when the template has `{kvEventsPort}` (and optionally `{kvEventsReplayPort}`), gets free
 *   loopback ports for its KV-event publisher (kept across restarts), e.g.
 *   `--kv-events-config '{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:{kvEventsPort}"}'`,
 *   and is registered with `tcp://<host>:<kvEventsPort>` as its KV-event source;
 * - writes stdout and stderr to `<stateDir>/logs/<model>-<replica>.log` (appended across restarts);
 * - is registered at spawn as a not-ready endpoint; the registry's health checker makes it ready
 *   when `/health` answers 2xx;
 * - when it exits (or is not healthy within `startupTimeoutMs`) it is marked not ready and
 *   restarted after an exponential backoff (1 s doubling to 30 s; reset after 60 s of uptime);
 * - on stop: SIGTERM to the process group, SIGKILL after `stopGraceMs`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { newEndpointState } from '../engines/state.ts';
import type { ModelConfig } from './config.ts';
import type { FleetRegistry, ReplicaSource } from './registry.ts';

/** Finds a free TCP port on `host` (listen on 0, read it, close). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, host, () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** The address to connect to a process listening on `host`: loopback for the wildcards `0.0.0.0` and `::`. */
export function connectHost(host: string): string {
  return host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
}

/** Fills `{model}`, `{port}`, `{replica}`, `{host}`, `{kvEventsPort}`, `{kvEventsReplayPort}` in a command template. */
export function renderCommand(template: string, vars: { model: string; port: number; replica: number; host: string; kvEventsPort?: number; kvEventsReplayPort?: number }): string {
  return template
    .replaceAll('{kvEventsPort}', String(vars.kvEventsPort ?? ''))
    .replaceAll('{kvEventsReplayPort}', String(vars.kvEventsReplayPort ?? ''))
    .replaceAll('{model}', vars.model)
    .replaceAll('{port}', String(vars.port))
    .replaceAll('{replica}', String(vars.replica))
    .replaceAll('{host}', vars.host);
}

export interface ManagedOptions {
  stateDir: string;
  host?: string;
  /** Backoff before a restart, ms: initial, doubling up to max. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** SIGTERM -> SIGKILL grace on stop, ms. */
  stopGraceMs?: number;
  /** Called with one-line lifecycle events (started, exited, restarting). */
  onEvent?: (msg: string, fields: Record<string, unknown>) => void;
}

const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '_');

class Replica {
  child: ChildProcess | null = null;
  port = 0;
  /** KV-event PUB / replay ports, when the template asks for them (0 = not used). */
  kvPort = 0;
  kvReplayPort = 0;
  stopped = false;
  restarts = 0;
  private backoffMs: number;
  private startedAt = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private startupTimer: NodeJS.Timeout | null = null;
  private exitWaiters: (() => void)[] = [];
  readonly id: string;

  constructor(
    private readonly src: ManagedSource,
    readonly index: number,
  ) {
    this.id = `${src.model}-${index}`;
    this.backoffMs = src.opts.backoffInitialMs ?? 1000;
  }

  get logFile(): string {
    return join(this.src.opts.stateDir, 'logs', `${safe(this.src.model)}-${this.index}.log`);
  }

  async start(): Promise<void> {
    const host = this.src.opts.host ?? '127.0.0.1';
    const cfg = this.src.cfg;
    if (!this.port) this.port = await freePort(host);
    if (!this.kvPort && cfg.command!.includes('{kvEventsPort}')) this.kvPort = await freePort(host);
    if (!this.kvReplayPort && cfg.command!.includes('{kvEventsReplayPort}')) this.kvReplayPort = await freePort(host);
    if (this.stopped) return;
    const cmd = renderCommand(cfg.command!, { model: cfg.name, port: this.port, replica: this.index, host, kvEventsPort: this.kvPort, kvEventsReplayPort: this.kvReplayPort });
    mkdirSync(join(this.src.opts.stateDir, 'logs'), { recursive: true });
    const fd = openSync(this.logFile, 'a');
    const child = spawn('sh', ['-c', cmd], {
      cwd: cfg.cwd,
      env: { ...process.env, ...cfg.env },
      stdio: ['ignore', fd, fd],
      detached: true,
    });
    closeSync(fd);
    this.child = child;
    this.startedAt = Date.now();
    const reg = this.src.registry;
    if (!reg.get(this.id)) {
      const zhost = connectHost(host);
      const kvEvents = this.kvPort ? { endpoint: `tcp://${zhost}:${this.kvPort}`, ...(this.kvReplayPort ? { replay: `tcp://${zhost}:${this.kvReplayPort}` } : {}) } : undefined;
      reg.addEndpoint(newEndpointState({ id: this.id, url: `http://${host}:${this.port}`, model: cfg.name, dialect: cfg.dialect, role: cfg.role, labels: { ...cfg.labels, managed: 'true' } }), { kvEvents });
    }
    this.src.opts.onEvent?.('replica started', { id: this.id, pid: child.pid, port: this.port, cmd, log: this.logFile });
    // Startup deadline: not ready in time -> kill (the exit handler restarts it).
    this.startupTimer = setTimeout(() => {
      if (this.child === child && !reg.get(this.id)?.ready) {
        this.src.opts.onEvent?.('replica not healthy in time; killing', { id: this.id, timeoutMs: cfg.startupTimeoutMs });
        this.signal('SIGKILL');
      }
    }, cfg.startupTimeoutMs);
    this.startupTimer.unref();
    child.on('exit', (code, sig) => this.onExit(child, code, sig));
  }

  private onExit(child: ChildProcess, code: number | null, sig: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = null;
    if (this.startupTimer) clearTimeout(this.startupTimer);
    this.src.registry.setReady(this.id, false);
    const waiters = this.exitWaiters;
    this.exitWaiters = [];
    waiters.forEach((w) => w());
    if (this.stopped) return;
    if (Date.now() - this.startedAt > 60_000) this.backoffMs = this.src.opts.backoffInitialMs ?? 1000;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.src.opts.backoffMaxMs ?? 30_000);
    this.restarts++;
    this.src.opts.onEvent?.('replica exited; restarting', { id: this.id, code, signal: sig, restartInMs: delay, restarts: this.restarts });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (!this.stopped) this.start().catch((e) => this.src.opts.onEvent?.('replica restart failed', { id: this.id, error: String(e) }));
    }, delay);
    this.restartTimer.unref();
  }

  private signal(sig: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (!pid) return;
    try {
      process.kill(-pid, sig); // the whole process group (sh and the engine)
    } catch {
      try {
        this.child?.kill(sig);
      } catch {
        /* already gone */
      }
    }
  }

  /** SIGTERM, then SIGKILL after the grace; resolves when the process has exited. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.startupTimer) clearTimeout(this.startupTimer);
    if (!this.child) return;
    const exited = new Promise<void>((r) => this.exitWaiters.push(r));
    this.signal('SIGTERM');
    const kill = setTimeout(() => this.signal('SIGKILL'), this.src.opts.stopGraceMs ?? 10_000);
    await exited;
    clearTimeout(kill);
  }
}

/** Supervises the processes of one command-template model. */
export class ManagedSource implements ReplicaSource {
  readonly model: string;
  private readonly replicas: Replica[] = [];
  private target: number;

  constructor(
    readonly registry: FleetRegistry,
    readonly cfg: ModelConfig,
    readonly opts: ManagedOptions,
  ) {
    if (!cfg.command) throw new Error(`model "${cfg.name}" has no command template`);
    this.model = cfg.name;
    this.target = cfg.replicas ?? 1;
  }

  desired(): number {
    return this.target;
  }

  /** Current replicas: id, port, pid, restarts, log file. */
  status(): { id: string; port: number; pid: number | undefined; restarts: number; log: string }[] {
    return this.replicas.map((r) => ({ id: r.id, port: r.port, pid: r.child?.pid, restarts: r.restarts, log: r.logFile }));
  }

  async start(): Promise<void> {
    await this.scale(this.target);
  }

  async scale(n: number): Promise<void> {
    this.target = n;
    const starts: Promise<void>[] = [];
    while (this.replicas.length < n) {
      const used = new Set(this.replicas.map((r) => r.index));
      let idx = 0;
      while (used.has(idx)) idx++;
      const r = new Replica(this, idx);
      this.replicas.push(r);
      starts.push(r.start());
    }
    const stops: Promise<void>[] = [];
    while (this.replicas.length > n) {
      const r = this.replicas.pop()!;
      this.registry.removeEndpoint(r.id);
      stops.push(r.stop());
    }
    await Promise.all([...starts, ...stops]);
  }

  async stop(): Promise<void> {
    const all = this.replicas.splice(0);
    await Promise.all(all.map((r) => r.stop()));
    for (const r of all) this.registry.removeEndpoint(r.id);
  }
}
