/**
 * `inferplane up [-c fleet.yaml] [--port N]` and `inferplane gateway -c fleet.yaml [--port N]`.
 *
 * - `up` without a file starts the embedded demo fleet (`DEMO_FLEET`): the gateway on port 8080 and
 *   simulated engines for two models (3 x Llama-3.1-8B on H100, 2 x Qwen2.5-7B on H100), then prints
 *   the URLs and ready-to-paste curl / `openai` client examples.
 * - `gateway` runs the gateway alone against the static endpoints of the fleet file.
 * - SIGINT/SIGTERM drain: stop accepting, let in-flight requests (streams included) finish up to
 *   `gateway.drainGraceMs`, then exit (code 0; a second signal exits at once with 130).
 * The line `inferplane gateway listening on http://HOST:PORT` is printed to stdout when serving
 * (tests and scripts read the port from it).
 */
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { FleetConfigError, loadFleetFile, validateFleet, type FleetConfig, type FleetInput } from '../fleet/config.ts';
import { runFleet, type RunningFleet } from '../gateway/runtime.ts';

/** The demo fleet of `inferplane up` with no file. */
export const DEMO_FLEET: FleetInput = {
  gateway: { port: 8080, routing: 'least-request' },
  models: [
    { name: 'meta-llama/Llama-3.1-8B-Instruct', simulator: { gpu: 'H100', replicas: 3 } },
    { name: 'Qwen/Qwen2.5-7B-Instruct', simulator: { gpu: 'H100', replicas: 2 } },
  ],
};

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`--port must be an integer 0..65535, got "${v}"`);
  return n;
}

function banner(run: RunningFleet, cfg: FleetConfig, demo: boolean): string {
  const m = cfg.models[0]!.name;
  const eps = run.fleet.list();
  const lines = [
    `inferplane gateway listening on ${run.url}`,
    '',
    `  OpenAI base URL : ${run.url}/v1`,
    `  models          : ${run.url}/v1/models`,
    `  metrics         : ${run.url}/metrics`,
    `  endpoints (${eps.length}):`,
    ...eps.map((e) => `    ${e.id.padEnd(40)} ${e.url}  ${e.ready ? 'ready' : 'starting'}`),
    '',
    'Try it:',
    `  curl ${run.url}/v1/chat/completions -H 'content-type: application/json' \\`,
    `    -d '{"model":"${m}","messages":[{"role":"user","content":"Hello!"}],"max_tokens":32}' -i`,
    '',
    `  curl -N ${run.url}/v1/chat/completions -H 'content-type: application/json' -H 'routing-strategy: least-kv-cache' \\`,
    `    -d '{"model":"${m}","messages":[{"role":"user","content":"Tell me a story"}],"stream":true}'`,
    '',
    '  # node (npm i openai)',
    `  import OpenAI from 'openai';`,
    `  const client = new OpenAI({ baseURL: '${run.url}/v1', apiKey: '${cfg.apiKeys[0] ? '<your key>' : 'unused'}' });`,
    `  const r = await client.chat.completions.create({ model: '${m}', messages: [{ role: 'user', content: 'Hello!' }] });`,
    `  console.log(r.choices[0].message.content);`,
    '',
    demo ? 'This is the demo fleet (simulated engines). Use -c fleet.yaml for your own; see docs/fleet.md.' : '',
    'Ctrl-C drains in-flight requests and stops.',
  ];
  return lines.join('\n');
}

/** Starts the fleet and prints the banner; a start-up failure exits 2 with the message (prefixed by `file`, when given). */
async function serve(cfg: FleetConfig, opts: { port?: number; host?: string; baseDir?: string; staticOnly: boolean; demo: boolean; file?: string }): Promise<void> {
  let run: RunningFleet;
  try {
    run = await runFleet(cfg, { port: opts.port, host: opts.host, baseDir: opts.baseDir, staticOnly: opts.staticOnly });
  } catch (e) {
    process.stderr.write(`${opts.file ? `${opts.file}: ` : ''}${(e as Error).message}\n`);
    process.exit(2);
  }
  process.stdout.write(banner(run, cfg, opts.demo) + '\n');
  let signals = 0;
  const onSignal = (sig: string) => {
    signals++;
    if (signals > 1) process.exit(130);
    process.stdout.write(`\n${sig}: draining (grace ${cfg.gateway.drainGraceMs} ms)...\n`);
    run.stop().then(
      (aborted) => {
        process.stdout.write(`stopped${aborted ? ` (${aborted} request(s) aborted at the grace deadline)` : ''}\n`);
        process.exit(0);
      },
      (e) => {
        process.stderr.write(`error while stopping: ${(e as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
}

function loadOrExit(file: string): FleetConfig {
  try {
    return loadFleetFile(file);
  } catch (e) {
    if (e instanceof FleetConfigError) {
      process.stderr.write(`invalid fleet file:\n${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}

/** Registers `inferplane up` and `inferplane gateway`. */
export function registerUp(program: Command): void {
  program
    .command('up')
    .description('start the gateway and a fleet (the built-in demo fleet of simulated engines when no file is given)')
    .option('-c, --config <file>', 'fleet file (YAML); see docs/fleet.md')
    .option('-p, --port <port>', 'gateway port (overrides gateway.port; default 8080)', parsePort)
    .option('--host <host>', 'address to listen on (overrides gateway.host)')
    .action(async (o: { config?: string; port?: number; host?: string }) => {
      const cfg = o.config ? loadOrExit(o.config) : validateFleet(DEMO_FLEET, '<demo fleet>');
      await serve(cfg, { port: o.port, host: o.host, baseDir: o.config ? dirname(o.config) : undefined, staticOnly: false, demo: !o.config, file: o.config });
    });
  program
    .command('gateway')
    .description('run the gateway alone against the static endpoints of a fleet file')
    .requiredOption('-c, --config <file>', 'fleet file (YAML) with static endpoints')
    .option('-p, --port <port>', 'gateway port (overrides gateway.port)', parsePort)
    .option('--host <host>', 'address to listen on (overrides gateway.host)')
    .action(async (o: { config: string; port?: number; host?: string }) => {
      const cfg = loadOrExit(o.config);
      await serve(cfg, { port: o.port, host: o.host, baseDir: dirname(o.config), staticOnly: true, demo: false, file: o.config });
    });
}
