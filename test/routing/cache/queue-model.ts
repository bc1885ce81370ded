/**
 * A tiny queueing model for fairness tests: `n` FCFS endpoints, each serving one request at a time
 * at `tokensPerMs` (service time = prompt tokens / rate), Poisson arrivals per user. The routing
 * strategy sees fresh `running` (requests at the endpoint) and the gateway's in-flight counters, and
 * gets `onRequestStart` / `onFirstToken` / `onRequestEnd` hooks in time order. Deterministic (seeded).
 */
import type { EndpointState } from '../../../src/engines/state.ts';
import type { RoutingRequest, RoutingStrategy } from '../../../src/routing/types.ts';
import { ep, seeded } from './helpers.ts';

export interface UserLoad {
  user: string;
  /** Mean inter-arrival time, ms (exponential). */
  meanGapMs: number;
  /** Prompt tokens per request. */
  tokens: number;
}

export interface QueueResult {
  /** Mean latency (arrival -> completion), ms, per user. */
  meanLatencyMs: Record<string, number>;
  /** Requests per endpoint id. */
  perEndpoint: Record<string, number>;
}

interface Job {
  req: RoutingRequest;
  ep: EndpointState;
  user: string;
  arrival: number;
  start: number;
  finish: number;
  tokens: number;
}

/** Runs `durationMs` of arrivals through `strategy` on `n` endpoints. */
export function runQueueModel(strategy: RoutingStrategy, users: readonly UserLoad[], opts: { n: number; tokensPerMs: number; durationMs: number; seed: number }): QueueResult {
  const rnd = seeded(opts.seed);
  const ctx = { nowMs: 0, random: seeded(opts.seed + 1) };
  const eps = Array.from({ length: opts.n }, (_, i) => ep(`e${i}`, { running: 0, waiting: 0 }));
  const busyUntil = new Array<number>(opts.n).fill(0);
  // arrivals
  const arrivals: Array<{ t: number; u: UserLoad }> = [];
  for (const u of users) {
    let t = 0;
    for (;;) {
      t += -Math.log(1 - rnd()) * u.meanGapMs;
      if (t >= opts.durationMs) break;
      arrivals.push({ t, u });
    }
  }
  arrivals.sort((a, b) => a.t - b.t);
  const inSystem: Job[] = [];
  const lat: Record<string, number[]> = {};
  const perEndpoint: Record<string, number> = {};
  const complete = (upTo: number) => {
    inSystem.sort((a, b) => a.finish - b.finish);
    while (inSystem.length > 0 && inSystem[0]!.finish <= upTo) {
      const j = inSystem.shift()!;
      ctx.nowMs = j.finish;
      j.ep.inflightRequests--;
      j.ep.inflightTokens -= j.tokens;
      j.ep.running = j.ep.inflightRequests;
      (lat[j.user] ??= []).push(j.finish - j.arrival);
      strategy.onRequestEnd?.({ req: j.req, endpoint: j.ep, promptTokens: j.tokens, outputTokens: 0, ok: true }, ctx);
    }
  };
  let k = 0;
  for (const a of arrivals) {
    complete(a.t);
    ctx.nowMs = a.t;
    const req: RoutingRequest = { id: `q${k++}`, model: 'm', baseModel: 'm', promptTokens: () => [], promptLength: a.u.tokens, headers: { 'x-user-id': a.u.user }, userId: a.u.user, arrivalMs: a.t };
    const d = strategy.route(req, eps, ctx);
    const e = d.endpoint!;
    const i = eps.indexOf(e);
    const start = Math.max(a.t, busyUntil[i]!);
    const finish = start + a.u.tokens / opts.tokensPerMs;
    busyUntil[i] = finish;
    e.inflightRequests++;
    e.inflightTokens += a.u.tokens;
    e.running = e.inflightRequests;
    perEndpoint[e.id] = (perEndpoint[e.id] ?? 0) + 1;
    strategy.onRequestStart?.(req, e, ctx);
    inSystem.push({ req, ep: e, user: a.u.user, arrival: a.t, start, finish, tokens: a.u.tokens });
  }
  complete(Infinity);
  const meanLatencyMs: Record<string, number> = {};
  for (const [u, xs] of Object.entries(lat)) meanLatencyMs[u] = xs.reduce((s, x) => s + x, 0) / xs.length;
  return { meanLatencyMs, perEndpoint };
}
