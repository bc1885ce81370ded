/**
 * Metrics of a results file (`bench run --out`), and the side-by-side comparison of several runs.
 *
 * Definitions (as `vllm bench serve` computes them, `vllm/benchmarks/serve.py`):
 * - TTFT: send to first content token, per successful streamed request.
 * - TPOT: `(E2E - TTFT) / (output tokens - 1)` per request with more than one output token (output
 *   tokens from `usage`, else the streamed chunk count).
 * - ITL: every gap between consecutive content chunks, pooled over all requests.
 * - E2E: send to the end of the response.
 * - Throughput: successful requests (and their output tokens) divided by the run's span, from the
 *   first send to the last response end.
 * - Goodput: successful requests meeting every SLO given, per second of span (vLLM's definition;
 *   AIBrix's analyzer reports the fraction, which is given too).
 * Percentiles interpolate linearly between order statistics (numpy's default).
 */
import { readFileSync } from 'node:fs';
import { recordProblem, type RequestRecord } from './record.ts';

/** mean and percentiles of one metric, in ms. All null when there are no samples. */
export interface Stat {
  mean: number | null;
  p50: number | null;
  p90: number | null;
  p99: number | null;
}

/** SLO thresholds in ms; a request is "good" when it succeeded and meets every one given. */
export interface Slo {
  ttft?: number;
  tpot?: number;
  itl?: number;
  e2e?: number;
}

/** One run's summary (the `--json` shape, per run). */
export interface RunReport {
  /** The results file. */
  file: string;
  ttftMs: Stat;
  tpotMs: Stat;
  itlMs: Stat;
  e2eMs: Stat;
  /**
   * E2E measured from the scheduled send time (E2E + lateness): the latency a user arriving on
   * schedule saw, corrected for coordinated omission (differs from `e2eMs` when the client was
   * late, e.g. waiting for a `--concurrency` slot).
   */
  e2eFromScheduleMs: Stat;
  /** Send lateness (coordinated-omission check), ms, with the maximum. */
  lateMs: Stat & { max: number | null };
  throughput: { requestsPerS: number; outputTokensPerS: number; inputTokensPerS: number };
  requests: { total: number; ok: number; failed: number };
  /** Failures by kind; HTTP failures also by status as `http <status>`. */
  errors: Record<string, number>;
  /** Requests meeting the SLOs: per second of span, and as a fraction of all requests. */
  goodput: { slo: Slo; requestsPerS: number; fraction: number };
  /** Requests per endpoint (from the `target-pod` header; `(none)` when absent). */
  endpoints: Record<string, { requests: number; ok: number; share: number; ttftP50Ms: number | null; e2eP50Ms: number | null }>;
  /** From the first send to the last response end, s. */
  durationS: number;
  /** Total output tokens of successful requests. */
  outputTokens: number;
  /**
   * Prefix-cache hits the server reported (`usage.prompt_tokens_details.cached_tokens`) over the
   * prompt tokens of the same successful requests; null when no request reported it.
   */
  prefixCache: { cachedTokens: number; promptTokens: number; hitRate: number } | null;
}

/** Linear-interpolation percentile of sorted values (`q` in 0..100). */
export function percentile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const pos = ((sorted.length - 1) * q) / 100;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** {@link Stat} of the values (sorted here). */
export function stat(values: readonly number[]): Stat {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return { mean: null, p50: null, p90: null, p99: null };
  let sum = 0;
  for (const x of s) sum += x;
  return { mean: sum / s.length, p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99) };
}

/** Output tokens of a record: `usage.completion_tokens`, else the streamed chunk count. */
export function outTokens(r: RequestRecord): number {
  return r.outputTokens ?? r.outputChunks;
}

/** TPOT of one record in ms, or null (failed, not streamed, or one output token). */
export function tpotOf(r: RequestRecord): number | null {
  const n = outTokens(r);
  if (!r.ok || r.ttftMs === null || r.e2eMs === null || n <= 1) return null;
  return (r.e2eMs - r.ttftMs) / (n - 1);
}

/** Latency samples (ms) of successful records: TTFT, TPOT (`tpotOf`), every ITL gap, E2E; records lacking one are skipped for it. */
export function latencySamples(ok: readonly RequestRecord[]): { ttft: number[]; tpot: number[]; itl: number[]; e2e: number[] } {
  const ttft: number[] = [];
  const tpot: number[] = [];
  const itl: number[] = [];
  const e2e: number[] = [];
  for (const r of ok) {
    if (r.ttftMs !== null) ttft.push(r.ttftMs);
    const t = tpotOf(r);
    if (t !== null) tpot.push(t);
    for (const g of r.itlMs) itl.push(g);
    if (r.e2eMs !== null) e2e.push(r.e2eMs);
  }
  return { ttft, tpot, itl, e2e };
}

/** Whether a record meets `slo` (and succeeded). Metrics the record lacks fail a given SLO. */
export function meetsSlo(r: RequestRecord, slo: Slo): boolean {
  if (!r.ok) return false;
  if (slo.ttft !== undefined && !(r.ttftMs !== null && r.ttftMs <= slo.ttft)) return false;
  if (slo.e2e !== undefined && !(r.e2eMs !== null && r.e2eMs <= slo.e2e)) return false;
  if (slo.tpot !== undefined) {
    const t = tpotOf(r);
    // A one-token reply has no TPOT; it cannot miss a per-token SLO.
    if (t !== null && t > slo.tpot) return false;
    if (t === null && r.ttftMs === null) return false;
  }
  if (slo.itl !== undefined && r.itlMs.some((g) => g > slo.itl!)) return false;
  return true;
}

/**
 * Parses `ttft=500ms,tpot=50ms,e2e=2s` (units ms or s; a bare number is ms).
 * @throws Error naming `--slo` and the bad part.
 */
export function parseSlo(text: string): Slo {
  const slo: Slo = {};
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^(ttft|tpot|itl|e2e)\s*=\s*([0-9]*\.?[0-9]+)\s*(ms|s)?$/i.exec(part);
    if (!m) throw new Error(`--slo: cannot read ${JSON.stringify(part)}; expected e.g. ttft=500ms,tpot=50ms (keys ttft, tpot, itl, e2e; units ms or s)`);
    const v = Number(m[2]) * ((m[3] ?? 'ms').toLowerCase() === 's' ? 1000 : 1);
    slo[m[1]!.toLowerCase() as keyof Slo] = v;
  }
  return slo;
}

/** Reads a results file. @throws Error `FILE:LINE: ...` for a line that is not a result record. */
export function readResults(path: string): RequestRecord[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read results file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const out: RequestRecord[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!.trim();
    if (!l) continue;
    let o: unknown;
    try {
      o = JSON.parse(l);
    } catch (e) {
      // A run killed mid-write can leave a torn last line; anything else is an error.
      if (i === lines.length - 1 || (i === lines.length - 2 && lines[i + 1]!.trim() === '')) break;
      throw new Error(`${path}:${i + 1}: invalid JSON (${(e as Error).message})`);
    }
    const p = recordProblem(o);
    if (p) throw new Error(`${path}:${i + 1}: not a result record: ${p}`);
    out.push(o as RequestRecord);
  }
  return out;
}

/** Summarizes one run's records. */
export function summarize(records: readonly RequestRecord[], file: string, slo: Slo = {}): RunReport {
  const ok = records.filter((r) => r.ok);
  let start = Infinity;
  let end = -Infinity;
  for (const r of records) {
    start = Math.min(start, r.sentMs);
    end = Math.max(end, r.sentMs + (r.e2eMs ?? 0));
  }
  const spanS = records.length === 0 ? 0 : Math.max(end - start, 0) / 1000;
  const per = (n: number): number => (spanS > 0 ? n / spanS : 0);
  const outTok = ok.reduce((a, r) => a + outTokens(r), 0);
  const inTok = ok.reduce((a, r) => a + (r.promptTokens ?? r.promptTokensSent), 0);
  const errors: Record<string, number> = {};
  for (const r of records) {
    if (r.ok) continue;
    const k = r.error?.kind ?? 'unknown';
    errors[k] = (errors[k] ?? 0) + 1;
    if (k === 'http' && r.status !== null) errors[`http ${r.status}`] = (errors[`http ${r.status}`] ?? 0) + 1;
  }
  const good = records.filter((r) => meetsSlo(r, slo)).length;
  const byEp = new Map<string, RequestRecord[]>();
  for (const r of records) {
    const k = r.endpoint ?? '(none)';
    let a = byEp.get(k);
    if (!a) byEp.set(k, (a = []));
    a.push(r);
  }
  const endpoints: RunReport['endpoints'] = {};
  for (const [k, rs] of [...byEp].sort((a, b) => a[0].localeCompare(b[0]))) {
    const okRs = rs.filter((r) => r.ok);
    endpoints[k] = {
      requests: rs.length,
      ok: okRs.length,
      share: records.length ? rs.length / records.length : 0,
      ttftP50Ms: stat(okRs.flatMap((r) => (r.ttftMs === null ? [] : [r.ttftMs]))).p50,
      e2eP50Ms: stat(okRs.flatMap((r) => (r.e2eMs === null ? [] : [r.e2eMs]))).p50,
    };
  }
  const lateS = stat(records.map((r) => r.lateMs));
  const withCache = ok.filter((r) => typeof r.cachedTokens === 'number' && r.promptTokens !== null);
  const cachedTok = withCache.reduce((a, r) => a + r.cachedTokens!, 0);
  const promptTokWithCache = withCache.reduce((a, r) => a + r.promptTokens!, 0);
  const lat = latencySamples(ok);
  return {
    file,
    ttftMs: stat(lat.ttft),
    tpotMs: stat(lat.tpot),
    itlMs: stat(lat.itl),
    e2eMs: stat(lat.e2e),
    e2eFromScheduleMs: stat(ok.flatMap((r) => (r.e2eMs === null ? [] : [r.e2eMs + r.lateMs]))),
    lateMs: { ...lateS, max: records.length ? Math.max(...records.map((r) => r.lateMs)) : null },
    throughput: { requestsPerS: per(ok.length), outputTokensPerS: per(outTok), inputTokensPerS: per(inTok) },
    requests: { total: records.length, ok: ok.length, failed: records.length - ok.length },
    errors,
    goodput: { slo, requestsPerS: per(good), fraction: records.length ? good / records.length : 0 },
    endpoints,
    durationS: spanS,
    outputTokens: outTok,
    prefixCache: withCache.length ? { cachedTokens: cachedTok, promptTokens: promptTokWithCache, hitRate: promptTokWithCache ? cachedTok / promptTokWithCache : 0 } : null,
  };
}

/** The metrics compared across runs: a path into {@link RunReport} and whether lower is better. */
export const COMPARED: ReadonlyArray<{ label: string; get: (r: RunReport) => number | null; lowerIsBetter: boolean }> = [
  { label: 'TTFT mean (ms)', get: (r) => r.ttftMs.mean, lowerIsBetter: true },
  { label: 'TTFT p50 (ms)', get: (r) => r.ttftMs.p50, lowerIsBetter: true },
  { label: 'TTFT p90 (ms)', get: (r) => r.ttftMs.p90, lowerIsBetter: true },
  { label: 'TTFT p99 (ms)', get: (r) => r.ttftMs.p99, lowerIsBetter: true },
  { label: 'TPOT mean (ms)', get: (r) => r.tpotMs.mean, lowerIsBetter: true },
  { label: 'TPOT p50 (ms)', get: (r) => r.tpotMs.p50, lowerIsBetter: true },
  { label: 'TPOT p90 (ms)', get: (r) => r.tpotMs.p90, lowerIsBetter: true },
  { label: 'TPOT p99 (ms)', get: (r) => r.tpotMs.p99, lowerIsBetter: true },
  { label: 'ITL mean (ms)', get: (r) => r.itlMs.mean, lowerIsBetter: true },
  { label: 'ITL p50 (ms)', get: (r) => r.itlMs.p50, lowerIsBetter: true },
  { label: 'ITL p90 (ms)', get: (r) => r.itlMs.p90, lowerIsBetter: true },
  { label: 'ITL p99 (ms)', get: (r) => r.itlMs.p99, lowerIsBetter: true },
  { label: 'E2E mean (ms)', get: (r) => r.e2eMs.mean, lowerIsBetter: true },
  { label: 'E2E p50 (ms)', get: (r) => r.e2eMs.p50, lowerIsBetter: true },
  { label: 'E2E p90 (ms)', get: (r) => r.e2eMs.p90, lowerIsBetter: true },
  { label: 'E2E p99 (ms)', get: (r) => r.e2eMs.p99, lowerIsBetter: true },
  { label: 'E2E from schedule p99 (ms)', get: (r) => r.e2eFromScheduleMs.p99, lowerIsBetter: true },
  { label: 'Throughput (req/s)', get: (r) => r.throughput.requestsPerS, lowerIsBetter: false },
  { label: 'Output tokens/s', get: (r) => r.throughput.outputTokensPerS, lowerIsBetter: false },
  { label: 'Goodput (req/s)', get: (r) => r.goodput.requestsPerS, lowerIsBetter: false },
  { label: 'Goodput (fraction)', get: (r) => r.goodput.fraction, lowerIsBetter: false },
  { label: 'Prefix cache hit rate', get: (r) => r.prefixCache?.hitRate ?? null, lowerIsBetter: false },
  { label: 'Requests', get: (r) => r.requests.total, lowerIsBetter: false },
  { label: 'Failed', get: (r) => r.requests.failed, lowerIsBetter: true },
  { label: 'Send lateness p99 (ms)', get: (r) => r.lateMs.p99, lowerIsBetter: true },
];

/** Ratio of each compared metric of `run` to `base` (null where either is null or base is 0). */
export function ratios(base: RunReport, run: RunReport): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const m of COMPARED) {
    const a = m.get(base);
    const b = m.get(run);
    out[m.label] = a === null || b === null || a === 0 ? null : b / a;
  }
  return out;
}

/** The `--json` document: every run, and each later run's ratios against the first. */
export interface ReportJson {
  runs: RunReport[];
  /** `ratiosToFirst[i]` compares `runs[i + 1]` with `runs[0]` (value / first value). */
  ratiosToFirst: Array<{ file: string; ratios: Record<string, number | null> }>;
}

/** Builds the `--json` document. */
export function reportJson(runs: RunReport[]): ReportJson {
  return { runs, ratiosToFirst: runs.slice(1).map((r) => ({ file: r.file, ratios: ratios(runs[0]!, r) })) };
}

function fmt(v: number | null): string {
  if (v === null) return '-';
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toFixed(3);
}

/** A plain-text table: metrics as rows, runs as columns, with `x ratio` against the first run. */
export function reportText(runs: RunReport[]): string {
  const names = runs.map((r, i) => `[${i + 1}] ${r.file}`);
  const rows: string[][] = [['metric', ...runs.map((_, i) => `run ${i + 1}`)]];
  for (const m of COMPARED) {
    rows.push([
      m.label,
      ...runs.map((r, i) => {
        const v = m.get(r);
        const base = m.get(runs[0]!);
        const ratio = i > 0 && v !== null && base !== null && base !== 0 ? ` (x${(v / base).toFixed(2)})` : '';
        return fmt(v) + ratio;
      }),
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const lines = rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '));
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  const out = [...names, '', ...lines, ''];
  for (const [i, r] of runs.entries()) {
    const errs = Object.entries(r.errors).map(([k, n]) => `${k}: ${n}`).join(', ');
    out.push(`run ${i + 1}: ${r.requests.total} requests over ${r.durationS.toFixed(1)} s; errors: ${errs || 'none'}`);
    const slo = Object.entries(r.goodput.slo).map(([k, v]) => `${k}<=${v}ms`).join(' ');
    out.push(`  goodput (${slo || 'success only'}): ${fmt(r.goodput.requestsPerS)} req/s, ${(r.goodput.fraction * 100).toFixed(1)} % of requests`);
    const eps = Object.entries(r.endpoints);
    if (eps.length > 1 || (eps.length === 1 && eps[0]![0] !== '(none)')) {
      out.push('  per endpoint: ' + eps.map(([k, e]) => `${k} ${e.requests} (${(e.share * 100).toFixed(1)} %, TTFT p50 ${fmt(e.ttftP50Ms)} ms)`).join('; '));
    }
  }
  return out.join('\n') + '\n';
}
