import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryCounterStore } from '../../src/limits/memory.ts';
import { RateLimiter } from '../../src/limits/rate-limiter.ts';
import { windowOf } from '../../src/limits/store.ts';

const T0 = 1_700_000_040_000; // a minute boundary (divisible by 60 000)

test('windowOf: epoch-aligned fixed windows; bad input throws', () => {
  assert.equal(T0 % 60_000, 0);
  assert.deepEqual(windowOf(T0 + 59_999, 60_000), { index: T0 / 60_000, startMs: T0, endMs: T0 + 60_000 });
  assert.equal(windowOf(T0 + 60_000, 60_000).index, T0 / 60_000 + 1);
  assert.throws(() => windowOf(T0, 0), /windowMs/);
  assert.throws(() => windowOf(NaN, 1000), /nowMs/);
});

test('store: increment, get, incrementIfWithin exactly at the limit, windows separate, sweep', async () => {
  const s = new MemoryCounterStore(1_000_000);
  assert.equal(await s.get('k', 1000, T0), 0);
  assert.equal(await s.increment('k', 3, 1000, T0), 3);
  assert.deepEqual(await s.incrementIfWithin('k', 2, 5, 1000, T0 + 999), { allowed: true, value: 5 });
  assert.deepEqual(await s.incrementIfWithin('k', 1, 5, 1000, T0 + 999), { allowed: false, value: 5 });
  assert.equal(await s.get('k', 1000, T0 + 1000), 0); // next window
  assert.equal(await s.get('k', 60_000, T0), 0); // other window length, other counter
  assert.equal(await s.increment('k', -1, 1000, T0), 4);
  await assert.rejects(s.increment('k', 1.5, 1000, T0), /safe integer/);
  assert.equal(s.size, 1);
  s.sweep(T0 + 1000);
  assert.equal(s.size, 0);
});

test('RPM: exactly the limit passes, the next is 429 with retry-after to the window end; roll-over resets', async () => {
  const rl = new RateLimiter(new MemoryCounterStore());
  const now = T0 + 15_000;
  for (let i = 1; i <= 3; i++) {
    const r = await rl.checkRequest('alice', { rpm: 3 }, now);
    assert.equal(r.allowed, true);
    assert.equal(r.kind, 'rpm');
    assert.equal(r.remaining, 3 - i);
    assert.equal(r.limit, 3);
  }
  const rej = await rl.checkRequest('alice', { rpm: 3 }, now + 500);
  assert.deepEqual(
    { allowed: rej.allowed, kind: rej.kind, remaining: rej.remaining, retryAfterS: rej.retryAfterS, limit: rej.limit },
    { allowed: false, kind: 'rpm', remaining: 0, retryAfterS: 45, limit: 3 }, // 44.5 s left -> 45
  );
  // other keys are independent
  assert.equal((await rl.checkRequest('bob', { rpm: 3 }, now)).allowed, true);
  // the last ms of the window: still rejected, retry-after at least 1
  const last = await rl.checkRequest('alice', { rpm: 3 }, T0 + 59_999);
  assert.equal(last.allowed, false);
  assert.equal(last.retryAfterS, 1);
  // next window
  const next = await rl.checkRequest('alice', { rpm: 3 }, T0 + 60_000);
  assert.equal(next.allowed, true);
  assert.equal(next.remaining, 2);
});

test('TPM: check-before with the current window, add-after from usage; rejection does not use RPM', async () => {
  const rl = new RateLimiter(new MemoryCounterStore());
  const lim = { rpm: 10, tpm: 1000 };
  const a = await rl.checkRequest('k', lim, T0);
  assert.equal(a.allowed, true);
  assert.deepEqual(a.tokens, { limit: 1000, remaining: 1000 });
  assert.equal(await rl.addTokens('k', 999, T0 + 100), 999);
  const b = await rl.checkRequest('k', lim, T0 + 200); // 999 < 1000: allowed (check-before)
  assert.equal(b.allowed, true);
  assert.equal(b.kind, 'tpm'); // tokens are the tighter limit now
  assert.equal(b.remaining, 1);
  assert.equal(await rl.addTokens('k', 500, T0 + 300), 1499); // one request overshoots
  const c = await rl.checkRequest('k', lim, T0 + 400);
  assert.equal(c.allowed, false);
  assert.equal(c.kind, 'tpm');
  assert.equal(c.retryAfterS, 60);
  // RPM was not consumed by the TPM rejection: 2 used, 8 left
  const d = await rl.checkRequest('k', { rpm: 10 }, T0 + 500);
  assert.deepEqual(d.requests, { limit: 10, remaining: 7 });
  // next minute: tokens reset
  assert.equal((await rl.checkRequest('k', lim, T0 + 60_000)).allowed, true);
  await assert.rejects(rl.addTokens('k', -5, T0), /tokens must be >= 0/);
});

test('per-model RPS: limit per second, release gives back a slot of the right window', async () => {
  const rl = new RateLimiter(new MemoryCounterStore());
  assert.equal((await rl.acquireModelRps('llama', 2, T0)).allowed, true);
  assert.equal((await rl.acquireModelRps('llama', 2, T0 + 10)).allowed, true);
  const r = await rl.acquireModelRps('llama', 2, T0 + 400);
  assert.deepEqual(r, { allowed: false, retryAfterS: 1, limit: 2, remaining: 0, kind: 'rps' });
  await rl.releaseModelRps('llama', T0 + 10);
  assert.equal((await rl.acquireModelRps('llama', 2, T0 + 500)).allowed, true);
  assert.equal((await rl.acquireModelRps('llama', 2, T0 + 1000)).allowed, true); // next second
});

test('no limits: allowed with Infinity; bad limits throw', async () => {
  const rl = new RateLimiter(new MemoryCounterStore());
  assert.deepEqual(await rl.checkRequest('k', {}, T0), { allowed: true, retryAfterS: 0, limit: Infinity, remaining: Infinity });
  await assert.rejects(rl.checkRequest('k', { rpm: 0 }, T0), /rpm must be a positive integer/);
  await assert.rejects(rl.checkRequest('k', { tpm: 1.5 }, T0), /tpm must be a positive integer/);
  await assert.rejects(rl.acquireModelRps('m', -1, T0), /rps/);
});

test('concurrent checks in one process never exceed the limit', async () => {
  const rl = new RateLimiter(new MemoryCounterStore());
  const results = await Promise.all(Array.from({ length: 50 }, () => rl.checkRequest('k', { rpm: 17 }, T0)));
  assert.equal(results.filter((r) => r.allowed).length, 17);
});
