import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createStrategy } from '../../src/routing/registry.ts';
import { SessionAffinityStrategy, decodeSessionId, rendezvousIndex } from '../../src/routing/strategies/session-affinity.ts';
import { ep, req, ctx } from './helpers.ts';

const sreq = (sid?: string, headers: Record<string, string> = {}) => req({ sessionId: sid, headers: sid ? { 'x-session-id': sid, ...headers } : headers });

test('no session: least-request choice, a minted id naming the endpoint is returned and honoured', () => {
  const s = createStrategy('session-affinity');
  const eps = [ep('a', { inflightRequests: 3 }), ep('b', { inflightRequests: 0 }), ep('c', { inflightRequests: 2 })];
  const d = s.route(sreq(), eps, ctx());
  assert.equal(d.endpoint!.id, 'b');
  assert.match(d.reason, /no session information; least-request/);
  const sid = d.headers!['x-session-id']!;
  assert.equal(decodeSessionId(sid), 'b');
  // now b is the busiest, the session still goes to b
  const eps2 = [ep('a'), ep('b', { inflightRequests: 50 }), ep('c')];
  const d2 = s.route(sreq(sid), eps2, ctx(3));
  assert.equal(d2.endpoint!.id, 'b');
  assert.equal(d2.headers!['x-session-id'], sid);
  // a different strategy instance (another gateway replica) honours it too: stateless
  assert.equal(createStrategy('session-affinity').route(sreq(sid), eps2, ctx(4)).endpoint!.id, 'b');
});

test('minted id whose endpoint is gone or not ready: re-routed and re-minted for the new endpoint', () => {
  const s = createStrategy('session-affinity');
  const sid = s.route(sreq(), [ep('a')], ctx()).headers!['x-session-id']!;
  assert.equal(decodeSessionId(sid), 'a');
  const d = s.route(sreq(sid), [ep('a', { ready: false }), ep('b')], ctx());
  assert.equal(d.endpoint!.id, 'b');
  assert.equal(decodeSessionId(d.headers!['x-session-id']!), 'b');
});

test('client-chosen id: consistent hash first, then bound to the endpoint while it is healthy', () => {
  const s = new SessionAffinityStrategy();
  const eps = [ep('a'), ep('b'), ep('c')];
  const d = s.route(sreq('user-42-chat'), eps, ctx());
  assert.match(d.reason, /consistent hash of x-session-id/);
  assert.equal(d.headers!['x-session-id'], 'user-42-chat');
  const first = d.endpoint!.id;
  assert.equal(first, eps[rendezvousIndex('user-42-chat', eps)]!.id);
  assert.equal(s.size, 1);
  // a new endpoint that would win the hash does not steal the bound session
  let newcomer = '';
  for (let i = 0; i < 200 && newcomer === ''; i++) {
    const cand = [...eps, ep(`n${i}`)];
    if (cand[rendezvousIndex('user-42-chat', cand)]!.id === `n${i}`) newcomer = `n${i}`;
  }
  assert.notEqual(newcomer, '');
  const d2 = s.route(sreq('user-42-chat'), [...eps, ep(newcomer)], ctx());
  assert.equal(d2.endpoint!.id, first);
  assert.match(d2.reason, /session bound to/);
  // bound endpoint unhealthy: moves, and the binding follows
  const moved = s.route(sreq('user-42-chat'), eps.map((e) => (e.id === first ? ep(e.id, { ready: false }) : e)), ctx());
  assert.notEqual(moved.endpoint!.id, first);
  const back = s.route(sreq('user-42-chat'), eps, ctx());
  assert.equal(back.endpoint!.id, moved.endpoint!.id);
});

test('consistent hash is order independent and only moves keys of a removed endpoint', () => {
  const eps = Array.from({ length: 8 }, (_, i) => ep(`e${i}`));
  const rev = [...eps].reverse();
  let moved = 0;
  for (let k = 0; k < 500; k++) {
    const key = `k${k}`;
    const a = eps[rendezvousIndex(key, eps)]!.id;
    assert.equal(rev[rendezvousIndex(key, rev)]!.id, a);
    const without = eps.filter((e) => e.id !== 'e3');
    const b = without[rendezvousIndex(key, without)]!.id;
    if (a !== 'e3') assert.equal(b, a);
    else moved++;
  }
  assert.ok(moved > 20 && moved < 110, `moved ${moved}`); // ~1/8 of 500
});

test('x-session-key: opaque key hashed (not echoed), oversized key ignored', () => {
  const s = createStrategy('session-affinity');
  const eps = [ep('a'), ep('b'), ep('c'), ep('d')];
  const d1 = s.route(sreq(undefined, { 'x-session-key': 'tenant-7' }), eps, ctx(1));
  const d2 = s.route(sreq(undefined, { 'x-session-key': 'tenant-7' }), eps, ctx(99));
  assert.equal(d1.endpoint!.id, d2.endpoint!.id);
  assert.match(d1.reason, /x-session-key/);
  assert.notEqual(d1.headers!['x-session-id'], 'tenant-7');
  const aibrix = s.route(sreq(undefined, { 'x-aibrix-session-key': 'tenant-7' }), eps, ctx(5));
  assert.equal(aibrix.endpoint!.id, d1.endpoint!.id);
  const big = s.route(sreq(undefined, { 'x-session-key': 'x'.repeat(257) }), eps, ctx());
  assert.match(big.reason, /no session information/);
});

test('bindings are bounded (LRU), expire after sessionTtlMs, and are dropped for removed endpoints', () => {
  const s = new SessionAffinityStrategy({ maxSessions: 3, sessionTtlMs: 1000 });
  const eps = [ep('a'), ep('b')];
  for (const sid of ['s1', 's2', 's3', 's4']) s.route(sreq(sid), eps, ctx(1, 0));
  assert.equal(s.size, 3);
  s.onEndpointRemoved('a');
  s.onEndpointRemoved('b');
  assert.equal(s.size, 0);
  // expiry: bound to b by hand (b chosen because a not ready), then after the TTL the hash decides again
  const s2 = new SessionAffinityStrategy({ sessionTtlMs: 1000 });
  let sid = '';
  for (let i = 0; i < 100 && sid === ''; i++) if (eps[rendezvousIndex(`x${i}`, eps)]!.id === 'a') sid = `x${i}`;
  assert.equal(s2.route(sreq(sid), [ep('a', { ready: false }), ep('b')], ctx(1, 0)).endpoint!.id, 'b');
  assert.equal(s2.route(sreq(sid), eps, ctx(1, 500)).endpoint!.id, 'b'); // bound, refreshed at 500
  assert.equal(s2.route(sreq(sid), eps, ctx(1, 1400)).endpoint!.id, 'b'); // 900 ms since last use
  assert.equal(s2.route(sreq(sid), eps, ctx(1, 2500)).endpoint!.id, 'a'); // expired: hash -> a
  assert.throws(() => new SessionAffinityStrategy({ maxSessions: 0 }), /maxSessions/);
});

test('single endpoint still issues a session id (AIBrix does not)', () => {
  const d = createStrategy('session-affinity').route(sreq(), [ep('only')], ctx());
  assert.equal(d.endpoint!.id, 'only');
  assert.equal(decodeSessionId(d.headers!['x-session-id']!), 'only');
});

test('combined with least-request: session wins when weighted higher; headers come through', () => {
  const s = createStrategy('session-affinity:3,least-request');
  const eps = [ep('a', { inflightRequests: 0 }), ep('b', { inflightRequests: 9 })];
  const sid = s.route(sreq(), [ep('b')], ctx()).headers!['x-session-id']!;
  assert.equal(decodeSessionId(sid), 'b');
  const d = s.route(sreq(sid), eps, ctx());
  assert.equal(d.endpoint!.id, 'b');
  assert.equal(d.headers!['x-session-id'], sid);
  // without session info the session member scores all 1 and least-request decides
  const d2 = s.route(sreq(), eps, ctx());
  assert.equal(d2.endpoint!.id, 'a');
  assert.equal(decodeSessionId(d2.headers!['x-session-id']!), 'a');
  // weighted the other way, load wins over the session
  assert.equal(createStrategy('session-affinity,least-request:3').route(sreq(sid), eps, ctx()).endpoint!.id, 'a');
});
