import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { RedisCounterStore } from '../../src/limits/redis.ts';
import { RateLimiter } from '../../src/limits/rate-limiter.ts';
import { startRedis, type TestRedis } from './redis-helper.ts';

const T0 = 1_700_000_040_000; // a minute boundary

let redis: TestRedis;
const clients: Redis[] = [];
const client = () => {
  const c = new Redis(redis.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
  clients.push(c);
  return c;
};

before(async () => {
  redis = await startRedis();
});
after(async () => {
  for (const c of clients) c.disconnect();
  await redis?.stop();
});

test('store: increment, get, conditional increment at the limit, windows, expiry set', async () => {
  const c = client();
  const s = new RedisCounterStore(c, { prefix: 't1:' });
  assert.equal(await s.get('k', 1000, T0), 0);
  assert.equal(await s.increment('k', 3, 1000, T0), 3);
  assert.deepEqual(await s.incrementIfWithin('k', 2, 5, 1000, T0 + 999), { allowed: true, value: 5 });
  assert.deepEqual(await s.incrementIfWithin('k', 1, 5, 1000, T0 + 999), { allowed: false, value: 5 });
  assert.equal(await s.get('k', 1000, T0 + 1000), 0);
  const key = `t1:k:1000:${T0 / 1000}`;
  assert.equal(await c.get(key), '5');
  const ttl = await c.pttl(key);
  assert.ok(ttl > 1000 && ttl <= 6000, `pttl ${ttl}`);
  await assert.rejects(s.increment('k', 0.5, 1000, T0), /safe integer/);
  await s.close(); // does not close a client it does not own
  assert.equal(await c.ping(), 'PONG');
});

test('two RateLimiters with separate clients enforce one RPM limit exactly', async () => {
  const a = new RateLimiter(new RedisCounterStore(client(), { prefix: 't2:' }));
  const b = new RateLimiter(new RedisCounterStore(client(), { prefix: 't2:' }));
  const now = T0 + 30_000;
  const calls = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? a : b).checkRequest('team', { rpm: 37 }, now));
  const results = await Promise.all(calls);
  assert.equal(results.filter((r) => r.allowed).length, 37);
  const rej = results.find((r) => !r.allowed)!;
  assert.equal(rej.kind, 'rpm');
  assert.equal(rej.retryAfterS, 30);
  // both see the same window; the next minute is fresh for both
  assert.equal((await a.checkRequest('team', { rpm: 37 }, now + 29_999)).allowed, false);
  assert.equal((await b.checkRequest('team', { rpm: 37 }, T0 + 60_000)).allowed, true);
});

test('two RateLimiters share TPM (add-after on one, check-before on the other) and model RPS', async () => {
  const a = new RateLimiter(new RedisCounterStore(client(), { prefix: 't3:' }));
  const b = new RateLimiter(new RedisCounterStore(client(), { prefix: 't3:' }));
  assert.equal((await a.checkRequest('k', { tpm: 100 }, T0)).allowed, true);
  await a.addTokens('k', 60, T0 + 10);
  await b.addTokens('k', 40, T0 + 20);
  const r = await b.checkRequest('k', { tpm: 100 }, T0 + 30);
  assert.equal(r.allowed, false);
  assert.equal(r.kind, 'tpm');
  const rps = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).acquireModelRps('llama', 5, T0 + 100)));
  assert.equal(rps.filter((x) => x.allowed).length, 5);
  await a.releaseModelRps('llama', T0 + 100);
  assert.equal((await b.acquireModelRps('llama', 5, T0 + 900)).allowed, true);
  assert.equal((await b.acquireModelRps('llama', 5, T0 + 900)).allowed, false);
});

test('an owned client is closed by close(); errors propagate when Redis is unreachable', async () => {
  const s = new RedisCounterStore(redis.url, { prefix: 't4:' });
  assert.equal(await s.increment('x', 1, 1000, T0), 1);
  await s.close();
  const dead = new Redis({ port: 1, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  clients.push(dead);
  const seen: Error[] = [];
  dead.on('error', (e: Error) => seen.push(e));
  const rl = new RateLimiter(new RedisCounterStore(dead));
  await assert.rejects(rl.checkRequest('k', { rpm: 1 }, T0));
  assert.ok(seen.some((e) => /ECONNREFUSED/.test(e.message)));
});
