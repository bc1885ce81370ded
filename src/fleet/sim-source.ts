/**
 * Simulated replicas: a model declared with `simulator: {gpu: H100, replicas: 3, ...}` gets that many
 * in-process simulated vLLM engines (`startSimServer` of `src/sim/server`), each on its own
 * loopback port, registered as ready endpoints (their `/health` is checked like any other).
 * Extra keys of the `simulator` block are passed to `startSimServer` as options (`SimServerOptions`:
 * `maxNumSeqs`, `enableLora`, `maxLoras`, `seed`, ...). `simulator.model` names the catalog model to
 * simulate when the fleet's model name is not a catalog id; the fleet name is then served
 * (`servedModelName`).
 *
 * `simulator.kvEvents: true`: each replica publishes its KV events on `tcp://<host>:*` (a free port
 * the publisher binds) with a replay ROUTER likewise, and is registered with those bound addresses
 * (`FleetRegistry.kvEventsOf`) so the gateway subscribes. A user-given `kvEventsEndpoint` is passed
 * through as is, and whatever the simulator reports as bound is registered.
 */
import { newEndpointState } from '../engines/state.ts';
import type { ModelConfig } from './config.ts';
import { connectHost } from './managed.ts';
import type { FleetRegistry, ReplicaSource } from './registry.ts';

/** The part of the simulator server's handle the fleet uses. */
export interface SimHandle {
  url: string;
  port: number;
  /** The bound KV-event PUB endpoint, when KV events are enabled. */
  kvEventsEndpoint?: string;
  /** The bound replay ROUTER endpoint, when enabled. */
  kvEventsReplayEndpoint?: string;
  close(): Promise<void>;
}
export type StartSim = (options: Record<string, unknown>) => Promise<SimHandle>;

/** Loads `startSimServer` from `src/sim/server` (lazily, so `inferplane gateway` never loads the simulator). */
export async function loadStartSim(): Promise<StartSim> {
  const mod = await import('../sim/server/server.ts');
  return (o) => mod.startSimServer(o as unknown as Parameters<typeof mod.startSimServer>[0]);
}

/** A bound address as a connectable one (`tcp://0.0.0.0:P` or `tcp://*:P` -> `tcp://<host>:P`). */
function connectable(bound: string, host: string): string {
  return bound.replace(/^tcp:\/\/(\*|0\.0\.0\.0|\[::\]):/, `tcp://${host}:`);
}

export class SimSource implements ReplicaSource {
  readonly model: string;
  private readonly replicas: { id: string; handle: SimHandle }[] = [];
  private target: number;
  private seq = 0;

  constructor(
    private readonly registry: FleetRegistry,
    private readonly cfg: ModelConfig,
    private readonly startSim: StartSim,
    private readonly host = '127.0.0.1',
  ) {
    if (!cfg.simulator) throw new Error(`model "${cfg.name}" has no simulator block`);
    this.model = cfg.name;
    this.target = cfg.simulator.replicas;
  }

  desired(): number {
    return this.target;
  }

  async start(): Promise<void> {
    await this.scale(this.target);
  }

  async scale(n: number): Promise<void> {
    this.target = n;
    const { replicas: _r, kvEvents, ...simOpts } = this.cfg.simulator!;
    const zhost = connectHost(this.host);
    const kvOpts = kvEvents ? { kvEventsEndpoint: `tcp://${zhost}:*`, kvEventsReplayEndpoint: `tcp://${zhost}:*` } : {};
    const starts: Promise<void>[] = [];
    while (this.replicas.length + starts.length < n) {
      const id = `${this.model}-sim-${this.seq++}`;
      starts.push(
        this.startSim({ ...simOpts, ...kvOpts, model: (simOpts as { model?: string }).model ?? this.model, servedModelName: [this.model], port: 0, host: this.host }).then((handle) => {
          this.replicas.push({ id, handle });
          this.registry.addEndpoint(
            newEndpointState({ id, url: handle.url.replace(/\/+$/, ''), model: this.model, dialect: this.cfg.dialect, role: this.cfg.role, labels: { ...this.cfg.labels, simulator: String(simOpts.gpu) }, ready: true }),
            handle.kvEventsEndpoint ? { kvEvents: { endpoint: connectable(handle.kvEventsEndpoint, zhost), ...(handle.kvEventsReplayEndpoint ? { replay: connectable(handle.kvEventsReplayEndpoint, zhost) } : {}) } } : undefined,
          );
        }),
      );
    }
    await Promise.all(starts);
    const stops: Promise<void>[] = [];
    while (this.replicas.length > n) {
      const r = this.replicas.pop()!;
      this.registry.removeEndpoint(r.id);
      stops.push(r.handle.close());
    }
    await Promise.all(stops);
  }

  async stop(): Promise<void> {
    const all = this.replicas.splice(0);
    for (const r of all) this.registry.removeEndpoint(r.id);
    await Promise.all(all.map((r) => r.handle.close().catch(() => undefined)));
  }
}
