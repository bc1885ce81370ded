/**
 * The routing framework: filters, scorers and pickers, and `PresetStrategy`, a named strategy
 * built from them (the shape of the Gateway API Inference Extension's endpoint picker:
 * filters -> weighted scorers -> picker; see ../shared/reference/peers.md section 1).
 *
 * Scores follow AIBrix's batch soft scoring (aibrix-gateway.md section 2.1): each scorer's raw
 * values are min-max normalized to [0, 1] within the candidate set (reversed when lower is
 * better; all equal -> 1; unscored/NaN/Infinity -> 0), then summed with weights / sum(weights).
 * Unlike AIBrix, a scorer for which no candidate has the signal does not collapse to random:
 * it uses its declared fallback scorer (normally the gateway's in-flight counts).
 *
 * Everything here is pure: the clock and randomness come from `RoutingContext`.
 */
import type { EndpointState } from '../engines/state.ts';
import type { Filter, Picker, RoutingContext, RoutingDecision, RoutingRequest, RoutingStrategy, Scorer } from './types.ts';

/** Two scores closer than this are a tie (AIBrix router.go uses 1e-9). */
export const SCORE_EPSILON = 1e-9;

// ---------------------------------------------------------------- normalization

/**
 * Min-max normalization of raw values to [0, 1], higher better.
 * @param raw one raw value per candidate; `undefined`, NaN and +-Infinity mean "unscored" (-> 0).
 * @param lowerIsBetter when true the smallest raw value gets 1.
 * @returns scores in [0, 1]; when all scored values are equal they all get 1.
 */
export function normalize(raw: readonly (number | undefined)[], lowerIsBetter: boolean): number[] {
  let min = Infinity;
  let max = -Infinity;
  for (const v of raw) {
    if (v === undefined || !Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const out = new Array<number>(raw.length);
  const span = max - min;
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i];
    if (v === undefined || !Number.isFinite(v)) out[i] = 0;
    else if (!(span > 0)) out[i] = 1;
    else out[i] = lowerIsBetter ? (max - v) / span : (v - min) / span;
  }
  return out;
}

// ---------------------------------------------------------------- scorers

/** What a scorer tells the strategy beyond the scores: raw values and how it got them. */
export interface ScoreDetail {
  /** Normalized scores in [0, 1], higher better, one per candidate. */
  scores: number[];
  /** Raw values (undefined = unscored), for the reason string. */
  raw: (number | undefined)[];
  /** Human-readable label of the raw value, e.g. `KV cache usage`. */
  label: string;
  /** Set when the scorer used its fallback, saying why. */
  fallbackNote?: string;
}

/** A scorer that can explain itself (implements the contract's `Scorer` too). */
export interface DetailedScorer extends Scorer {
  evaluate(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): ScoreDetail;
}

/**
 * A scorer over one raw per-endpoint number. Candidates whose value is undefined are unscored
 * (score 0: missing never reads as zero load). When no candidate has a value, `fallback` scores
 * them all instead (and the detail says so); with no fallback, all score 1 (a tie).
 */
export class MetricScorer implements DetailedScorer {
  constructor(
    readonly name: string,
    /** Label of the raw value for reasons, e.g. `KV cache usage`. */
    readonly label: string,
    readonly lowerIsBetter: boolean,
    private readonly value: (ep: EndpointState, req: RoutingRequest) => number | undefined,
    private readonly fallback?: DetailedScorer,
  ) {}

  evaluate(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): ScoreDetail {
    const raw = endpoints.map((ep) => this.value(ep, req));
    if (raw.every((v) => v === undefined || !Number.isFinite(v))) {
      if (this.fallback) {
        const d = this.fallback.evaluate(req, endpoints, ctx);
        return { ...d, fallbackNote: `no candidate has a fresh ${this.label}; fell back to ${d.label}` };
      }
      return { scores: endpoints.map(() => 1), raw, label: this.label, fallbackNote: `no candidate has a fresh ${this.label}` };
    }
    return { scores: normalize(raw, this.lowerIsBetter), raw, label: this.label };
  }

  score(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): number[] {
    return this.evaluate(req, endpoints, ctx).scores;
  }
}

// ---------------------------------------------------------------- filters

/**
 * A filter that keeps endpoints one by one by a predicate. `applyFilters` runs a chain of these in
 * a single pass (no intermediate arrays).
 */
export interface PredicateFilter extends Filter {
  keep(req: RoutingRequest, ep: EndpointState): boolean;
}

/** Builds a `PredicateFilter` from a name and a predicate. */
export function predicateFilter(name: string, keep: (req: RoutingRequest, ep: EndpointState) => boolean): PredicateFilter {
  return { name, keep, filter: (req, eps) => eps.filter((e) => keep(req, e)) };
}

/** Endpoints whose last health check passed. */
export const readyFilter: PredicateFilter = predicateFilter('ready', (_req, e) => e.ready);

/** Endpoints serving the request's base model (LoRA adapters run on their base model's endpoints). */
export const servesModelFilter: PredicateFilter = predicateFilter('serves-model', (req, e) => e.model === req.baseModel);

/**
 * Endpoints whose engine signals are fresh (not stale, scraped at least once). Only strategies
 * that must not route on unknown state use it (opt-in through the `excludeStale` option).
 */
export const freshFilter: PredicateFilter = predicateFilter('fresh-signals', (_req, e) => !e.stale && e.scrapedAtMs !== null);

/**
 * For a request naming a LoRA adapter: endpoints with the adapter loaded or a free adapter slot
 * (`loraAdapters.length < maxLoras`), plus those whose LoRA state is unknown. Requests without an
 * adapter pass untouched. If this would remove every endpoint, all are kept (vLLM swaps adapters
 * when its slots are full: slower, not impossible).
 */
export const loraFilter: Filter = {
  name: 'lora-capable',
  filter: (req, eps) => {
    if (!req.adapter) return [...eps];
    const kept = eps.filter((e) => loraTier(e, req.adapter!) > 0);
    return kept.length > 0 ? kept : [...eps];
  },
};

/**
 * LoRA preference tier of an endpoint for `adapter` (after the GIE `lora-affinity-scorer`,
 * peers.md section 1): 1.0 loaded, 0.8 a free slot, 0.6 unknown (no LoRA signal, or stale),
 * 0 full. `loraAdapters` lists adapters loaded (running or waiting); `maxLoras` the GPU slots.
 */
export function loraTier(ep: EndpointState, adapter: string): number {
  const fresh = !ep.stale && ep.scrapedAtMs !== null;
  if (!fresh || ep.loraAdapters === undefined) return 0.6;
  if (ep.loraAdapters.includes(adapter)) return 1;
  if (ep.maxLoras === undefined) return 0.6;
  return ep.loraAdapters.length < ep.maxLoras ? 0.8 : 0;
}

/** Filters every strategy applies: ready, serving the base model. */
export const BASE_FILTERS: readonly Filter[] = [readyFilter, servesModelFilter];

/** Result of running a filter chain. */
export interface FilterResult {
  candidates: EndpointState[];
  /** When empty: which filter removed the last candidates, for the 503 reason. */
  emptyReason?: string;
}

/** Applies filters in order; stops and explains when the set becomes empty. */
export function applyFilters(
  filters: readonly Filter[],
  req: RoutingRequest,
  endpoints: readonly EndpointState[],
  ctx: RoutingContext,
): FilterResult {
  if (endpoints.length === 0) return { candidates: [], emptyReason: `no endpoint for model ${req.baseModel}` };
  if (filters.every((f) => typeof (f as PredicateFilter).keep === 'function')) {
    // Fast path: one pass over the endpoints; on an empty result fall through for the reason.
    const preds = filters as readonly PredicateFilter[];
    const out: EndpointState[] = [];
    for (const e of endpoints) {
      let ok = true;
      for (const f of preds) {
        if (!f.keep(req, e)) {
          ok = false;
          break;
        }
      }
      if (ok) out.push(e);
    }
    if (out.length > 0) return { candidates: out };
  }
  let cur: EndpointState[] = endpoints as EndpointState[];
  for (const f of filters) {
    const next = f.filter(req, cur, ctx);
    if (next.length === 0) {
      return { candidates: [], emptyReason: `filter '${f.name}' removed all ${cur.length} endpoint(s) of model ${req.baseModel}` };
    }
    cur = next;
  }
  return { candidates: cur === endpoints ? [...cur] : cur };
}

// ---------------------------------------------------------------- pickers

/** Index of the maximum score; ties (within `SCORE_EPSILON`) broken uniformly with `ctx.random`. */
export const maxScorePicker: Picker = {
  name: 'max-score',
  pick(_eps, scores, ctx) {
    let best = -Infinity;
    for (const s of scores) if (s > best) best = s;
    let ties = 0;
    for (const s of scores) if (best - s < SCORE_EPSILON) ties++;
    let k = ties > 1 ? Math.floor(ctx.random() * ties) : 0;
    for (let i = 0; i < scores.length; i++) {
      if (best - scores[i]! < SCORE_EPSILON) {
        if (k === 0) return i;
        k--;
      }
    }
    return 0;
  },
};

/** Uniform random index (scores ignored). */
export const randomPicker: Picker = {
  name: 'random',
  pick: (eps, _scores, ctx) => Math.min(eps.length - 1, Math.floor(ctx.random() * eps.length)),
};

/** Random index with probability proportional to score (all zero -> uniform). */
export const weightedRandomPicker: Picker = {
  name: 'weighted-random',
  pick(eps, scores, ctx) {
    let total = 0;
    for (const s of scores) total += Math.max(0, s);
    if (!(total > 0)) return randomPicker.pick(eps, scores, ctx);
    let r = ctx.random() * total;
    for (let i = 0; i < scores.length; i++) {
      r -= Math.max(0, scores[i]!);
      if (r < 0) return i;
    }
    return scores.length - 1;
  },
};

/**
 * Power-of-two-choices sampling: two distinct candidates drawn uniformly with `ctx.random`, the
 * higher score wins (tie -> the first drawn). Mitzenmacher, "The Power of Two Choices in
 * Randomized Load Balancing" (2001); AIBrix power_of_two.go.
 */
export const powerOfTwoPicker: Picker = {
  name: 'power-of-two',
  pick(eps, scores, ctx) {
    const n = eps.length;
    if (n <= 1) return 0;
    const a = Math.min(n - 1, Math.floor(ctx.random() * n));
    let b = Math.min(n - 2, Math.floor(ctx.random() * (n - 1)));
    if (b >= a) b++;
    return scores[b]! > scores[a]! + SCORE_EPSILON ? b : a;
  },
};

// ---------------------------------------------------------------- presets

/** One weighted scorer of a preset. */
export interface WeightedScorer {
  scorer: DetailedScorer;
  weight: number;
}

/** Rounds for reasons/logs (4 significant decimals). */
export function fmt(v: number | undefined): string {
  if (v === undefined) return 'n/a';
  return Number.isInteger(v) ? String(v) : String(Math.round(v * 10000) / 10000);
}

/**
 * A decision whose `reason` and `scores` are computed on first read (then kept): the simulator
 * makes millions of decisions and reads neither; the gateway reads the reason once for its log.
 * Both are accessors on the prototype (writable through setters); `toJSON` includes them.
 */
export class LazyDecision implements RoutingDecision {
  private r: string | undefined;
  private sc: Record<string, number> | undefined;
  headers?: Record<string, string>;

  constructor(
    public endpoint: EndpointState | null,
    public strategy: string,
    private readonly reasonFn: () => string,
    private readonly scoresFn?: () => Record<string, number>,
    headers?: Record<string, string>,
  ) {
    if (headers) this.headers = headers;
  }

  get reason(): string {
    return (this.r ??= this.reasonFn());
  }
  set reason(v: string) {
    this.r = v;
  }

  get scores(): Record<string, number> | undefined {
    if (this.sc === undefined && this.scoresFn) this.sc = this.scoresFn();
    return this.sc;
  }
  set scores(v: Record<string, number> | undefined) {
    this.sc = v;
  }

  toJSON(): RoutingDecision {
    return { endpoint: this.endpoint, strategy: this.strategy, reason: this.reason, scores: this.scores, headers: this.headers };
  }
}

/** Builds a `LazyDecision` (see there). */
export function lazyDecision(
  endpoint: EndpointState,
  strategy: string,
  reason: () => string,
  scores?: () => Record<string, number>,
  headers?: Record<string, string>,
): RoutingDecision {
  return new LazyDecision(endpoint, strategy, reason, scores, headers);
}

/** `scores` record by endpoint id from parallel arrays. */
export function scoresById(candidates: readonly EndpointState[], scores: readonly number[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (let k = 0; k < candidates.length; k++) out[candidates[k]!.id] = scores[k]!;
  return out;
}

/** The decision for "no candidate". */
export function noEndpoint(strategy: string, reason: string): RoutingDecision {
  return { endpoint: null, strategy, reason };
}

/**
 * A named strategy made of filters, weighted scorers and a picker. The final score of a candidate
 * is sum(weight * normalized score) / sum(weight), in [0, 1]. A single candidate is returned
 * without scoring. Implements `score` so presets can join weighted combinations.
 */
export class PresetStrategy implements RoutingStrategy {
  constructor(
    readonly name: string,
    readonly filters: readonly Filter[],
    readonly scorers: readonly WeightedScorer[],
    readonly picker: Picker,
  ) {}

  route(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): RoutingDecision {
    const { candidates, emptyReason } = applyFilters(this.filters, req, endpoints, ctx);
    if (candidates.length === 0) return noEndpoint(this.name, emptyReason!);
    if (candidates.length === 1) {
      return { endpoint: candidates[0]!, strategy: this.name, reason: 'only one candidate', scores: { [candidates[0]!.id]: 1 } };
    }
    if (this.scorers.length === 0) {
      const i = this.picker.pick(candidates, EMPTY, ctx);
      return lazyDecision(candidates[i]!, this.name, () => `${this.picker.name} over ${candidates.length} candidates`);
    }
    const details = this.scorers.map((s) => s.scorer.evaluate(req, candidates, ctx));
    const total = details.length === 1 && this.scorers[0]!.weight > 0 ? details[0]!.scores : combine(details.map((d) => d.scores), this.scorers.map((s) => s.weight));
    const i = this.picker.pick(candidates, total, ctx);
    return lazyDecision(
      candidates[i]!,
      this.name,
      () => {
        const parts = details.map((d) => `${d.label} ${fmt(d.raw[i] ?? undefined)}${d.fallbackNote ? ` (${d.fallbackNote})` : ''}`);
        return `${this.picker.name} over ${candidates.length} candidates: ${parts.join('; ')}`;
      },
      () => scoresById(candidates, total),
    );
  }

  score(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): number[] {
    const details = this.scorers.map((s) => s.scorer.evaluate(req, endpoints, ctx));
    return combine(details.map((d) => d.scores), this.scorers.map((s) => s.weight));
  }
}

const EMPTY: number[] = [];

/** Weighted mean of score vectors: sum(w_k * s_k[i]) / sum(w_k). */
export function combine(vectors: readonly (readonly number[])[], weights: readonly number[]): number[] {
  const n = vectors[0]?.length ?? 0;
  let wsum = 0;
  for (const w of weights) wsum += w;
  const out = new Array<number>(n).fill(0);
  if (!(wsum > 0)) return out;
  for (let k = 0; k < vectors.length; k++) {
    const v = vectors[k]!;
    const w = weights[k]! / wsum;
    for (let i = 0; i < n; i++) {
      const s = v[i]!;
      out[i]! += Number.isFinite(s) ? s * w : 0;
    }
  }
  return out;
}
