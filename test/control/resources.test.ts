import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ModelAdapterSpecSchema, parseResource, PodAutoscalerSpecSchema, ResourceValidationError } from '../../src/control/resources.ts';

test('PodAutoscaler shorthand {strategy, metric, target} parses with defaults', () => {
  const s = parseResource(PodAutoscalerSpecSchema, { strategy: 'kpa', metric: 'kvCacheUsage', target: 0.7 }, 'autoscaler');
  assert.deepEqual(s.metrics, [{ metric: 'kvCacheUsage', target: 0.7 }]);
  assert.equal(s.strategy, 'kpa');
  assert.equal(s.minReplicas, 1);
  assert.equal(s.maxReplicas, 10);
  assert.deepEqual(s.windows, { stableS: 60, panicS: 6 });
  assert.deepEqual(s.tolerance, { up: 0.1, down: 0.1 });
  assert.equal(s.cooldown.downS, 300);
  assert.equal(s.panicThreshold, 2);
  assert.equal(s.forecast.replicaStartupS, 60);
});

test('PodAutoscaler errors name the field path', () => {
  const bad = (doc: unknown, path: string) => {
    assert.throws(
      () => parseResource(PodAutoscalerSpecSchema, doc, 'fleet.yaml: autoscalers.0'),
      (e: unknown) => e instanceof ResourceValidationError && e.issues.some((i) => i.path === path) && e.message.startsWith('fleet.yaml: autoscalers.0: '),
    );
  };
  bad({ metrics: [{ metric: 'kvCacheUsage', target: -1 }] }, 'metrics.0.target');
  bad({ metrics: [{ metric: 'cpu', target: 1 }] }, 'metrics.0.metric');
  bad({ minReplicas: 5, maxReplicas: 2 }, 'minReplicas');
  bad({ minReplicas: 0 }, 'minReplicas');
  bad({ windows: { stableS: 10, panicS: 20 } }, 'windows.panicS');
  bad({ metric: 'waiting' }, 'target');
  bad({ strategy: 'magic' }, 'strategy');
  bad({ typo: 1 }, '');
  // scale to zero with min 0 is fine
  const ok = parseResource(PodAutoscalerSpecSchema, { minReplicas: 0, scaleToZero: { enabled: true } }, 'x');
  assert.equal(ok.minReplicas, 0);
});

test('ModelAdapter schema: schemes, replicas, credentials, checksums', () => {
  const a = parseResource(ModelAdapterSpecSchema, { name: 'sql-lora', baseModel: 'llama-8b', artifactUrl: 'http://127.0.0.1:9/sql.safetensors' }, 'adapter');
  assert.equal(a.replicas, 1);
  assert.equal(a.placement, 'spread');
  assert.deepEqual(a.retry, { maxAttempts: 5, baseS: 5, capS: 300 });
  assert.equal(parseResource(ModelAdapterSpecSchema, { name: 'a', baseModel: 'b', artifactUrl: 'hf://org/repo', replicas: 'all' }, 'x').replicas, 'all');
  const bad = (doc: unknown, path: string) =>
    assert.throws(() => parseResource(ModelAdapterSpecSchema, doc, 'adapter'), (e: unknown) => e instanceof ResourceValidationError && e.issues.some((i) => i.path === path));
  bad({ name: 'a', baseModel: 'b', artifactUrl: 'ftp://x/y' }, 'artifactUrl');
  bad({ name: 'a', baseModel: 'b', artifactUrl: 'not a url' }, 'artifactUrl');
  bad({ name: 'a', baseModel: 'b', artifactUrl: 'file:///x', replicas: 0 }, 'replicas');
  bad({ name: 'a', baseModel: 'b', artifactUrl: 'file:///x', sha256: 'abc' }, 'sha256');
  bad({ name: 'a', baseModel: 'b', artifactUrl: 'file:///x', credentials: { secret: 's', env: 'E' } }, 'credentials');
  bad({ baseModel: 'b', artifactUrl: 'file:///x' }, 'name');
});
