/**
 * The routing contract: filters, scorers and pickers, and the strategies built from them.
 *
 * Policies are pure (ARCHITECTURE.md): a strategy sees the request's features, the candidate
 * endpoints' canonical state and a context that carries the clock and the random source. It never
 * reads `Date.now()`, sets timers or does I/O. The same strategy objects run in the gateway (wall
 * clock) and in the discrete-event simulator (virtual clock).
 *
 * Stateful strategies (round-robin cursor, prefix index, fairness counters) keep their state in the
 * strategy object and learn about request lifecycles through the optional hooks.
 */
import type { EndpointState } from '../engines/state.ts';

/** Clock and randomness handed to every policy call. */
export interface RoutingContext {
  /** Current time in milliseconds (wall clock in the gateway, virtual time in the simulator). */
  nowMs: number;
  /** Uniform random number in [0, 1); seeded in the simulator. */
  random: () => number;
}

/** What routing may know about one request. Built once per request by the gateway or the DES. */
export interface RoutingRequest {
  /** Request id (`x-request-id`). */
  id: string;
  /** Model name as requested (a base model or a LoRA adapter name). */
  model: string;
  /** Base model the endpoints serve (equals `model` unless `model` names an adapter). */
  baseModel: string;
  /** The LoRA adapter requested, if `model` names one. */
  adapter?: string;
  /**
   * Prompt token ids (with the model's tokenizer; for chat, of the rendered messages), computed
   * lazily because only cache-aware strategies need them. Memoized by the caller.
   */
  promptTokens: () => readonly number[];
  /** Prompt length in tokens (exact when known, else an estimate from the text). */
  promptLength: number;
  /** Requested maximum output tokens, if given. */
  maxTokens?: number;
  /** Session id (`x-session-id` header), for session affinity. */
  sessionId?: string;
  /** User identity for fairness (`x-user-id` header, or the API key's name). */
  userId?: string;
  /** Request headers, lower-cased names (read-only; strategies may read their own options). */
  headers: Readonly<Record<string, string>>;
  /** Arrival time, ms, same clock as `RoutingContext.nowMs`. */
  arrivalMs: number;
}

/** The outcome of one routing decision. */
export interface RoutingDecision {
  /** The chosen endpoint, or null when no candidate is acceptable (the caller answers 503). */
  endpoint: EndpointState | null;
  /** Name of the strategy that decided (e.g. `least-request`, or `least-request:2,least-kv-cache`). */
  strategy: string;
  /** Human-readable reason, logged with the request (e.g. `fewest in-flight requests (3)`). */
  reason: string;
  /** Optional per-endpoint scores, by endpoint id, for logs and tests. */
  scores?: Record<string, number>;
  /**
   * Optional response headers the gateway adds for the client (lower-case names), e.g.
   * `x-session-id` from `session-affinity`. Absent when the strategy has none.
   */
  headers?: Record<string, string>;
}

/** Removes endpoints that must not serve the request (not ready, wrong adapter, overloaded...). */
export interface Filter {
  name: string;
  filter(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): EndpointState[];
}

/** Scores endpoints; higher is better, in [0, 1] (normalized within the candidate set). */
export interface Scorer {
  name: string;
  score(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): number[];
}

/** Picks one endpoint from scored candidates. */
export interface Picker {
  name: string;
  pick(endpoints: readonly EndpointState[], scores: readonly number[], ctx: RoutingContext): number;
}

/** Lifecycle feedback for stateful strategies. All times are ms on the context's clock. */
export interface RequestOutcome {
  req: RoutingRequest;
  endpoint: EndpointState;
  /** Prompt and output tokens as finally counted (from usage when available). */
  promptTokens: number;
  outputTokens: number;
  /** Prompt tokens served from the endpoint's prefix cache, when known. */
  cachedTokens?: number;
  ok: boolean;
}

/**
 * A named routing strategy (a preset of filters, scorers and a picker, or a hand-written policy).
 * `route` must not mutate the endpoint states it is given.
 */
export interface RoutingStrategy {
  readonly name: string;
  route(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): RoutingDecision;
  /** Called when the request is sent to the chosen endpoint. */
  onRequestStart?(req: RoutingRequest, endpoint: EndpointState, ctx: RoutingContext): void;
  /** Called when the first token arrives (streaming) or the response starts. */
  onFirstToken?(req: RoutingRequest, endpoint: EndpointState, ctx: RoutingContext): void;
  /** Called when the request ends (ok or not). */
  onRequestEnd?(outcome: RequestOutcome, ctx: RoutingContext): void;
  /** Called when an endpoint leaves the fleet, so per-endpoint state can be dropped. */
  onEndpointRemoved?(endpointId: string): void;
  /**
   * Optional: per-endpoint scores in [0, 1], higher better, one per entry of `endpoints` (same
   * order). `endpoints` were already filtered (ready, serving the base model) by the caller.
   * Only strategies that implement it may appear in a weighted combination
   * (`least-request:2,least-kv-cache`, see `src/routing/registry.ts`). Must not mutate state.
   */
  score?(req: RoutingRequest, endpoints: readonly EndpointState[], ctx: RoutingContext): number[];
  /**
   * Optional: called by a weighted combination after it chose `endpoint` partly from this
   * strategy's scores, so the strategy can record its state (session binding, prefix index) and
   * contribute response headers (returned, lower-case names). A strategy used alone does this
   * inside `route` and reports headers in `RoutingDecision.headers`.
   */
  onRouted?(req: RoutingRequest, endpoint: EndpointState, ctx: RoutingContext): Record<string, string> | undefined;
}
