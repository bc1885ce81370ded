/**
 * Prometheus text exposition (format 0.0.4) parsing into a typed form, for the scraper, the
 * engine-dialect maps and tests. Line parsing (label escaping, HELP unescaping, numbers such as
 * `NaN`, `+Inf`, `1.7e+09`) is done by the npm package `parse-prometheus-text-format`.
 *
 * Two defects of that package are worked around here (version 1.1.1):
 * - it drops the labels, `_sum` and `_count` of **labelled** histograms/summaries (its flattening
 *   only handles unlabelled ones), and every vLLM histogram is labelled. We therefore hand it
 *   histogram/summary families declared `untyped`, so each `_bucket`/`_sum`/`_count` line comes back
 *   as a labelled sample, and regroup them here by their labels minus `le`/`quantile`.
 * - it loses the last sample when the text does not end with a newline; we append one.
 */
import { createRequire } from 'node:module';

/** Metric family type, lower-case as in `# TYPE` lines. */
export type PromType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

/** One counter/gauge/untyped sample. */
export interface PromSample {
  labels: Record<string, string>;
  value: number;
}

/** One histogram series (one label set, `le` removed). Buckets are cumulative, sorted by `le`; `+Inf` is `Infinity`. */
export interface PromHistogram {
  labels: Record<string, string>;
  buckets: Array<{ le: number; count: number }>;
  count: number;
  sum: number;
}

/** One summary series (one label set, `quantile` removed). */
export interface PromSummary {
  labels: Record<string, string>;
  quantiles: Array<{ quantile: number; value: number }>;
  count: number;
  sum: number;
}

/** One metric family. `samples` for counters/gauges/untyped, `histograms`/`summaries` for those types. */
export interface PromFamily {
  name: string;
  help: string;
  type: PromType;
  samples: PromSample[];
  histograms: PromHistogram[];
  summaries: PromSummary[];
}

/** Families by name (the name of the `# TYPE` line, e.g. `vllm:prompt_tokens_total`). */
export type ParsedMetrics = Map<string, PromFamily>;

/** Raised when the text is not valid Prometheus exposition. */
export class PromParseError extends Error {
  override name = 'PromParseError';
}

interface RawFamily {
  name: string;
  help: string;
  type: string;
  metrics: Array<{ value?: string; labels?: Record<string, string> }>;
}

// The package ships no type declarations; load it through require with the shape it returns.
const parsePrometheusTextFormat = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => RawFamily[];

function num(s: string | undefined): number {
  if (s === undefined) return NaN;
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  return Number(s);
}

function labelKey(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join('\u0000');
}

/**
 * Parses Prometheus text exposition.
 * @throws PromParseError on a malformed line.
 */
export function parsePromText(text: string): ParsedMetrics {
  const grouped = new Map<string, 'histogram' | 'summary'>();
  const rewritten = text.replace(/^#\s*TYPE\s+(\S+)\s+(histogram|summary)\s*$/gim, (_m, name: string, type: string) => {
    grouped.set(name, type.toLowerCase() as 'histogram' | 'summary');
    return `# TYPE ${name} untyped`;
  });
  let raw: RawFamily[];
  try {
    raw = parsePrometheusTextFormat(rewritten.endsWith('\n') ? rewritten : rewritten + '\n');
  } catch (e) {
    throw new PromParseError(`invalid Prometheus text: ${(e as Error).message}`);
  }
  const out: ParsedMetrics = new Map();
  const family = (name: string, type: PromType, help = ''): PromFamily => {
    let f = out.get(name);
    if (!f) {
      f = { name, help, type, samples: [], histograms: [], summaries: [] };
      out.set(name, f);
    } else if (help && !f.help) f.help = help;
    return f;
  };
  // histogram/summary series under construction, by family then label key
  const hist = new Map<string, Map<string, PromHistogram>>();
  const summ = new Map<string, Map<string, PromSummary>>();

  const groupedParent = (name: string): [string, string] | null => {
    for (const suffix of ['_bucket', '_sum', '_count']) {
      if (name.endsWith(suffix)) {
        const base = name.slice(0, -suffix.length);
        if (grouped.has(base)) return [base, suffix];
      }
    }
    return null;
  };

  for (const rf of raw) {
    if (grouped.has(rf.name)) {
      family(rf.name, grouped.get(rf.name)!, rf.help);
      continue;
    }
    const parent = groupedParent(rf.name);
    if (parent) {
      const [base, suffix] = parent;
      const type = grouped.get(base)!;
      family(base, type);
      for (const m of rf.metrics) {
        const labels = { ...(m.labels ?? {}) };
        const v = num(m.value);
        if (type === 'histogram') {
          const le = labels.le;
          delete labels.le;
          const key = labelKey(labels);
          let byKey = hist.get(base);
          if (!byKey) hist.set(base, (byKey = new Map()));
          let h = byKey.get(key);
          if (!h) byKey.set(key, (h = { labels, buckets: [], count: NaN, sum: NaN }));
          if (suffix === '_bucket') {
            if (le === undefined) throw new PromParseError(`${rf.name} sample without le label`);
            h.buckets.push({ le: num(le), count: v });
          } else if (suffix === '_sum') h.sum = v;
          else h.count = v;
        } else {
          const q = labels.quantile;
          delete labels.quantile;
          const key = labelKey(labels);
          let byKey = summ.get(base);
          if (!byKey) summ.set(base, (byKey = new Map()));
          let s = byKey.get(key);
          if (!s) byKey.set(key, (s = { labels, quantiles: [], count: NaN, sum: NaN }));
          if (suffix === '_sum') s.sum = v;
          else if (suffix === '_count') s.count = v;
          else if (q !== undefined) s.quantiles.push({ quantile: num(q), value: v });
        }
      }
      continue;
    }
    const f = family(rf.name, rf.type.toLowerCase() as PromType, rf.help);
    for (const m of rf.metrics) f.samples.push({ labels: { ...(m.labels ?? {}) }, value: num(m.value) });
  }
  for (const [base, byKey] of hist) {
    const f = out.get(base)!;
    for (const h of byKey.values()) {
      h.buckets.sort((a, b) => a.le - b.le);
      f.histograms.push(h);
    }
  }
  for (const [base, byKey] of summ) out.get(base)!.summaries.push(...byKey.values());
  // untyped summary lines (e.g. `foo{quantile="0.5"}` of a summary family named foo)
  return out;
}

/** Total and count of the samples of a family that match `match` (all samples when absent). */
function aggregate(parsed: ParsedMetrics, name: string, match?: Record<string, string>): { total: number; n: number } {
  const f = parsed.get(name);
  let total = 0;
  let n = 0;
  if (!f) return { total, n };
  for (const s of f.samples) {
    if (match && !Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
    total += s.value;
    n++;
  }
  return { total, n };
}

/** Sum of the values of every sample of a counter/gauge family (optionally filtered by labels); undefined if the family is absent or empty. */
export function sumSamples(parsed: ParsedMetrics, name: string, match?: Record<string, string>): number | undefined {
  const { total, n } = aggregate(parsed, name, match);
  return n > 0 ? total : undefined;
}

/** Mean of the sample values of a family (e.g. a per-engine KV usage); undefined if absent. */
export function meanSamples(parsed: ParsedMetrics, name: string, match?: Record<string, string>): number | undefined {
  const { total, n } = aggregate(parsed, name, match);
  return n > 0 ? total / n : undefined;
}

/**
 * Merges every series of a histogram family (optionally filtered by labels) into one: bucket counts,
 * `count` and `sum` added per `le`. Undefined if the family is absent or has no series.
 */
export function mergedHistogram(parsed: ParsedMetrics, name: string, match?: Record<string, string>): PromHistogram | undefined {
  const f = parsed.get(name);
  if (!f || f.histograms.length === 0) return undefined;
  const byLe = new Map<number, number>();
  let count = 0;
  let sum = 0;
  let n = 0;
  for (const h of f.histograms) {
    if (match && !Object.entries(match).every(([k, v]) => h.labels[k] === v)) continue;
    n++;
    count += h.count;
    sum += h.sum;
    for (const b of h.buckets) byLe.set(b.le, (byLe.get(b.le) ?? 0) + b.count);
  }
  if (n === 0) return undefined;
  const buckets = [...byLe.entries()].sort((a, b) => a[0] - b[0]).map(([le, c]) => ({ le, count: c }));
  return { labels: match ? { ...match } : {}, buckets, count, sum };
}
