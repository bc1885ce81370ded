import type { Command } from 'commander';
/** Registers `inferplane sim serve` and `inferplane sim run` (placeholder until the simulator lands). */
export function registerSim(_program: Command): void {}
