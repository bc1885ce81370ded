import type { Command } from 'commander';
/** Registers `inferplane sim run` (placeholder until the discrete-event driver lands). */
export function registerSimRun(_sim: Command): void {}
