/** Registers `inferplane sim run <experiment.json|yaml> [--out file]`: a discrete-event cluster experiment (see docs/simulator.md). */
import { writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { loadExperiment } from '../sim/des/experiment.ts';
import { runExperiment } from '../sim/des/run.ts';

export function registerSimRun(sim: Command): void {
  sim
    .command('run')
    .description('run N simulated engines on virtual time against a workload; prints one JSON result')
    .argument('<experiment>', 'experiment file (.json, .yaml or .yml)')
    .option('--out <file>', 'write the result JSON to this file instead of stdout')
    .action((file: string, opts: { out?: string }) => {
      let text: string;
      try {
        const exp = loadExperiment(file);
        const t0 = performance.now();
        const result = runExperiment(exp, { baseDir: dirname(resolve(file)) });
        const wallS = (performance.now() - t0) / 1000;
        text = JSON.stringify({ ...result, meta: { wallS: Math.round(wallS * 1000) / 1000, speedup: wallS > 0 ? Math.round(result.simulatedS / wallS) : null } }, null, 2);
      } catch (e) {
        process.stderr.write(`inferplane sim run: ${(e as Error).message}\n`);
        process.exitCode = 2;
        return;
      }
      if (opts.out) writeFileSync(opts.out, text + '\n');
      else process.stdout.write(text + '\n');
    });
}
