/** The fleet file: defaults, the shipped examples, and errors naming file, line and field. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseFleet, loadFleetFile, FleetConfigError } from '../../src/fleet/config.ts';

function problems(text: string): FleetConfigError['problems'] {
  try {
    parseFleet(text, 'f.yaml');
  } catch (e) {
    assert.ok(e instanceof FleetConfigError, String(e));
    assert.match(e.message, /^f\.yaml/);
    return e.problems;
  }
  assert.fail('expected a FleetConfigError');
}

test('a minimal fleet gets the documented defaults', () => {
  const f = parseFleet('models:\n  - name: m\n    endpoints: [http://127.0.0.1:8000/]\n');
  assert.equal(f.gateway.port, 8080);
  assert.equal(f.gateway.routing, 'least-request');
  assert.equal(f.gateway.scrapeIntervalMs, 500);
  assert.equal(f.gateway.maxAttempts, 3);
  assert.equal(f.limits.store, 'memory');
  assert.equal(f.models[0]!.dialect, 'vllm');
  assert.deepEqual(f.models[0]!.endpoints, ['http://127.0.0.1:8000'], 'trailing slash removed');
});

test('the shipped examples are valid', () => {
  const dir = 'examples';
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 3);
  for (const f of files) {
    const cfg = loadFleetFile(join(dir, f));
    assert.ok(cfg.models.length > 0, f);
  }
});

test('an unknown field is reported with its line and path', () => {
  const p = problems('gateway:\n  port: 8080\nmodels:\n  - name: m\n    endpoint: [http://x:1]\n');
  assert.equal(p.length >= 1, true);
  const unknown = p.find((x) => /Unrecognized key/.test(x.message))!;
  assert.equal(unknown.path, 'models.0');
  assert.equal(unknown.line, 4);
});

test('a bad value names the exact field and its line', () => {
  const p = problems('models:\n  - name: m\n    endpoints:\n      - http://ok:1\n      - not-a-url\n');
  assert.equal(p[0]!.path, 'models.0.endpoints.1');
  assert.equal(p[0]!.line, 5);
  const q = problems('gateway:\n  port: "eighty"\nmodels:\n  - {name: m, endpoints: [http://a:1]}\n');
  assert.equal(q[0]!.path, 'gateway.port');
  assert.equal(q[0]!.line, 2);
});

test('a model needs exactly one endpoint source; a command needs {port}', () => {
  assert.match(problems('models:\n  - name: m\n')[0]!.message, /one of `endpoints`, `command` or `simulator`/);
  assert.match(problems('models:\n  - name: m\n    endpoints: [http://a:1]\n    command: "x {port}"\n')[0]!.message, /only one of endpoints, command/);
  const p = problems('models:\n  - name: m\n    command: "vllm serve {model}"\n');
  assert.equal(p[0]!.path, 'models.0.command');
  assert.equal(p[0]!.line, 3);
});

test('duplicate model names, unknown default profile, redis without URL are rejected', () => {
  assert.match(problems('models:\n  - {name: m, endpoints: [http://a:1]}\n  - {name: m, endpoints: [http://b:1]}\n')[0]!.message, /duplicate model name/);
  assert.match(problems('models:\n  - {name: m, endpoints: [http://a:1], defaultProfile: x}\n')[0]!.message, /profile "x" is not declared/);
  assert.equal(problems('limits: {store: redis}\nmodels:\n  - {name: m, endpoints: [http://a:1]}\n')[0]!.path, 'limits.redisUrl');
});

test('YAML syntax errors carry the line', () => {
  const p = problems('models:\n  - name: m\n    endpoints: [http://a:1\n');
  assert.ok(p[0]!.line !== undefined && p[0]!.line >= 3, JSON.stringify(p));
});

test('an unreadable file names the file', () => {
  assert.throws(() => loadFleetFile('/nonexistent/fleet.yaml'), /\/nonexistent\/fleet\.yaml: \(root\): cannot read/);
});

test('routing profiles use the routing module schema: strategy specs and hints checked at load time, with the field path', () => {
  const p1 = problems('models:\n  - name: m\n    endpoints: [http://a:1]\n    profiles:\n      x: {routingStrategy: least-requests}\n');
  assert.equal(p1[0]!.path, 'models.0.profiles.x.routingStrategy');
  assert.match(p1[0]!.message, /unknown routing strategy 'least-requests'/);
  assert.equal(p1[0]!.line, 5);
  const p2 = problems('models:\n  - name: m\n    endpoints: [http://a:1]\n    profiles:\n      x: {routingConfig: {promptTokensGte: 10, promptTokenGte: 5}}\n');
  assert.match(p2[0]!.path, /^models\.0\.profiles\.x\.routingConfig/);
  const p3 = problems('models:\n  - name: m\n    endpoints: [http://a:1]\n    profiles:\n      auto: {routingStrategy: random}\n');
  assert.equal(p3[0]!.path, 'models.0.profiles.auto');
  const p4 = problems('models:\n  - name: m\n    endpoints: [http://a:1]\n    lockedRoutingStrategy: "a:b:c"\n');
  assert.equal(p4[0]!.path, 'models.0.lockedRoutingStrategy');
  const ok = parseFleet('models:\n  - name: m\n    endpoints: [http://a:1]\n    lockedRoutingStrategy: random\n    profiles:\n      p: {routingStrategy: least-request, strategyOptions: {loadMode: sum}}\n');
  assert.equal(ok.models[0]!.lockedRoutingStrategy, 'random');
  assert.deepEqual(ok.models[0]!.profiles.p!.strategyOptions, { loadMode: 'sum' });
});

test('a profile name holding ":" keeps its whole field path in a bad-strategy problem', () => {
  const p = problems('models:\n  - name: m\n    endpoints: [http://a:1]\n    profiles:\n      "long:ctx": {routingStrategy: least-requests}\n');
  assert.equal(p[0]!.path, 'models.0.profiles.long:ctx.routingStrategy');
  assert.match(p[0]!.message, /^unknown routing strategy 'least-requests'/);
});
