import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineCore, resolveEngineConfig } from '../../../src/sim/core/engine.ts';
import type { StepOutput } from '../../../src/sim/core/types.ts';
import { WallClockDriver } from '../../../src/sim/server/driver.ts';

test('outputs are stamped at step start + modelled duration, steps are back to back, and wall time is never shorter than virtual time / timeScale', async () => {
  const core = new EngineCore(resolveEngineConfig({ model: 'meta-llama/Llama-3.1-8B-Instruct', maxModelLen: 4096 }));
  const timeScale = 20;
  const steps: Array<{ start: number; end: number; duration: number }> = [];
  const driver = new WallClockDriver(core, { timeScale, onStep: (res, start, end) => steps.push({ start, end, duration: res.durationMs }) });
  const seen: Array<{ id: string; out: StepOutput; start: number; at: number }> = [];
  const wall0 = performance.now();
  const done = (id: string) =>
    new Promise<number>((resolve) => {
      driver.submit(
        { id, promptTokenIds: Array.from({ length: 300 }, (_, i) => 500 + i + id.length), maxTokens: 20 },
        {
          onOutput: (out, start, at) => {
            seen.push({ id, out, start, at });
            if (out.finished) resolve(at);
          },
        },
      );
    });
  const [a, b] = await Promise.all([done('a'), done('bb')]);
  const wallElapsed = performance.now() - wall0;
  driver.close();
  for (const s of seen) {
    const step = steps.find((x) => x.start === s.start);
    assert.ok(step, 'output belongs to a reported step');
    assert.equal(s.at, s.start + step.duration, 'stamped at the end of its step');
  }
  const busy = steps.filter((s) => s.duration > 0);
  for (let i = 1; i < busy.length; i++) assert.equal(busy[i]!.start, busy[i - 1]!.end, 'next step starts when the previous ends');
  assert.equal(seen.filter((s) => s.id === 'a' && s.out.newTokens > 0).length, 20);
  const virtualSpan = Math.max(a, b) - busy[0]!.start;
  assert.ok(wallElapsed + 1 >= virtualSpan / timeScale, `wall ${wallElapsed} ms >= virtual ${virtualSpan} ms / ${timeScale}`);
});

test('timeScale must be positive', () => {
  const core = new EngineCore(resolveEngineConfig({ model: 'meta-llama/Llama-3.1-8B-Instruct', maxModelLen: 4096 }));
  assert.throws(() => new WallClockDriver(core, { timeScale: 0 }), RangeError);
});
