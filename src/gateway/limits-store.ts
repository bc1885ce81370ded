/**
 * Builds the gateway's `LimitsGate` on the counter stores of `src/limits`.
 * (Wiring pending: src/limits has not landed yet.)
 */
import type { FleetConfig } from '../fleet/config.ts';
import type { LimitsGate } from './limits.ts';

export async function createLimitsGate(_cfg: FleetConfig['limits']): Promise<LimitsGate | undefined> {
  return undefined;
}
