import type { Command } from 'commander';
/** Registers `inferplane sim serve` (placeholder until the simulator server lands). */
export function registerSimServe(_sim: Command): void {}
