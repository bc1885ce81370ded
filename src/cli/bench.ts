/**
 * `inferplane bench run` (send a workload to an OpenAI-compatible server, one JSON line per request)
 * and `inferplane bench report` (summaries, side-by-side ratios, `--json`, `--html`).
 * Flags are documented in `docs/bench.md`.
 */
import { writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import cliProgress from 'cli-progress';
import { startBench } from '../bench/client.ts';
import { renderHtml } from '../bench/html.ts';
import { PromptFactory } from '../bench/prompt.ts';
import type { RequestRecord } from '../bench/record.ts';
import { parseSlo, readResults, reportJson, reportText, summarize } from '../bench/report.ts';
import { buildSchedule, type ScheduleOptions } from '../bench/schedule.ts';
import { LineWriter } from '../bench/writer.ts';
import { PREBLE_PRESETS } from '../bench/workload.ts';

function positiveNumber(flag: string, allowInf = false) {
  return (v: string): number => {
    if (allowInf && /^(inf|infinity)$/i.test(v.trim())) return Infinity;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${flag} must be a number > 0${allowInf ? ' (or inf)' : ''}.`);
    return n;
  };
}
function nonNegativeNumber(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${flag} must be a number >= 0.`);
    return n;
  };
}
function positiveInt(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`${flag} must be an integer > 0.`);
    return n;
  };
}
function intArg(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\s*-?\d+\s*$/.test(v) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`${flag} must be an integer.`);
    return n;
  };
}
function header(v: string, prev: Record<string, string>): Record<string, string> {
  const i = v.indexOf(':');
  if (i <= 0) throw new InvalidArgumentError(`--header must look like 'name: value', got ${JSON.stringify(v)}.`);
  return { ...prev, [v.slice(0, i).trim().toLowerCase()]: v.slice(i + 1).trim() };
}
function stages(v: string): Array<{ durationS: number; rate: number }> {
  return v.split(',').map((p) => {
    const m = /^\s*([0-9]*\.?[0-9]+)\s*[:x@]\s*([0-9]*\.?[0-9]+)\s*$/.exec(p);
    if (!m || Number(m[1]) <= 0) throw new InvalidArgumentError(`--stages must look like 'SECONDS:RATE,...' (e.g. 60:2,60:8), got ${JSON.stringify(p)}.`);
    return { durationS: Number(m[1]), rate: Number(m[2]) };
  });
}

/** `bench run` flags as commander parses them; those named like ScheduleOptions' fields share its types. */
interface RunFlags
  extends Pick<ScheduleOptions, 'inputTokens' | 'outputTokens' | 'preset' | 'numPrefixes' | 'samplesPerPrefix' | 'sessions' | 'turns' | 'systemTokens' | 'rate' | 'arrival' | 'burstiness' | 'stages' | 'maxRequests' | 'timeScale' | 'maxInputTokens'> {
  baseUrl: string;
  model: string;
  out: string;
  trace?: string;
  traceFormat?: 'azure' | 'mooncake';
  dataset?: string;
  multiTurn?: boolean;
  synthetic?: 'shared-prefix' | 'multi-turn' | 'random';
  thinkTime?: number;
  sineAmplitude?: number;
  sinePeriod?: number;
  sineNoise?: number;
  duration?: number;
  start?: number;
  concurrency?: number;
  apiKey?: string;
  header: Record<string, string>;
  seed: number;
  promptSalt?: string;
  spreadBuckets?: number;
  api: 'chat' | 'completions';
  stream: boolean;
  ignoreEos: boolean;
  timeout: number;
  drainTimeout: number;
  endpointHeader: string;
  progress?: boolean;
}

async function benchRun(f: RunFlags, cmd: Command): Promise<void> {
  const sources = [f.trace !== undefined, f.dataset !== undefined, f.synthetic !== undefined].filter(Boolean).length;
  if (sources !== 1) cmd.error('error: give exactly one workload source: --trace FILE, --dataset FILE or --synthetic TYPE');
  if (f.trace !== undefined && f.traceFormat === undefined) cmd.error('error: --trace needs --trace-format azure|mooncake');
  if (f.traceFormat !== undefined && f.trace === undefined) cmd.error('error: --trace-format is only valid with --trace');
  try {
    new URL(f.baseUrl);
  } catch {
    cmd.error(`error: --base-url must be an absolute URL (e.g. http://127.0.0.1:8000), got ${JSON.stringify(f.baseUrl)}`);
  }
  const prompts = new PromptFactory(f.model, f.promptSalt === undefined ? f.seed : `${f.seed}/${f.promptSalt}`);
  let built;
  try {
    built = buildSchedule({
      source: f.trace !== undefined ? { kind: 'trace', file: f.trace, format: f.traceFormat! } : f.dataset !== undefined ? { kind: 'dataset', file: f.dataset, multiTurn: f.multiTurn ?? false } : { kind: 'synthetic', type: f.synthetic! },
      ...(f.rate !== undefined ? { rate: f.rate } : {}),
      ...(f.arrival !== undefined ? { arrival: f.arrival } : {}),
      ...(f.burstiness !== undefined ? { burstiness: f.burstiness } : {}),
      sine: { ...(f.sineAmplitude !== undefined ? { amplitude: f.sineAmplitude } : {}), ...(f.sinePeriod !== undefined ? { periodS: f.sinePeriod } : {}), ...(f.sineNoise !== undefined ? { noise: f.sineNoise } : {}) },
      ...(f.stages !== undefined ? { stages: f.stages } : {}),
      ...(f.duration !== undefined ? { durationS: f.duration } : {}),
      ...(f.maxRequests !== undefined ? { maxRequests: f.maxRequests } : {}),
      ...(f.timeScale !== undefined ? { timeScale: f.timeScale } : {}),
      ...(f.start !== undefined ? { startS: f.start } : {}),
      ...(f.inputTokens !== undefined ? { inputTokens: f.inputTokens } : {}),
      ...(f.outputTokens !== undefined ? { outputTokens: f.outputTokens } : {}),
      ...(f.preset !== undefined ? { preset: f.preset } : {}),
      ...(f.numPrefixes !== undefined ? { numPrefixes: f.numPrefixes } : {}),
      ...(f.samplesPerPrefix !== undefined ? { samplesPerPrefix: f.samplesPerPrefix } : {}),
      ...(f.sessions !== undefined ? { sessions: f.sessions } : {}),
      ...(f.turns !== undefined ? { turns: f.turns } : {}),
      ...(f.thinkTime !== undefined ? { thinkTimeS: f.thinkTime } : {}),
      ...(f.systemTokens !== undefined ? { systemTokens: f.systemTokens } : {}),
      seed: f.seed,
      ...(f.maxInputTokens !== undefined ? { maxInputTokens: f.maxInputTokens } : {}),
      ...(f.spreadBuckets !== undefined ? { spreadBucketsMs: f.spreadBuckets } : {}),
      tokenizer: prompts.tokenizer,
    });
  } catch (e) {
    cmd.error(`error: ${(e as Error).message}`);
  }
  let writer: LineWriter;
  try {
    writer = new LineWriter(f.out);
  } catch (e) {
    cmd.error(`error: --out: cannot open ${f.out} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const records: RequestRecord[] = [];
  const quiet = f.progress === false || !process.stderr.isTTY;
  process.stderr.write(`bench: ${built.description} -> ${f.baseUrl}\n`);
  const apiKey = f.apiKey ?? process.env.OPENAI_API_KEY;
  const run = startBench(built.items, {
    baseUrl: f.baseUrl,
    model: f.model,
    api: f.api,
    stream: f.stream,
    ignoreEos: f.ignoreEos,
    headers: f.header,
    ...(apiKey ? { apiKey } : {}),
    ...(f.concurrency !== undefined ? { concurrency: f.concurrency } : {}),
    timeoutMs: f.timeout * 1000,
    drainTimeoutMs: f.drainTimeout * 1000,
    endpointHeader: f.endpointHeader,
    prompts,
    onRecord: (r) => {
      records.push(r);
      writer.write(JSON.stringify(r) + '\n');
    },
  });
  let bar: cliProgress.SingleBar | undefined;
  let barTimer: NodeJS.Timeout | undefined;
  if (!quiet) {
    bar = new cliProgress.SingleBar(
      { format: 'bench {bar} {value}/{total} done | {failed} errors | {rate} req/s | {inflight} in flight | {elapsed}s', hideCursor: true, clearOnComplete: false, stream: process.stderr },
      cliProgress.Presets.shades_classic,
    );
    const p0 = run.progress();
    bar.start(p0.planned, 0, { failed: 0, rate: '0.0', inflight: 0, elapsed: '0' });
    let lastDone = 0;
    let lastT = p0.elapsedMs;
    barTimer = setInterval(() => {
      const p = run.progress();
      const rate = ((p.done - lastDone) * 1000) / Math.max(1, p.elapsedMs - lastT);
      lastDone = p.done;
      lastT = p.elapsedMs;
      bar!.setTotal(p.planned);
      bar!.update(p.done, { failed: p.failed, rate: rate.toFixed(1), inflight: p.inFlight, elapsed: (p.elapsedMs / 1000).toFixed(0) });
    }, 250);
  }
  let interrupted = false;
  const onSigint = (): void => {
    if (interrupted) {
      // Second Ctrl-C: keep what was written and leave now.
      writer.close();
      process.exit(130);
    }
    interrupted = true;
    process.stderr.write(`\nbench: stopping (Ctrl-C): no new requests; waiting up to ${f.drainTimeout} s for those in flight (Ctrl-C again to quit now)\n`);
    run.stop();
  };
  process.on('SIGINT', onSigint);
  const summary = await run.done;
  process.off('SIGINT', onSigint);
  if (barTimer) clearInterval(barTimer);
  if (bar) {
    const p = run.progress();
    bar.update(p.done, { failed: p.failed, rate: '-', inflight: 0, elapsed: (p.elapsedMs / 1000).toFixed(0) });
    bar.stop();
  }
  writer.close();
  process.stderr.write(
    `bench: ${summary.sent} requests (${summary.ok} ok, ${summary.failed} failed${summary.notSent ? `, ${summary.notSent} not sent` : ''}) in ${(summary.durationMs / 1000).toFixed(1)} s; results in ${f.out}${summary.stopped ? ' (stopped early)' : ''}\n`,
  );
  if (records.length > 0) process.stdout.write(reportText([summarize(records, f.out)]));
  if (interrupted) process.exitCode = 130;
}

async function benchReport(files: string[], f: { json?: boolean; html?: string; slo?: string }, cmd: Command): Promise<void> {
  let slo = {};
  try {
    if (f.slo !== undefined) slo = parseSlo(f.slo);
  } catch (e) {
    cmd.error(`error: ${(e as Error).message}`);
  }
  const all: RequestRecord[][] = [];
  for (const file of files) {
    try {
      all.push(readResults(file));
    } catch (e) {
      cmd.error(`error: ${(e as Error).message}`);
    }
  }
  const reports = all.map((recs, i) => summarize(recs, files[i]!, slo));
  if (f.html !== undefined) {
    try {
      writeFileSync(f.html, renderHtml(reports, all));
    } catch (e) {
      cmd.error(`error: --html: cannot write ${f.html} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    process.stderr.write(`bench: wrote ${f.html}\n`);
  }
  process.stdout.write(f.json ? JSON.stringify(reportJson(reports), null, 2) + '\n' : reportText(reports));
}

/** Registers `inferplane bench run` and `inferplane bench report`. */
export function registerBench(program: Command): void {
  const bench = program.command('bench').description('benchmark any OpenAI-compatible endpoint: replay traces and datasets, report latency and goodput');
  bench
    .command('run')
    .showHelpAfterError('(run with --help for the list of flags)')
    .description('send a workload on schedule and write one JSON line per request')
    .requiredOption('--base-url <url>', 'server base URL (with or without /v1), e.g. http://127.0.0.1:8000')
    .requiredOption('--model <name>', 'model name sent in each request (also picks the tokenizer)')
    .requiredOption('--out <file>', 'results file (JSON Lines, one line per request)')
    .option('--trace <file>', 'replay a request trace (needs --trace-format)')
    .addOption(new Option('--trace-format <format>', 'trace file format').choices(['azure', 'mooncake']))
    .option('--dataset <file>', 'ShareGPT JSON, AIBrix dataset JSONL, or an earlier results file (replay)')
    .option('--multi-turn', 'ShareGPT: one session per conversation instead of its first exchange')
    .addOption(new Option('--synthetic <type>', 'generated workload').choices(['shared-prefix', 'multi-turn', 'random']))
    .option('--input-tokens <n>', 'prompt tokens (random: exact; shared-prefix: mean total; multi-turn: mean per turn)', positiveInt('--input-tokens'))
    .option('--max-input-tokens <n>', "clip generated and trace prompts to this many tokens (for models with a shorter context than the trace's prompts)", positiveInt('--max-input-tokens'))
    .option('--output-tokens <n>', 'output tokens per request (max_tokens; default 128)', positiveInt('--output-tokens'))
    .addOption(new Option('--preset <name>', 'shared-prefix preset (Preble paper profiles)').choices(Object.keys(PREBLE_PRESETS)))
    .option('--num-prefixes <n>', 'shared-prefix: distinct prefixes (default 10)', positiveInt('--num-prefixes'))
    .option('--samples-per-prefix <n>', 'shared-prefix: requests per prefix (default 200)', positiveInt('--samples-per-prefix'))
    .option('--sessions <n>', 'multi-turn: sessions (default 100)', positiveInt('--sessions'))
    .option('--turns <n>', 'multi-turn: mean turns per session (default 4)', positiveNumber('--turns'))
    .option('--think-time <s>', 'multi-turn: mean think time between turns, seconds (default 2)', nonNegativeNumber('--think-time'))
    .option('--system-tokens <n>', 'multi-turn: shared system prompt tokens (default 0)', positiveInt('--system-tokens'))
    .option('--rate <r>', 'requests (or sessions) per second, or inf; traces and replays use their timestamps without it', positiveNumber('--rate', true))
    .addOption(new Option('--arrival <shape>', 'arrival process for --rate (default poisson)').choices(['constant', 'poisson', 'gamma', 'sine', 'stages']))
    .option('--burstiness <k>', 'gamma shape: 1 = Poisson, < 1 burstier (default 1)', positiveNumber('--burstiness'))
    .option('--sine-amplitude <r>', 'sine: amplitude in req/s (default rate/2)', nonNegativeNumber('--sine-amplitude'))
    .option('--sine-period <s>', 'sine: period in seconds (default 60)', positiveNumber('--sine-period'))
    .option('--sine-noise <r>', 'sine: Gaussian noise std in req/s (default 0)', nonNegativeNumber('--sine-noise'))
    .option('--stages <list>', "stages: 'SECONDS:RATE,...' e.g. 60:2,60:8,60:4", stages)
    .option('--duration <s>', 'stop scheduling after this many seconds (traces: window length in trace time)', positiveNumber('--duration'))
    .option('--max-requests <n>', 'at most this many requests (sessions for multi-turn)', positiveInt('--max-requests'))
    .option('--time-scale <x>', 'multiply send times: 0.5 replays twice as fast (default 1)', positiveNumber('--time-scale'))
    .option('--spread-buckets <ms>', 'traces: spread requests that share a timestamp evenly over this many ms (3000 smooths mooncake-conversation)', positiveNumber('--spread-buckets'))
    .option('--start <s>', 'trace window start, seconds of trace time (default 0)', nonNegativeNumber('--start'))
    .option('--concurrency <c>', 'most requests in flight (default unlimited)', positiveInt('--concurrency'))
    .option('--api-key <key>', 'sent as Authorization: Bearer <key> (default $OPENAI_API_KEY)')
    .option('--header <k: v>', "extra request header, repeatable (e.g. 'routing-strategy: prefix-cache')", header, {} as Record<string, string>)
    .option('--seed <n>', 'seed for arrivals and prompt text', intArg('--seed'), 0)
    .option('--prompt-salt <s>', 'changes the prompt text only (not lengths or times), so a second run does not hit the prefix cache the first one filled')
    .addOption(new Option('--api <api>', 'OpenAI API to call').choices(['chat', 'completions']).default('chat'))
    .option('--no-stream', 'non-streaming requests (no TTFT/ITL)')
    .option('--no-ignore-eos', 'do not send ignore_eos (for servers that reject vLLM extensions)')
    .option('--timeout <s>', 'per-request timeout in seconds', positiveNumber('--timeout'), 600)
    .option('--drain-timeout <s>', 'after Ctrl-C, seconds to wait for in-flight requests', nonNegativeNumber('--drain-timeout'), 30)
    .option('--endpoint-header <name>', 'response header naming the serving endpoint', 'target-pod')
    .option('--no-progress', 'no progress bar even on a terminal')
    .action(async (opts: RunFlags, cmd: Command) => benchRun(opts, cmd));
  bench
    .command('report')
    .showHelpAfterError('(run with --help for the list of flags)')
    .description('summarize results files side by side (ratios against the first)')
    .argument('<results...>', 'results files written by bench run')
    .option('--json', 'machine-readable JSON on stdout')
    .option('--html <file>', 'write a self-contained HTML report with charts')
    .option('--slo <list>', 'SLOs for goodput, e.g. ttft=500ms,tpot=50ms (keys ttft, tpot, itl, e2e)')
    .action(async (files: string[], opts: { json?: boolean; html?: string; slo?: string }, cmd: Command) => benchReport(files, opts, cmd));
}
