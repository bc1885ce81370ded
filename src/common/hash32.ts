/**
 * Small 32-bit integer hashing and a seeded PRNG, shared by the simulator, the routing indexes,
 * the benchmarks and the tests (one copy of each; no I/O, no global state).
 *
 * - `fmix32`: MurmurHash3's 32-bit finalizer (Austin Appleby, MurmurHash3.cpp `fmix32`).
 * - `fnv1a32`: 32-bit FNV-1a over a string's UTF-16 code units (Fowler/Noll/Vo; offset basis
 *   0x811c9dc5, prime 0x01000193).
 * - `mulberry32`: Tommy Ettinger's mulberry32 generator; uniform floats in [0, 1) with 32 bits.
 *   Use `src/bench/rng.ts` (`createRng`) when distributions (normal, gamma, ...) are needed.
 */

/** MurmurHash3 fmix32: avalanches a 32-bit integer; returns an unsigned 32-bit integer. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** 32-bit FNV-1a of a string; returns an unsigned 32-bit integer. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** mulberry32 seeded PRNG: returns a function giving uniform floats in [0, 1). Same seed, same sequence. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
