/**
 * vLLM KV-cache events: the wire codec and the ZeroMQ transport (reference vllm-api.md §4.2-4.3;
 * `vllm/distributed/kv_events.py`).
 *
 * Payload: msgspec msgpack with `array_like=True, omit_defaults=True`, events tagged by class name:
 * - `KVEventBatch` = `[ts: float (Unix s), events: Event[], data_parallel_rank?: int]`
 * - `["BlockStored", block_hashes, parent_block_hash|null, token_ids, block_size, lora_id|null,
 *    medium|null, lora_name|null, extra_keys?, group_idx?]`
 * - `["BlockRemoved", block_hashes, medium|null, group_idx?]`
 * - `["AllBlocksCleared"]`
 * Older servers send fewer trailing fields; decoding accepts any length >= the original 5-field
 * BlockStored / 2-field BlockRemoved. Hashes are uint64 ints (default
 * `VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=1`) or raw digest bytes; decoding yields `bigint` for ints
 * (values can exceed 2^63) and `Uint8Array` for bytes.
 *
 * Transport: ZMQ PUB, multipart `[topic (UTF-8), seq (8-byte big-endian, from 0 per publisher),
 * payload]`. Optional replay: a ROUTER on `replay_endpoint`; a DEALER/REQ client sends
 * `["", start_seq (8 bytes BE)]` and receives `["", seq, payload]` for each buffered batch with
 * seq >= start, then `["", -1 (8 bytes, signed), ""]` (`ZmqEventPublisher._service_replay`).
 */
import * as zmq from 'zeromq';
import { Decoder, Encoder } from '@msgpack/msgpack';

/** A block hash as carried on the wire: uint64 (`bigint`) or raw digest bytes. */
export type ExternalBlockHash = bigint | Uint8Array;

/** Full blocks entered the prefix cache. `tokenIds.length = blockHashes.length * blockSize`. */
export interface BlockStored {
  type: 'BlockStored';
  blockHashes: ExternalBlockHash[];
  /** Hash of the block before the first new one; null at the start of a sequence. */
  parentBlockHash: ExternalBlockHash | null;
  tokenIds: number[];
  blockSize: number;
  /** Deprecated int LoRA id (null when no LoRA). */
  loraId: number | null;
  /** KV tier, `"GPU"` for the engine's own cache; null on old servers. */
  medium: string | null;
  /** LoRA adapter name (null when no LoRA or on old servers). */
  loraName: string | null;
  extraKeys?: unknown;
  groupIdx?: number | null;
}

/** Blocks were evicted from the prefix cache. */
export interface BlockRemoved {
  type: 'BlockRemoved';
  blockHashes: ExternalBlockHash[];
  medium: string | null;
  groupIdx?: number | null;
}

/** The whole prefix cache was reset. */
export interface AllBlocksCleared {
  type: 'AllBlocksCleared';
}

export type KvCacheEvent = BlockStored | BlockRemoved | AllBlocksCleared;

/** One published batch (one engine step's events). `ts` is Unix seconds. */
export interface KvEventBatch {
  ts: number;
  events: KvCacheEvent[];
  dataParallelRank?: number | null;
}

const encoder = new Encoder({ useBigInt64: true, ignoreUndefined: false });
const decoder = new Decoder({ useBigInt64: true });

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Small hashes as numbers so the encoder picks the shortest int format, as msgspec does (byte-identical output). */
function encodeHash(h: ExternalBlockHash): number | bigint | Uint8Array {
  return typeof h === 'bigint' && h <= MAX_SAFE && h >= 0n ? Number(h) : h;
}

/**
 * Encodes a batch as vLLM does (msgspec array_like). BlockStored is written with its 7 fields
 * (through `lora_name`); `extra_keys`/`group_idx` are appended only when set.
 */
export function encodeKvEventBatch(batch: KvEventBatch): Uint8Array {
  const events = batch.events.map((e) => {
    switch (e.type) {
      case 'BlockStored': {
        const a: unknown[] = ['BlockStored', e.blockHashes.map(encodeHash), e.parentBlockHash === null ? null : encodeHash(e.parentBlockHash), e.tokenIds, e.blockSize, e.loraId, e.medium, e.loraName];
        if (e.extraKeys !== undefined || e.groupIdx != null) a.push(e.extraKeys ?? null);
        if (e.groupIdx != null) a.push(e.groupIdx);
        return a;
      }
      case 'BlockRemoved': {
        const a: unknown[] = ['BlockRemoved', e.blockHashes.map(encodeHash), e.medium];
        if (e.groupIdx != null) a.push(e.groupIdx);
        return a;
      }
      case 'AllBlocksCleared':
        return ['AllBlocksCleared'];
    }
  });
  const arr: unknown[] = [batch.ts, events];
  if (batch.dataParallelRank != null) arr.push(batch.dataParallelRank);
  return encoder.encode(arr);
}

/** Thrown for a payload that is not a KVEventBatch. */
export class KvEventDecodeError extends Error {
  override name = 'KvEventDecodeError';
}

function toHash(v: unknown): ExternalBlockHash {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(v);
  if (v instanceof Uint8Array) return v;
  throw new KvEventDecodeError(`block hash must be an int or bytes, got ${typeof v}`);
}

function toHashes(v: unknown): ExternalBlockHash[] {
  if (!Array.isArray(v)) throw new KvEventDecodeError('block_hashes must be an array');
  const out: ExternalBlockHash[] = new Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = toHash(v[i]);
  return out;
}

function numOrNull(v: unknown): number | null {
  if (v == null) return null;
  return typeof v === 'bigint' ? Number(v) : (v as number);
}

/**
 * Decodes a KV-event payload (msgpack bytes).
 * @throws KvEventDecodeError on a malformed batch or an unknown event tag.
 */
export function decodeKvEventBatch(payload: Uint8Array): KvEventBatch {
  let raw: unknown;
  try {
    raw = decoder.decode(payload);
  } catch (e) {
    throw new KvEventDecodeError(`not msgpack: ${(e as Error).message}`);
  }
  if (!Array.isArray(raw) || raw.length < 2 || !Array.isArray(raw[1])) throw new KvEventDecodeError('KVEventBatch must be [ts, events, dp_rank?]');
  const rawEvents = raw[1] as unknown[];
  const events: KvCacheEvent[] = new Array(rawEvents.length);
  for (let i = 0; i < rawEvents.length; i++) {
    const e = rawEvents[i];
    if (!Array.isArray(e) || typeof e[0] !== 'string') throw new KvEventDecodeError(`event ${i} must be a tagged array`);
    switch (e[0]) {
      case 'BlockStored': {
        if (e.length < 5) throw new KvEventDecodeError(`BlockStored needs >= 4 fields, got ${e.length - 1}`);
        const ev: BlockStored = {
          type: 'BlockStored',
          blockHashes: toHashes(e[1]),
          parentBlockHash: e[2] == null ? null : toHash(e[2]),
          tokenIds: e[3] as number[],
          blockSize: numOrNull(e[4]) ?? 0,
          loraId: numOrNull(e[5]),
          medium: (e[6] as string | undefined) ?? null,
          loraName: (e[7] as string | undefined) ?? null,
        };
        if (e.length > 8) ev.extraKeys = e[8];
        if (e.length > 9) ev.groupIdx = numOrNull(e[9]);
        events[i] = ev;
        break;
      }
      case 'BlockRemoved': {
        if (e.length < 2) throw new KvEventDecodeError('BlockRemoved needs block_hashes');
        const ev: BlockRemoved = { type: 'BlockRemoved', blockHashes: toHashes(e[1]), medium: (e[2] as string | undefined) ?? null };
        if (e.length > 3) ev.groupIdx = numOrNull(e[3]);
        events[i] = ev;
        break;
      }
      case 'AllBlocksCleared':
        events[i] = { type: 'AllBlocksCleared' };
        break;
      default:
        throw new KvEventDecodeError(`unknown KV event tag ${JSON.stringify(e[0])}`);
    }
  }
  const batch: KvEventBatch = { ts: Number(raw[0]), events };
  if (raw.length > 2) batch.dataParallelRank = numOrNull(raw[2]);
  return batch;
}

/** 8-byte big-endian encoding of a sequence number (signed, so -1 is the replay end marker). */
export function encodeSeq(seq: bigint | number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt(seq));
  return b;
}

/** Reads an 8-byte big-endian signed sequence number. */
export function decodeSeq(buf: Uint8Array): bigint {
  if (buf.byteLength !== 8) throw new KvEventDecodeError(`sequence frame must be 8 bytes, got ${buf.byteLength}`);
  return new DataView(buf.buffer, buf.byteOffset, 8).getBigInt64(0, false);
}

/** vLLM's rule: bind when the endpoint has a wildcard (`*`, `::`) or is ipc/inproc; else connect. */
export function shouldBind(endpoint: string): boolean {
  return endpoint.includes('*') || endpoint.includes('::') || endpoint.startsWith('ipc://') || endpoint.startsWith('inproc://');
}

/** Options of a KV-event publisher (names follow vLLM's `KVEventsConfig`). */
export interface KvEventPublisherOptions {
  /** e.g. `tcp://*:5557` (bind) or `tcp://host:5557` (connect). */
  endpoint: string;
  /** Topic frame (UTF-8), default "". */
  topic?: string;
  /** ROUTER endpoint serving replays of recent batches; default none. */
  replayEndpoint?: string;
  /** Batches kept for replay (vLLM `buffer_steps`, default 10000). */
  bufferSteps?: number;
  /** ZMQ send high-water mark (vLLM `hwm`, default 100000). */
  hwm?: number;
}

/**
 * Publishes KV-event batches on a ZMQ PUB socket with vLLM's framing, keeping the last
 * `bufferSteps` payloads for replay. `publish` never blocks the caller (PUB drops at the HWM).
 */
export class KvEventPublisher {
  private readonly pub: zmq.Publisher;
  private router: zmq.Router | null = null;
  private readonly topic: Buffer;
  private seq = 0n;
  private readonly buffer: Array<[bigint, Uint8Array]> = [];
  private queue: Array<[Buffer, Buffer, Uint8Array]> = [];
  private sending = false;
  private closed = false;
  /** The endpoint actually bound (resolves `tcp://*:0` to a port). */
  lastEndpoint = '';
  replayLastEndpoint = '';

  private constructor(private readonly opts: KvEventPublisherOptions) {
    this.pub = new zmq.Publisher({ sendHighWaterMark: opts.hwm ?? 100_000, linger: 0 });
    this.topic = Buffer.from(opts.topic ?? '', 'utf8');
  }

  /** Creates the sockets (bind or connect per `shouldBind`). */
  static async create(opts: KvEventPublisherOptions): Promise<KvEventPublisher> {
    const p = new KvEventPublisher(opts);
    if (shouldBind(opts.endpoint)) {
      await p.pub.bind(opts.endpoint);
      p.lastEndpoint = p.pub.lastEndpoint ?? opts.endpoint;
    } else {
      p.pub.connect(opts.endpoint);
      p.lastEndpoint = opts.endpoint;
    }
    if (opts.replayEndpoint) {
      p.router = new zmq.Router({ linger: 0 });
      await p.router.bind(opts.replayEndpoint);
      p.replayLastEndpoint = p.router.lastEndpoint ?? opts.replayEndpoint;
      void p.serveReplay();
    }
    return p;
  }

  /** Next sequence number to be used. */
  get nextSeq(): bigint {
    return this.seq;
  }

  /** Encodes and publishes one batch; returns its sequence number. No-op batches (no events) are not sent. */
  publish(batch: KvEventBatch): bigint | null {
    if (this.closed || batch.events.length === 0) return null;
    return this.publishPayload(encodeKvEventBatch(batch));
  }

  /** Publishes an already-encoded payload; returns its sequence number. */
  publishPayload(payload: Uint8Array): bigint {
    const seq = this.seq++;
    this.buffer.push([seq, payload]);
    const max = this.opts.bufferSteps ?? 10_000;
    if (this.buffer.length > max) this.buffer.splice(0, this.buffer.length - max);
    this.queue.push([this.topic, encodeSeq(seq), payload]);
    if (!this.sending) void this.drain();
    return seq;
  }

  private async drain(): Promise<void> {
    this.sending = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const msg = this.queue.shift()!;
        await this.pub.send(msg);
      }
    } catch {
      // socket closed while sending: nothing left to deliver
    } finally {
      this.sending = false;
    }
  }

  private async serveReplay(): Promise<void> {
    const router = this.router!;
    try {
      for await (const frames of router) {
        if (frames.length !== 3) continue; // vLLM ignores malformed replay requests
        const [id, , startBytes] = frames as [Buffer, Buffer, Buffer];
        let start: bigint;
        try {
          start = decodeSeq(startBytes);
        } catch {
          continue;
        }
        for (const [seq, payload] of this.buffer) {
          if (seq >= start) await router.send([id, Buffer.alloc(0), encodeSeq(seq), payload]);
        }
        await router.send([id, Buffer.alloc(0), encodeSeq(-1n), Buffer.alloc(0)]);
      }
    } catch {
      // closed
    }
  }

  /** Closes the sockets (pending sends are dropped). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pub.close();
    this.router?.close();
  }
}

/** Why a subscriber saw a discontinuity. */
export interface KvEventGap {
  /** `gap`: sequence numbers were skipped and not replayed; `restart`: seq went backwards (publisher restarted). */
  kind: 'gap' | 'restart';
  expected: bigint;
  got: bigint;
}

/** Options of a KV-event subscriber. */
export interface KvEventSubscriberOptions {
  /** Publisher endpoint to connect to, e.g. `tcp://127.0.0.1:5557`. */
  endpoint: string;
  /** Topic prefix to subscribe to; default "" (all). */
  topic?: string;
  /** Publisher's replay ROUTER endpoint; when set, gaps are filled by replay before `onGap` is considered. */
  replayEndpoint?: string;
  /** Called for every batch in sequence order (including replayed ones). */
  onBatch: (batch: KvEventBatch, seq: bigint, topic: string) => void;
  /**
   * Called when events were lost (no replay, or replay could not fill the gap) or the publisher
   * restarted: the consumer must clear what it knows about this publisher and rebuild from new events.
   */
  onGap?: (gap: KvEventGap) => void;
  /** Called for a payload that fails to decode (the batch is skipped). */
  onError?: (err: Error) => void;
  /** Replay reply timeout, ms (default 1000). */
  replayTimeoutMs?: number;
}

/**
 * Subscribes to a vLLM KV-event stream with sequence-gap detection. On a gap it asks the replay
 * endpoint (if any) for the missing batches; if they cannot all be replayed it calls `onGap`.
 * The first message after connecting is not a gap (a subscriber may join mid-stream).
 */
export class KvEventSubscriber {
  private readonly sub: zmq.Subscriber;
  private lastSeq: bigint | null = null;
  private closed = false;
  private readonly loop: Promise<void>;
  /** Counters for observability. */
  readonly stats = { batches: 0, events: 0, gaps: 0, replayed: 0, decodeErrors: 0 };

  constructor(private readonly opts: KvEventSubscriberOptions) {
    this.sub = new zmq.Subscriber({ linger: 0, receiveHighWaterMark: 0 });
    this.sub.connect(opts.endpoint);
    this.sub.subscribe(opts.topic ?? '');
    this.loop = this.run();
  }

  private deliver(payload: Uint8Array, seq: bigint, topic: string): void {
    let batch: KvEventBatch;
    try {
      batch = decodeKvEventBatch(payload);
    } catch (e) {
      this.stats.decodeErrors++;
      this.opts.onError?.(e as Error);
      return;
    }
    this.stats.batches++;
    this.stats.events += batch.events.length;
    this.opts.onBatch(batch, seq, topic);
  }

  private async run(): Promise<void> {
    try {
      for await (const frames of this.sub) {
        if (this.closed) break;
        if (frames.length !== 3) {
          this.opts.onError?.(new KvEventDecodeError(`expected 3 frames, got ${frames.length}`));
          continue;
        }
        const [topicB, seqB, payload] = frames as [Buffer, Buffer, Buffer];
        let seq: bigint;
        try {
          seq = decodeSeq(seqB);
        } catch (e) {
          this.opts.onError?.(e as Error);
          continue;
        }
        const topic = topicB.toString('utf8');
        if (this.lastSeq !== null) {
          const expected = this.lastSeq + 1n;
          if (seq < expected) {
            this.stats.gaps++;
            this.opts.onGap?.({ kind: 'restart', expected, got: seq });
          } else if (seq > expected) {
            const filled = this.opts.replayEndpoint ? await this.replay(expected, seq, topic) : false;
            if (!filled) {
              this.stats.gaps++;
              this.opts.onGap?.({ kind: 'gap', expected, got: seq });
            }
          }
        }
        this.lastSeq = seq;
        this.deliver(payload, seq, topic);
      }
    } catch (e) {
      if (!this.closed) this.opts.onError?.(e as Error);
    }
  }

  /** Fetches batches [from, to) from the replay endpoint; true when all of them arrived. */
  private async replay(from: bigint, to: bigint, topic: string): Promise<boolean> {
    const dealer = new zmq.Dealer({ linger: 0, receiveTimeout: this.opts.replayTimeoutMs ?? 1000 });
    try {
      dealer.connect(this.opts.replayEndpoint!);
      await dealer.send([Buffer.alloc(0), encodeSeq(from)]);
      let next = from;
      for (;;) {
        const frames = await dealer.receive();
        const [, seqB, payload] = frames.length === 3 ? frames : [null, frames[0]!, frames[1]!];
        const seq = decodeSeq(seqB as Buffer);
        if (seq === -1n) break;
        if (seq < next || seq >= to) continue;
        if (seq !== next) return false;
        this.stats.replayed++;
        this.deliver(payload as Buffer, seq, topic);
        next = seq + 1n;
      }
      return next === to;
    } catch {
      return false;
    } finally {
      dealer.close();
    }
  }

  /** Stops receiving and closes the socket. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sub.close();
    await this.loop.catch(() => {});
  }
}
