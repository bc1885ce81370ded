import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ModelRoutingProfilesSchema,
  UnknownProfileError,
  resolveProfile,
  selectStrategySpec,
  validateModelRoutingProfiles,
  type ModelRoutingProfiles,
} from '../../src/routing/profiles.ts';

const profiles: ModelRoutingProfiles = ModelRoutingProfilesSchema.parse({
  defaultProfile: 'chat',
  profiles: {
    chat: { routingStrategy: 'least-request', requestsPerSecond: 5 },
    long: { routingStrategy: 'least-kv-cache:2,least-request', routingConfig: { promptTokensGte: 4096 } },
    huge: { routingStrategy: 'least-latency', routingConfig: { promptTokensGte: 16384 } },
    short: { routingStrategy: 'session-affinity', strategyOptions: { maxSessions: 10 }, routingConfig: { promptTokensLt: 4096 } },
    shortgen: { routingStrategy: 'throughput', routingConfig: { promptTokensLt: 4096, maxTokensLt: 64 } },
    nostrategy: { requestsPerSecond: 1 },
  },
});

test('selection order: header > profile > model default > fleet default', () => {
  const base = { fleetDefault: 'random', promptLength: 10 };
  assert.deepEqual(selectStrategySpec(base), { spec: 'random', source: 'fleet' });
  assert.deepEqual(selectStrategySpec({ ...base, modelDefault: 'round-robin' }), { spec: 'round-robin', source: 'model' });
  const p = selectStrategySpec({ ...base, modelDefault: 'round-robin', profiles });
  assert.deepEqual(p, { spec: 'least-request', source: 'profile', profile: 'chat', requestsPerSecond: 5 });
  const h = selectStrategySpec({ ...base, modelDefault: 'round-robin', profiles, header: ' power-of-two ' });
  assert.deepEqual(h, { spec: 'power-of-two', source: 'header', profile: 'chat', requestsPerSecond: 5 });
  // a profile without a strategy falls through to the model default but keeps its RPS limit
  const n = selectStrategySpec({ ...base, modelDefault: 'round-robin', profiles, profileHeader: 'nostrategy' });
  assert.deepEqual(n, { spec: 'round-robin', source: 'model', profile: 'nostrategy', requestsPerSecond: 1 });
  // empty header is returned for createStrategy to reject (400), not silently replaced
  assert.equal(selectStrategySpec({ ...base, header: '' }).spec, '');
});

test('locked strategy beats the header', () => {
  const locked = ModelRoutingProfilesSchema.parse({ lockedRoutingStrategy: 'least-request', profiles: {} });
  assert.deepEqual(selectStrategySpec({ fleetDefault: 'random', promptLength: 1, header: 'random', profiles: locked }), { spec: 'least-request', source: 'locked' });
});

test('config-profile by name, with options; unknown name -> UnknownProfileError', () => {
  const s = selectStrategySpec({ fleetDefault: 'random', promptLength: 10, profiles, profileHeader: 'short' });
  assert.deepEqual(s, { spec: 'session-affinity', source: 'profile', options: { maxSessions: 10 }, profile: 'short' });
  assert.throws(
    () => selectStrategySpec({ fleetDefault: 'random', promptLength: 10, profiles, profileHeader: 'nope' }),
    (e: unknown) => e instanceof UnknownProfileError && /unknown routing profile 'nope'; known profiles: chat, huge, long/.test((e as Error).message),
  );
  assert.throws(() => resolveProfile(undefined, 'x', { promptLength: 1 }), /known profiles: \(none\)/);
});

test('auto: prompt-length buckets, most specific wins, none -> default', () => {
  const auto = (promptLength: number, maxTokens?: number) => resolveProfile(profiles, 'auto', { promptLength, maxTokens })?.name;
  assert.equal(auto(5000), 'long');
  assert.equal(auto(4096), 'long'); // Gte inclusive
  assert.equal(auto(4095), 'short'); // Lt exclusive
  assert.equal(auto(20000), 'huge'); // long and huge match: larger Gte wins
  assert.equal(auto(100, 32), 'shortgen'); // more hints win
  assert.equal(auto(100, 64), 'short');
  assert.equal(auto(100), 'short'); // maxTokens hint on a missing feature fails
  const onlyHinted = ModelRoutingProfilesSchema.parse({ profiles: { a: { routingConfig: { promptTokensGte: 100 } }, default: { routingStrategy: 'random' } } });
  assert.equal(resolveProfile(onlyHinted, 'auto', { promptLength: 5 })?.name, 'default');
  assert.equal(resolveProfile(ModelRoutingProfilesSchema.parse({ profiles: {} }), 'auto', { promptLength: 5 }), undefined);
  // alphabetical tie-break among equally specific
  const tie = ModelRoutingProfilesSchema.parse({ profiles: { zeta: { routingConfig: { promptTokensGte: 10 } }, alpha: { routingConfig: { promptTokensGte: 10 } } } });
  assert.equal(resolveProfile(tie, 'auto', { promptLength: 50 })?.name, 'alpha');
});

test('no header: defaultProfile, else a profile named default, else none', () => {
  assert.equal(resolveProfile(profiles, undefined, { promptLength: 1 })?.name, 'chat');
  const d = ModelRoutingProfilesSchema.parse({ profiles: { default: { routingStrategy: 'random' }, x: {} } });
  assert.equal(resolveProfile(d, undefined, { promptLength: 1 })?.name, 'default');
  assert.equal(resolveProfile(ModelRoutingProfilesSchema.parse({ profiles: { x: {} } }), undefined, { promptLength: 1 }), undefined);
});

test('schema and validation errors name the field', () => {
  const r1 = ModelRoutingProfilesSchema.safeParse({ defaultProfile: 'missing', profiles: {} });
  assert.equal(r1.success, false);
  assert.deepEqual(!r1.success && r1.error.issues[0]!.path, ['defaultProfile']);
  const r2 = ModelRoutingProfilesSchema.safeParse({ profiles: { auto: {} } });
  assert.equal(r2.success, false);
  const r3 = ModelRoutingProfilesSchema.safeParse({ profiles: { a: { routingConfig: { promptTokensGte: -1 } } } });
  assert.deepEqual(!r3.success && r3.error.issues[0]!.path, ['profiles', 'a', 'routingConfig', 'promptTokensGte']);
  validateModelRoutingProfiles(profiles);
  assert.throws(
    () => validateModelRoutingProfiles(ModelRoutingProfilesSchema.parse({ profiles: { a: { routingStrategy: 'least-requests' } } })),
    /^Error: profiles\.a\.routingStrategy: unknown routing strategy 'least-requests'/,
  );
  assert.throws(
    () => validateModelRoutingProfiles(ModelRoutingProfilesSchema.parse({ profiles: { a: { routingStrategy: 'random', strategyOptions: { loadMode: 'sum' } } } })),
    /profiles\.a\.routingStrategy: strategy random: option/,
  );
  assert.throws(() => validateModelRoutingProfiles(ModelRoutingProfilesSchema.parse({ lockedRoutingStrategy: 'a:b:c', profiles: {} })), /^Error: lockedRoutingStrategy: /);
});
