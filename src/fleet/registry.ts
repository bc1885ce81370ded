/**
 * The fleet registry: the models the gateway serves and the endpoints (engine replicas) of each, as
 * canonical `EndpointState` objects (`src/engines/state.ts`).
 *
 * The registry owns the endpoint state objects; the scraper and the health checker update them in
 * place, the gateway updates the in-flight counters. Routing reads `readyEndpoints(model)`, a cached
 * array rebuilt only when membership or readiness changes (the hot path allocates nothing).
 *
 * Events (EventEmitter): `add` (EndpointState), `remove` (EndpointState), `ready` (EndpointState),
 * `unready` (EndpointState). Replica sources (managed processes, simulators) register per model so
 * that controllers (the autoscaler) can call `scaleModel(model, replicas)`.
 */
import { EventEmitter } from 'node:events';
import type { EndpointState } from '../engines/state.ts';
import type { ModelConfig } from './config.ts';

/** Something that can run N replicas of one model (managed processes, in-process simulators). */
export interface ReplicaSource {
  /** Model name the source serves. */
  readonly model: string;
  /** Desired replica count. */
  desired(): number;
  /** Starts or stops replicas to reach `replicas`; resolves when the change has been applied (not necessarily ready). */
  scale(replicas: number): Promise<void>;
  /** Stops every replica (SIGTERM then SIGKILL for processes). */
  stop(): Promise<void>;
}

/**
 * Where an endpoint publishes its KV-cache events (vLLM `--kv-events-config` ZMQ PUB, the
 * simulator's `--kv-events-endpoint`); the gateway subscribes to it for KV-event-fed strategies.
 */
export interface KvEventsAddress {
  /** ZMQ endpoint to connect to, e.g. `tcp://10.0.0.5:5557`. */
  endpoint: string;
  /** The publisher's replay ROUTER (vLLM `replay_endpoint`), if any. */
  replay?: string;
  /** Topic prefix (default "", all). */
  topic?: string;
}

/** Extra facts about an endpoint given at registration (not part of `EndpointState`). */
export interface EndpointExtras {
  /** Its KV-event publisher, when it has one. */
  kvEvents?: KvEventsAddress;
}

/** Result of resolving a request's `model` field. */
export interface ResolvedModel {
  /** Base model (a fleet model name). */
  model: string;
  /** The LoRA adapter requested, when `model` named an adapter loaded on an endpoint of `model`. */
  adapter?: string;
}

export class FleetRegistry extends EventEmitter {
  private readonly endpoints = new Map<string, EndpointState>();
  private readonly modelCfgs = new Map<string, ModelConfig>();
  private readonly readyCache = new Map<string, EndpointState[]>();
  private readonly sources = new Map<string, ReplicaSource>();
  private readonly kvEvents = new Map<string, KvEventsAddress>();
  private static readonly EMPTY: EndpointState[] = [];

  /** Declares a model (from the fleet file). */
  addModel(cfg: ModelConfig): void {
    this.modelCfgs.set(cfg.name, cfg);
  }

  /** The declared model config, or undefined. */
  modelConfig(name: string): ModelConfig | undefined {
    return this.modelCfgs.get(name);
  }

  /** Declared model names, in declaration order. */
  modelNames(): string[] {
    return [...this.modelCfgs.keys()];
  }

  /**
   * Resolves a request's `model`: a fleet model name, else a LoRA adapter loaded on some endpoint
   * (from `loraAdapters`, as scraped). Undefined when neither.
   */
  resolveModel(name: string): ResolvedModel | undefined {
    if (this.modelCfgs.has(name)) return { model: name };
    for (const ep of this.endpoints.values()) {
      if (ep.loraAdapters?.includes(name)) return { model: ep.model, adapter: name };
    }
    return undefined;
  }

  /** Names of LoRA adapters loaded on any endpoint, by base model. */
  adapters(): Map<string, string> {
    const out = new Map<string, string>();
    for (const ep of this.endpoints.values()) for (const a of ep.loraAdapters ?? []) if (!out.has(a)) out.set(a, ep.model);
    return out;
  }

  /**
   * Adds an endpoint, with its `extras` (KV-event publisher) recorded before `add` is emitted.
   * @throws Error when the id is taken or the model is not declared.
   */
  addEndpoint(ep: EndpointState, extras?: EndpointExtras): void {
    if (this.endpoints.has(ep.id)) throw new Error(`endpoint id "${ep.id}" is already registered`);
    if (!this.modelCfgs.has(ep.model)) throw new Error(`endpoint "${ep.id}" serves undeclared model "${ep.model}"`);
    this.endpoints.set(ep.id, ep);
    if (extras?.kvEvents) this.kvEvents.set(ep.id, extras.kvEvents);
    this.readyCache.delete(ep.model);
    this.emit('add', ep);
    if (ep.ready) this.emit('ready', ep);
  }

  /** Removes an endpoint (no-op when unknown). Emits `remove`. */
  removeEndpoint(id: string): void {
    const ep = this.endpoints.get(id);
    if (!ep) return;
    this.endpoints.delete(id);
    this.readyCache.delete(ep.model);
    this.emit('remove', ep);
    this.kvEvents.delete(id);
  }

  /** The KV-event publisher endpoint `id` was registered with, if any. */
  kvEventsOf(id: string): KvEventsAddress | undefined {
    return this.kvEvents.get(id);
  }

  /** Sets readiness; emits `ready`/`unready` on change only. */
  setReady(id: string, ready: boolean): void {
    const ep = this.endpoints.get(id);
    if (!ep || ep.ready === ready) return;
    ep.ready = ready;
    this.readyCache.delete(ep.model);
    this.emit(ready ? 'ready' : 'unready', ep);
  }

  get(id: string): EndpointState | undefined {
    return this.endpoints.get(id);
  }

  /** All endpoints (a fresh array). */
  list(): EndpointState[] {
    return [...this.endpoints.values()];
  }

  /** All endpoints of a model (a fresh array). */
  endpointsOf(model: string): EndpointState[] {
    return this.list().filter((e) => e.model === model);
  }

  /** Ready endpoints of a model; a cached array (do not mutate), rebuilt on membership/readiness changes. */
  readyEndpoints(model: string): readonly EndpointState[] {
    let arr = this.readyCache.get(model);
    if (!arr) {
      arr = [];
      for (const e of this.endpoints.values()) if (e.model === model && e.ready) arr.push(e);
      this.readyCache.set(model, arr);
    }
    return arr.length ? arr : FleetRegistry.EMPTY;
  }

  /** Registers the replica source of a model (one per model). */
  attachSource(source: ReplicaSource): void {
    this.sources.set(source.model, source);
  }

  source(model: string): ReplicaSource | undefined {
    return this.sources.get(model);
  }

  /**
   * Scales a managed or simulated model to `replicas`.
   * @throws Error when the model has no replica source (static endpoints cannot be scaled).
   */
  async scaleModel(model: string, replicas: number): Promise<void> {
    const s = this.sources.get(model);
    if (!s) throw new Error(`model "${model}" has no managed replicas (static endpoints cannot be scaled)`);
    if (!Number.isInteger(replicas) || replicas < 0) throw new Error(`replicas must be a non-negative integer, got ${replicas}`);
    await s.scale(replicas);
  }

  /** Stops every replica source (managed processes, simulators). */
  async stopSources(): Promise<void> {
    await Promise.all([...this.sources.values()].map((s) => s.stop()));
  }
}
