/**
 * Routing profiles and strategy selection, after AIBrix model config profiles
 * (aibrix-gateway.md section 5, `configprofiles.go`).
 *
 * Per model, the fleet file may declare (fields of the model entry, `src/fleet/config.ts`):
 *
 * ```yaml
 * - name: llama
 *   routing: least-kv-cache                   # the model's default strategy
 *   lockedRoutingStrategy: least-request      # optional: beats everything, even the header
 *   defaultProfile: chat                      # optional: profile used without `config-profile`
 *   profiles:
 *     chat:   { routingStrategy: least-request }
 *     long:   { routingStrategy: "least-kv-cache:2,least-request", routingConfig: { promptTokensGte: 4096 } }
 *     short:  { routingStrategy: session-affinity, routingConfig: { promptTokensLt: 4096 }, requestsPerSecond: 50 }
 * ```
 *
 * Profile resolution (`resolveProfile`):
 * - header `config-profile: <name>` -> that profile; an unknown name is an error
 *   (`UnknownProfileError`, answered 400). AIBrix silently uses the default instead; we do not
 *   fall back silently on bad input.
 * - header `config-profile: auto` -> among profiles with hints (`routingConfig.promptTokensGte`,
 *   `promptTokensLt`, `maxTokensGte`, `maxTokensLt`), those whose hints all match (prompt tokens =
 *   the request's prompt length; max tokens = `max_tokens` or `max_completion_tokens`; a hint on a
 *   missing feature fails); the most specific wins (more hints, then larger `promptTokensGte`,
 *   smaller `promptTokensLt`, larger `maxTokensGte`, smaller `maxTokensLt`, then the alphabetically
 *   first name); none -> the default profile.
 * - no header -> `defaultProfile`, else a profile named `default`, else none.
 *
 * Strategy selection (`selectStrategySpec`): `lockedRoutingStrategy` > header `routing-strategy` >
 * the resolved profile's `routingStrategy` > the model's default > the fleet default.
 * `requestsPerSecond` (per-model RPS limit) comes from the resolved profile whatever the source of
 * the strategy. Pure: no I/O, no clock.
 */
import { z } from 'zod';
import { createStrategy } from './registry.ts';

/** Request header selecting a profile by name, or `auto`. */
export const CONFIG_PROFILE_HEADER = 'config-profile';
/** Request header selecting a strategy spec. */
export const ROUTING_STRATEGY_HEADER = 'routing-strategy';
/** The `config-profile` value that chooses by prompt/max-token buckets. */
export const AUTO_PROFILE = 'auto';

const tokens = z.number().int().nonnegative();

/** Bucket hints of a profile for `config-profile: auto` (tokens; Gte inclusive, Lt exclusive). */
export const ProfileHintsSchema = z
  .object({
    promptTokensGte: tokens.optional(),
    promptTokensLt: tokens.optional(),
    maxTokensGte: tokens.optional(),
    maxTokensLt: tokens.optional(),
  })
  .strict();

/** One named routing profile. */
export const RoutingProfileSchema = z
  .object({
    /** Strategy spec (name or weighted combination), validated by `createStrategy` at load time. */
    routingStrategy: z.string().min(1).optional(),
    /** Options passed to `createStrategy` with `routingStrategy`. */
    strategyOptions: z.record(z.unknown()).optional(),
    /** Hints for `auto` selection. */
    routingConfig: ProfileHintsSchema.optional(),
    /** Per-model requests/s limit while this profile is selected (> 0). */
    requestsPerSecond: z.number().positive().optional(),
  })
  .strict();

/**
 * The fields of a model's routing profiles. The fleet file declares them directly on the model
 * (`models[].lockedRoutingStrategy`, `defaultProfile`, `profiles`, see `src/fleet/config.ts`), so
 * this shape is exported for it to spread into its model schema (one schema, not two).
 */
export const modelRoutingProfilesShape = {
  lockedRoutingStrategy: z.string().min(1).optional(),
  defaultProfile: z.string().min(1).optional(),
  profiles: z.record(RoutingProfileSchema).default({}),
};

/**
 * Cross-field checks of a model's routing profiles (zod `superRefine` body): `defaultProfile` must
 * be declared; `auto` is reserved. Issues are added at the field's path within the object refined
 * (e.g. `['defaultProfile']`).
 */
export function refineModelRoutingProfiles(v: { defaultProfile?: string; profiles?: Record<string, unknown> }, ctx: z.RefinementCtx): void {
  const profiles = v.profiles ?? {};
  if (v.defaultProfile !== undefined && !Object.hasOwn(profiles, v.defaultProfile)) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['defaultProfile'], message: `profile "${v.defaultProfile}" is not declared in profiles` });
  }
  if (profiles[AUTO_PROFILE] !== undefined) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['profiles', AUTO_PROFILE], message: `'${AUTO_PROFILE}' is reserved for automatic selection` });
  }
}

/** A model's routing profiles (lockedRoutingStrategy, defaultProfile, profiles). */
export const ModelRoutingProfilesSchema = z
  .object(modelRoutingProfilesShape)
  .strict()
  .superRefine(refineModelRoutingProfiles);

export type ProfileHints = z.infer<typeof ProfileHintsSchema>;
export type RoutingProfile = z.infer<typeof RoutingProfileSchema>;
export type ModelRoutingProfiles = z.infer<typeof ModelRoutingProfilesSchema>;

/** Thrown when `config-profile` names a profile the model does not declare. */
export class UnknownProfileError extends Error {
  constructor(
    readonly profile: string,
    readonly known: string[],
  ) {
    super(`unknown routing profile '${profile}'; known profiles: ${known.length > 0 ? known.join(', ') : '(none)'}, or '${AUTO_PROFILE}'`);
    this.name = 'UnknownProfileError';
  }
}

/** Request features `auto` matches hints against. */
export interface ProfileFeatures {
  /** Prompt length, tokens. */
  promptLength: number;
  /** `max_tokens` (else `max_completion_tokens`), tokens; undefined when the request has neither. */
  maxTokens?: number;
}

/** True when every hint of `h` holds for the features (a hint on a missing feature fails). */
export function hintsMatch(h: ProfileHints, f: ProfileFeatures): boolean {
  if (h.promptTokensGte !== undefined && !(f.promptLength >= h.promptTokensGte)) return false;
  if (h.promptTokensLt !== undefined && !(f.promptLength < h.promptTokensLt)) return false;
  if (h.maxTokensGte !== undefined && (f.maxTokens === undefined || !(f.maxTokens >= h.maxTokensGte))) return false;
  if (h.maxTokensLt !== undefined && (f.maxTokens === undefined || !(f.maxTokens < h.maxTokensLt))) return false;
  return true;
}

function hintCount(h: ProfileHints): number {
  return (h.promptTokensGte !== undefined ? 1 : 0) + (h.promptTokensLt !== undefined ? 1 : 0) + (h.maxTokensGte !== undefined ? 1 : 0) + (h.maxTokensLt !== undefined ? 1 : 0);
}

/** Orders two matching profiles, most specific first (see the module docstring). */
function moreSpecific(a: [string, ProfileHints], b: [string, ProfileHints]): number {
  const [an, ah] = a;
  const [bn, bh] = b;
  return (
    hintCount(bh) - hintCount(ah) ||
    (bh.promptTokensGte ?? -1) - (ah.promptTokensGte ?? -1) ||
    (ah.promptTokensLt ?? Infinity) - (bh.promptTokensLt ?? Infinity) ||
    (bh.maxTokensGte ?? -1) - (ah.maxTokensGte ?? -1) ||
    (ah.maxTokensLt ?? Infinity) - (bh.maxTokensLt ?? Infinity) ||
    (an < bn ? -1 : an > bn ? 1 : 0)
  );
}

function defaultProfileName(p: ModelRoutingProfiles): string | undefined {
  if (p.defaultProfile !== undefined) return p.defaultProfile;
  return Object.hasOwn(p.profiles, 'default') ? 'default' : undefined;
}

/**
 * Resolves the profile of a request.
 * @param profileHeader the `config-profile` header value (trimmed), if any.
 * @returns the profile name and definition, or undefined when none applies.
 * @throws UnknownProfileError when the header names an undeclared profile.
 */
export function resolveProfile(
  profiles: ModelRoutingProfiles | undefined,
  profileHeader: string | undefined,
  features: ProfileFeatures,
): { name: string; profile: RoutingProfile } | undefined {
  const p = profiles ?? { profiles: {} };
  const header = profileHeader?.trim();
  let name: string | undefined;
  if (header === undefined || header === '') {
    name = defaultProfileName(p);
  } else if (header === AUTO_PROFILE) {
    const matching: [string, ProfileHints][] = [];
    for (const [n, prof] of Object.entries(p.profiles)) {
      const h = prof.routingConfig;
      if (h !== undefined && hintCount(h) > 0 && hintsMatch(h, features)) matching.push([n, h]);
    }
    matching.sort(moreSpecific);
    name = matching[0]?.[0] ?? defaultProfileName(p);
  } else {
    if (!Object.hasOwn(p.profiles, header)) throw new UnknownProfileError(header, Object.keys(p.profiles).sort());
    name = header;
  }
  if (name === undefined) return undefined;
  const profile = p.profiles[name];
  return profile === undefined ? undefined : { name, profile };
}

/** Input of `selectStrategySpec`. */
export interface StrategySelectionInput {
  /** `routing-strategy` header value, if present (an empty value is returned as is and rejected by `createStrategy`). */
  header?: string;
  /** `config-profile` header value, if present. */
  profileHeader?: string;
  /** The model's default strategy spec (fleet file), if any. */
  modelDefault?: string;
  /** The fleet's default strategy spec. */
  fleetDefault: string;
  /** Prompt length, tokens (for `auto`). */
  promptLength: number;
  /** `max_tokens` / `max_completion_tokens`, tokens (for `auto`). */
  maxTokens?: number;
  /** The model's routing profiles. */
  profiles?: ModelRoutingProfiles;
}

/** Where the selected strategy came from. */
export type StrategySource = 'locked' | 'header' | 'profile' | 'model' | 'fleet';

/** Result of `selectStrategySpec`. */
export interface StrategySelection {
  /** The strategy spec to pass to `createStrategy`. */
  spec: string;
  source: StrategySource;
  /** Options for `createStrategy` (from the profile, when the profile's strategy is used). */
  options?: Record<string, unknown>;
  /** Name of the resolved profile (echo it in a response header), if any. */
  profile?: string;
  /** Per-model RPS limit of the resolved profile, if any. */
  requestsPerSecond?: number;
}

/**
 * Chooses the strategy spec of a request: locked > `routing-strategy` header > profile > model
 * default > fleet default (see the module docstring).
 * @throws UnknownProfileError when `profileHeader` names an undeclared profile.
 */
export function selectStrategySpec(input: StrategySelectionInput): StrategySelection {
  const resolved = resolveProfile(input.profiles, input.profileHeader, { promptLength: input.promptLength, maxTokens: input.maxTokens });
  // Built without object spreads: this runs once per request on the gateway's hot path.
  let out: StrategySelection;
  const locked = input.profiles?.lockedRoutingStrategy;
  if (locked !== undefined) out = { spec: locked, source: 'locked' };
  else if (input.header !== undefined) out = { spec: input.header.trim(), source: 'header' };
  else if (resolved?.profile.routingStrategy !== undefined) {
    out = { spec: resolved.profile.routingStrategy, source: 'profile' };
    if (resolved.profile.strategyOptions) out.options = resolved.profile.strategyOptions;
  } else if (input.modelDefault !== undefined) out = { spec: input.modelDefault, source: 'model' };
  else out = { spec: input.fleetDefault, source: 'fleet' };
  if (resolved) {
    out.profile = resolved.name;
    if (resolved.profile.requestsPerSecond !== undefined) out.requestsPerSecond = resolved.profile.requestsPerSecond;
  }
  return out;
}

/**
 * Checks that every strategy spec in `p` builds (names known, weights valid, options valid), so a
 * bad fleet file is rejected at load time rather than per request.
 * @throws RoutingProfileError (field path as parts, and the reason); its message starts with the path, e.g.
 *   `profiles.long.routingStrategy: unknown routing strategy 'x'; known strategies: ...`.
 */
export function validateModelRoutingProfiles(p: ModelRoutingProfiles): void {
  const check = (path: string[], spec: string, options?: Record<string, unknown>) => {
    try {
      createStrategy(spec, options);
    } catch (e) {
      throw new RoutingProfileError(path, (e as Error).message);
    }
  };
  if (p.lockedRoutingStrategy !== undefined) check(['lockedRoutingStrategy'], p.lockedRoutingStrategy);
  for (const [name, prof] of Object.entries(p.profiles)) {
    if (prof.routingStrategy !== undefined) check(['profiles', name, 'routingStrategy'], prof.routingStrategy, prof.strategyOptions);
    else if (prof.strategyOptions !== undefined) throw new RoutingProfileError(['profiles', name, 'strategyOptions'], 'given without routingStrategy');
  }
}

/**
 * A routing profile that does not build: `path` is the field (e.g. `['profiles', 'long:ctx',
 * 'routingStrategy']`: a profile name may hold any character, so the path is kept as parts), `detail`
 * the reason; the message is `path.join('.') + ': ' + detail`.
 */
export class RoutingProfileError extends Error {
  constructor(
    readonly path: string[],
    readonly detail: string,
  ) {
    super(`${path.join('.')}: ${detail}`);
  }
}
