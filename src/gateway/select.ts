/**
 * Strategy selection for one request: the routing module's `selectStrategySpec`
 * (`src/routing/profiles.ts`: locked > `routing-strategy` header > profile (`config-profile`,
 * `auto`, default) > the model's `routing` > the fleet default `gateway.routing`), plus what the
 * gateway adds around it:
 *
 * - strategy instances are built once per (model, spec) or per profile with `strategyOptions` and kept (stateful
 *   strategies such as round-robin keep their state per model);
 * - the routing module's errors become the gateway's 400 `ApiError`s: `UnknownProfileError` ->
 *   `unknown_config_profile`, `UnknownStrategyError` or a malformed spec -> `unknown_routing_strategy`;
 * - an empty `routing-strategy` header counts as absent;
 * - the per-model RPS limit is the profile's, else the model's.
 */
import type { ModelConfig } from '../fleet/config.ts';
import { selectStrategySpec, UnknownProfileError, type ModelRoutingProfiles, type StrategySource } from '../routing/profiles.ts';
import { createStrategy } from '../routing/registry.ts';
import type { RoutingStrategy } from '../routing/types.ts';
import { unknownProfile, unknownStrategy } from './errors.ts';

/** The outcome of selection. */
export interface Selection {
  strategy: RoutingStrategy;
  /** The spec string as given (echoed in `x-routing-strategy`). */
  spec: string;
  /** Where the spec came from: locked, header, profile, model, fleet. */
  source: StrategySource;
  /** The profile in effect, if any. */
  profile?: string;
  /** Requests-per-second limit in effect for the model (profile over model), if any. */
  requestsPerSecond?: number;
}

/**
 * Most distinct strategy specs kept per model. Specs come from a request header, and each distinct
 * one (`least-request:2,random:3`, `...:4`, ...) builds and keeps an instance; past this bound a new
 * spec is refused (400) instead of growing memory without limit.
 */
export const MAX_SPECS_PER_MODEL = 256;

export class StrategySelector {
  /** Per model: spec -> strategy built with the model's `routingOptions`. */
  private readonly byModel = new Map<string, Map<string, RoutingStrategy>>();
  /** Per profile `strategyOptions` object (one per profile of one model): the profile's strategy. */
  private readonly byOptions = new WeakMap<Record<string, unknown>, RoutingStrategy>();
  private readonly all: RoutingStrategy[] = [];
  private readonly bad = new Map<string, string>();
  /** The routing module's view of each model's profiles, built once per model config. */
  private readonly profiles = new WeakMap<ModelConfig, ModelRoutingProfiles>();

  /**
   * @param onCreate called once for each strategy instance built, with its model (the gateway
   *   connects KV-event-consuming instances to the model's KV-event feed).
   */
  constructor(
    private readonly fleetDefault: string,
    private readonly onCreate?: (model: ModelConfig, strategy: RoutingStrategy) => void,
  ) {}

  /**
   * Builds (or reuses) the strategy for `spec` on `model`. Options: `options` when given (a
   * profile's `strategyOptions`; the strategy is kept per options object), else the model's
   * `routingOptions` (kept per model and spec).
   * @throws ApiError 400 unknown_routing_strategy (also for a new spec past `MAX_SPECS_PER_MODEL`).
   */
  strategyFor(model: ModelConfig, spec: string, options?: Record<string, unknown>): RoutingStrategy {
    let specs: Map<string, RoutingStrategy> | undefined;
    let s: RoutingStrategy | undefined;
    if (options) s = this.byOptions.get(options);
    else {
      specs = this.byModel.get(model.name);
      if (!specs) this.byModel.set(model.name, (specs = new Map()));
      s = specs.get(spec);
    }
    if (s) return s;
    const prior = options ? undefined : this.bad.get(spec);
    if (prior) throw unknownStrategy(spec, prior);
    if (specs && specs.size >= MAX_SPECS_PER_MODEL) throw unknownStrategy(spec, `model ${model.name} already uses ${MAX_SPECS_PER_MODEL} distinct strategy specs; use one of them`);
    try {
      s = createStrategy(spec, options ?? model.routingOptions);
    } catch (e) {
      const msg = (e as Error).message;
      if (!options && this.bad.size < 1000) this.bad.set(spec, msg);
      throw unknownStrategy(spec, msg);
    }
    if (options) this.byOptions.set(options, s);
    else specs!.set(spec, s);
    this.all.push(s);
    this.onCreate?.(model, s);
    return s;
  }

  /** All strategy instances built so far (for lifecycle hooks such as onEndpointRemoved). */
  instances(): readonly RoutingStrategy[] {
    return this.all;
  }

  private profilesOf(model: ModelConfig): ModelRoutingProfiles {
    let p = this.profiles.get(model);
    if (!p) {
      p = { lockedRoutingStrategy: model.lockedRoutingStrategy, defaultProfile: model.defaultProfile, profiles: model.profiles };
      this.profiles.set(model, p);
    }
    return p;
  }

  /**
   * Selects the strategy for a request.
   * @param promptTokens prompt length, tokens (estimate), for `config-profile: auto`.
   * @param maxTokens `max_tokens` / `max_completion_tokens`, tokens, if given.
   * @throws ApiError 400 for an unknown strategy or an unknown `config-profile`.
   */
  select(model: ModelConfig, headerStrategy: string | undefined, headerProfile: string | undefined, promptTokens: number, maxTokens: number | undefined): Selection {
    const hs = headerStrategy?.trim();
    let r;
    try {
      r = selectStrategySpec({
        header: hs || undefined,
        profileHeader: headerProfile,
        modelDefault: model.routing,
        fleetDefault: this.fleetDefault,
        promptLength: promptTokens,
        maxTokens,
        profiles: this.profilesOf(model),
      });
    } catch (e) {
      if (e instanceof UnknownProfileError) throw unknownProfile(e.profile, model.name);
      throw e;
    }
    const strategy = this.strategyFor(model, r.spec, r.options);
    const rps = r.requestsPerSecond ?? model.requestsPerSecond;
    return { strategy, spec: r.spec, source: r.source, profile: r.profile, requestsPerSecond: rps || undefined };
  }
}
