import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { tokenizerFor } from '../../../src/engines/tokenizer.ts';
import type { SimServerHandle } from '../../../src/sim/server/server.ts';
import { MODEL, postJson, startFast } from './helpers.ts';

let srv: SimServerHandle;
let client: OpenAI;
before(async () => {
  srv = await startFast({ seed: 7 });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(() => srv.close());

const tok = tokenizerFor(MODEL);

test('completion (non-streaming): real prompt token count, exactly max_tokens tokens with ignore_eos, text re-tokenizes to that count', async () => {
  const prompt = 'The quick brown fox jumps over the lazy dog.';
  const r = await client.completions.create({ model: MODEL, prompt, max_tokens: 12, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
  assert.equal(r.object, 'text_completion');
  assert.equal(r.usage!.prompt_tokens, tok.encode(prompt).length + 1, 'prompt tokens = BOS + text tokens');
  assert.equal(r.usage!.completion_tokens, 12);
  assert.equal(r.choices[0]!.finish_reason, 'length');
  assert.equal(tok.encode(r.choices[0]!.text).length, 12);
  // same seed + prompt -> same text
  const again = await client.completions.create({ model: MODEL, prompt, max_tokens: 12, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
  assert.equal(again.choices[0]!.text, r.choices[0]!.text);
  const other = await client.completions.create({ model: MODEL, prompt, max_tokens: 12, ignore_eos: true, seed: 99 } as OpenAI.CompletionCreateParamsNonStreaming);
  assert.notEqual(other.choices[0]!.text, r.choices[0]!.text);
});

test('without ignore_eos a request may stop early with finish_reason stop (deterministic length)', async () => {
  const r = await client.completions.create({ model: MODEL, prompt: 'Tell me a story', max_tokens: 2000 });
  assert.equal(r.choices[0]!.finish_reason, 'stop');
  assert.ok(r.usage!.completion_tokens >= 16 && r.usage!.completion_tokens <= 512);
  assert.equal(tok.encode(r.choices[0]!.text).length, r.usage!.completion_tokens);
  const r2 = await client.completions.create({ model: MODEL, prompt: 'Tell me a story', max_tokens: 5 });
  assert.equal(r2.choices[0]!.finish_reason, 'length');
  assert.equal(r2.usage!.completion_tokens, 5);
});

test('completion streaming with include_usage: one chunk per token, usage chunk, [DONE]', async () => {
  const stream = await client.completions.create({ model: MODEL, prompt: 'Hello', max_tokens: 9, ignore_eos: true, stream: true, stream_options: { include_usage: true } } as OpenAI.CompletionCreateParamsStreaming);
  let text = '';
  let contentChunks = 0;
  let usage: OpenAI.CompletionUsage | undefined;
  let finish: string | null = null;
  for await (const c of stream) {
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) {
      if (ch.text) {
        contentChunks++;
        text += ch.text;
      }
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  assert.equal(contentChunks, 9);
  assert.equal(finish, 'length');
  assert.equal(usage!.completion_tokens, 9);
  assert.equal(usage!.prompt_tokens, 2);
  assert.equal(tok.encode(text).length, 9);
});

test('chat non-streaming and streaming agree on token counts; role chunk first; usage only when asked', async () => {
  const messages = [{ role: 'system' as const, content: 'You are terse.' }, { role: 'user' as const, content: 'Say hi.' }];
  const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 6, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsNonStreaming);
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0]!.message.role, 'assistant');
  assert.equal(r.usage!.completion_tokens, 6);
  const s = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 6, ignore_eos: true, stream: true, stream_options: { include_usage: true } } as OpenAI.ChatCompletionCreateParamsStreaming);
  const deltas: OpenAI.ChatCompletionChunk[] = [];
  for await (const c of s) deltas.push(c);
  assert.equal(deltas[0]!.choices[0]!.delta.role, 'assistant');
  const content = deltas.flatMap((c) => c.choices.map((x) => x.delta.content ?? '')).join('');
  assert.equal(tok.encode(content).length, 6);
  const last = deltas[deltas.length - 1]!;
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage!.prompt_tokens, r.usage!.prompt_tokens);
  // no stream_options: no usage chunk
  const s2 = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 3, stream: true });
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  for await (const c of s2) chunks.push(c);
  assert.ok(chunks.every((c) => !c.usage));
  assert.ok(chunks.some((c) => c.choices[0]?.finish_reason));
});

test('a repeated long prompt reports prefix-cache hits as cached_tokens (whole blocks)', async () => {
  const prompt = 'In the beginning there was a very long shared system prompt. '.repeat(20);
  const first = await client.completions.create({ model: MODEL, prompt, max_tokens: 2, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
  const cached0 = (first.usage as OpenAI.CompletionUsage & { prompt_tokens_details?: { cached_tokens: number } }).prompt_tokens_details!.cached_tokens;
  assert.equal(cached0, 0);
  const second = await client.completions.create({ model: MODEL, prompt, max_tokens: 2, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);
  const cached = (second.usage as OpenAI.CompletionUsage & { prompt_tokens_details?: { cached_tokens: number } }).prompt_tokens_details!.cached_tokens;
  const P = second.usage!.prompt_tokens;
  assert.ok(cached > 0, 'second request hits the prefix cache');
  assert.equal(cached % 16, 0, 'cached tokens are whole blocks');
  assert.ok(cached <= P);
});

test('prompt as token ids is accepted as-is', async () => {
  const r = await postJson(`${srv.url}/v1/completions`, { model: MODEL, prompt: [1, 2, 3, 4, 5], max_tokens: 1 });
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.text).usage.prompt_tokens, 5);
});
