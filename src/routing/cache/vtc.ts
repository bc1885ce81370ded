/**
 * Fairness across users with virtual token counters (VTC: Sheng et al., "Fairness in Serving Large
 * Language Models", OSDI 2024): every user's recent service is counted in weighted tokens, and
 * routing uses the counters.
 *
 * `vtc-basic` is AIBrix's router (`vtc/vtc_basic.go`, `vtc/token_tracker.go`; reference
 * aibrix-gateway.md section 2.7):
 * - user from `req.userId` (the `x-user-id` header or the API key's name); none -> uniform random;
 * - estimates: input = prompt tokens, output = ceil(input x 1.5) (AIBrix estimates input as
 *   ceil(chars / 4); we have the token count);
 * - counter = sum over a sliding window (`windowSeconds`, default 5 min; 1 s buckets) of
 *   input x `inputTokenWeight` (1.0) + output x `outputTokenWeight` (2.0);
 * - for candidate i of n: bucket = max(1000, (minUserTotal + maxUserTotal) / 2) (1000 / 8000 when no
 *   user is tracked), fairness = |i - min(userTotal / bucket, n - 1)|, utilization =
 *   min(running / `maxPodLoad` (100), 1), score = fairness + utilization + U(0, 0.1); smallest wins;
 * - the user's window is charged the *estimated* tokens when routed.
 * Difference from AIBrix, on purpose: candidates are ordered by endpoint id (stable), so that a
 * counter maps to the same endpoint from one request to the next; AIBrix shuffles the list first,
 * which makes the index -> endpoint mapping random per request and the fairness term noise
 * (section 2.7's own note). `shuffle: true` restores AIBrix's behaviour exactly. `running` is the
 * engine's scraped count when fresh, else the gateway's in-flight count (never zero by omission).
 *
 * `vtc-fair` is our stronger variant (work-conserving fair-share partition): with the same
 * counters, the fair share is f = (sum of active users' counters) / (number of active users).
 * A user at or under f routes to the least-loaded endpoint by gateway in-flight tokens (always
 * current). A user over f is confined to k = max(1, floor(n x f / counter)) endpoints chosen by
 * rendezvous hashing of (user, endpoint id) (stable as the fleet changes), least-loaded among them,
 * and may spill onto any idle endpoint (no in-flight tokens). Heavy users thus keep at least their
 * fair share of endpoints and never queue ahead of light users elsewhere; light users see the
 * least-loaded endpoint of the whole fleet. Charged with actual tokens at the end of each request
 * (estimates at routing are replaced), so counters follow real usage.
 */
import { z } from 'zod';
import type { EndpointState } from '../../engines/state.ts';
import { BASE_FILTERS, applyFilters, fmt, noEndpoint } from '../framework.ts';
import { parseOptions } from '../options.ts';
import { fresh } from '../signals.ts';
import type { RequestOutcome, RoutingContext, RoutingDecision, RoutingRequest, RoutingStrategy } from '../types.ts';
import { argminRandomTie, shuffled } from './common.ts';
import { fnv1a32 } from '../../common/hash32.ts';

/**
 * Per-user sliding-window token counters with 1-second buckets (AIBrix `token_tracker.go`).
 * Times in ms; weighted token units.
 */
export class TokenWindow {
  private readonly users = new Map<string, { buckets: Array<[number, number]>; total: number }>();
  constructor(readonly windowMs: number) {}

  /** Adds `tokens` (weighted) to `user` at `nowMs`. */
  add(user: string, tokens: number, nowMs: number): void {
    let u = this.users.get(user);
    if (!u) {
      u = { buckets: [], total: 0 };
      this.users.set(user, u);
    }
    const sec = Math.floor(nowMs / 1000);
    const last = u.buckets[u.buckets.length - 1];
    if (last && last[0] === sec) last[1] += tokens;
    else u.buckets.push([sec, tokens]);
    u.total += tokens;
  }

  /** `user`'s total within the window ending at `nowMs` (0 if untracked). */
  total(user: string, nowMs: number): number {
    const u = this.users.get(user);
    if (!u) return 0;
    this.expire(user, u, nowMs);
    return Math.max(0, u.total);
  }

  /** Totals of every user with a non-empty window. */
  totals(nowMs: number): Map<string, number> {
    const out = new Map<string, number>();
    for (const [name, u] of this.users) {
      this.expire(name, u, nowMs);
      if (this.users.has(name)) out.set(name, Math.max(0, u.total));
    }
    return out;
  }

  private expire(name: string, u: { buckets: Array<[number, number]>; total: number }, nowMs: number): void {
    const minSec = Math.floor((nowMs - this.windowMs) / 1000);
    let k = 0;
    while (k < u.buckets.length && u.buckets[k]![0] <= minSec) {
      u.total -= u.buckets[k]![1];
      k++;
    }
    if (k > 0) u.buckets.splice(0, k);
    if (u.buckets.length === 0) this.users.delete(name);
  }
}

const basicSchema = z
  .object({
    windowSeconds: z.number().positive().default(300),
    inputTokenWeight: z.number().nonnegative().default(1),
    outputTokenWeight: z.number().nonnegative().default(2),
    maxPodLoad: z.number().positive().default(100),
    /** AIBrix shuffles candidates before indexing them (see module doc); default false. */
    shuffle: z.boolean().default(false),
  })
  .strict();

/** Estimated weighted tokens of a request (AIBrix: output = ceil(input x 1.5)). */
function estimate(req: RoutingRequest, wIn: number, wOut: number): number {
  const input = Math.max(0, req.promptLength);
  return input * wIn + Math.ceil(input * 1.5) * wOut;
}

/** AIBrix `vtc-basic` (see module doc). */
export class VtcBasicStrategy implements RoutingStrategy {
  readonly name: string = 'vtc-basic';
  readonly opts: z.infer<typeof basicSchema>;
  readonly window: TokenWindow;

  constructor(options?: Record<string, unknown>) {
    this.opts = parseOptions('vtc-basic', basicSchema, options);
    this.window = new TokenWindow(this.opts.windowSeconds * 1000);
  }

  route(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): RoutingDecision {
    const filtered = applyFilters(BASE_FILTERS, req, endpoints, ctx);
    if (filtered.candidates.length === 0) return noEndpoint(this.name, filtered.emptyReason!);
    const cands = this.opts.shuffle ? shuffled(filtered.candidates, ctx) : [...filtered.candidates].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const n = cands.length;
    if (!req.userId) {
      const i = Math.min(n - 1, Math.floor(ctx.random() * n));
      return { endpoint: cands[i]!, strategy: this.name, reason: 'no user id; random' };
    }
    const totals = this.window.totals(ctx.nowMs);
    let minT = Infinity;
    let maxT = -Infinity;
    for (const t of totals.values()) {
      if (t < minT) minT = t;
      if (t > maxT) maxT = t;
    }
    if (totals.size === 0) {
      minT = 1000;
      maxT = 8000;
    }
    const bucket = Math.max(1000, (minT + maxT) / 2);
    const userTotal = totals.get(req.userId) ?? 0;
    const target = Math.min(userTotal / bucket, n - 1);
    const scores = cands.map((ep, i) => {
      const running = fresh(ep, ep.running) ?? ep.inflightRequests;
      return Math.abs(i - target) + Math.min(running / this.opts.maxPodLoad, 1) + ctx.random() * 0.1;
    });
    const i = argminRandomTie(cands, scores, ctx);
    this.window.add(req.userId, estimate(req, this.opts.inputTokenWeight, this.opts.outputTokenWeight), ctx.nowMs);
    const out: Record<string, number> = {};
    cands.forEach((c, k) => (out[c.id] = scores[k]!));
    return { endpoint: cands[i]!, strategy: this.name, reason: `user ${req.userId} tokens ${fmt(userTotal)} / bucket ${fmt(bucket)} -> index ${fmt(target)}; score ${fmt(scores[i])}`, scores: out };
  }
}

const fairSchema = z
  .object({
    windowSeconds: z.number().positive().default(300),
    inputTokenWeight: z.number().nonnegative().default(1),
    outputTokenWeight: z.number().nonnegative().default(2),
  })
  .strict();

/** `vtc-fair`: fair-share partition over VTC counters (see module doc). */
export class VtcFairStrategy implements RoutingStrategy {
  readonly name: string = 'vtc-fair';
  readonly opts: z.infer<typeof fairSchema>;
  readonly window: TokenWindow;
  private readonly charged = new Map<string, { user: string; tokens: number; atMs: number }>();

  constructor(options?: Record<string, unknown>) {
    this.opts = parseOptions('vtc-fair', fairSchema, options);
    this.window = new TokenWindow(this.opts.windowSeconds * 1000);
  }

  route(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): RoutingDecision {
    const { candidates, emptyReason } = applyFilters(BASE_FILTERS, req, endpoints, ctx);
    if (candidates.length === 0) return noEndpoint(this.name, emptyReason!);
    const n = candidates.length;
    for (const [id, c] of this.charged) {
      if (ctx.nowMs - c.atMs < this.window.windowMs) break; // routing order: the rest are newer
      this.charged.delete(id); // lost end hook: keep the estimate
    }
    const loads = candidates.map((e) => e.inflightTokens);
    let allowed = candidates.map(() => true);
    let why = 'least in-flight tokens';
    if (req.userId) {
      const totals = this.window.totals(ctx.nowMs);
      const mine = totals.get(req.userId) ?? 0;
      let sum = 0;
      for (const t of totals.values()) sum += t;
      const fair = totals.size > 0 ? sum / totals.size : 0;
      if (mine > fair && fair > 0) {
        const k = Math.max(1, Math.floor((n * fair) / mine));
        const ranked = candidates.map((c, i) => ({ i, h: fnv1a32(`${req.userId}\u0000${c.id}`) })).sort((a, b) => b.h - a.h || a.i - b.i);
        allowed = candidates.map(() => false);
        for (let j = 0; j < k; j++) allowed[ranked[j]!.i] = true;
        for (let i = 0; i < n; i++) if (loads[i] === 0) allowed[i] = true; // spill onto idle endpoints
        why = `user ${req.userId} over fair share (${fmt(mine)} > ${fmt(fair)}): confined to ${k}/${n} endpoints (+ idle)`;
      } else {
        why = `user ${req.userId} within fair share (${fmt(mine)} <= ${fmt(fair)}): least in-flight tokens`;
      }
      const est = estimate(req, this.opts.inputTokenWeight, this.opts.outputTokenWeight);
      this.window.add(req.userId, est, ctx.nowMs);
      this.charged.set(req.id, { user: req.userId, tokens: est, atMs: ctx.nowMs });
    }
    const costs = loads.map((l, i) => (allowed[i] ? l : Infinity));
    const i = argminRandomTie(candidates, costs, ctx);
    return { endpoint: candidates[i]!, strategy: this.name, reason: `${why} (${loads[i]})` };
  }

  /** Replaces the routing-time estimate by the request's actual weighted tokens. */
  onRequestEnd(outcome: RequestOutcome, ctx: RoutingContext): void {
    const c = this.charged.get(outcome.req.id);
    if (!c) return;
    this.charged.delete(outcome.req.id);
    const actual = outcome.promptTokens * this.opts.inputTokenWeight + outcome.outputTokens * this.opts.outputTokenWeight;
    if (ctx.nowMs - c.atMs < this.window.windowMs) this.window.add(c.user, actual - c.tokens, ctx.nowMs);
  }
}

export function createVtcBasic(options?: Record<string, unknown>): RoutingStrategy {
  return new VtcBasicStrategy(options);
}
export function createVtcFair(options?: Record<string, unknown>): RoutingStrategy {
  return new VtcFairStrategy(options);
}
