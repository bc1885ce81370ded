/**
 * The LoRA adapter manager: reconciles `ModelAdapter` resources against the endpoints of their base
 * model.
 *
 * Lifecycle per adapter (phase in `status.phase`):
 *   Pending -> Downloading -> Loading -> Ready        (Failed on an error; Deleting while unloading)
 * - Downloading: the artifact is fetched once into the cache (see `fetcher.ts`); on failure the phase
 *   is Failed and the next attempt waits `min(capS, baseS x 2^(attempts-1))` (AIBrix: 5 s x 2^n capped
 *   at 300 s, reference 1.1); after `retry.maxAttempts` failures it stays Failed until the spec
 *   changes. Non-retriable errors (unsupported scheme) fail at once.
 * - Loading: placement picks endpoints of the base model (`placement.ts`) up to `replicas` (or all),
 *   only where a slot is free; each is loaded through its engine dialect (vLLM
 *   `POST /v1/load_lora_adapter {lora_name, lora_path}`, SGLang `POST /load_lora_adapter`), with the
 *   same backoff per endpoint. "Already loaded" counts as success.
 * - Ready: loaded on at least one endpoint. Endpoints that go away are dropped and the adapter is
 *   placed again on others; an adapter the engine lost (its scraped `loraAdapters` no longer lists it
 *   after we loaded it) is loaded again.
 * - The request path ({@link AdapterManager.ensure}) loads an adapter on demand on the best endpoint,
 *   evicting that endpoint's least recently used adapter when its slots are full.
 * All retry state (download attempts, per-endpoint attempts, next attempt times) is kept in the
 * resource status, so a manager restarted with {@link AdapterManager.restore} resumes the backoff
 * instead of retrying at once (AIBrix kept it in annotations that were never written: reference 1.1
 * [obs]).
 * Time and I/O are injected: `clock`, `http` (fetch-compatible), the endpoint snapshot function, the
 * artifact cache.
 */
import type { EndpointState } from '../../engines/state.ts';
import { loraLoadCall, loraUnloadCall, parseLoraReply } from '../../engines/metric-map.ts';
import { ModelAdapterSpecSchema, newAdapterStatus, parseResource, setCondition, type ModelAdapter, type ModelAdapterSpec } from '../resources.ts';
import { ArtifactCache, ArtifactError, type FetchFn } from './fetcher.ts';
import { chooseEndpoints, freeSlots, lruVictim, rankEndpoints, type PlacementEndpoint } from './placement.ts';
import type { Clock, Timers } from '../autoscaler/controller.ts';

/** Options of {@link AdapterManager}. */
export interface AdapterManagerOptions {
  clock: Clock;
  /** HTTP to the engines (fetch-compatible). */
  http: FetchFn;
  /** Snapshot of every endpoint of the fleet (the manager filters by base model and readiness). */
  endpoints: () => readonly EndpointState[];
  /** Artifact cache (one download per artifact). */
  cache: ArtifactCache;
  /** Named secrets (the fleet's secret store): secret name -> bearer token. */
  secrets?: (name: string) => string | undefined;
  /** Environment for `credentials.env` (default: process.env). */
  env?: Record<string, string | undefined>;
  /** Called after every status change (persist it to survive restarts). */
  onChange?: (a: ModelAdapter) => void;
  /** Engine call timeout in ms (default 30000, as AIBrix). */
  timeoutMs?: number;
  /** Timers, only used by `start()` (the same injected timers as the autoscaler controller's). */
  timers?: Timers;
}

/** Backoff before attempt `attempts + 1` (ms): min(capS, baseS * 2^(attempts-1)) seconds. */
export function backoffMs(attempts: number, baseS: number, capS: number): number {
  if (attempts <= 0) return 0;
  return Math.min(capS, baseS * 2 ** (attempts - 1)) * 1000;
}

/** A LoRA engine call failed. */
export class AdapterLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdapterLoadError';
  }
}

/** Reconciles ModelAdapters (see module docs). */
export class AdapterManager {
  private adapters = new Map<string, ModelAdapter>();
  private lastUsed = new Map<string, Map<string, number>>(); // endpoint -> adapter -> ms
  private queue: Promise<unknown> = Promise.resolve();
  private handle: unknown = null;

  constructor(private readonly opts: AdapterManagerOptions) {}

  /**
   * Adds or changes an adapter from an unvalidated document. A changed spec bumps the generation and
   * resets retry state (and the download when the artifact changed); an identical spec is a no-op.
   * @throws ResourceValidationError with field paths (prefixed by `where`); nothing changes then.
   */
  apply(doc: unknown, where = 'adapter'): ModelAdapter {
    const spec = parseResource(ModelAdapterSpecSchema, doc, where);
    const old = this.adapters.get(spec.name);
    if (old && old.status.phase === 'Deleting') throw new Error(`${where}: name: adapter ${spec.name} is being deleted`);
    if (old && JSON.stringify(old.spec) === JSON.stringify(spec)) return old;
    if (old) {
      const artifactChanged = old.spec.artifactUrl !== spec.artifactUrl || JSON.stringify(old.spec.sha256) !== JSON.stringify(spec.sha256);
      old.spec = spec;
      old.generation++;
      old.status.download = { attempts: 0, nextAttemptAtMs: 0 };
      old.status.endpointStates = Object.fromEntries(Object.entries(old.status.endpointStates).filter(([id]) => old.status.endpoints.includes(id)));
      if (artifactChanged) delete old.status.localPath;
      old.status.observedGeneration = old.generation;
      this.changed(old);
      return old;
    }
    const a: ModelAdapter = { spec, status: newAdapterStatus(), generation: 1 };
    a.status.observedGeneration = 1;
    setCondition(a.status.conditions, { type: 'Initialized', status: 'True', reason: 'Accepted', message: '' }, this.opts.clock.now());
    this.adapters.set(spec.name, a);
    this.changed(a);
    return a;
  }

  /**
   * Restores an adapter saved by `onChange` (after a restart), keeping its status: retry attempts
   * and next-attempt times are honoured, endpoints it was loaded on are trusted until verified.
   * @throws ResourceValidationError when the saved spec is no longer valid.
   */
  restore(saved: { spec: unknown; status: ModelAdapter['status']; generation?: number }): ModelAdapter {
    const spec = parseResource(ModelAdapterSpecSchema, saved.spec, `restore ${String((saved.spec as { name?: unknown })?.name)}`);
    const a: ModelAdapter = { spec, status: structuredClone(saved.status), generation: saved.generation ?? saved.status.observedGeneration };
    this.adapters.set(spec.name, a);
    return a;
  }

  /** The adapter by name. */
  get(name: string): ModelAdapter | undefined {
    return this.adapters.get(name);
  }

  /** All adapters. */
  list(): ModelAdapter[] {
    return [...this.adapters.values()];
  }

  /** Endpoint ids the adapter is loaded on (for `lora-affinity` routing); empty when unknown. */
  endpointsFor(name: string): string[] {
    return this.adapters.get(name)?.status.endpoints.slice() ?? [];
  }

  /** Records a request for `adapter` served by `endpointId` at `clock.now()` (for LRU eviction). */
  touch(adapter: string, endpointId: string): void {
    let m = this.lastUsed.get(endpointId);
    if (!m) this.lastUsed.set(endpointId, (m = new Map()));
    m.set(adapter, this.opts.clock.now());
  }

  /**
   * Removes an adapter: unloads it from every endpoint it is loaded on, then forgets it. Unload
   * failures are recorded in `lastError` and do not block removal (the endpoint may be gone).
   * Resolves false when unknown.
   */
  remove(name: string): Promise<boolean> {
    return this.serial(async () => {
      const a = this.adapters.get(name);
      if (!a) return false;
      a.status.phase = 'Deleting';
      this.changed(a);
      const eps = new Map(this.opts.endpoints().map((e) => [e.id, e]));
      for (const id of a.status.endpoints.slice()) {
        const ep = eps.get(id);
        if (ep) {
          try {
            await this.unloadOn(ep, a);
          } catch (e) {
            a.status.lastError = `unload from ${id}: ${(e as Error).message}`;
          }
        }
        a.status.endpoints = a.status.endpoints.filter((x) => x !== id);
      }
      this.adapters.delete(name);
      this.changed(a);
      return true;
    });
  }

  /** One reconcile pass over every adapter (serialized with other passes and with `ensure`). */
  reconcile(): Promise<void> {
    return this.serial(async () => {
      for (const a of [...this.adapters.values()]) if (a.status.phase !== 'Deleting') await this.reconcileOne(a);
    });
  }

  /**
   * Request path: makes sure `name` is loaded on some ready endpoint and returns one that has it (the
   * least loaded), loading it now on the best endpoint when none has it, evicting that endpoint's least
   * recently used adapter if its slots are full.
   * @throws AdapterLoadError when the adapter is unknown, not downloaded yet, or the load fails.
   */
  ensure(name: string): Promise<string> {
    return this.serial(async () => {
      const a = this.adapters.get(name);
      if (!a || a.status.phase === 'Deleting') throw new AdapterLoadError(`adapter ${name} is not declared`);
      const eps = this.readyEndpoints(a.spec);
      const views = this.views(eps);
      const have = views.filter((v) => a.status.endpoints.includes(v.id));
      if (have.length) return rankEndpoints(have, 'spread')[0]!.id;
      if (!a.status.localPath) await this.reconcileOne(a);
      if (!a.status.localPath) throw new AdapterLoadError(`adapter ${name} is not downloaded yet (${a.status.lastError ?? a.status.phase})`);
      if (a.status.endpoints.length) return a.status.endpoints[0]!;
      const ranked = rankEndpoints(views, a.spec.placement === 'binPack' ? 'binPack' : 'spread');
      const target = ranked[0];
      if (!target) throw new AdapterLoadError(`no ready endpoint of ${a.spec.baseModel} for adapter ${name}`);
      const ep = eps.find((e) => e.id === target.id)!;
      if (freeSlots(target) <= 0) await this.evictOn(ep, name);
      await this.loadOn(ep, a);
      return ep.id;
    });
  }

  /** Starts reconciling every `periodMs` (default 10 s, AIBrix's resync) on the injected timers. */
  start(periodMs = 10_000): void {
    if (this.handle !== null) return;
    if (!this.opts.timers) throw new Error('AdapterManager.start: no timers injected');
    this.handle = this.opts.timers.setInterval(() => void this.reconcile().catch(() => undefined), periodMs);
  }

  /** Stops the periodic reconcile (an in-flight pass completes). */
  stop(): void {
    if (this.handle !== null) this.opts.timers!.clearInterval(this.handle);
    this.handle = null;
  }

  // ---------------------------------------------------------------------------------------------

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private changed(a: ModelAdapter): void {
    this.opts.onChange?.(a);
  }

  private readyEndpoints(spec: ModelAdapterSpec): EndpointState[] {
    return this.opts.endpoints().filter((e) => e.model === spec.baseModel && e.ready);
  }

  /** Adapters loaded on an endpoint: those we loaded plus those the engine reports. */
  private loadedOn(ep: EndpointState): string[] {
    const s = new Set(ep.loraAdapters ?? []);
    for (const a of this.adapters.values()) if (a.status.endpoints.includes(ep.id)) s.add(a.spec.name);
    return [...s];
  }

  private views(eps: readonly EndpointState[]): PlacementEndpoint[] {
    return eps.map((e) => ({ id: e.id, load: e.inflightRequests + (e.waiting ?? 0), adapters: this.loadedOn(e), maxLoras: e.maxLoras }));
  }

  private token(spec: ModelAdapterSpec): string | undefined {
    const c = spec.credentials;
    if (!c) return undefined;
    if (c.secret !== undefined) {
      const v = this.opts.secrets?.(c.secret);
      if (v === undefined) throw new ArtifactError(`credentials.secret: secret ${c.secret} not found`, false);
      return v;
    }
    const v = (this.opts.env ?? process.env)[c.env!];
    if (v === undefined) throw new ArtifactError(`credentials.env: environment variable ${c.env} is not set`, false);
    return v;
  }

  private async reconcileOne(a: ModelAdapter): Promise<void> {
    const now = this.opts.clock.now();
    const st = a.status;
    const { maxAttempts, baseS, capS } = a.spec.retry;

    // 1. Artifact.
    if (!st.localPath) {
      if (st.download.attempts >= maxAttempts) return;
      if (now < st.download.nextAttemptAtMs) return;
      st.phase = 'Downloading';
      this.changed(a);
      try {
        const r = await this.opts.cache.fetch({ url: a.spec.artifactUrl, sha256: a.spec.sha256, files: a.spec.files, token: this.token(a.spec) });
        st.localPath = r.localPath;
        st.download = { attempts: 0, nextAttemptAtMs: 0 };
        setCondition(st.conditions, { type: 'Downloaded', status: 'True', reason: r.cacheHit ? 'CacheHit' : 'Downloaded', message: r.localPath }, this.opts.clock.now());
      } catch (e) {
        const retriable = !(e instanceof ArtifactError) || e.retriable;
        const attempts = retriable ? st.download.attempts + 1 : maxAttempts;
        const t = this.opts.clock.now();
        st.download = { attempts, nextAttemptAtMs: t + backoffMs(attempts, baseS, capS) };
        st.phase = 'Failed';
        st.lastError = `download: ${(e as Error).message}`;
        const terminal = attempts >= maxAttempts;
        setCondition(st.conditions, { type: 'Downloaded', status: 'False', reason: terminal ? 'RetriesExhausted' : 'DownloadFailed', message: st.lastError }, t);
        setCondition(st.conditions, { type: 'Ready', status: 'False', reason: 'DownloadFailed', message: st.lastError }, t);
        this.changed(a);
        return;
      }
    }

    // 2. Endpoints: drop the ones gone or that lost the adapter.
    const eps = this.readyEndpoints(a.spec);
    const byId = new Map(eps.map((e) => [e.id, e]));
    for (const id of st.endpoints.slice()) {
      const ep = byId.get(id);
      const loadedAt = st.endpointStates[id]?.loadedAtMs;
      const lost = ep && ep.loraAdapters !== undefined && ep.scrapedAtMs !== null && loadedAt !== undefined && ep.scrapedAtMs > loadedAt && !ep.loraAdapters.includes(a.spec.name);
      if (!ep || lost) {
        st.endpoints = st.endpoints.filter((x) => x !== id);
        delete st.endpointStates[id];
        setCondition(st.conditions, { type: 'Placed', status: 'False', reason: ep ? 'AdapterLost' : 'EndpointGone', message: id }, now);
      }
    }
    for (const id of Object.keys(st.endpointStates)) if (!byId.has(id) && !st.endpoints.includes(id)) delete st.endpointStates[id];

    const desired = a.spec.replicas === 'all' ? eps.length : Math.min(a.spec.replicas, eps.length);
    // Trim extras (replicas lowered).
    while (st.endpoints.length > desired && desired >= 0 && st.endpoints.length > 0 && a.spec.replicas !== 'all') {
      const views = this.views(eps.filter((e) => st.endpoints.includes(e.id)));
      const worst = rankEndpoints(views, 'spread').at(-1)!;
      try {
        await this.unloadOn(byId.get(worst.id)!, a);
      } catch (e) {
        st.lastError = `unload from ${worst.id}: ${(e as Error).message}`;
      }
      st.endpoints = st.endpoints.filter((x) => x !== worst.id);
      delete st.endpointStates[worst.id];
    }

    // 3. Place and load where missing.
    const missing = desired - st.endpoints.length;
    let loadError: string | undefined;
    if (missing > 0) {
      const candidates = this.views(eps.filter((e) => !st.endpoints.includes(e.id))).filter((v) => {
        const es = st.endpointStates[v.id];
        return freeSlots(v) > 0 && (!es || (es.attempts < maxAttempts && now >= es.nextAttemptAtMs));
      });
      const picks = chooseEndpoints(candidates, missing, a.spec.placement);
      if (picks.length) {
        if (st.phase !== 'Ready') st.phase = 'Loading';
        this.changed(a);
      }
      for (const id of picks) {
        try {
          await this.loadOn(byId.get(id)!, a);
        } catch (e) {
          const prev = st.endpointStates[id]?.attempts ?? 0;
          const t = this.opts.clock.now();
          loadError = `load on ${id}: ${(e as Error).message}`;
          st.endpointStates[id] = { attempts: prev + 1, nextAttemptAtMs: t + backoffMs(prev + 1, baseS, capS), lastError: loadError };
          st.lastError = loadError;
        }
      }
    }

    // 4. Phase and conditions.
    const t = this.opts.clock.now();
    const loaded = st.endpoints.length;
    if (loaded > 0) {
      st.phase = 'Ready';
      setCondition(st.conditions, { type: 'Ready', status: 'True', reason: 'Loaded', message: `loaded on ${loaded}/${desired}` }, t);
    } else if (desired === 0) {
      st.phase = 'Pending';
      setCondition(st.conditions, { type: 'Ready', status: 'False', reason: 'NoEndpoints', message: `no ready endpoint of ${a.spec.baseModel}` }, t);
    } else if (loadError || Object.values(st.endpointStates).some((s) => s.attempts > 0)) {
      st.phase = 'Failed';
      const exhausted = eps.every((e) => (st.endpointStates[e.id]?.attempts ?? 0) >= maxAttempts);
      setCondition(st.conditions, { type: 'Ready', status: 'False', reason: exhausted ? 'RetriesExhausted' : 'LoadFailed', message: st.lastError ?? '' }, t);
    } else {
      st.phase = 'Loading';
      setCondition(st.conditions, { type: 'Ready', status: 'False', reason: 'NoFreeSlot', message: 'waiting for a free adapter slot or a request (loads on demand)' }, t);
    }
    setCondition(st.conditions, { type: 'Placed', status: loaded >= desired ? 'True' : 'False', reason: loaded >= desired ? 'Placed' : 'Partial', message: `${loaded}/${desired}` }, t);
    this.changed(a);
  }

  private async call(ep: EndpointState, call: { path: string; body: Record<string, unknown> }): Promise<{ status: number; text: string }> {
    const res = await this.opts.http(`${ep.url}${call.path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(call.body),
      signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000),
    });
    return { status: res.status, text: (await res.text()).slice(0, 4096) };
  }

  private async loadOn(ep: EndpointState, a: ModelAdapter): Promise<void> {
    const r = await this.call(ep, loraLoadCall(ep.dialect, a.spec.name, a.status.localPath!));
    const p = parseLoraReply(ep.dialect, r.status, r.text);
    if (!p.ok && !/already (been )?loaded|already exists/i.test(p.error ?? '')) throw new AdapterLoadError(`HTTP ${r.status}: ${p.error}`);
    if (!a.status.endpoints.includes(ep.id)) a.status.endpoints.push(ep.id);
    a.status.endpointStates[ep.id] = { attempts: 0, nextAttemptAtMs: 0, loadedAtMs: this.opts.clock.now() };
    this.touch(a.spec.name, ep.id);
    this.changed(a);
  }

  private async unloadOn(ep: EndpointState, a: ModelAdapter): Promise<void> {
    const r = await this.call(ep, loraUnloadCall(ep.dialect, a.spec.name));
    const p = parseLoraReply(ep.dialect, r.status, r.text);
    if (!p.ok && !/not found|cannot be found|not loaded/i.test(p.error ?? '')) throw new AdapterLoadError(`HTTP ${r.status}: ${p.error}`);
    this.lastUsed.get(ep.id)?.delete(a.spec.name);
  }

  /** Evicts the least recently used managed adapter on `ep` (other than `keep`). */
  private async evictOn(ep: EndpointState, keep: string): Promise<void> {
    const managed = [...this.adapters.values()].filter((x) => x.spec.name !== keep && x.status.endpoints.includes(ep.id));
    const victimName = lruVictim(
      managed.map((x) => x.spec.name),
      this.lastUsed.get(ep.id) ?? new Map(),
    );
    if (!victimName) throw new AdapterLoadError(`endpoint ${ep.id} has no free adapter slot and no adapter it may evict`);
    const victim = this.adapters.get(victimName)!;
    await this.unloadOn(ep, victim);
    victim.status.endpoints = victim.status.endpoints.filter((x) => x !== ep.id);
    delete victim.status.endpointStates[ep.id];
    setCondition(victim.status.conditions, { type: 'Placed', status: 'False', reason: 'Evicted', message: `evicted from ${ep.id} (least recently used) for ${keep}` }, this.opts.clock.now());
    if (victim.status.endpoints.length === 0) victim.status.phase = 'Loading';
    this.changed(victim);
  }
}
