/**
 * Wiring of engines' KV-event streams into KV-event-fed strategies (`kv-aware`, `cache-cost-kv`):
 * one ZeroMQ SUB per endpoint (vLLM `--kv-events-config '{"enable_kv_cache_events":true,
 * "publisher":"zmq","endpoint":"tcp://*:5557"}'`, or the simulator's `--kv-events-endpoint`),
 * decoded and sequence-checked by `KvEventSubscriber` (src/engines/vllm/kv-events.ts), delivered
 * to every sink following that endpoint. A sequence gap the replay endpoint cannot fill, or a
 * publisher restart, calls `onKvEventGap` on the sinks (they forget that endpoint and rebuild).
 *
 * This is the only I/O in src/routing/cache; the gateway starts it next to its strategies (the
 * strategies themselves stay pure). Errors (undecodable payloads) are counted and reported through
 * `onError`, never thrown into the gateway.
 */
import { KvEventSubscriber } from '../../engines/vllm/kv-events.ts';
import type { KvEventSink } from './kv-aware.ts';

/** Where one endpoint publishes its KV events. */
export interface KvEventSource {
  /** Endpoint id as the strategies see it (`EndpointState.id`). */
  id: string;
  /** ZMQ endpoint to connect to, e.g. `tcp://10.0.0.5:5557`. */
  endpoint: string;
  /** The publisher's replay ROUTER (vLLM `replay_endpoint`), if any. */
  replayEndpoint?: string;
  /** Topic prefix to subscribe to (default "", all). */
  topic?: string;
}

/** Per-endpoint ingestion counters. */
export interface KvIngestStats {
  batches: number;
  events: number;
  gaps: number;
  replayed: number;
  decodeErrors: number;
}

export class KvEventIngestor {
  private readonly subs = new Map<string, { sub: KvEventSubscriber; sinks: KvEventSink[] }>();

  /** @param onError receives decode/transport errors, tagged with the endpoint id (default: ignored). */
  constructor(private readonly onError?: (endpointId: string, err: Error) => void) {}

  /**
   * Starts following `source` for `sinks` (replacing any previous subscription of that id).
   * Returns once the socket is connecting; events flow asynchronously.
   */
  async follow(source: KvEventSource, sinks: KvEventSink | readonly KvEventSink[]): Promise<void> {
    await this.unfollow(source.id);
    const list = Array.isArray(sinks) ? [...sinks] : [sinks as KvEventSink];
    const id = source.id;
    const sub = new KvEventSubscriber({
      endpoint: source.endpoint,
      replayEndpoint: source.replayEndpoint,
      topic: source.topic,
      onBatch: (batch) => {
        for (const s of list) s.applyKvEvents(id, batch);
      },
      onGap: () => {
        for (const s of list) s.onKvEventGap(id);
      },
      onError: (err) => this.onError?.(id, err),
    });
    this.subs.set(id, { sub, sinks: list });
  }

  /** Stops following endpoint `id` (no-op when not followed). The sinks keep what they learned; call their `onEndpointRemoved` if it left. */
  async unfollow(id: string): Promise<void> {
    const s = this.subs.get(id);
    if (!s) return;
    this.subs.delete(id);
    await s.sub.close();
  }

  /** Counters of endpoint `id`'s stream, or undefined when not followed. */
  stats(id: string): KvIngestStats | undefined {
    const s = this.subs.get(id);
    return s ? { ...s.sub.stats } : undefined;
  }

  /** Ids of the followed endpoints. */
  followed(): string[] {
    return [...this.subs.keys()];
  }

  /** Closes every subscription. */
  async close(): Promise<void> {
    await Promise.all([...this.subs.keys()].map((id) => this.unfollow(id)));
  }
}
