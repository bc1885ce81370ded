/** Growable sample buffers and latency summaries for the DES results. */

/** `{mean, p50, p90, p99}` in ms; all 0 (and `count` 0) when there are no samples. */
export interface LatencySummary {
  mean: number;
  p50: number;
  p90: number;
  p99: number;
}

/** An append-only Float64 buffer (amortized O(1) push, no per-sample allocation). */
export class Samples {
  private buf = new Float64Array(1024);
  length = 0;

  push(v: number): void {
    if (this.length === this.buf.length) {
      const nb = new Float64Array(this.buf.length * 2);
      nb.set(this.buf);
      this.buf = nb;
    }
    this.buf[this.length++] = v;
  }

  /** The samples (a view; valid until the next push). */
  view(): Float64Array {
    return this.buf.subarray(0, this.length);
  }

  sum(): number {
    let s = 0;
    for (let i = 0; i < this.length; i++) s += this.buf[i]!;
    return s;
  }
}

/** Percentile of sorted data with linear interpolation between closest ranks (numpy's default). */
export function percentileSorted(sorted: Float64Array, q: number): number {
  const n = sorted.length;
  if (n === 0) return 0;
  const pos = (n - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Summarizes samples (ms); rounds to 0.001 ms. */
export function summarize(...parts: Samples[]): LatencySummary {
  let n = 0;
  for (const p of parts) n += p.length;
  if (n === 0) return { mean: 0, p50: 0, p90: 0, p99: 0 };
  const all = new Float64Array(n);
  let o = 0;
  let sum = 0;
  for (const p of parts) {
    const v = p.view();
    all.set(v, o);
    o += v.length;
    for (let i = 0; i < v.length; i++) sum += v[i]!;
  }
  all.sort();
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return { mean: r(sum / n), p50: r(percentileSorted(all, 0.5)), p90: r(percentileSorted(all, 0.9)), p99: r(percentileSorted(all, 0.99)) };
}
