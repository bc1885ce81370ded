import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from '../../src/openai/errors.ts';
import {
  buildChatChunk,
  buildChatResponse,
  buildCompletionResponse,
  buildUsage,
  buildUsageChunk,
  parseChatCompletionRequest,
  parseCompletionRequest,
  parseJsonBody,
  requestedMaxTokens,
  wantsStreamUsage,
} from '../../src/openai/requests.ts';

function apiErr(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ApiError, `expected ApiError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a throw');
}

test('completion request: all prompt forms parse, unknown fields kept', () => {
  for (const prompt of ['hi', ['a', 'b'], [1, 2, 3], [[1, 2], [3]]]) {
    const r = parseCompletionRequest({ model: 'm', prompt, cache_salt: 's', priority: 3 });
    assert.deepEqual(r.prompt, prompt);
    assert.equal((r as Record<string, unknown>).priority, 3);
    assert.equal(r.cache_salt, 's');
  }
  const r = parseCompletionRequest({ model: 'm', prompt: 'x', stream: true, stream_options: { include_usage: true }, max_tokens: 7, ignore_eos: true, n: 1, temperature: 0.5, seed: 3, user: 'u' });
  assert.equal(r.max_tokens, 7);
  assert.equal(r.ignore_eos, true);
  assert.equal(wantsStreamUsage(r), true);
  assert.equal(requestedMaxTokens(r), 7);
});

test('chat request: max_completion_tokens wins over max_tokens; include_usage defaults true inside stream_options', () => {
  const r = parseChatCompletionRequest({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, max_completion_tokens: 9, stream: true, stream_options: {} });
  assert.equal(requestedMaxTokens(r), 9);
  assert.equal(wantsStreamUsage(r), true);
  const r2 = parseChatCompletionRequest({ model: 'm', messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }] }], stream: true });
  assert.equal(wantsStreamUsage(r2), false);
  assert.equal(requestedMaxTokens(r2), undefined);
});

test('validation errors are 400 BadRequestError with the dotted field path', () => {
  let e = apiErr(() => parseChatCompletionRequest({ model: 'm', messages: [{ content: 'x' }] }));
  assert.equal(e.status, 400);
  assert.equal(e.type, 'BadRequestError');
  assert.equal(e.param, 'messages.0.role');
  e = apiErr(() => parseCompletionRequest({ model: 'm', prompt: 'x', stream_options: { include_usage: 'yes' } }));
  assert.equal(e.param, 'stream_options.include_usage');
  e = apiErr(() => parseCompletionRequest({ prompt: 'x' }));
  assert.equal(e.param, 'model');
  e = apiErr(() => parseCompletionRequest({ model: 'm', prompt: 'x', max_tokens: 0 }));
  assert.equal(e.param, 'max_tokens');
  e = apiErr(() => parseCompletionRequest({ model: 'm', prompt: 'x', n: 2 }));
  assert.equal(e.param, 'n');
  assert.match(e.message, /n=2/);
  e = apiErr(() => parseCompletionRequest({ model: 'm', prompt: 'x', stream_options: { include_usage: true } }));
  assert.equal(e.param, 'stream_options');
  e = apiErr(() => parseCompletionRequest([1]));
  assert.equal(e.status, 400);
  e = apiErr(() => parseChatCompletionRequest({ model: 'm', messages: [] }));
  assert.equal(e.param, 'messages');
  assert.deepEqual(e.toBody().error.code, 400);
});

test('malformed JSON is a 400', () => {
  assert.deepEqual(parseJsonBody('{"a":1}'), { a: 1 });
  const e = apiErr(() => parseJsonBody('{"a":'));
  assert.equal(e.status, 400);
  assert.match(e.message, /Malformed JSON/);
});

test('response builders carry usage and cached tokens', () => {
  const u = buildUsage(10, 5, 4);
  assert.deepEqual(u, { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, prompt_tokens_details: { cached_tokens: 4 } });
  assert.equal(buildUsage(1, 1).prompt_tokens_details, undefined);
  const c = buildCompletionResponse('cmpl-1', 'm', 1, 'txt', 'length', u);
  assert.equal(c.object, 'text_completion');
  assert.equal(c.choices[0]!.text, 'txt');
  const ch = buildChatResponse('chatcmpl-1', 'm', 1, 'hey', 'stop', u);
  assert.equal(ch.choices[0]!.message.content, 'hey');
  assert.deepEqual(buildChatChunk('i', 'm', 1, '', null, true).choices[0]!.delta, { role: 'assistant', content: '' });
  const uc = buildUsageChunk('chat', 'i', 'm', 1, u);
  assert.deepEqual(uc.choices, []);
  assert.equal(uc.object, 'chat.completion.chunk');
});

test('contentChunkFrame serializes exactly what the chunk builders build', async () => {
  const { contentChunkFrame, buildCompletionChunk, buildChatChunk } = await import('../../src/openai/requests.ts');
  for (const text of ['', ' hello', 'quote " and \\ and \n and é']) {
    const c = contentChunkFrame('completion', 'cmpl-1', 'm"x', 5)(text);
    assert.ok(c.startsWith('data: ') && c.endsWith('\n\n'));
    assert.deepEqual(JSON.parse(c.slice(6)), buildCompletionChunk('cmpl-1', 'm"x', 5, text));
    const h = contentChunkFrame('chat', 'chatcmpl-1', 'm', 5)(text);
    assert.deepEqual(JSON.parse(h.slice(6)), buildChatChunk('chatcmpl-1', 'm', 5, text));
  }
});
