import type { Command } from 'commander';
/** Registers `inferplane up` and `inferplane gateway` (owned by the gateway work; placeholder until it lands). */
export function registerUp(_program: Command): void {}
