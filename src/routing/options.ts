/**
 * Validation of strategy options (zod). Errors name the strategy and the field path, e.g.
 * `strategy least-request: option 'loadMode': Invalid enum value...`.
 */
import { z } from 'zod';

/**
 * Parses `options` with `schema` (a strict zod object, so unknown fields are rejected).
 * @throws Error naming the strategy, the field path and zod's message.
 */
export function parseOptions<T extends z.ZodTypeAny>(strategy: string, schema: T, options: Record<string, unknown> | undefined): z.infer<T> {
  const r = schema.safeParse(options ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const path = issue.path.length > 0 ? issue.path.join('.') : '(options)';
  const extra = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : '';
  throw new Error(`strategy ${strategy}: option '${path}': ${issue.message}${extra}`);
}

/** Options every filter-based strategy accepts. */
export const commonOptionsShape = {
  /** Drop endpoints whose engine signals are stale or never scraped (default false: they stay, their engine signals read as missing). */
  excludeStale: z.boolean().optional(),
};

/** How request load combines gateway and engine counts (see `LoadMode` in signals.ts). */
export const loadModeSchema = z.enum(['max', 'sum', 'inflight']);
