import type { Command } from 'commander';
/** Registers `inferplane bench run` and `inferplane bench report` (placeholder until the toolkit lands). */
export function registerBench(_program: Command): void {}
