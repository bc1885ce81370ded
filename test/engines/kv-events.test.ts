import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as zmq from 'zeromq';
import { encode } from '@msgpack/msgpack';
import {
  KvEventPublisher,
  KvEventSubscriber,
  decodeKvEventBatch,
  decodeSeq,
  encodeKvEventBatch,
  encodeSeq,
  shouldBind,
  type KvEventBatch,
  type KvEventGap,
} from '../../src/engines/vllm/kv-events.ts';

const BIG = 0xfedcba9876543210n; // > 2^63

test('codec round-trips and matches msgspec array_like layout', () => {
  const batch: KvEventBatch = {
    ts: 1700000000.25,
    events: [
      { type: 'BlockStored', blockHashes: [BIG, 5n], parentBlockHash: null, tokenIds: [1, 2, 3, 4, 5, 6, 7, 8], blockSize: 4, loraId: null, medium: 'GPU', loraName: null },
      { type: 'BlockRemoved', blockHashes: [BIG], medium: 'GPU' },
      { type: 'AllBlocksCleared' },
    ],
  };
  const bytes = encodeKvEventBatch(batch);
  assert.deepEqual(decodeKvEventBatch(bytes), batch);
  // the layout msgspec writes, built independently (ints in their shortest msgpack form)
  const expected = encode(
    [1700000000.25, [['BlockStored', [BIG, 5], null, [1, 2, 3, 4, 5, 6, 7, 8], 4, null, 'GPU', null], ['BlockRemoved', [BIG], 'GPU'], ['AllBlocksCleared']]],
    { useBigInt64: true },
  );
  assert.deepEqual(Buffer.from(bytes), Buffer.from(expected));
});

test('decoder accepts old short events, small int hashes, bytes hashes and a dp rank; rejects unknown tags', () => {
  const payload = encode([1.5, [['BlockStored', [7, 8], 6, [1, 2], 1, null], ['BlockRemoved', [new Uint8Array([1, 2])]]], 0]);
  const b = decodeKvEventBatch(payload);
  assert.equal(b.dataParallelRank, 0);
  const s = b.events[0]!;
  assert.equal(s.type, 'BlockStored');
  if (s.type === 'BlockStored') {
    assert.deepEqual(s.blockHashes, [7n, 8n]);
    assert.equal(s.parentBlockHash, 6n);
    assert.equal(s.medium, null);
    assert.equal(s.loraName, null);
  }
  const r = b.events[1]!;
  assert.ok(r.type === 'BlockRemoved' && r.blockHashes[0] instanceof Uint8Array);
  assert.throws(() => decodeKvEventBatch(encode([1, [['Nope']]])), /unknown KV event tag/);
  assert.throws(() => decodeKvEventBatch(encode({ a: 1 })), /KVEventBatch/);
  assert.throws(() => decodeKvEventBatch(new Uint8Array([0xc1])), /not msgpack/);
});

test('sequence frames are 8-byte big-endian; bind rule follows vLLM', () => {
  assert.deepEqual([...encodeSeq(258)], [0, 0, 0, 0, 0, 0, 1, 2]);
  assert.equal(decodeSeq(encodeSeq(-1)), -1n);
  assert.ok(shouldBind('tcp://*:5557'));
  assert.ok(!shouldBind('tcp://127.0.0.1:5557'));
});

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

const stored = (h: bigint): KvEventBatch => ({ ts: 1, events: [{ type: 'BlockStored', blockHashes: [h], parentBlockHash: null, tokenIds: [1], blockSize: 1, loraId: null, medium: 'GPU', loraName: null }] });

test('PUB -> SUB over loopback with topic and sequence numbers', async (t) => {
  const pub = await KvEventPublisher.create({ endpoint: 'tcp://127.0.0.1:*', topic: 'kv' });
  t.after(() => pub.close());
  const got: Array<[bigint, bigint, string]> = [];
  const sub = new KvEventSubscriber({ endpoint: pub.lastEndpoint, topic: 'kv', onBatch: (b, seq, topic) => got.push([seq, (b.events[0] as { blockHashes: bigint[] }).blockHashes[0]!, topic]) });
  t.after(() => sub.close());
  // slow joiner: publish until the subscription is live
  await until(() => {
    pub.publish(stored(0n));
    return got.length > 0;
  }, 'subscription');
  const before = got.length;
  for (let i = 1n; i <= 5n; i++) pub.publish(stored(i));
  await until(() => got.length >= before + 5, 'batches');
  const tail = got.slice(-5);
  assert.deepEqual(tail.map((x) => x[1]), [1n, 2n, 3n, 4n, 5n]);
  assert.ok(tail.every((x, i) => i === 0 || x[0] === tail[i - 1]![0] + 1n));
  assert.equal(tail[0]![2], 'kv');
});

test('a sequence gap is replayed from the ROUTER, or reported when no replay endpoint exists', async (t) => {
  // A raw PUB lets the test skip sequence numbers deliberately; a publisher-owned replay ROUTER serves the missing batch.
  const raw = new zmq.Publisher({ linger: 0 });
  await raw.bind('tcp://127.0.0.1:*');
  t.after(() => raw.close());
  const replayPub = await KvEventPublisher.create({ endpoint: 'tcp://127.0.0.1:*', replayEndpoint: 'tcp://127.0.0.1:*' });
  t.after(() => replayPub.close());
  for (let i = 0n; i < 4n; i++) replayPub.publish(stored(100n + i)); // seqs 0..3 buffered for replay

  const withReplay: bigint[] = [];
  const gaps: KvEventGap[] = [];
  const sub = new KvEventSubscriber({ endpoint: raw.lastEndpoint!, replayEndpoint: replayPub.replayLastEndpoint, onBatch: (b, seq) => withReplay.push(seq), onGap: (g) => gaps.push(g) });
  t.after(() => sub.close());
  const noReplayGaps: KvEventGap[] = [];
  const sub2 = new KvEventSubscriber({ endpoint: raw.lastEndpoint!, onBatch: () => {}, onGap: (g) => noReplayGaps.push(g) });
  t.after(() => sub2.close());
  const payload = encodeKvEventBatch(stored(1n));
  await until(() => {
    void raw.send(['', encodeSeq(0), payload]);
    return withReplay.length > 0 && sub2.stats.batches > 0;
  }, 'subscription');
  // the warm-up loop re-sent seq 0 (each one a 'restart'); clear before the real check
  await new Promise((r) => setTimeout(r, 150)); // let warm-up frames already sent arrive
  gaps.length = 0;
  noReplayGaps.length = 0;
  await raw.send(['', encodeSeq(1), payload]);
  await raw.send(['', encodeSeq(3), payload]); // seq 2 missing
  await until(() => withReplay.includes(3n) && noReplayGaps.length > 0, 'gap handling');
  assert.ok(withReplay.includes(2n), 'seq 2 replayed');
  assert.deepEqual(gaps, []);
  assert.deepEqual(noReplayGaps, [{ kind: 'gap', expected: 2n, got: 3n }]);
  assert.ok(sub.stats.replayed >= 1);
  await raw.send(['', encodeSeq(0), payload]); // publisher restart
  await until(() => noReplayGaps.length > 1, 'restart');
  assert.deepEqual(noReplayGaps[1], { kind: 'restart', expected: 4n, got: 0n });
});

test('wire-compatible with Python msgspec (0.22) using vLLM\'s KVEventBatch schema, both directions', () => {
  // Bytes produced by msgspec.msgpack.encode(KVEventBatch(ts=1.5, events=[BlockStored([2**64-1, 3], None, [1, 2], 1,
  // None, "GPU", None), BlockRemoved([3], "GPU"), AllBlocksCleared()], data_parallel_rank=0)) with vLLM's structs
  // (array_like=True, omit_defaults=True, tag=True).
  const fromPython = Buffer.from(
    '93cb3ff80000000000009398ab426c6f636b53746f72656492cfffffffffffffffff03c092010201c0a3475055c093ac426c6f636b52656d6f7665649103a347505591b0416c6c426c6f636b73436c656172656400',
    'hex',
  );
  const batch: KvEventBatch = {
    ts: 1.5,
    events: [
      { type: 'BlockStored', blockHashes: [2n ** 64n - 1n, 3n], parentBlockHash: null, tokenIds: [1, 2], blockSize: 1, loraId: null, medium: 'GPU', loraName: null },
      { type: 'BlockRemoved', blockHashes: [3n], medium: 'GPU' },
      { type: 'AllBlocksCleared' },
    ],
    dataParallelRank: 0,
  };
  assert.deepEqual(decodeKvEventBatch(fromPython), batch);
  assert.equal(Buffer.from(encodeKvEventBatch(batch)).toString('hex'), fromPython.toString('hex'), 'byte-identical to msgspec');
});
