/**
 * Simulated replicas: a model declared with `simulator: {gpu: H100, replicas: 3, ...}` gets that many
 * in-process simulated vLLM engines (`startSimServer` of `src/sim/server`), each on its own
 * loopback port, registered as ready endpoints (their `/health` is checked like any other).
 * Extra keys of the `simulator` block are passed to `startSimServer` as options (`SimServerOptions`:
 * `maxNumSeqs`, `enableLora`, `maxLoras`, `seed`, ...). `simulator.model` names the catalog model to
 * simulate when the fleet's model name is not a catalog id; the fleet name is then served
 * (`servedModelName`).
 */
import { newEndpointState } from '../engines/state.ts';
import type { ModelConfig } from './config.ts';
import type { FleetRegistry, ReplicaSource } from './registry.ts';

/** The part of the simulator server's handle the fleet uses. */
export interface SimHandle {
  url: string;
  port: number;
  close(): Promise<void>;
}
export type StartSim = (options: Record<string, unknown>) => Promise<SimHandle>;

/** Loads `startSimServer` from `src/sim/server` (lazily, so `inferplane gateway` never loads the simulator). */
export async function loadStartSim(): Promise<StartSim> {
  const mod = await import('../sim/server/server.ts');
  return (o) => mod.startSimServer(o as unknown as Parameters<typeof mod.startSimServer>[0]);
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
    const { replicas: _r, ...simOpts } = this.cfg.simulator!;
    const starts: Promise<void>[] = [];
    while (this.replicas.length + starts.length < n) {
      const id = `${this.model}-sim-${this.seq++}`;
      starts.push(
        this.startSim({ ...simOpts, model: (simOpts as { model?: string }).model ?? this.model, servedModelName: [this.model], port: 0, host: this.host }).then((handle) => {
          this.replicas.push({ id, handle });
          this.registry.addEndpoint(
            newEndpointState({ id, url: handle.url.replace(/\/+$/, ''), model: this.model, dialect: this.cfg.dialect, role: this.cfg.role, labels: { ...this.cfg.labels, simulator: String(simOpts.gpu) }, ready: true }),
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
