import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { InvalidArgumentError } from 'commander';
import { flagsToOptions, parseKvEventsConfig, parseLoraModule } from '../../../src/cli/sim-serve.ts';

test('--lora-modules and --kv-events-config parse vLLM forms and name the flag on errors', () => {
  assert.deepEqual(parseLoraModule('sql=/a/b'), { name: 'sql', path: '/a/b' });
  assert.deepEqual(parseLoraModule('{"name":"x","path":"/p","base_model_name":"m"}'), { name: 'x', path: '/p', baseModelName: 'm' });
  assert.throws(() => parseLoraModule('nopath'), (e: Error) => e instanceof InvalidArgumentError && /--lora-modules/.test(e.message));
  assert.deepEqual(parseKvEventsConfig('{"enable_kv_cache_events":true,"publisher":"zmq","topic":"kv"}'), { endpoint: 'tcp://*:5557', topic: 'kv' });
  assert.deepEqual(parseKvEventsConfig('{"enable_kv_cache_events":false}'), {});
  assert.throws(() => parseKvEventsConfig('{"enable_kv_cache_events":true,"publisher":"nats"}'), /--kv-events-config.publisher/);
  const o = flagsToOptions({ model: 'm', host: 'h', port: 1, timeScale: 2, enablePrefixCaching: false, enablePromptTokensDetails: true, kvEventsConfig: { endpoint: 'tcp://*:1', topic: 't' }, kvEventsTopic: 'override' });
  assert.equal(o.kvEventsEndpoint, 'tcp://*:1');
  assert.equal(o.kvEventsTopic, 'override');
  assert.equal(o.enablePrefixCaching, false);
});

test('inferplane sim serve starts with vLLM-named flags and stops on SIGTERM', async (t) => {
  const child = spawn(
    process.execPath,
    ['bin/inferplane.js', 'sim', 'serve', '--model', 'meta-llama/Llama-3.1-8B-Instruct', '--served-model-name', 'llama', '--port', '0', '--max-model-len', '2048', '--max-num-seqs', '8', '--enable-lora', '--lora-modules', 'sql=/adapters/sql', '--time-scale', '20'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
      const m = /Uvicorn running on (http:\/\/\S+)/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
  });
  const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string; max_model_len: number | null; parent: string | null }> };
  assert.deepEqual(models.data.map((m) => [m.id, m.parent]), [['llama', null], ['sql', 'llama']]);
  assert.equal(models.data[0]!.max_model_len, 2048);
  const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'sql', prompt: 'hi', max_tokens: 3 }) });
  assert.equal(r.status, 200);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});

test('a bad flag value exits non-zero naming the flag', async () => {
  const child = spawn(process.execPath, ['bin/inferplane.js', 'sim', 'serve', '--model', 'meta-llama/Llama-3.1-8B-Instruct', '--max-num-seqs', 'many'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.notEqual(code, 0);
  assert.match(err, /--max-num-seqs must be an integer >= 1, got "many"/);
});
