import type { Command } from 'commander';
/** Registers `inferplane adapters ...` and `inferplane autoscalers ...` (placeholder until the controllers land). */
export function registerControl(_program: Command): void {}
