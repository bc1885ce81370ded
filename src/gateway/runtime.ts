/**
 * Assembles a running fleet from a validated `FleetConfig`: the registry, the endpoint sources
 * (static URLs, managed processes, in-process simulators), the health checker, the metrics scraper,
 * the limits gate and the gateway. Used by `inferplane up`, `inferplane gateway` and tests.
 *
 * `stop()` drains the gateway (grace from the config), then stops the scraper, health checks and
 * every replica source; it is idempotent.
 */
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { newEndpointState } from '../engines/state.ts';
import type { FleetConfig } from '../fleet/config.ts';
import { HealthChecker } from '../fleet/health.ts';
import { ManagedSource, connectHost } from '../fleet/managed.ts';
import { FleetRegistry } from '../fleet/registry.ts';
import { SimSource, loadStartSim, type StartSim } from '../fleet/sim-source.ts';
import { Scraper } from '../metrics/scraper.ts';
import { createLimitsGate } from './limits-store.ts';
import { startControllers, type RunningControllers } from './controllers.ts';
import { createLogger } from './log.ts';
import { Gateway } from './server.ts';

export interface RunFleetOptions {
  /** Overrides `gateway.port` (0 = random). */
  port?: number;
  host?: string;
  /** Directory the fleet file's relative paths are resolved from (stateDir). */
  baseDir?: string;
  /** Refuse managed and simulated models (`inferplane gateway`). */
  staticOnly?: boolean;
  logger?: Logger;
  /** Simulator factory override (tests). */
  startSim?: StartSim;
}

export interface RunningFleet {
  gateway: Gateway;
  fleet: FleetRegistry;
  url: string;
  port: number;
  scraper: Scraper;
  health: HealthChecker;
  /** The autoscaler and LoRA adapter controllers (admin routes mounted on the gateway). */
  controllers: RunningControllers;
  /** Drain (graceMs defaults to the config) and stop everything. Returns requests aborted at the deadline. */
  stop(graceMs?: number): Promise<number>;
}

/**
 * Starts everything declared in `cfg`; resolves once the gateway listens and every source has been
 * started (static endpoints health-checked once; simulated ones up; managed ones spawned, not
 * necessarily ready). On a startup failure, whatever was started is stopped before rethrowing.
 */
export async function runFleet(cfg: FleetConfig, opts: RunFleetOptions = {}): Promise<RunningFleet> {
  const log = opts.logger ?? createLogger(cfg.gateway.logLevel);
  if (opts.staticOnly) {
    const bad = cfg.models.filter((m) => !m.endpoints);
    if (bad.length) throw new Error(`\`inferplane gateway\` serves static endpoints only; use \`inferplane up\` for ${bad.map((m) => m.name).join(', ')} (command or simulator models)`);
  }
  const fleet = new FleetRegistry();
  const g = cfg.gateway;
  const health = new HealthChecker(fleet, { intervalMs: g.healthIntervalMs, timeoutMs: Math.min(g.scrapeTimeoutMs * 2, 5_000), pathFor: (m) => fleet.modelConfig(m)?.healthPath ?? '/health' });
  const scraper = new Scraper(fleet, { intervalMs: g.scrapeIntervalMs, timeoutMs: g.scrapeTimeoutMs });
  const limits = await createLimitsGate(cfg.limits);
  const gateway = new Gateway({ fleet, settings: g, apiKeys: cfg.apiKeys, limits, logger: log.child({ component: 'gateway' }) });
  const stateDir = resolve(opts.baseDir ?? process.cwd(), cfg.stateDir);
  let stopped = false;
  let controllers: RunningControllers | undefined;
  const stop = async (graceMs?: number): Promise<number> => {
    if (stopped) return 0;
    stopped = true;
    controllers?.stop();
    const aborted = await gateway.drain(graceMs);
    await scraper.stop();
    await health.stop();
    await fleet.stopSources();
    log.flush?.();
    return aborted;
  };
  try {
    let startSim: StartSim | undefined = opts.startSim;
    for (const m of cfg.models) {
      fleet.addModel(m);
      if (m.endpoints) {
        m.endpoints.forEach((e, i) => {
          const spec = typeof e === 'string' ? { url: e } : e;
          const kvEvents = typeof e === 'string' ? undefined : e.kvEvents;
          fleet.addEndpoint(newEndpointState({ id: spec.id ?? `${m.name}-${i}`, url: spec.url, model: m.name, dialect: m.dialect, role: spec.role ?? m.role, labels: { ...m.labels, ...spec.labels } }), { kvEvents });
        });
      } else if (m.command) {
        const src = new ManagedSource(fleet, m, { stateDir, onEvent: (msg, f) => log.info({ component: 'fleet', model: m.name, ...f }, msg) });
        fleet.attachSource(src);
        await src.start();
      } else if (m.simulator) {
        startSim ??= await loadStartSim();
        const src = new SimSource(fleet, m, startSim, opts.host ?? g.host);
        fleet.attachSource(src);
        await src.start();
      }
    }
    await health.checkAll();
    await scraper.scrapeAll();
    health.start();
    scraper.start();
    controllers = startControllers(cfg, fleet, gateway, stateDir, (msg, f) => log.info({ component: 'control', ...f }, msg));
    const port = await gateway.start(opts.port ?? g.port, opts.host ?? g.host);
    const host = opts.host ?? g.host;
    return { gateway, fleet, url: `http://${connectHost(host)}:${port}`, port, scraper, health, controllers, stop };
  } catch (e) {
    await stop(0).catch(() => undefined);
    throw e;
  }
}
