/**
 * The `bench report --html` page: one self-contained HTML file (no network access needed to view
 * it) with the summary table and Chart.js charts: latency CDFs (TTFT, TPOT, ITL, E2E), latency and
 * throughput over time, and per-endpoint load. Chart.js's UMD bundle
 * (`chart.js/dist/chart.umd.min.js`, MIT) is inlined.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { latencySamples, outTokens, reportText, type RunReport } from './report.ts';
import type { RequestRecord } from './record.ts';

const require = createRequire(import.meta.url);

/** Reads Chart.js's UMD bundle from node_modules. @throws Error when chart.js is not installed. */
export function chartJsSource(): string {
  // chart.js does not export its package.json; its main entry lives in dist/.
  const dist = dirname(require.resolve('chart.js'));
  for (const f of ['chart.umd.min.js', 'chart.umd.js']) {
    try {
      return readFileSync(join(dist, f), 'utf8');
    } catch {
      /* try the next name */
    }
  }
  throw new Error('chart.js UMD bundle not found in node_modules/chart.js/dist');
}

/** Up to `n` points of the empirical CDF of `values`: `[x, fraction <= x]`. */
export function cdfPoints(values: readonly number[], n = 200): Array<[number, number]> {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return [];
  const out: Array<[number, number]> = [];
  const step = Math.max(1, Math.floor(s.length / n));
  for (let i = 0; i < s.length; i += step) out.push([s[i]!, (i + 1) / s.length]);
  if (out[out.length - 1]![0] !== s[s.length - 1]) out.push([s[s.length - 1]!, 1]);
  return out;
}

/** Per time bucket (by send time): completions, output tokens/s, TTFT and E2E medians. */
export function timeSeries(
  records: readonly RequestRecord[],
  buckets = 60,
): { bucketS: number; t: number[]; reqPerS: number[]; tokPerS: number[]; ttftP50: Array<number | null>; e2eP50: Array<number | null>; lateMax: Array<number | null> } {
  const end = records.reduce((m, r) => Math.max(m, r.sentMs + (r.e2eMs ?? 0)), 0);
  const bucketS = Math.max(1, Math.ceil(end / 1000 / buckets));
  const n = Math.max(1, Math.ceil(end / 1000 / bucketS));
  const done = new Array<number>(n).fill(0);
  const tok = new Array<number>(n).fill(0);
  const ttft: number[][] = Array.from({ length: n }, () => []);
  const e2e: number[][] = Array.from({ length: n }, () => []);
  const lateMax: Array<number | null> = new Array<number | null>(n).fill(null);
  for (const r of records) {
    const sb = Math.min(n - 1, Math.floor(r.sentMs / 1000 / bucketS));
    lateMax[sb] = Math.max(lateMax[sb] ?? 0, r.lateMs);
    if (!r.ok) continue;
    const fin = Math.min(n - 1, Math.floor((r.sentMs + (r.e2eMs ?? 0)) / 1000 / bucketS));
    done[fin]!++;
    tok[fin]! += outTokens(r);
    const b = Math.min(n - 1, Math.floor(r.sentMs / 1000 / bucketS));
    if (r.ttftMs !== null) ttft[b]!.push(r.ttftMs);
    if (r.e2eMs !== null) e2e[b]!.push(r.e2eMs);
  }
  const med = (xs: number[]): number | null => {
    if (xs.length === 0) return null;
    const s = xs.sort((a, b) => a - b);
    const m = (s.length - 1) / 2;
    return (s[Math.floor(m)]! + s[Math.ceil(m)]!) / 2;
  };
  return {
    bucketS,
    t: Array.from({ length: n }, (_, i) => i * bucketS),
    reqPerS: done.map((d) => d / bucketS),
    tokPerS: tok.map((d) => d / bucketS),
    ttftP50: ttft.map(med),
    e2eP50: e2e.map(med),
    lateMax,
  };
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/** JSON that is safe inside a `<script>` element. */
function scriptJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** Renders the report page for runs (same order as `reports`, `records[i]` belongs to `reports[i]`). */
export function renderHtml(reports: RunReport[], records: RequestRecord[][], title = 'inferplane bench report'): string {
  const data = reports.map((rep, i) => {
    const recs = records[i]!;
    const lat = latencySamples(recs.filter((r) => r.ok));
    return {
      name: `run ${i + 1}: ${rep.file}`,
      cdf: { ttft: cdfPoints(lat.ttft), tpot: cdfPoints(lat.tpot), itl: cdfPoints(lat.itl), e2e: cdfPoints(lat.e2e) },
      series: timeSeries(recs),
      endpoints: Object.fromEntries(Object.entries(rep.endpoints).map(([k, e]) => [k, e.requests])),
    };
  });
  const table = esc(reportText(reports));
  const js = chartJsSource().replace(/<\/script/gi, '<\\/script');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1b1f24;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:16px}
.card{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:12px}
pre{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:12px;overflow-x:auto;font-size:12px}
.meta{color:#57606a;font-size:13px}
</style></head><body>
<h1>${esc(title)}</h1>
<div class="meta">Generated ${esc(new Date().toISOString())} by <code>inferplane bench report</code>. Ratios (xN) compare each run with run 1.</div>
<h2>Summary</h2><pre>${table}</pre>
<h2>Latency distributions (CDF)</h2>
<div class="grid">
<div class="card"><canvas id="cdf-ttft"></canvas></div><div class="card"><canvas id="cdf-e2e"></canvas></div>
<div class="card"><canvas id="cdf-tpot"></canvas></div><div class="card"><canvas id="cdf-itl"></canvas></div>
</div>
<h2>Over time</h2>
<div class="grid">
<div class="card"><canvas id="ts-ttft"></canvas></div><div class="card"><canvas id="ts-e2e"></canvas></div>
<div class="card"><canvas id="ts-req"></canvas></div><div class="card"><canvas id="ts-tok"></canvas></div>
<div class="card"><canvas id="ts-late"></canvas></div>
</div>
<h2>Per-endpoint load</h2>
<div class="grid"><div class="card"><canvas id="endpoints"></canvas></div></div>
<script>${js}</script>
<script>
const RUNS = ${scriptJson(data)};
const COLORS = ['#0969da','#cf222e','#1a7f37','#8250df','#bf8700','#0a7d8c','#d1242f','#57606a'];
const color = (i) => COLORS[i % COLORS.length];
function cdf(id, key, label) {
  new Chart(document.getElementById(id), { type: 'line',
    data: { datasets: RUNS.map((r, i) => ({ label: r.name, data: r.cdf[key].map(([x, y]) => ({ x, y })), borderColor: color(i), backgroundColor: color(i), pointRadius: 0, borderWidth: 2, stepped: true })) },
    options: { animation: false, parsing: false, plugins: { title: { display: true, text: label + ' CDF' } },
      scales: { x: { type: 'linear', title: { display: true, text: label + ' (ms)' } }, y: { min: 0, max: 1, title: { display: true, text: 'fraction of requests' } } } } });
}
function series(id, key, label, unit) {
  new Chart(document.getElementById(id), { type: 'line',
    data: { datasets: RUNS.map((r, i) => ({ label: r.name, data: r.series.t.map((t, k) => ({ x: t, y: r.series[key][k] })), borderColor: color(i), backgroundColor: color(i), pointRadius: 0, borderWidth: 2, spanGaps: false })) },
    options: { animation: false, parsing: false, plugins: { title: { display: true, text: label } },
      scales: { x: { type: 'linear', title: { display: true, text: 'time since start (s)' } }, y: { beginAtZero: true, title: { display: true, text: unit } } } } });
}
cdf('cdf-ttft', 'ttft', 'TTFT'); cdf('cdf-e2e', 'e2e', 'E2E latency'); cdf('cdf-tpot', 'tpot', 'TPOT'); cdf('cdf-itl', 'itl', 'ITL');
series('ts-ttft', 'ttftP50', 'TTFT median by send time', 'ms'); series('ts-e2e', 'e2eP50', 'E2E median by send time', 'ms');
series('ts-req', 'reqPerS', 'Completed requests per second', 'req/s'); series('ts-tok', 'tokPerS', 'Output tokens per second', 'tokens/s');
series('ts-late', 'lateMax', 'Client send lateness (max per interval; coordinated-omission check)', 'ms');
const eps = [...new Set(RUNS.flatMap((r) => Object.keys(r.endpoints)))].sort();
new Chart(document.getElementById('endpoints'), { type: 'bar',
  data: { labels: eps, datasets: RUNS.map((r, i) => ({ label: r.name, data: eps.map((e) => r.endpoints[e] || 0), backgroundColor: color(i) })) },
  options: { animation: false, plugins: { title: { display: true, text: 'Requests per endpoint (target-pod header)' } }, scales: { y: { beginAtZero: true, title: { display: true, text: 'requests' } } } } });
</script>
</body></html>
`;
}
