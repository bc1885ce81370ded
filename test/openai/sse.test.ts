import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SSE_DONE_FRAME, SseParser, parseSseText, sseData } from '../../src/openai/sse.ts';

test('framing', () => {
  assert.equal(sseData({ a: 1 }), 'data: {"a":1}\n\n');
  assert.equal(SSE_DONE_FRAME, 'data: [DONE]\n\n');
});

test('parser handles chunks split anywhere, including inside UTF-8 sequences and CRLF', () => {
  const text = `${sseData({ t: 'héllo 🌍' })}: comment\n\r\nevent: x\r\nid: 7\r\ndata: a\r\ndata: b\r\n\r\n${SSE_DONE_FRAME}`;
  const bytes = new TextEncoder().encode(text);
  const whole = parseSseText(text);
  assert.deepEqual(whole, [{ data: '{"t":"héllo 🌍"}' }, { data: 'a\nb', event: 'x', id: '7' }, { data: '[DONE]', id: '7' }]);
  for (let size = 1; size <= 7; size++) {
    const p = new SseParser();
    const got = [];
    for (let i = 0; i < bytes.length; i += size) got.push(...p.push(bytes.subarray(i, i + size)));
    got.push(...p.end());
    assert.deepEqual(got, whole, `chunk size ${size}`);
  }
});

test('end() flushes an event without trailing blank line', () => {
  const p = new SseParser();
  assert.deepEqual(p.push('data: x'), []);
  assert.deepEqual(p.end(), [{ data: 'x' }]);
});
