/** Usage reading and stripping on SSE streams split at arbitrary byte boundaries. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageStripper, UsageTap, usageFromJson } from '../../src/gateway/stream.ts';
import { fakeStreamEvents } from './fake-engine.ts';

function splitEvery(buf: Buffer, n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += n) out.push(buf.subarray(i, i + n));
  return out;
}

test('the stripper drops exactly the usage-only event, whatever the chunking', () => {
  const withUsage = Buffer.from(fakeStreamEvents('x', 4, true).join(''));
  const without = fakeStreamEvents('x', 4, false).join('');
  for (const n of [1, 2, 3, 7, 64, 100000]) {
    const s = new UsageStripper();
    const out = Buffer.concat([...splitEvery(withUsage, n).map((c) => s.push(c)), s.end()]);
    assert.equal(out.toString('utf8'), without, `chunk size ${n}`);
    assert.deepEqual(s.usage, { promptTokens: 7, completionTokens: 4, totalTokens: 11, cachedTokens: undefined });
  }
});

test('the stripper keeps CRLF-framed events and usage inside content chunks', () => {
  const crlf = 'data: {"choices":[{"delta":{"content":"a"}}]}\r\n\r\ndata: {"choices":[{"delta":{"content":"b"}}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}\r\n\r\ndata: [DONE]\r\n\r\n';
  const s = new UsageStripper();
  const out = Buffer.concat([s.push(Buffer.from(crlf)), s.end()]).toString();
  assert.equal(out, crlf, 'a chunk with choices is never dropped (continuous usage stats)');
  assert.equal(s.usage?.totalTokens, 3);
});

test('the tap reads usage without changing anything; multi-byte characters split across chunks', () => {
  const bytes = Buffer.from(fakeStreamEvents('y', 3, true).join(''));
  const tap = new UsageTap();
  for (const c of splitEvery(bytes, 5)) tap.push(c);
  tap.end();
  assert.equal(tap.usage?.completionTokens, 3);
  assert.equal(tap.events, 6, 'role + 3 content + finish + usage (DONE not counted)');
});

test('usage from a JSON body (only the usage object is parsed)', () => {
  const b = Buffer.from('{"id":"x","choices":[{"message":{"content":"usage: {not json"}}],"usage":{"prompt_tokens":5,"completion_tokens":4,"total_tokens":9,"prompt_tokens_details":{"cached_tokens":2}}}');
  assert.deepEqual(usageFromJson(b), { promptTokens: 5, completionTokens: 4, totalTokens: 9, cachedTokens: 2 });
  assert.equal(usageFromJson(Buffer.from('{"id":"x"}')), undefined);
  assert.equal(usageFromJson(Buffer.from('{"usage": {"prompt_tokens": 1')), undefined);
});
