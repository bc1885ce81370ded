/**
 * `lora-affinity`: for a request naming a LoRA adapter, endpoints with the adapter loaded first,
 * then ones with a free adapter slot, then ones whose LoRA state is unknown, then full ones; within
 * a tier the least loaded (request load as `least-request`). Requests without an adapter are routed
 * by request load alone.
 *
 * Tiers (after the Gateway API Inference Extension's `lora-affinity-scorer`, peers.md section 1):
 * 1.0 loaded (`loraAdapters` contains it), 0.8 free slot (`loraAdapters.length < maxLoras`),
 * 0.6 unknown (no fresh LoRA signal or no `maxLoras`), 0 full. As a preset: tier scorer weight 10
 * + load scorer weight 1 with max-score picking; tiers differ by >= 0.2, so 10 * 0.2 = 2 > 1 makes
 * the tier decide strictly before the load (lexicographic order).
 */
import { z } from 'zod';
import type { EndpointState } from '../../engines/state.ts';
import type { RoutingContext, RoutingRequest, RoutingStrategy } from '../types.ts';
import { type DetailedScorer, type ScoreDetail, PresetStrategy, loraTier, maxScorePicker } from '../framework.ts';
import { commonOptionsShape, loadModeSchema, parseOptions } from '../options.ts';
import { baseFilters, requestLoadScorer } from './basic.ts';

/** Absolute LoRA tier scores (not min-max normalized: the tier values carry the order). */
export const loraTierScorer: DetailedScorer = {
  name: 'lora-tier',
  evaluate(req: RoutingRequest, eps: readonly EndpointState[]): ScoreDetail {
    if (!req.adapter) return { scores: eps.map(() => 1), raw: eps.map(() => undefined), label: 'LoRA tier', fallbackNote: 'no adapter requested' };
    const raw = eps.map((ep) => loraTier(ep, req.adapter!));
    return { scores: raw, raw, label: `LoRA tier for ${req.adapter}` };
  },
  score(req: RoutingRequest, eps: readonly EndpointState[], _ctx: RoutingContext): number[] {
    return this.evaluate(req, eps, _ctx).scores;
  },
} as DetailedScorer;

const schema = z.object({ ...commonOptionsShape, loadMode: loadModeSchema.optional() }).strict();

/** `lora-affinity` factory. Options: `loadMode` (see least-request), `excludeStale`. */
export function createLoraAffinity(options?: Record<string, unknown>): RoutingStrategy {
  const o = parseOptions('lora-affinity', schema, options);
  return new PresetStrategy(
    'lora-affinity',
    baseFilters(o.excludeStale),
    [
      { scorer: loraTierScorer, weight: 10 },
      { scorer: requestLoadScorer(o.loadMode), weight: 1 },
    ],
    maxScorePicker,
  );
}
