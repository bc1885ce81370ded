/** Registers the `inferplane sim` family: `sim serve` (one simulated engine over HTTP) and `sim run` (discrete-event experiments). */
import type { Command } from 'commander';
import { registerSimServe } from './sim-serve.ts';
import { registerSimRun } from './sim-run.ts';

export function registerSim(program: Command): void {
  const sim = program.command('sim').description('vLLM-compatible engine simulator');
  registerSimServe(sim);
  registerSimRun(sim);
}
