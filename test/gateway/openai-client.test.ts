/** The official `openai` npm client against the gateway over simulated engines, streaming and not. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { validateFleet } from '../../src/fleet/config.ts';
import { runFleet, type RunningFleet } from '../../src/gateway/runtime.ts';

const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';
let run: RunningFleet;
let client: OpenAI;

before(async () => {
  const cfg = validateFleet({
    gateway: { port: 0, logLevel: 'silent' },
    apiKeys: [{ name: 'dev', key: 'sk-dev-000111', tpm: 100_000 }],
    models: [{ name: MODEL, simulator: { gpu: 'H100', replicas: 2, timeScale: 20 } }],
  });
  run = await runFleet(cfg, { port: 0 });
  client = new OpenAI({ baseURL: `${run.url}/v1`, apiKey: 'sk-dev-000111', maxRetries: 0 });
});
after(async () => {
  await run?.stop(0);
});

test('chat, non-streaming', async () => {
  const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Say hi' }], max_tokens: 12 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(typeof r.choices[0]!.message.content, 'string');
  assert.ok(r.usage!.completion_tokens > 0 && r.usage!.completion_tokens <= 12);
});

test('chat, streaming (usage requested by the gateway for TPM is not shown to the client)', async () => {
  const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Count' }], max_tokens: 10, stream: true });
  let text = '';
  let chunks = 0;
  let sawUsage = false;
  for await (const c of stream) {
    chunks++;
    if (c.usage) sawUsage = true;
    text += c.choices[0]?.delta?.content ?? '';
  }
  assert.ok(chunks >= 2);
  assert.ok(text.length > 0);
  assert.equal(sawUsage, false);
});

test('chat, streaming with include_usage gets the usage chunk', async () => {
  const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Count' }], max_tokens: 6, stream: true, stream_options: { include_usage: true } });
  let usage: OpenAI.CompletionUsage | undefined | null;
  for await (const c of stream) if (c.usage) usage = c.usage;
  assert.ok(usage && usage.completion_tokens > 0 && usage.completion_tokens <= 6);
});

test('completions and models', async () => {
  const c = await client.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 5 });
  assert.equal(c.object, 'text_completion');
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [MODEL]);
});

test('errors surface as the client library error classes', async () => {
  await assert.rejects(client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }), (e: unknown) => e instanceof OpenAI.NotFoundError && (e as InstanceType<typeof OpenAI.APIError>).code === 'model_not_found');
  const bad = new OpenAI({ baseURL: `${run.url}/v1`, apiKey: 'wrong-key-123', maxRetries: 0 });
  await assert.rejects(bad.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }] }), (e: unknown) => e instanceof OpenAI.AuthenticationError);
});
