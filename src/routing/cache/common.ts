/**
 * Small helpers shared by the cache-aware and fairness strategies: load statistics, the
 * least-request fallback and a seeded shuffle (option validation is `../options.ts`). Pure (randomness from `RoutingContext`).
 */
import type { EndpointState } from '../../engines/state.ts';
import { maxScorePicker } from '../framework.ts';
import type { RoutingContext } from '../types.ts';

/** Arithmetic mean (0 for an empty list). */
export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/**
 * Sample standard deviation (n - 1 denominator, as AIBrix `prefix_cache.go` computes it over the
 * running counts); 0 for fewer than two values.
 */
export function sampleStdDev(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) * (x - m);
  return Math.sqrt(s / (xs.length - 1));
}

/** Index of the smallest value; ties broken uniformly at random with `ctx.random` (reuses `maxScorePicker`). */
export function argminRandomTie(endpoints: readonly EndpointState[], values: readonly number[], ctx: RoutingContext): number {
  return maxScorePicker.pick(endpoints, values.map((v) => -v), ctx);
}

/** Fisher-Yates shuffle of a copy of `xs` with `ctx.random`. */
export function shuffled<T>(xs: readonly T[], ctx: RoutingContext): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.min(i, Math.floor(ctx.random() * (i + 1)));
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}
