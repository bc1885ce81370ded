/**
 * Arrival shapes: when each request of an open-loop workload is sent. Every function is pure given
 * its seeded {@link Rng}; times are in **ms from the start of the run**, sorted, starting at or after 0.
 *
 * Shapes:
 * - `constant`: one request every `1000 / rate` ms, the first at 0.
 * - `poisson`: exponential inter-arrival times with mean `1000 / rate` ms, the first at 0
 *   (vLLM `benchmarks/serve.py` sends the first request at once, then sleeps).
 * - `gamma`: gamma inter-arrival times with shape `burstiness` and mean `1000 / rate` ms, as vLLM
 *   `vllm bench serve --burstiness` does: 1 is Poisson, < 1 burstier (CV = 1/sqrt(burstiness)), > 1
 *   more regular.
 * - `sine`: a rate curve `mean + amplitude * sin(2 pi t / period + phase)` plus Gaussian noise of std
 *   `noise` (req/s), redrawn every `stepS` seconds and clipped at 0, with Poisson arrivals inside each
 *   step (AIBrix `workload_generator.py --trace-type synthetic`, see reference part A1.2).
 * - `stages`: a list of `{durationS, rate}` steps, each constant or Poisson (`process`).
 * - `trace`: the given timestamps (e.g. from {@link TraceRequest.arrivalMs}), sorted.
 */
import type { Rng } from './rng.ts';

/** One arrival shape; rates are in requests per second. */
export type ArrivalShape =
  | { kind: 'constant'; rate: number }
  | { kind: 'poisson'; rate: number }
  | { kind: 'gamma'; rate: number; burstiness: number }
  | { kind: 'sine'; meanRate: number; amplitude: number; periodS: number; noise?: number; phase?: number; stepS?: number }
  | { kind: 'stages'; stages: ReadonlyArray<{ durationS: number; rate: number }>; process?: 'constant' | 'poisson' }
  | { kind: 'trace'; timesMs: readonly number[] };

/** Bounds of the generated schedule: at least one is required for unbounded shapes. */
export interface ArrivalBounds {
  /** Only arrivals strictly before this many seconds. */
  durationS?: number;
  /** At most this many arrivals. */
  maxRequests?: number;
}

function positive(name: string, v: number): void {
  if (!(Number.isFinite(v) && v > 0)) throw new Error(`${name} must be a number > 0, got ${v}`);
}
function nonNegative(name: string, v: number): void {
  if (!(Number.isFinite(v) && v >= 0)) throw new Error(`${name} must be a number >= 0, got ${v}`);
}

/**
 * Generates arrival times (ms from 0, sorted) for `shape`, cut at `bounds`.
 * @throws Error naming the bad parameter (rate <= 0, burstiness <= 0, ...) or when an unbounded
 *   shape (constant, poisson, gamma, sine) has neither `durationS` nor `maxRequests`.
 */
export function arrivalTimes(shape: ArrivalShape, bounds: ArrivalBounds, rng: Rng): number[] {
  const endMs = bounds.durationS === undefined ? Infinity : bounds.durationS * 1000;
  const max = bounds.maxRequests ?? Infinity;
  if (bounds.durationS !== undefined) positive('duration', bounds.durationS);
  if (bounds.maxRequests !== undefined && !(Number.isInteger(max) && max >= 0)) throw new Error(`max-requests must be an integer >= 0, got ${max}`);
  const bounded = endMs !== Infinity || max !== Infinity;
  const out: number[] = [];
  const add = (t: number): boolean => {
    if (t >= endMs || out.length >= max) return false;
    out.push(t);
    return true;
  };
  const gaps = (gap: () => number): number[] => {
    if (!bounded) throw new Error(`arrival shape '${shape.kind}' needs a duration or a max-requests bound`);
    let t = 0;
    while (add(t)) t += gap();
    return out;
  };
  switch (shape.kind) {
    case 'constant':
      positive('rate', shape.rate);
      return gaps(() => 1000 / shape.rate);
    case 'poisson':
      positive('rate', shape.rate);
      return gaps(() => rng.exponential(shape.rate / 1000));
    case 'gamma': {
      positive('rate', shape.rate);
      positive('burstiness', shape.burstiness);
      const scale = 1000 / (shape.rate * shape.burstiness);
      return gaps(() => rng.gamma(shape.burstiness, scale));
    }
    case 'sine': {
      nonNegative('meanRate', shape.meanRate);
      nonNegative('amplitude', shape.amplitude);
      positive('periodS', shape.periodS);
      const noise = shape.noise ?? 0;
      nonNegative('noise', noise);
      const stepMs = (shape.stepS ?? 1) * 1000;
      positive('stepS', stepMs);
      if (!bounded) throw new Error("arrival shape 'sine' needs a duration or a max-requests bound");
      if (endMs === Infinity && shape.meanRate + shape.amplitude <= 0) throw new Error('sine arrival shape with zero rate never ends; give a duration');
      for (let s = 0; s < endMs && out.length < max; s += stepMs) {
        const rate = Math.max(0, shape.meanRate + shape.amplitude * Math.sin((2 * Math.PI * s) / (shape.periodS * 1000) + (shape.phase ?? 0)) + noise * rng.normal());
        if (rate === 0) continue;
        let t = s + rng.exponential(rate / 1000);
        while (t < s + stepMs && add(t)) t += rng.exponential(rate / 1000);
      }
      return out;
    }
    case 'stages': {
      if (shape.stages.length === 0) throw new Error('stages must not be empty');
      let start = 0;
      for (const [i, st] of shape.stages.entries()) {
        positive(`stages[${i}].durationS`, st.durationS);
        nonNegative(`stages[${i}].rate`, st.rate);
        const stop = start + st.durationS * 1000;
        if (st.rate > 0) {
          const poisson = (shape.process ?? 'poisson') === 'poisson';
          let t = start + (poisson ? rng.exponential(st.rate / 1000) : 0);
          while (t < stop && add(t)) t += poisson ? rng.exponential(st.rate / 1000) : 1000 / st.rate;
        }
        start = stop;
      }
      return out;
    }
    case 'trace': {
      const ts = [...shape.timesMs].sort((a, b) => a - b);
      for (const t of ts) {
        if (!(Number.isFinite(t) && t >= 0)) throw new Error(`trace timestamps must be numbers >= 0, got ${t}`);
        if (!add(t)) break;
      }
      return out;
    }
  }
}
