/**
 * KV events in the gateway: the fleet file's KV-event sources, the per-model feed, and an
 * integration run: 3 simulated engines publishing KV events over ZeroMQ, the gateway routing
 * `kv-aware` (speculative entries off, so only the events can make it sticky), a multi-turn
 * conversation staying on the endpoint that holds its prefix while cold conversations spread.
 */
import { test, after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseFleet, validateFleet, FleetConfigError } from '../../src/fleet/config.ts';
import { renderCommand } from '../../src/fleet/managed.ts';
import { runFleet, type RunningFleet } from '../../src/gateway/runtime.ts';
import { ModelKvFeed } from '../../src/gateway/kv-events.ts';
import type { KvEventBatch } from '../../src/engines/vllm/kv-events.ts';
import { KvAwareStrategy } from '../../src/routing/cache/kv-aware.ts';
import { post } from './helpers.ts';

const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';

function problems(text: string): FleetConfigError['problems'] {
  try {
    parseFleet(text, 'f.yaml');
  } catch (e) {
    assert.ok(e instanceof FleetConfigError, String(e));
    assert.match(e.message, /^f\.yaml:\d+:\d+: /);
    return e.problems;
  }
  assert.fail('expected a FleetConfigError');
}

async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('fleet file: KV-event sources', () => {
  test('static endpoints: address string or {endpoint, replay, topic}', () => {
    const f = parseFleet(
      [
        'models:',
        '  - name: m',
        '    routing: kv-aware',
        '    endpoints:',
        '      - { url: "http://10.0.0.1:8000", kvEvents: "tcp://10.0.0.1:5557" }',
        '      - { url: "http://10.0.0.2:8000", kvEvents: { endpoint: "tcp://10.0.0.2:5557", replay: "tcp://10.0.0.2:5558", topic: "kv" } }',
        '      - http://10.0.0.3:8000',
      ].join('\n'),
    );
    const eps = f.models[0]!.endpoints!;
    assert.deepEqual((eps[0] as { kvEvents?: unknown }).kvEvents, { endpoint: 'tcp://10.0.0.1:5557' });
    assert.deepEqual((eps[1] as { kvEvents?: unknown }).kvEvents, { endpoint: 'tcp://10.0.0.2:5557', replay: 'tcp://10.0.0.2:5558', topic: 'kv' });
  });

  test('a bind-only or malformed address is rejected with file, line and field', () => {
    const p = problems(['models:', '  - name: m', '    endpoints:', '      - url: http://10.0.0.1:8000', '        kvEvents: "tcp://*:5557"'].join('\n'));
    assert.equal(p.length, 1);
    assert.equal(p[0]!.path, 'models.0.endpoints.0.kvEvents');
    assert.equal(p[0]!.line, 5);
    assert.match(p[0]!.message, /tcp:\/\/host:port/);
    const q = problems(['models:', '  - name: m', '    endpoints:', '      - url: http://10.0.0.1:8000', '        kvEvents: { endpoint: "tcp://h:1", replay: "http://h:2" }'].join('\n'));
    assert.equal(q[0]!.path, 'models.0.endpoints.0.kvEvents.replay');
  });

  test('simulator.kvEvents is a boolean and excludes explicit kvEventsEndpoint', () => {
    const f = parseFleet('models:\n  - name: m\n    simulator: { replicas: 2, kvEvents: true }\n');
    assert.equal(f.models[0]!.simulator!.kvEvents, true);
    assert.equal(parseFleet('models:\n  - name: m\n    simulator: { replicas: 2 }\n').models[0]!.simulator!.kvEvents, false);
    const p = problems('models:\n  - name: m\n    simulator: { kvEvents: yes-please }\n');
    assert.equal(p[0]!.path, 'models.0.simulator.kvEvents');
    const q = problems('models:\n  - name: m\n    simulator: { kvEvents: true, kvEventsEndpoint: "tcp://*:5557" }\n');
    assert.equal(q[0]!.path, 'models.0.simulator.kvEvents');
    assert.equal(q[0]!.line, 3);
  });

  test('managed templates: {kvEventsPort} and {kvEventsReplayPort} are filled; replay alone is rejected', () => {
    const t = `vllm serve {model} --port {port} --kv-events-config '{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:{kvEventsPort}","replay_endpoint":"tcp://*:{kvEventsReplayPort}"}'`;
    assert.equal(
      renderCommand(t, { model: 'x', port: 8001, replica: 0, host: '127.0.0.1', kvEventsPort: 5557, kvEventsReplayPort: 5558 }),
      `vllm serve x --port 8001 --kv-events-config '{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:5557","replay_endpoint":"tcp://*:5558"}'`,
    );
    assert.ok(parseFleet(`models:\n  - name: m\n    command: "${t.replaceAll('"', '\\"')}"\n`).models[0]!.command);
    const p = problems('models:\n  - name: m\n    command: "serve --port {port} --replay {kvEventsReplayPort}"\n');
    assert.equal(p[0]!.path, 'models.0.command');
  });
});

describe('ModelKvFeed', () => {
  const stored = (hashes: bigint[], medium: string | null = 'GPU'): KvEventBatch => ({
    ts: 0,
    events: [{ type: 'BlockStored', blockHashes: hashes, parentBlockHash: null, tokenIds: [], blockSize: 16, loraId: null, medium, loraName: null }],
  });

  test('a sink added later is seeded with the blocks already reported, then follows the stream', () => {
    const feed = new ModelKvFeed();
    const early = new KvAwareStrategy({ speculativeTtlMs: 0 });
    feed.addSink(early);
    feed.applyKvEvents('a', stored([1n, 2n, 3n]));
    feed.applyKvEvents('a', { ts: 0, events: [{ type: 'BlockRemoved', blockHashes: [3n], medium: 'GPU' }] });
    feed.applyKvEvents('b', stored([7n]));
    feed.applyKvEvents('b', stored([8n], 'CPU')); // offload tier: not indexed
    const late = new KvAwareStrategy({ speculativeTtlMs: 0 });
    feed.addSink(late);
    for (const s of [early, late]) {
      assert.deepEqual([s.kvIndex.has('a', 1), s.kvIndex.has('a', 2), s.kvIndex.has('a', 3), s.kvIndex.has('b', 7), s.kvIndex.has('b', 8)], [true, true, false, true, false]);
    }
    feed.applyKvEvents('b', stored([9n]));
    assert.ok(late.kvIndex.has('b', 9) && early.kvIndex.has('b', 9));
    assert.equal(feed.blocksOf('a'), 2);
    assert.deepEqual(feed.counters.get('a'), { blockStored: 1, blockRemoved: 1, allBlocksCleared: 0, batches: 2, gaps: 0 });
  });

  test('a gap makes every sink and the mirror forget that endpoint only', () => {
    const feed = new ModelKvFeed();
    const s = new KvAwareStrategy({ speculativeTtlMs: 0 });
    feed.addSink(s);
    feed.applyKvEvents('a', stored([1n]));
    feed.applyKvEvents('b', stored([2n]));
    feed.onKvEventGap('a');
    assert.equal(s.kvIndex.has('a', 1), false);
    assert.equal(s.kvIndex.has('b', 2), true);
    assert.equal(feed.blocksOf('a'), 0);
    assert.equal(feed.counters.get('a')!.gaps, 1);
    const late = new KvAwareStrategy({ speculativeTtlMs: 0 });
    feed.addSink(late);
    assert.equal(late.kvIndex.has('a', 1), false);
    assert.equal(late.kvIndex.has('b', 2), true);
  });

  test('late events of an endpoint that left are dropped until it rejoins', () => {
    const feed = new ModelKvFeed();
    const s = new KvAwareStrategy({ speculativeTtlMs: 0 });
    feed.addSink(s);
    feed.applyKvEvents('a', stored([1n]));
    feed.removeEndpoint('a');
    s.onEndpointRemoved('a');
    feed.applyKvEvents('a', stored([2n]));
    assert.equal(s.kvIndex.blocksOf('a'), 0);
    assert.equal(feed.blocksOf('a'), 0);
    feed.addEndpoint('a');
    feed.applyKvEvents('a', stored([3n]));
    assert.ok(s.kvIndex.has('a', 3));
    assert.equal(feed.blocksOf('a'), 1);
  });
});

describe('gateway with static endpoints declaring kvEvents', () => {
  test('follows declared publishers only, and not when routing is locked to a strategy without KV events', async () => {
    const cfg = validateFleet({
      gateway: { port: 0, logLevel: 'silent', scrapeIntervalMs: 3_600_000, healthIntervalMs: 3_600_000 },
      models: [
        { name: 'a', endpoints: [{ url: 'http://127.0.0.1:9', id: 'a0', kvEvents: 'tcp://127.0.0.1:9' }, { url: 'http://127.0.0.1:9', id: 'a1' }] },
        { name: 'b', lockedRoutingStrategy: 'least-request', endpoints: [{ url: 'http://127.0.0.1:9', id: 'b0', kvEvents: 'tcp://127.0.0.1:9' }] },
      ],
    });
    const run = await runFleet(cfg, { port: 0 });
    try {
      const f = await until('a0 followed', () => run.gateway.kvEvents.followed().get('a')?.includes('a0') && run.gateway.kvEvents.followed());
      assert.deepEqual(f.get('a'), ['a0']);
      assert.equal(f.get('b'), undefined);
      run.fleet.removeEndpoint('a0');
      await until('a0 unfollowed', () => run.gateway.kvEvents.followed().get('a')?.length === 0);
    } finally {
      await run.stop(0);
    }
  });
});

describe('gateway + 3 simulated engines publishing KV events, kv-aware', () => {
  let run: RunningFleet;
  before(async () => {
    const cfg = validateFleet({
      gateway: { port: 0, logLevel: 'silent', scrapeIntervalMs: 200, healthIntervalMs: 3_600_000 },
      models: [{ name: MODEL, routing: 'kv-aware', routingOptions: { speculativeTtlMs: 0 }, simulator: { gpu: 'H100', replicas: 3, timeScale: 50, kvEvents: true } }],
    });
    run = await runFleet(cfg, { port: 0 });
  });
  after(async () => {
    await run?.stop(0);
  });

  const words = (tag: string, n: number) => Array.from({ length: n }, (_, i) => `${tag}-${i}`).join(' ');
  const metric = async (endpoint: string, type: string): Promise<number> => {
    const text = await (await fetch(`${run.url}/metrics`)).text();
    const re = new RegExp(`^inferplane_kv_events_total\\{([^}]*)\\} (\\d+)`, 'gm');
    let total = 0;
    for (const m of text.matchAll(re)) if (m[1]!.includes(`endpoint="${endpoint}"`) && m[1]!.includes(`type="${type}"`)) total += Number(m[2]);
    return total;
  };

  test('every endpoint is followed', async () => {
    const ids = run.fleet.endpointsOf(MODEL).map((e) => e.id).sort();
    assert.equal(ids.length, 3);
    await until('3 followed', () => run.gateway.kvEvents.followed().get(MODEL)?.length === 3);
    assert.deepEqual([...run.gateway.kvEvents.followed().get(MODEL)!].sort(), ids);
  });

  test('a multi-turn conversation stays on the endpoint holding its prefix; cold conversations spread', async () => {
    const feed = run.gateway.kvEvents.feed(MODEL);
    const messages: { role: string; content: string }[] = [{ role: 'user', content: `Conversation alpha. ${words('alpha', 60)}` }];
    let home = '';
    for (let turn = 1; turn <= 5; turn++) {
      const r = await post(`${run.url}/v1/chat/completions`, { model: MODEL, messages, max_tokens: 8 });
      assert.equal(r.status, 200, r.text);
      const pod = r.headers.get('target-pod')!;
      const body = r.json();
      const promptBlocks = Math.floor(body.usage.prompt_tokens / 16);
      assert.ok(promptBlocks >= 4, `prompt fills several blocks (${body.usage.prompt_tokens} tokens)`);
      if (turn === 1) home = pod;
      else assert.equal(pod, home, `turn ${turn} went to ${pod}, its prefix is on ${home}`);
      // Wait until the engine's BlockStored events for this prompt reached the gateway's index.
      await until(`index holds turn ${turn}'s ${promptBlocks} blocks on ${home}`, () => feed.blocksOf(home) >= promptBlocks);
      messages.push({ role: 'assistant', content: body.choices[0].message.content }, { role: 'user', content: `Turn ${turn + 1}: ${words(`t${turn}`, 20)}` });
    }
    assert.ok((await metric(home, 'BlockStored')) > 0, 'inferplane_kv_events_total counts BlockStored events');

    // A strategy instance built now (first request naming cache-cost-kv) is seeded from what the
    // gateway already learned: the conversation's next turn still goes home.
    const r = await post(`${run.url}/v1/chat/completions`, { model: MODEL, messages, max_tokens: 8 }, { 'routing-strategy': 'cache-cost-kv' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-routing-strategy'), 'cache-cost-kv');
    assert.equal(r.headers.get('target-pod'), home);

    // Cold conversations with other prefixes are not pulled to the warm endpoint.
    const cold = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const c = await post(`${run.url}/v1/chat/completions`, { model: MODEL, messages: [{ role: 'user', content: `Cold ${i} zq${i * 7919}. ${words(`cold${i}`, 40)}` }], max_tokens: 4 });
      assert.equal(c.status, 200, c.text);
      cold.add(c.headers.get('target-pod')!);
    }
    assert.ok(cold.size > 1, `12 cold conversations all went to ${[...cold].join(', ')}`);
  });

  test('an endpoint that leaves is unfollowed', async () => {
    await run.fleet.scaleModel(MODEL, 2);
    await until('2 followed', () => run.gateway.kvEvents.followed().get(MODEL)?.length === 2);
    assert.deepEqual([...run.gateway.kvEvents.followed().get(MODEL)!].sort(), run.fleet.endpointsOf(MODEL).map((e) => e.id).sort());
  });
});
