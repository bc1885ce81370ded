/**
 * `npm run bench:gateway`: the gateway's overhead against one trivial upstream, in one run, next to
 * direct access, nginx (one worker) and the Portkey gateway (`@portkey-ai/gateway`).
 *
 * Setup (all on loopback, each proxy in its own process):
 * - upstream: an nginx instance answering every request with a fixed 300-byte chat-completion JSON
 *   (`return 200`), so the upstream costs as little CPU as possible;
 * - direct: the load generator talks to the upstream itself (the baseline);
 * - inferplane: `node bin/inferplane.js gateway -c <fleet>` (single process, `least-request`,
 *   request logs at info level written to /dev/null, metrics scraping on); two reference rows run
 *   the same gateway with request logs off, and with write coalescing off
 *   (`INFERPLANE_WRITE_COALESCING=off`, see src/gateway/write-batch.ts);
 * - nginx: one worker (`worker_processes 1`), `proxy_pass` with an upstream keepalive pool;
 * - portkey: `@portkey-ai/gateway` on Node, provider `openai` with `x-portkey-custom-host` pointing at
 *   the upstream.
 * Two measurements per target:
 * 1. saturation: autocannon, `BENCH_CONNECTIONS` (default 32) connections for `BENCH_DURATION_S`
 *    (default 10) seconds after a 2 s warm-up: requests/s and latency p50/p99 (autocannon, ms);
 * 2. fixed rate: an open-loop client sending 1,000 requests/s for `BENCH_RATE_S` (default 8)
 *    seconds through an undici pool, timing each request with `process.hrtime` (µs resolution):
 *    p50/p99 and the added p50/p99 over direct access.
 * Targets (issue 3): inferplane >= 50% of nginx's requests/s, >= 10x Portkey's, < 1 ms added p50 at
 * 1,000 requests/s. Results go to docs/benchmarks/gateway.md.
 */
import { execSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { Pool } from 'undici';
import { createRequire } from 'node:module';
import { freePort } from '../src/fleet/managed.ts';

/** The part of autocannon's API used here (the package ships no types). */
interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}
const autocannon = createRequire(import.meta.url)('autocannon') as (o: Record<string, unknown>) => Promise<AutocannonResult>;

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 6);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const RATE = 1000;
const RATE_S = Number(process.env.BENCH_RATE_S ?? 5);
const MODEL = 'bench-model';
const REQ_BODY = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Hello, how are you today?' }], max_tokens: 16 });
const RESP_BODY = JSON.stringify({
  id: 'chatcmpl-bench',
  object: 'chat.completion',
  created: 1700000000,
  model: MODEL,
  choices: [{ index: 0, message: { role: 'assistant', content: 'I am fine, thank you for asking.' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 12, completion_tokens: 9, total_tokens: 21 },
});

interface Target {
  name: string;
  url: string;
  path: string;
  headers: Record<string, string>;
  /** Processes whose CPU time is this target's cost (the proxy; for nginx its worker); none for direct. */
  pids: () => number[];
}

/** Clock ticks per second of /proc/<pid>/stat times (`getconf CLK_TCK`, 100 on Linux x86-64). */
const CLK_TCK = (() => {
  try {
    return Number(execSync('getconf CLK_TCK', { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * User + system CPU time (ms) of the processes, all threads, from /proc/<pid>/stat fields 14-15
 * (proc(5)); NaN where /proc is not available (then the CPU column reads n/a).
 */
function cpuMs(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 on (comm may hold spaces)
      ticks += Number(f[11]) + Number(f[12]); // utime (14), stime (15)
    } catch {
      return NaN;
    }
  }
  return (ticks * 1000) / CLK_TCK;
}

/** The worker processes of an nginx master (its children), by /proc. */
function nginxWorkers(masterPid: number): number[] {
  try {
    return execSync(`pgrep -P ${masterPid}`, { encoding: 'utf8' }).trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'inferplane-bench-gw-'));

/** nginx masters: stopped with SIGTERM (fast shutdown stops the workers too; SIGKILL left them orphaned). */
const nginxMasters = new Set<ChildProcess>();

function cleanup(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(nginxMasters.has(c) ? 'SIGTERM' : 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

function nginxConf(name: string, port: number, body: string): string {
  const prefix = join(dir, name);
  mkdirSync(prefix, { recursive: true });
  const file = join(prefix, 'nginx.conf');
  writeFileSync(
    file,
    `daemon off;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 65s;
${body.replaceAll('PORT', String(port))}
}
`,
  );
  return file;
}

function startNginx(name: string, port: number, body: string): ChildProcess {
  const conf = nginxConf(name, port, body);
  const c = spawn('nginx', ['-c', conf, '-p', join(dir, name), '-e', join(dir, name, 'error.log')], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(c);
  nginxMasters.add(c);
  return c;
}

async function waitHttp(url: string, init: RequestInit = {}, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(url, init);
      await r.arrayBuffer();
      if (r.status < 500) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > end) throw new Error(`${url} did not come up`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

async function saturation(t: Target, seconds: number): Promise<{ rps: number; p50: number; p99: number; errors: number; non2xx: number; cpuUsPerReq: number }> {
  const pids = t.pids();
  const c0 = cpuMs(pids);
  const r = await autocannon({
    url: t.url + t.path,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...t.headers },
    body: REQ_BODY,
    connections: CONNECTIONS,
    duration: seconds,
    pipelining: 1,
  });
  const cpuUsPerReq = pids.length && r.requests.total > 0 ? ((cpuMs(pids) - c0) * 1000) / r.requests.total : NaN;
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts, non2xx: r.non2xx, cpuUsPerReq };
}

/** Open-loop fixed-rate run; latencies in ms (µs resolution). */
async function fixedRate(t: Target, rate: number, seconds: number): Promise<{ p50: number; p99: number; sent: number; failed: number; achievedRps: number }> {
  const pool = new Pool(t.url, { connections: 128, pipelining: 1, keepAliveTimeout: 30_000 });
  const lat: number[] = [];
  let failed = 0;
  const total = rate * seconds;
  const start = process.hrtime.bigint();
  const inflight: Promise<void>[] = [];
  const one = async () => {
    const t0 = process.hrtime.bigint();
    try {
      const r = await pool.request({ path: t.path, method: 'POST', headers: { 'content-type': 'application/json', ...t.headers }, body: REQ_BODY });
      await r.body.arrayBuffer();
      if (r.statusCode !== 200) failed++;
      else lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    } catch {
      failed++;
    }
  };
  for (let i = 0; i < total; i++) {
    const due = start + BigInt(Math.round((i * 1e9) / rate));
    const now = process.hrtime.bigint();
    if (due > now) {
      const waitMs = Number(due - now) / 1e6;
      if (waitMs >= 1) await new Promise((r) => setTimeout(r, Math.floor(waitMs)));
    }
    inflight.push(one());
    if (inflight.length > 4096) await Promise.all(inflight.splice(0, 2048));
  }
  await Promise.all(inflight);
  const elapsedS = Number(process.hrtime.bigint() - start) / 1e9;
  await pool.close();
  lat.sort((a, b) => a - b);
  return { p50: percentile(lat, 50), p99: percentile(lat, 99), sent: total, failed, achievedRps: total / elapsedS };
}

async function main(): Promise<void> {
  const [upPort, ngPort, gwPort, pkPort, mpPort, gw2Port, gw3Port] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
  // 1. Upstream: nginx returning a fixed body.
  startNginx('upstream', upPort, `  server {\n    listen 127.0.0.1:PORT;\n    location / {\n      default_type application/json;\n      return 200 '${RESP_BODY}';\n    }\n  }`);
  await waitHttp(`http://127.0.0.1:${upPort}/health`);
  // 2. nginx as a proxy, one worker, keepalive to the upstream.
  const ngMaster = startNginx(
    'proxy',
    ngPort,
    `  upstream up { server 127.0.0.1:${upPort}; keepalive 128; }\n  server {\n    listen 127.0.0.1:PORT;\n    location / {\n      proxy_pass http://up;\n      proxy_http_version 1.1;\n      proxy_set_header Connection "";\n    }\n  }`,
  );
  await waitHttp(`http://127.0.0.1:${ngPort}/health`);
  // 3. inferplane gateway, and two references: request logs off (level warn: what the log line
  // costs) and write coalescing off (what coalescing gains).
  const startGateway = async (name: string, port: number, logLevel: string, env: Record<string, string> = {}): Promise<ChildProcess> => {
    const fleet = join(dir, `fleet-${name}.yaml`);
    writeFileSync(fleet, `gateway:\n  port: ${port}\n  routing: least-request\n  logLevel: ${logLevel}\nmodels:\n  - name: ${MODEL}\n    endpoints: [http://127.0.0.1:${upPort}]\n`);
    const c = spawn(process.execPath, [resolve('bin/inferplane.js'), 'gateway', '-c', fleet], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } });
    children.push(c);
    await waitHttp(`http://127.0.0.1:${port}/health`);
    return c;
  };
  const gw = await startGateway('main', gwPort, 'info');
  const gw2 = await startGateway('nolog', gw2Port, 'warn');
  const gw3 = await startGateway('nocoalesce', gw3Port, 'info', { INFERPLANE_WRITE_COALESCING: 'off' });
  // 4. Reference floor: the smallest node:http + undici proxy (no parsing, routing, metrics or logs).
  const minProxy = join(dir, 'min-proxy.mjs');
  writeFileSync(
    minProxy,
    `import { createServer } from 'node:http';
import { Pool } from ${JSON.stringify(resolve('node_modules/undici/index.js'))};
const pool = new Pool('http://127.0.0.1:${upPort}', { connections: 256, pipelining: 1 });
createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const up = await pool.request({ path: req.url, method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.concat(chunks) });
    res.writeHead(up.statusCode, { 'content-type': 'application/json', 'content-length': up.headers['content-length'] });
    for await (const c of up.body) res.write(c);
    res.end();
  });
}).listen(${mpPort}, '127.0.0.1');
`,
  );
  const mp = spawn(process.execPath, [minProxy], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(mp);
  await waitHttp(`http://127.0.0.1:${mpPort}/`, { method: 'POST', body: '{}' });
  // 5. Portkey.
  let portkeyError: string | undefined;
  let pkPid = 0;
  const pkHeaders = { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `http://127.0.0.1:${upPort}/v1`, authorization: 'Bearer sk-unused' };
  try {
    const pk = spawn(process.execPath, [resolve('node_modules/@portkey-ai/gateway/build/start-server.js'), `--port=${pkPort}`, '--headless'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_ENV: 'production' } });
    children.push(pk);
    pkPid = pk.pid ?? 0;
    let err = '';
    pk.stderr!.on('data', (d) => (err += d));
    await waitHttp(`http://127.0.0.1:${pkPort}/`, {}, 30_000).catch((e) => {
      throw new Error(`${(e as Error).message}; stderr: ${err.slice(0, 500)}`);
    });
    const probe = await fetch(`http://127.0.0.1:${pkPort}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...pkHeaders }, body: REQ_BODY });
    const txt = await probe.text();
    if (probe.status !== 200 || !txt.includes('chat.completion')) throw new Error(`Portkey answered ${probe.status}: ${txt.slice(0, 300)}`);
  } catch (e) {
    portkeyError = (e as Error).message;
  }

  const targets: Target[] = [
    { name: 'direct', url: `http://127.0.0.1:${upPort}`, path: '/v1/chat/completions', headers: {}, pids: () => [] },
    { name: 'inferplane', url: `http://127.0.0.1:${gwPort}`, path: '/v1/chat/completions', headers: {}, pids: () => [gw.pid!] },
    { name: 'inferplane (logs off)', url: `http://127.0.0.1:${gw2Port}`, path: '/v1/chat/completions', headers: {}, pids: () => [gw2.pid!] },
    { name: 'inferplane (no write coalescing)', url: `http://127.0.0.1:${gw3Port}`, path: '/v1/chat/completions', headers: {}, pids: () => [gw3.pid!] },
    { name: 'nginx', url: `http://127.0.0.1:${ngPort}`, path: '/v1/chat/completions', headers: {}, pids: () => nginxWorkers(ngMaster.pid!) },
    { name: 'node-minimal', url: `http://127.0.0.1:${mpPort}`, path: '/v1/chat/completions', headers: {}, pids: () => [mp.pid!] },
  ];
  if (!portkeyError) targets.push({ name: 'portkey', url: `http://127.0.0.1:${pkPort}`, path: '/v1/chat/completions', headers: pkHeaders, pids: () => (pkPid ? [pkPid] : []) });

  // Sanity: every target returns the upstream's body.
  for (const t of targets) {
    const r = await fetch(t.url + t.path, { method: 'POST', headers: { 'content-type': 'application/json', ...t.headers }, body: REQ_BODY });
    const j = (await r.json()) as { id?: string };
    if (r.status !== 200 || j.id !== 'chatcmpl-bench') throw new Error(`${t.name}: unexpected answer ${r.status}`);
  }

  // Rounds interleave the targets so that load changes on a shared machine hit all of them alike;
  // each figure is the median over rounds.
  type Sat = Awaited<ReturnType<typeof saturation>>;
  type Fixed = Awaited<ReturnType<typeof fixedRate>>;
  const satRuns: Record<string, Sat[]> = {};
  const fixedRuns: Record<string, Fixed[]> = {};
  for (const t of targets) {
    process.stderr.write(`[bench:gateway] ${t.name}: warm-up\n`);
    await saturation(t, 2);
  }
  for (let round = 1; round <= ROUNDS; round++) {
    for (const t of targets) {
      const s = await saturation(t, DURATION_S);
      const f = await fixedRate(t, RATE, RATE_S);
      (satRuns[t.name] ??= []).push(s);
      (fixedRuns[t.name] ??= []).push(f);
      process.stderr.write(`[bench:gateway] round ${round}/${ROUNDS} ${t.name}: ${s.rps.toFixed(0)} req/s; @${RATE}/s p50 ${f.p50.toFixed(3)} ms\n`);
    }
  }
  const med = (xs: number[]) => {
    const a = [...xs].sort((x, y) => x - y);
    return a[Math.floor((a.length - 1) / 2)]!;
  };
  const sat: Record<string, Sat> = {};
  const fixed: Record<string, Fixed> = {};
  for (const t of targets) {
    const S = satRuns[t.name]!;
    const F = fixedRuns[t.name]!;
    sat[t.name] = { rps: med(S.map((x) => x.rps)), p50: med(S.map((x) => x.p50)), p99: med(S.map((x) => x.p99)), errors: S.reduce((a, x) => a + x.errors, 0), non2xx: S.reduce((a, x) => a + x.non2xx, 0), cpuUsPerReq: med(S.map((x) => x.cpuUsPerReq)) };
    fixed[t.name] = { p50: med(F.map((x) => x.p50)), p99: med(F.map((x) => x.p99)), sent: F.reduce((a, x) => a + x.sent, 0), failed: F.reduce((a, x) => a + x.failed, 0), achievedRps: med(F.map((x) => x.achievedRps)) };
  }
  const cpuFmt = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
  const perRound = targets
    .map((t) => `| ${t.name} | ${satRuns[t.name]!.map((x) => x.rps.toFixed(0)).join(' / ')} | ${t.name === 'direct' ? '-' : satRuns[t.name]!.map((x) => cpuFmt(x.cpuUsPerReq)).join(' / ')} | ${fixedRuns[t.name]!.map((x) => x.p50.toFixed(3)).join(' / ')} |`)
    .join('\n');

  const d = fixed.direct!;
  const ds = sat.direct!;
  const row = (n: string) => {
    const s = sat[n]!;
    const f = fixed[n]!;
    return `| ${n} | ${s.rps.toFixed(0)} | ${n === 'direct' ? '-' : cpuFmt(s.cpuUsPerReq)} | ${s.p50.toFixed(2)} | ${s.p99.toFixed(2)} | ${n === 'direct' ? '-' : `+${(s.p50 - ds.p50).toFixed(2)} / +${(s.p99 - ds.p99).toFixed(2)}`} | ${f.achievedRps.toFixed(0)} | ${f.p50.toFixed(3)} | ${f.p99.toFixed(3)} | ${n === 'direct' ? '-' : `+${(f.p50 - d.p50).toFixed(3)} / +${(f.p99 - d.p99).toFixed(3)}`} | ${s.errors + s.non2xx + f.failed} |`;
  };
  const ip = sat.inferplane!.rps;
  const vsNginx = ip / sat.nginx!.rps;
  const vsMinimal = ip / sat['node-minimal']!.rps;
  // Same-round ratios (both measured minutes apart under the same machine load).
  const roundRatios = (a: string, b: string) => satRuns[a]!.map((x, i) => x.rps / satRuns[b]![i]!.rps);
  const fmtRatios = (xs: number[], pct: boolean) => xs.map((x) => (pct ? `${(x * 100).toFixed(0)}%` : `${x.toFixed(1)}x`)).join(', ');
  const nginxRounds = roundRatios('inferplane', 'nginx');
  const portkeyRounds = sat.portkey ? roundRatios('inferplane', 'portkey') : undefined;
  const vsPortkey = sat.portkey ? ip / sat.portkey.rps : undefined;
  const addedP50 = fixed.inferplane!.p50 - d.p50;
  const checks = [
    `- inferplane / nginx requests/s: **${(vsNginx * 100).toFixed(1)}%** (target >= 50%): ${vsNginx >= 0.5 ? 'met' : 'NOT met'}`,
    vsPortkey !== undefined ? `- inferplane / Portkey requests/s: **${vsPortkey.toFixed(2)}x** (target >= 10x): ${vsPortkey >= 10 ? 'met' : 'NOT met'}` : `- Portkey: not measured (${portkeyError})`,
    `- same-round ratios, inferplane / nginx: ${fmtRatios(nginxRounds, true)} (median ${(med(nginxRounds) * 100).toFixed(1)}%)${portkeyRounds ? `; inferplane / Portkey: ${fmtRatios(portkeyRounds, false)} (median ${med(portkeyRounds).toFixed(1)}x)` : ''}`,
    `- proxy CPU per request, inferplane / nginx: ${(sat.inferplane!.cpuUsPerReq / sat.nginx!.cpuUsPerReq).toFixed(2)}x (${cpuFmt(sat.inferplane!.cpuUsPerReq)} vs ${cpuFmt(sat.nginx!.cpuUsPerReq)} µs); node-minimal / nginx: ${(sat['node-minimal']!.cpuUsPerReq / sat.nginx!.cpuUsPerReq).toFixed(2)}x`,
    `- for reference: inferplane / node-minimal requests/s: ${(vsMinimal * 100).toFixed(0)}%; node-minimal / nginx: ${((sat['node-minimal']!.rps / sat.nginx!.rps) * 100).toFixed(0)}%`,
    `- inferplane added p50 at ${RATE} req/s: **${(addedP50 * 1000).toFixed(0)} µs** (target < 1 ms): ${addedP50 < 1 ? 'met' : 'NOT met'}`,
  ];
  const date = new Date().toISOString();
  const machine = `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${process.platform}`;
  const md = `# Gateway overhead benchmark

- Date: ${date}
- Machine: ${machine} (shared with other work; every process of the run — load generator, proxies, upstream — runs on these cores)
- Command: \`npm run bench:gateway\` (env: BENCH_ROUNDS=${ROUNDS}, BENCH_DURATION_S=${DURATION_S}, BENCH_CONNECTIONS=${CONNECTIONS}, BENCH_RATE_S=${RATE_S})

Upstream: nginx returning a fixed ${RESP_BODY.length}-byte chat completion. Request: a ${REQ_BODY.length}-byte \`POST /v1/chat/completions\`.
inferplane: one \`inferplane gateway\` process, strategy \`least-request\`, JSON request logs at info (to /dev/null), engine scraping on. References, not targets: inferplane (logs off), the same at log level warn (what the per-request log line costs); inferplane (no write coalescing), the same with \`INFERPLANE_WRITE_COALESCING=off\` (what coalescing the socket writes of one event-loop turn gains, src/gateway/write-batch.ts).
nginx: 1.22, one worker, upstream keepalive 128. node-minimal (reference floor, not a target): the smallest \`node:http\` + undici pass-through proxy, with no parsing, routing, metrics or logs. Portkey: \`@portkey-ai/gateway\` 1.15.2 on Node, provider \`openai\` with \`x-portkey-custom-host\`.

${ROUNDS} rounds; in each round every target gets a saturation run then a fixed-rate run (targets interleaved so machine-load changes hit all alike); figures are medians over rounds.
Saturation: autocannon, ${CONNECTIONS} connections, ${DURATION_S} s (after one 2 s warm-up per target); latency in ms (autocannon's ms resolution).
Proxy CPU µs/req: user + system CPU time of the proxy's processes (all threads; nginx: its worker) during the saturation run, from /proc/<pid>/stat, divided by the requests completed. Less sensitive to other load on a shared machine than requests/s, and the measure of what each request costs the proxy.
Fixed rate: open-loop ${RATE} requests/s for ${RATE_S} s through an undici pool, per-request \`hrtime\` (ms with µs resolution). "Added" = target minus direct.

| target | req/s (saturation) | proxy CPU µs/req | p50 ms | p99 ms | added p50 / p99 ms | achieved req/s (fixed) | p50 ms @${RATE}/s | p99 ms @${RATE}/s | added p50 / p99 ms @${RATE}/s | errors |
|---|---|---|---|---|---|---|---|---|---|---|
${targets.map((t) => row(t.name)).join('\n')}

Per round (saturation req/s and proxy CPU per request; fixed-rate p50 ms):

| target | req/s per round | proxy CPU µs/req per round | p50 ms @${RATE}/s per round |
|---|---|---|---|
${perRound}

## Against the targets

${checks.join('\n')}
${portkeyError ? `\nPortkey could not be measured in this run: ${portkeyError}\n` : ''}
## Reading the numbers

- On 2 shared cores the load generator, the proxy under test and the upstream compete for CPU, so
  absolute requests/s are low and noisy (see the per-round spread); the ratios between targets
  measured in the same run are what this page is for. Re-run with \`npm run bench:gateway\` on
  the machine you care about.
- The gateway is bound by its one event-loop thread. CPU per request in this run (median over
  rounds): inferplane ${cpuFmt(sat.inferplane!.cpuUsPerReq)} µs; with request logs off ${cpuFmt(sat['inferplane (logs off)']!.cpuUsPerReq)} µs; without write
  coalescing ${cpuFmt(sat['inferplane (no write coalescing)']!.cpuUsPerReq)} µs (${sat['inferplane (no write coalescing)']!.rps.toFixed(0)} req/s); node-minimal ${cpuFmt(sat['node-minimal']!.cpuUsPerReq)} µs; the nginx worker ${cpuFmt(sat.nginx!.cpuUsPerReq)} µs.
  One thread serving 50% of nginx's requests/s (${(sat.nginx!.rps / 2).toFixed(0)}/s) has at most ${(2e6 / sat.nginx!.rps).toFixed(0)} µs of CPU per
  request. nginx itself is not CPU-bound here (its worker is busy ${((sat.nginx!.rps * sat.nginx!.cpuUsPerReq) / 1e4).toFixed(0)}% of the time at its
  measured rate): the load generator and the upstream share the cores.
- node-minimal (a bare \`node:http\` + undici pass-through, no parsing, routing, metrics or logs)
  reached ${((sat['node-minimal']!.rps / sat.nginx!.rps) * 100).toFixed(0)}% of nginx's requests/s; inferplane reached ${(vsMinimal * 100).toFixed(0)}% of node-minimal. The gateway does
  more per request than node-minimal and still uses less CPU: its client side is its own HTTP/1.1
  server on Node's llhttp parser (no \`node:http\` stream objects), its upstream side its own
  keep-alive pool (no undici), and its socket writes are coalesced per event-loop turn (see
  docs/gateway.md, "Performance").
- Portkey is saturated well below 1,000 requests/s here, so its fixed-rate latencies are queueing
  delays, not per-request overhead.
`;
  mkdirSync('docs/benchmarks', { recursive: true });
  writeFileSync('docs/benchmarks/gateway.md', md);
  process.stdout.write(md);
}

main()
  .then(() => {
    cleanup();
    process.exit(0);
  })
  .catch((e) => {
    process.stderr.write(`bench:gateway failed: ${(e as Error).stack ?? e}\n`);
    cleanup();
    process.exit(1);
  });
