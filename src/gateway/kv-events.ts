/**
 * KV events in the gateway: subscribes to the KV-event publishers of the endpoints that declare one
 * (`FleetRegistry.kvEventsOf`: static `kvEvents`, managed `{kvEventsPort}`, `simulator.kvEvents`)
 * and feeds every KV-event-consuming strategy instance of that endpoint's model (`isKvEventSink`:
 * `kv-aware`, `cache-cost-kv`).
 *
 * Per model:
 * - one `KvEventIngestor` (src/routing/cache/kv-ingestor.ts: one ZMQ SUB per endpoint, decoding,
 *   sequence-gap detection, replay when the publisher has a replay ROUTER);
 * - one `ModelKvFeed`, the ingestor's only sink, which forwards each batch to the model's sinks and
 *   keeps a mirror of the blocks each endpoint holds (block keys, `blockKey` of kv-index.ts), so a
 *   strategy instance built later (a `routing-strategy` header naming `kv-aware` for the first time,
 *   a profile's strategy) is first seeded with what is already known, then follows the stream.
 *
 * Gaps (events lost and not recovered by replay, or a publisher restart): the mirror and every sink
 * forget that endpoint (`onKvEventGap`) and rebuild from later events: a missed cache hit until the
 * prefix is stored again, never a false one.
 *
 * When a model's routing is locked (`lockedRoutingStrategy`) to a strategy that consumes no KV
 * events, its endpoints are not followed. Nothing here runs on the request path: subscriptions are
 * made from registry events, asynchronously; errors are logged, never thrown into requests.
 */
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ExternalBlockHash, KvEventBatch } from '../engines/vllm/kv-events.ts';
import type { EndpointState } from '../engines/state.ts';
import type { FleetRegistry } from '../fleet/registry.ts';
import { isKvEventSink, type KvEventSink } from '../routing/cache/kv-aware.ts';
import { blockKey } from '../routing/cache/kv-index.ts';
import { KvEventIngestor } from '../routing/cache/kv-ingestor.ts';
import type { RoutingStrategy } from '../routing/types.ts';

/** Events received from one endpoint (cumulative while the gateway runs). */
export interface KvFeedCounters {
  blockStored: number;
  blockRemoved: number;
  allBlocksCleared: number;
  batches: number;
  gaps: number;
}

/**
 * The fan-out sink of one model: forwards batches and gaps to the model's strategy sinks, counts
 * events per endpoint, and mirrors the blocks each endpoint holds (to seed sinks created later).
 */
export class ModelKvFeed implements KvEventSink {
  private readonly sinks: KvEventSink[] = [];
  /** Endpoint id -> block keys it holds (GPU tier), from its events. */
  private readonly held = new Map<string, Set<number>>();
  readonly counters = new Map<string, KvFeedCounters>();
  /** Endpoints that left: their late batches (before the unsubscribe completes) are dropped. */
  private readonly gone = new Set<string>();

  private count(id: string): KvFeedCounters {
    let c = this.counters.get(id);
    if (!c) this.counters.set(id, (c = { blockStored: 0, blockRemoved: 0, allBlocksCleared: 0, batches: 0, gaps: 0 }));
    return c;
  }

  /** Adds a sink, first seeding it with the mirrored blocks of every endpoint (one synthetic BlockStored per endpoint). */
  addSink(sink: KvEventSink): void {
    if (this.sinks.includes(sink)) return;
    for (const [id, keys] of this.held) {
      if (keys.size === 0) continue;
      const blockHashes: ExternalBlockHash[] = [];
      for (const k of keys) blockHashes.push(BigInt(k));
      sink.applyKvEvents(id, { ts: 0, events: [{ type: 'BlockStored', blockHashes, parentBlockHash: null, tokenIds: [], blockSize: 0, loraId: null, medium: null, loraName: null }] });
    }
    this.sinks.push(sink);
  }

  /** Number of sinks fed. */
  get sinkCount(): number {
    return this.sinks.length;
  }

  /** Blocks `endpointId` holds according to its events. */
  blocksOf(endpointId: string): number {
    return this.held.get(endpointId)?.size ?? 0;
  }

  applyKvEvents(endpointId: string, batch: KvEventBatch): void {
    if (this.gone.has(endpointId)) return;
    const c = this.count(endpointId);
    c.batches++;
    let keys = this.held.get(endpointId);
    if (!keys) this.held.set(endpointId, (keys = new Set()));
    for (const e of batch.events) {
      if (e.type === 'AllBlocksCleared') {
        c.allBlocksCleared++;
        keys.clear();
        continue;
      }
      const gpu = e.medium === null || e.medium === 'GPU';
      if (e.type === 'BlockStored') {
        c.blockStored++;
        if (gpu) for (const h of e.blockHashes) keys.add(blockKey(h));
      } else {
        c.blockRemoved++;
        if (gpu) for (const h of e.blockHashes) keys.delete(blockKey(h));
      }
    }
    for (const s of this.sinks) s.applyKvEvents(endpointId, batch);
  }

  onKvEventGap(endpointId: string): void {
    if (this.gone.has(endpointId)) return;
    this.count(endpointId).gaps++;
    this.held.get(endpointId)?.clear();
    for (const s of this.sinks) s.onKvEventGap(endpointId);
  }

  /** The endpoint (re)joined: accept its events. */
  addEndpoint(endpointId: string): void {
    this.gone.delete(endpointId);
  }

  /**
   * The endpoint left: drop its mirror and ignore its late events (the strategies forget it through
   * `onEndpointRemoved`); its counters stay, they are cumulative.
   */
  removeEndpoint(endpointId: string): void {
    this.held.delete(endpointId);
    this.gone.add(endpointId);
  }
}

/** Per-model ingestors and feeds, driven by the fleet registry's `add`/`remove` events. */
export class GatewayKvEvents {
  private readonly feeds = new Map<string, ModelKvFeed>();
  private readonly ingestors = new Map<string, KvEventIngestor>();
  /** Per endpoint id, the chain of follow/unfollow operations (kept in order). */
  private readonly ops = new Map<string, Promise<void>>();
  private closed = false;
  private readonly onAdd = (ep: EndpointState) => this.follow(ep);
  private readonly onRemove = (ep: EndpointState) => this.unfollow(ep);

  /**
   * @param consumes whether strategies of `model` may consume KV events (false only when its
   *   routing is locked to a strategy that does not).
   */
  constructor(
    private readonly fleet: FleetRegistry,
    private readonly log: Logger,
    private readonly consumes: (model: string) => boolean,
  ) {}

  /** Follows the endpoints registered now and, from then on, those added (until `close`). */
  start(): void {
    if (this.closed) return;
    this.fleet.on('add', this.onAdd);
    this.fleet.on('remove', this.onRemove);
    for (const ep of this.fleet.list()) this.follow(ep);
  }

  /** The feed of `model` (created on first use). */
  feed(model: string): ModelKvFeed {
    let f = this.feeds.get(model);
    if (!f) this.feeds.set(model, (f = new ModelKvFeed()));
    return f;
  }

  /** A strategy instance was built for `model`: feed it when it consumes KV events. */
  addStrategy(model: string, s: RoutingStrategy): void {
    if (isKvEventSink(s)) this.feed(model).addSink(s);
  }

  /** Endpoint ids followed now, per model. */
  followed(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const [m, ing] of this.ingestors) out.set(m, ing.followed());
    return out;
  }

  private chain(id: string, op: () => Promise<void>): void {
    const prev = this.ops.get(id) ?? Promise.resolve();
    const next = prev.then(op).catch((e) => this.log.warn({ component: 'kv-events', endpoint: id, err: (e as Error).message }, 'KV-event subscription failed'));
    this.ops.set(id, next);
    void next.then(() => {
      if (this.ops.get(id) === next) this.ops.delete(id);
    });
  }

  private follow(ep: EndpointState): void {
    const addr = this.fleet.kvEventsOf(ep.id);
    if (!addr || this.closed || !this.consumes(ep.model)) return;
    let ing = this.ingestors.get(ep.model);
    if (!ing) {
      const model = ep.model;
      ing = new KvEventIngestor((id, err) => this.log.warn({ component: 'kv-events', model, endpoint: id, err: err.message }, 'KV-event stream error'));
      this.ingestors.set(model, ing);
    }
    const ingestor = ing;
    const feed = this.feed(ep.model);
    feed.addEndpoint(ep.id);
    this.chain(ep.id, async () => {
      if (this.closed) return;
      await ingestor.follow({ id: ep.id, endpoint: addr.endpoint, replayEndpoint: addr.replay, topic: addr.topic }, feed);
      this.log.info({ component: 'kv-events', model: ep.model, endpoint: ep.id, publisher: addr.endpoint }, 'following KV events');
    });
  }

  private unfollow(ep: EndpointState): void {
    const ing = this.ingestors.get(ep.model);
    this.feeds.get(ep.model)?.removeEndpoint(ep.id);
    if (!ing) return;
    this.chain(ep.id, () => ing.unfollow(ep.id));
  }

  /**
   * Registers `inferplane_kv_events_total{model,endpoint,type}`, `inferplane_kv_event_gaps_total`
   * and `inferplane_kv_index_blocks{model,endpoint}` (blocks held per the events) on `registry`,
   * computed at scrape time.
   */
  registerMetrics(registry: Registry): void {
    const feeds = this.feeds;
    new Counter({
      name: 'inferplane_kv_events_total',
      help: 'KV-cache events received from engines (BlockStored, BlockRemoved, AllBlocksCleared)',
      labelNames: ['model', 'endpoint', 'type'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [model, f] of feeds)
          for (const [endpoint, c] of f.counters) {
            if (c.blockStored) this.inc({ model, endpoint, type: 'BlockStored' }, c.blockStored);
            if (c.blockRemoved) this.inc({ model, endpoint, type: 'BlockRemoved' }, c.blockRemoved);
            if (c.allBlocksCleared) this.inc({ model, endpoint, type: 'AllBlocksCleared' }, c.allBlocksCleared);
          }
      },
    });
    new Counter({
      name: 'inferplane_kv_event_gaps_total',
      help: 'KV-event stream gaps not recovered by replay (the endpoint is forgotten and rebuilt)',
      labelNames: ['model', 'endpoint'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [model, f] of feeds) for (const [endpoint, c] of f.counters) if (c.gaps) this.inc({ model, endpoint }, c.gaps);
      },
    });
    new Gauge({
      name: 'inferplane_kv_index_blocks',
      help: 'KV-cache blocks each endpoint holds according to its KV events',
      labelNames: ['model', 'endpoint'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [model, f] of feeds) for (const endpoint of f.counters.keys()) this.set({ model, endpoint }, f.blocksOf(endpoint));
      },
    });
  }

  /** Stops following every endpoint and detaches from the registry. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.fleet.off('add', this.onAdd);
    this.fleet.off('remove', this.onRemove);
    await Promise.allSettled([...this.ops.values()]);
    await Promise.allSettled([...this.ingestors.values()].map((i) => i.close()));
    this.ingestors.clear();
  }
}
