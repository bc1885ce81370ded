/**
 * A small seeded pseudo-random generator and the distributions the workload generators need. Pure:
 * the same seed gives the same sequence on every platform (32-bit integer arithmetic only).
 *
 * Generator: sfc32 (Chris Doty-Humphrey's "small fast counter", PractRand-clean), seeded through
 * splitmix32 so that nearby seeds give unrelated streams.
 */

import { fnv1a32 } from '../common/hash32.ts';

/** A seeded source of randomness. `next()` is uniform in [0, 1). */
export interface Rng {
  /** Uniform float in [0, 1) with 32 bits of randomness. */
  next(): number;
  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number;
  /** Standard normal N(0, 1) (Box-Muller). */
  normal(): number;
  /** Exponential with the given rate (mean 1/rate). */
  exponential(rate: number): number;
  /** Gamma(shape k, scale theta): mean k*theta, variance k*theta^2 (Marsaglia-Tsang 2000). */
  gamma(shape: number, scale: number): number;
  /** Picks one element uniformly. */
  pick<T>(xs: readonly T[]): T;
  /** Fisher-Yates shuffle in place; returns the array. */
  shuffle<T>(xs: T[]): T[];
  /** A new independent generator derived from this one's stream (for sub-streams). */
  fork(): Rng;
}

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** Hashes a string or number to a 32-bit seed (FNV-1a over the decimal/string form). */
export function seedOf(x: string | number): number {
  return fnv1a32(String(x));
}

/**
 * Creates a seeded generator. `seed` may be any number (its low 32 bits of the integer part and a
 * hash of the rest are used) or a string; the same seed always gives the same sequence.
 */
export function createRng(seed: number | string = 0): Rng {
  const sm = splitmix32(typeof seed === 'number' && Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32 ? seed : seedOf(seed));
  let a = sm();
  let b = sm();
  let c = sm();
  let d = sm();
  const u32 = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t;
  };
  for (let i = 0; i < 12; i++) u32();
  let spare: number | undefined;
  const rng: Rng = {
    next: () => u32() / 4294967296,
    int: (lo, hi) => lo + Math.floor((u32() / 4294967296) * (hi - lo + 1)),
    normal() {
      if (spare !== undefined) {
        const s = spare;
        spare = undefined;
        return s;
      }
      let u = 0;
      while (u === 0) u = rng.next();
      const v = rng.next();
      const r = Math.sqrt(-2 * Math.log(u));
      spare = r * Math.sin(2 * Math.PI * v);
      return r * Math.cos(2 * Math.PI * v);
    },
    exponential(rate) {
      let u = 0;
      while (u === 0) u = rng.next();
      return -Math.log(u) / rate;
    },
    gamma(shape, scale) {
      if (shape < 1) {
        // Boost: Gamma(k) = Gamma(k + 1) * U^(1/k).
        let u = 0;
        while (u === 0) u = rng.next();
        return rng.gamma(shape + 1, scale) * Math.pow(u, 1 / shape);
      }
      const dd = shape - 1 / 3;
      const cc = 1 / Math.sqrt(9 * dd);
      for (;;) {
        let x: number;
        let v: number;
        do {
          x = rng.normal();
          v = 1 + cc * x;
        } while (v <= 0);
        v = v * v * v;
        const u = rng.next();
        if (u < 1 - 0.0331 * x * x * x * x) return dd * v * scale;
        if (Math.log(u) < 0.5 * x * x + dd * (1 - v + Math.log(v))) return dd * v * scale;
      }
    },
    pick: (xs) => xs[Math.floor(rng.next() * xs.length)]!,
    shuffle(xs) {
      for (let i = xs.length - 1; i > 0; i--) {
        const j = Math.floor(rng.next() * (i + 1));
        const t = xs[i]!;
        xs[i] = xs[j]!;
        xs[j] = t;
      }
      return xs;
    },
    fork: () => createRng(u32()),
  };
  return rng;
}
