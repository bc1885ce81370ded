/**
 * Strategy selection for one request, in this order (docs/gateway.md "Routing"):
 *   1. the `routing-strategy` request header,
 *   2. the routing profile in effect (`config-profile` header naming a profile of the model,
 *      `auto` = pick by prompt/max-token hints, else the model's `defaultProfile`, else a profile
 *      named `default` when declared) and its `routingStrategy`,
 *   3. the model's `routing`,
 *   4. the fleet default (`gateway.routing`).
 *
 * `auto` follows AIBrix (`../shared/reference/aibrix-gateway.md` §5): among profiles whose
 * `routingConfig` has hints (`promptTokensGte`, `promptTokensLt`, `maxTokensGte`, `maxTokensLt`),
 * keep those whose hints all match (a hint on an absent feature fails), pick the most specific
 * (more hints, then larger Gte, then smaller Lt, then alphabetical); none -> the default profile.
 *
 * Strategy instances are built once per (model, spec) and kept (stateful strategies such as
 * round-robin keep their state per model). A spec that fails to build is an `ApiError` 400.
 */
import type { ModelConfig, ProfileConfig } from '../fleet/config.ts';
import { createStrategy } from '../routing/registry.ts';
import type { RoutingStrategy } from '../routing/types.ts';
import { unknownProfile, unknownStrategy } from './errors.ts';

/** The outcome of selection. */
export interface Selection {
  strategy: RoutingStrategy;
  /** The spec string as given (echoed in `x-routing-strategy`). */
  spec: string;
  /** Where the spec came from: header, profile, model, fleet. */
  source: 'header' | 'profile' | 'model' | 'fleet';
  /** The profile in effect, if any. */
  profile?: string;
  /** Requests-per-second limit in effect for the model (profile over model), if any. */
  requestsPerSecond?: number;
}

const HINTS = ['promptTokensGte', 'promptTokensLt', 'maxTokensGte', 'maxTokensLt'] as const;

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** AIBrix `auto` profile choice; returns the profile name or undefined. */
export function autoProfile(profiles: Record<string, ProfileConfig>, promptTokens: number, maxTokens: number | undefined): string | undefined {
  let best: { name: string; n: number; gte: number; lt: number } | undefined;
  for (const name of Object.keys(profiles).sort()) {
    const rc = profiles[name]!.routingConfig ?? {};
    let n = 0;
    let ok = true;
    let gte = -Infinity;
    let lt = Infinity;
    for (const h of HINTS) {
      const v = num(rc[h]);
      if (v === undefined) continue;
      n++;
      const feature = h.startsWith('prompt') ? promptTokens : maxTokens;
      if (feature === undefined) ok = false;
      else if (h.endsWith('Gte')) {
        if (!(feature >= v)) ok = false;
        gte = Math.max(gte, v);
      } else {
        if (!(feature < v)) ok = false;
        lt = Math.min(lt, v);
      }
    }
    if (n === 0 || !ok) continue;
    if (!best || n > best.n || (n === best.n && (gte > best.gte || (gte === best.gte && lt < best.lt)))) best = { name, n, gte, lt };
  }
  return best?.name;
}

export class StrategySelector {
  private readonly cache = new Map<string, RoutingStrategy>();
  private readonly bad = new Map<string, string>();

  constructor(private readonly fleetDefault: string) {}

  /** Builds (or reuses) the strategy for `spec` on `model`. @throws ApiError 400 unknown_routing_strategy. */
  strategyFor(model: ModelConfig, spec: string): RoutingStrategy {
    const k = `${model.name}\0${spec}`;
    let s = this.cache.get(k);
    if (s) return s;
    const prior = this.bad.get(spec);
    if (prior) throw unknownStrategy(spec, prior);
    try {
      s = createStrategy(spec, model.routingOptions);
    } catch (e) {
      const msg = (e as Error).message;
      if (this.bad.size < 1000) this.bad.set(spec, msg);
      throw unknownStrategy(spec, msg);
    }
    this.cache.set(k, s);
    return s;
  }

  /** All strategy instances built so far (for lifecycle hooks such as onEndpointRemoved). */
  instances(): RoutingStrategy[] {
    return [...this.cache.values()];
  }

  /**
   * Selects the strategy for a request.
   * @throws ApiError 400 for an unknown strategy or an unknown `config-profile`.
   */
  select(model: ModelConfig, headerStrategy: string | undefined, headerProfile: string | undefined, promptTokens: number, maxTokens: number | undefined): Selection {
    let profileName: string | undefined;
    let profile: ProfileConfig | undefined;
    const profiles = model.profiles;
    const hp = headerProfile?.trim();
    if (hp) {
      if (hp === 'auto') profileName = profiles ? autoProfile(profiles, promptTokens, maxTokens) : undefined;
      else if (!profiles?.[hp]) throw unknownProfile(hp, model.name);
      else profileName = hp;
    }
    if (!profileName && profiles) profileName = model.defaultProfile ?? (profiles.default ? 'default' : undefined);
    if (profileName) profile = profiles?.[profileName];
    const rps = profile?.requestsPerSecond ?? model.requestsPerSecond;
    const hs = headerStrategy?.trim();
    let spec: string;
    let source: Selection['source'];
    if (hs) (spec = hs), (source = 'header');
    else if (profile?.routingStrategy) (spec = profile.routingStrategy), (source = 'profile');
    else if (model.routing) (spec = model.routing), (source = 'model');
    else (spec = this.fleetDefault), (source = 'fleet');
    return { strategy: this.strategyFor(model, spec), spec, source, profile: profileName, requestsPerSecond: rps || undefined };
  }
}
