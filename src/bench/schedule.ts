/**
 * Turns `bench run` workload options into a schedule (what to send, when). Deterministic for a seed;
 * no I/O except reading the named trace or dataset file.
 */
import type { Tokenizer } from '../engines/tokenizer.ts';
import { arrivalTimes, type ArrivalShape } from './arrivals.ts';
import type { ScheduledItem } from './client.ts';
import { loadDataset } from './datasets.ts';
import { createRng } from './rng.ts';
import { loadAzureTrace, loadMooncakeTrace, MOONCAKE_BLOCK_TOKENS, spreadBuckets } from './traces.ts';
import { multiTurnSessions, PREBLE_PRESETS, randomRequests, sharedPrefixRequests, traceRequests, type PreblePreset, type RequestSpec, type WorkItem } from './workload.ts';

/** Workload and schedule options (the `bench run` flags). Times in seconds, rates in req/s. */
export interface ScheduleOptions {
  source: { kind: 'trace'; file: string; format: 'azure' | 'mooncake' } | { kind: 'dataset'; file: string; multiTurn?: boolean } | { kind: 'synthetic'; type: 'shared-prefix' | 'multi-turn' | 'random' };
  /** Requests (or sessions) per second; Infinity sends everything at once. Trace/replay: optional. */
  rate?: number;
  arrival?: 'constant' | 'poisson' | 'gamma' | 'sine' | 'stages';
  /** Gamma shape (vLLM `--burstiness`), default 1. */
  burstiness?: number;
  /** Sine: amplitude in req/s (default rate/2), period s (default 60), noise std req/s (default 0). */
  sine?: { amplitude?: number; periodS?: number; noise?: number };
  /** Stages as `[{durationS, rate}]` (for `arrival: 'stages'`). */
  stages?: Array<{ durationS: number; rate: number }>;
  durationS?: number;
  maxRequests?: number;
  /** Multiplies every send time (0.5 = twice as fast). */
  timeScale?: number;
  /** Trace window start, s of trace time. */
  startS?: number;
  inputTokens?: number;
  outputTokens?: number;
  /** Shared-prefix: preset, prefixes (N) and samples per prefix (M). */
  preset?: PreblePreset;
  numPrefixes?: number;
  samplesPerPrefix?: number;
  /** Multi-turn: sessions, mean turns, mean think time (s), system prompt tokens. */
  sessions?: number;
  turns?: number;
  thinkTimeS?: number;
  systemTokens?: number;
  seed?: number;
  /**
   * Clip generated and trace prompts to at most this many tokens (Mooncake hash ids are cut to
   * match), for models whose context is shorter than the trace's longest prompts. Literal text
   * (datasets) is not clipped.
   */
  maxInputTokens?: number;
  /** Traces: spread requests sharing a timestamp evenly over this many ms of trace time (see `spreadBuckets`). */
  spreadBucketsMs?: number;
  tokenizer: Tokenizer;
}

/** Clips a spec's prompt to `max` tokens (see {@link ScheduleOptions.maxInputTokens}). */
export function clipSpec(spec: RequestSpec, max: number): RequestSpec {
  if (spec.text !== undefined || spec.inputTokens <= max) return spec;
  const out: RequestSpec = { ...spec, inputTokens: max };
  if (spec.hashIds) out.hashIds = spec.hashIds.slice(0, Math.ceil(max / MOONCAKE_BLOCK_TOKENS));
  if (spec.prefix) {
    if (max <= 1) delete out.prefix;
    else out.prefix = { id: spec.prefix.id, tokens: Math.min(spec.prefix.tokens, max - 1) };
  }
  return out;
}

/** The schedule and a one-line description of it. */
export interface BuiltSchedule {
  items: ScheduledItem[];
  description: string;
}

function shapeOf(o: ScheduleOptions): ArrivalShape {
  const rate = o.rate!;
  switch (o.arrival ?? 'poisson') {
    case 'constant':
      return { kind: 'constant', rate };
    case 'poisson':
      return { kind: 'poisson', rate };
    case 'gamma':
      return { kind: 'gamma', rate, burstiness: o.burstiness ?? 1 };
    case 'sine':
      return { kind: 'sine', meanRate: rate, amplitude: o.sine?.amplitude ?? rate / 2, periodS: o.sine?.periodS ?? 60, noise: o.sine?.noise ?? 0 };
    case 'stages':
      if (!o.stages || o.stages.length === 0) throw new Error('--arrival stages needs --stages');
      return { kind: 'stages', stages: o.stages };
  }
}

/**
 * Builds the schedule.
 * @throws Error naming the flag when options conflict or are missing (e.g. `--rate` for a synthetic
 *   workload), and the file errors of the trace and dataset loaders.
 */
export function buildSchedule(o: ScheduleOptions): BuiltSchedule {
  const rng = createRng(o.seed ?? 0);
  const timeScale = o.timeScale ?? 1;
  if (!(timeScale > 0)) throw new Error(`--time-scale must be > 0, got ${timeScale}`);
  let items: WorkItem[];
  let fixedTimes: number[] | undefined;
  let what: string;
  const src = o.source;
  if (src.kind === 'trace') {
    // The trace loader applies the window and the time scale to its timestamps.
    let rows = (src.format === 'azure' ? loadAzureTrace : loadMooncakeTrace)(src.file, {
      timeScale,
      ...(o.startS !== undefined ? { startS: o.startS } : {}),
      ...(o.durationS !== undefined ? { durationS: o.durationS } : {}),
      ...(o.maxRequests !== undefined ? { maxRequests: o.maxRequests } : {}),
    });
    if (rows.length === 0) throw new Error(`${src.file}: no requests in the chosen window (--start/--duration)`);
    if (o.spreadBucketsMs !== undefined) rows = spreadBuckets(rows, o.spreadBucketsMs * timeScale);
    items = traceRequests(rows).map((request) => ({ kind: 'request', request }));
    if (o.rate === undefined) fixedTimes = rows.map((r) => r.arrivalMs);
    what = `${src.format} trace ${src.file} (${rows.length} requests)`;
  } else if (src.kind === 'dataset') {
    const ds = loadDataset(src.file, { tokenizer: o.tokenizer, multiTurn: src.multiTurn ?? false, defaultOutputTokens: o.outputTokens ?? 128, ...(o.rate === undefined && o.maxRequests !== undefined ? { maxItems: o.maxRequests } : {}) });
    items = ds.items;
    if (ds.arrivalsMs && o.rate === undefined) fixedTimes = ds.arrivalsMs.map((t) => t * timeScale);
    what = `${ds.format} dataset ${src.file} (${ds.items.length} items)`;
  } else if (src.type === 'random') {
    const n = o.maxRequests ?? (o.rate !== undefined && o.durationS !== undefined && Number.isFinite(o.rate) ? Math.ceil(o.rate * o.durationS * 2 + 100) : undefined);
    if (n === undefined) throw new Error('--synthetic random needs --max-requests, or --rate with --duration');
    items = randomRequests(n, o.inputTokens ?? 512, o.outputTokens ?? 128).map((request) => ({ kind: 'request', request }));
    what = `random prompts (${o.inputTokens ?? 512} in / ${o.outputTokens ?? 128} out tokens)`;
  } else if (src.type === 'shared-prefix') {
    const preset = PREBLE_PRESETS[o.preset ?? 'tool-use'];
    const totalTokens = o.inputTokens !== undefined ? { mean: o.inputTokens, std: preset.totalTokens.std * (o.inputTokens / preset.totalTokens.mean) } : preset.totalTokens;
    items = sharedPrefixRequests(
      { numPrefixes: o.numPrefixes ?? 10, samplesPerPrefix: o.samplesPerPrefix ?? 200, totalTokens, sharedFraction: preset.sharedFraction, outputTokens: o.outputTokens ?? 128 },
      rng.fork(),
    ).map((request) => ({ kind: 'request', request }));
    what = `shared-prefix ${o.preset ?? 'tool-use'} (${o.numPrefixes ?? 10} prefixes x ${o.samplesPerPrefix ?? 200})`;
  } else {
    const sessions = multiTurnSessions(
      {
        sessions: o.sessions ?? 100,
        turns: { mean: o.turns ?? 4, std: (o.turns ?? 4) / 2 },
        promptTokens: { mean: o.inputTokens ?? 128, std: (o.inputTokens ?? 128) / 4 },
        outputTokens: o.outputTokens ?? 128,
        thinkTimeS: o.thinkTimeS ?? 2,
        systemTokens: o.systemTokens ?? 0,
      },
      rng.fork(),
    );
    // --time-scale applies to think times too (the whole session timeline is scaled).
    items = sessions.map((session) => ({ kind: 'session', session: timeScale === 1 ? session : { ...session, turns: session.turns.map((t) => ({ ...t, thinkTimeMs: t.thinkTimeMs * timeScale })) } }));
    what = `multi-turn (${sessions.length} sessions)`;
  }

  let times: number[];
  if (fixedTimes) {
    times = fixedTimes;
    if (o.maxRequests !== undefined) times = times.slice(0, o.maxRequests);
    if (src.kind === 'dataset' && o.durationS !== undefined) times = times.filter((t) => t < o.durationS! * 1000 * timeScale);
  } else {
    if (o.rate === undefined) throw new Error(`--rate is required for ${what} (use --rate inf to send everything at once)`);
    // With --duration (and no --max-requests) items are cycled until the duration ends.
    const byDuration = o.durationS !== undefined && src.kind !== 'trace';
    const maxRequests = o.maxRequests ?? (byDuration ? undefined : items.length);
    const bounds = { ...(byDuration ? { durationS: o.durationS } : {}), ...(maxRequests !== undefined ? { maxRequests } : {}) };
    if (!Number.isFinite(o.rate)) {
      if (o.rate !== Infinity) throw new Error(`--rate must be a number > 0 or inf, got ${o.rate}`);
      if (maxRequests === undefined) throw new Error('--rate inf needs --max-requests (or a finite workload) instead of --duration');
      times = new Array<number>(maxRequests).fill(0);
    } else {
      times = arrivalTimes(shapeOf(o), bounds, rng.fork()).map((t) => t * timeScale);
    }
    what += `, ${o.arrival ?? 'poisson'} arrivals at ${o.rate} req/s`;
  }
  // Cycle through the items when the schedule has more slots than items.
  const out: ScheduledItem[] = times.map((atMs, i) => {
    const base = items[i % items.length]!;
    if (i < items.length) return { atMs, item: base };
    const round = Math.floor(i / items.length);
    if (base.kind === 'request') return { atMs, item: { kind: 'request', request: { ...base.request, key: `${base.request.key}#${round}` } } };
    return { atMs, item: { kind: 'session', session: { ...base.session, id: `${base.session.id}#${round}` } } };
  });
  if (o.maxInputTokens !== undefined) {
    const max = o.maxInputTokens;
    if (!(Number.isInteger(max) && max >= 1)) throw new Error(`--max-input-tokens must be an integer >= 1, got ${max}`);
    let clipped = 0;
    for (const s of out) {
      if (s.item.kind === 'request') {
        const c = clipSpec(s.item.request, max);
        if (c !== s.item.request) clipped++;
        s.item = { kind: 'request', request: c };
      } else {
        const turns = s.item.session.turns.map((t) => ({ ...t, request: clipSpec(t.request, max) }));
        s.item = { kind: 'session', session: { ...s.item.session, turns } };
      }
    }
    if (clipped > 0) what += `, ${clipped} prompts clipped to ${max} tokens`;
  }
  return { items: out, description: `${what}; ${out.length} scheduled` };
}
