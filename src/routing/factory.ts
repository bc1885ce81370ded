/**
 * The signature every named strategy is built from (used by the registry, the gateway and the DES).
 */
import type { RoutingStrategy } from './types.ts';

/**
 * Builds one strategy instance. `options` are the strategy's parameters as given in the fleet file
 * or the experiment's `routerOptions` (validated by the factory; throws `Error` naming the bad field).
 * Each call returns a fresh instance with its own state (one per model in the gateway, one per run in the DES).
 */
export type StrategyFactory = (options?: Record<string, unknown>) => RoutingStrategy;
