/**
 * Active health checks: `GET <url><healthPath>` (vLLM: `/health`, 200 with an empty body, 503 when
 * the engine is dead — `../shared/reference/vllm-api.md` §3.1) on every registered endpoint, every
 * `intervalMs`. A 2xx marks the endpoint ready; anything else (status, timeout, refused connection)
 * marks it not ready, which takes it out of routing until a later check passes.
 *
 * The gateway also marks an endpoint not ready at once when a proxied request cannot connect
 * (passive check); the next passing active check brings it back.
 */
import { Agent, request } from 'undici';
import type { FleetRegistry } from './registry.ts';

export interface HealthCheckerOptions {
  /** Period between rounds, ms. */
  intervalMs: number;
  /** Per-check timeout, ms. */
  timeoutMs: number;
  /** Path per model (default `/health`). */
  pathFor?: (model: string) => string;
  /** Endpoint ids the checker leaves alone (managed replicas run their own startup checks). */
  skip?: (id: string) => boolean;
}

/** Runs health checks over the registry's endpoints on a timer. */
export class HealthChecker {
  private timer: NodeJS.Timeout | null = null;
  private readonly agent = new Agent({ keepAliveTimeout: 10_000, connections: 4 });
  private running = false;

  constructor(
    private readonly registry: FleetRegistry,
    private readonly opts: HealthCheckerOptions,
  ) {}

  /** One check of one URL; true on 2xx. Never throws. */
  async probe(url: string, path = '/health'): Promise<boolean> {
    try {
      const r = await request(url + path, {
        method: 'GET',
        dispatcher: this.agent,
        headersTimeout: this.opts.timeoutMs,
        bodyTimeout: this.opts.timeoutMs,
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
      await r.body.dump();
      return r.statusCode >= 200 && r.statusCode < 300;
    } catch {
      return false;
    }
  }

  /** Checks every endpoint once and applies the results. */
  async checkAll(): Promise<void> {
    const eps = this.registry.list().filter((e) => !this.opts.skip?.(e.id));
    await Promise.all(
      eps.map(async (e) => {
        const ok = await this.probe(e.url, this.opts.pathFor?.(e.model) ?? '/health');
        if (this.registry.get(e.id) === e) this.registry.setReady(e.id, ok);
      }),
    );
  }

  /** Starts the periodic rounds (the first one after `intervalMs`). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = true;
      this.checkAll().finally(() => (this.running = false));
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.agent.close().catch(() => undefined);
  }
}
