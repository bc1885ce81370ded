/**
 * `inferplane adapters add|list|rm` and `inferplane autoscalers list|set|rm`: clients of the
 * controllers' admin API (`src/control/admin-api.ts`) served by a running gateway.
 *
 * Common options: `--gateway URL` (env `INFERPLANE_GATEWAY`, default `http://127.0.0.1:8080`) and
 * `--admin-key KEY` (env `INFERPLANE_ADMIN_KEY`), sent as `Authorization: Bearer KEY`.
 * Specs can be given by flags or as a YAML/JSON file (`-f spec.yaml`); flags override file fields.
 * Errors from the API (OpenAI envelope) are printed as `error: <message>` with exit code 1.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';

interface ConnOpts {
  gateway?: string;
  adminKey?: string;
}

function conn(o: ConnOpts): { base: string; headers: Record<string, string> } {
  const base = (o.gateway ?? process.env.INFERPLANE_GATEWAY ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
  const key = o.adminKey ?? process.env.INFERPLANE_ADMIN_KEY;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key) headers.authorization = `Bearer ${key}`;
  return { base, headers };
}

/** Calls the admin API; prints the error envelope's message and exits 1 on failure. */
async function call(o: ConnOpts, method: string, path: string, body?: unknown): Promise<unknown> {
  const { base, headers } = conn(o);
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new Error(`cannot reach the gateway at ${base}: ${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}`);
  }
  const text = await res.text();
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    v = text;
  }
  if (!res.ok) {
    const msg = (v as { error?: { message?: string } })?.error?.message ?? text;
    throw new Error(`${method} ${path}: HTTP ${res.status}: ${msg}`);
  }
  return v;
}

function readSpecFile(file: string | undefined): Record<string, unknown> {
  if (!file) return {};
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as Error).message})`);
  }
  const v = /\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text);
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${file}: must hold one object (a spec)`);
  return v as Record<string, unknown>;
}

function num(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`${flag} must be a number, got "${v}"`);
    return n;
  };
}

/** Output sinks of the commands (stdout/stderr by default; tests inject their own). */
export interface ControlCliIo {
  out(text: string): void;
  err(text: string): void;
}

let io: ControlCliIo = { out: (t) => void process.stdout.write(t), err: (t) => void process.stderr.write(t) };

function run(fn: () => Promise<void>): Promise<void> {
  return fn().catch((e: Error) => {
    io.err(`error: ${e.message}\n`);
    process.exitCode = 1;
  });
}

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

function withConn(cmd: Command): Command {
  return cmd.option('--gateway <url>', 'gateway base URL (env INFERPLANE_GATEWAY, default http://127.0.0.1:8080)').option('--admin-key <key>', 'admin API key (env INFERPLANE_ADMIN_KEY)');
}

/** Registers `inferplane adapters ...` and `inferplane autoscalers ...`. */
export function registerControl(program: Command, sinks?: ControlCliIo): void {
  if (sinks) io = sinks;
  const adapters = program.command('adapters').description('manage LoRA adapters (ModelAdapter) on a running gateway');
  withConn(adapters.command('add [name]'))
    .description('add or change a LoRA adapter; it is downloaded and loaded in the background')
    .option('-f, --file <spec>', 'ModelAdapter spec (YAML or JSON)')
    .option('--base <model>', 'base model')
    .option('--url <artifactUrl>', 'artifact URL (file://, http(s)://)')
    .option('--replicas <n|all>', 'endpoints to load on (a number or "all")')
    .option('--sha256 <hex>', 'expected sha256 of a single-file artifact')
    .option('--placement <policy>', 'spread | leastAdapters | binPack')
    .option('--secret <name>', 'credentials from a named secret')
    .option('--token-env <VAR>', 'credentials from an environment variable (of the gateway)')
    .option('--wait', 'wait until the adapter is Ready or Failed (up to 120 s)')
    .action((name: string | undefined, o: ConnOpts & Record<string, string | boolean | undefined>) =>
      run(async () => {
        const spec: Record<string, unknown> = readSpecFile(o.file as string | undefined);
        if (name) spec.name = name;
        if (o.base) spec.baseModel = o.base;
        if (o.url) spec.artifactUrl = o.url;
        if (o.replicas) spec.replicas = o.replicas === 'all' ? 'all' : num('--replicas')(o.replicas as string);
        if (o.sha256) spec.sha256 = o.sha256;
        if (o.placement) spec.placement = o.placement;
        if (o.secret) spec.credentials = { secret: o.secret };
        if (o.tokenEnv) spec.credentials = { env: o.tokenEnv };
        let a = (await call(o, 'POST', '/admin/adapters', spec)) as { spec: { name: string }; status: { phase: string; endpoints: string[]; lastError?: string } };
        if (o.wait) {
          const until = Date.now() + 120_000;
          while (!['Ready', 'Failed'].includes(a.status.phase) && Date.now() < until) {
            await new Promise((r) => setTimeout(r, 250));
            a = (await call(o, 'GET', `/admin/adapters/${encodeURIComponent(a.spec.name)}`)) as typeof a;
          }
        }
        io.out(`adapter ${a.spec.name}: ${a.status.phase}${a.status.endpoints.length ? ` on ${a.status.endpoints.join(', ')}` : ''}${a.status.lastError ? ` (last error: ${a.status.lastError})` : ''}\n`);
        if (o.wait && a.status.phase !== 'Ready') process.exitCode = 1;
      }),
    );
  withConn(adapters.command('list'))
    .description('list adapters with their phase and endpoints')
    .option('--json', 'print the JSON')
    .action((o: ConnOpts & { json?: boolean }) =>
      run(async () => {
        const r = (await call(o, 'GET', '/admin/adapters')) as { data: { spec: { name: string; baseModel: string; artifactUrl: string }; status: { phase: string; endpoints: string[]; lastError?: string } }[] };
        if (o.json) return void io.out(JSON.stringify(r.data, null, 2) + '\n');
        const rows = [['NAME', 'BASE', 'PHASE', 'ENDPOINTS', 'ARTIFACT', 'LAST ERROR']];
        for (const a of r.data) rows.push([a.spec.name, a.spec.baseModel, a.status.phase, a.status.endpoints.join(',') || '-', a.spec.artifactUrl, a.status.lastError ?? '']);
        io.out(table(rows));
      }),
    );
  withConn(adapters.command('rm <name>'))
    .description('unload an adapter from every endpoint and remove it')
    .action((name: string, o: ConnOpts) =>
      run(async () => {
        await call(o, 'DELETE', `/admin/adapters/${encodeURIComponent(name)}`);
        io.out(`adapter ${name}: removed\n`);
      }),
    );

  const autoscalers = program.command('autoscalers').description('manage autoscalers (PodAutoscaler) on a running gateway');
  withConn(autoscalers.command('list'))
    .description('list autoscalers with their replicas and last decision')
    .option('--json', 'print the JSON')
    .action((o: ConnOpts & { json?: boolean }) =>
      run(async () => {
        const r = (await call(o, 'GET', '/admin/autoscalers')) as { data: { spec: { name: string; model: string; strategy: string; minReplicas: number; maxReplicas: number }; status: { desiredReplicas: number; readyReplicas: number; scalingEvents: number; lastRecommendation?: { reason: string } } }[] };
        if (o.json) return void io.out(JSON.stringify(r.data, null, 2) + '\n');
        const rows = [['NAME', 'MODEL', 'STRATEGY', 'MIN', 'MAX', 'DESIRED', 'READY', 'EVENTS', 'LAST REASON']];
        for (const a of r.data) rows.push([a.spec.name, a.spec.model, a.spec.strategy, String(a.spec.minReplicas), String(a.spec.maxReplicas), String(a.status.desiredReplicas), String(a.status.readyReplicas), String(a.status.scalingEvents), a.status.lastRecommendation?.reason ?? '']);
        io.out(table(rows));
      }),
    );
  withConn(autoscalers.command('set <name>'))
    .description('add or replace an autoscaler')
    .option('-f, --file <spec>', 'PodAutoscaler spec (YAML or JSON)')
    .option('--model <model>', 'model whose replicas are scaled')
    .option('--strategy <s>', 'hpa | kpa | apa | tokenflow')
    .option('--metric <m>', 'kvCacheUsage | waiting | running | tokensInFlight | inflightRequests | queueTimeMs')
    .option('--target <v>', 'per-replica target value', num('--target'))
    .option('--min <n>', 'minimum replicas', num('--min'))
    .option('--max <n>', 'maximum replicas', num('--max'))
    .action((name: string, o: ConnOpts & { file?: string; model?: string; strategy?: string; metric?: string; target?: number; min?: number; max?: number }) =>
      run(async () => {
        const spec: Record<string, unknown> = readSpecFile(o.file);
        if (o.model) spec.model = o.model;
        if (o.strategy) spec.strategy = o.strategy;
        if (o.metric !== undefined || o.target !== undefined) {
          delete spec.metrics;
          if (o.metric !== undefined) spec.metric = o.metric;
          if (o.target !== undefined) spec.target = o.target;
        }
        if (o.min !== undefined) spec.minReplicas = o.min;
        if (o.max !== undefined) spec.maxReplicas = o.max;
        const pa = (await call(o, 'PUT', `/admin/autoscalers/${encodeURIComponent(name)}`, spec)) as { spec: { name: string; model: string; strategy: string; minReplicas: number; maxReplicas: number } };
        io.out(`autoscaler ${pa.spec.name}: ${pa.spec.strategy} on ${pa.spec.model} [${pa.spec.minReplicas}, ${pa.spec.maxReplicas}]\n`);
      }),
    );
  withConn(autoscalers.command('rm <name>'))
    .description('remove an autoscaler (replicas stay as they are)')
    .action((name: string, o: ConnOpts) =>
      run(async () => {
        await call(o, 'DELETE', `/admin/autoscalers/${encodeURIComponent(name)}`);
        io.out(`autoscaler ${name}: removed\n`);
      }),
    );
}
