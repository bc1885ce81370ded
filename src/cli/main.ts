/**
 * The `inferplane` command. Each subcommand family lives in its own module and registers itself.
 */
import { Command } from 'commander';
import { registerUp } from './up.ts';
import { registerSim } from './sim.ts';
import { registerBench } from './bench.ts';
import { registerControl } from './control.ts';

const program = new Command();
program
  .name('inferplane')
  .description('LLM serving control plane: OpenAI-compatible gateway, engine simulator, benchmarks')
  .version('0.1.0')
  .showHelpAfterError();

registerUp(program);
registerSim(program);
registerBench(program);
registerControl(program);

await program.parseAsync(process.argv);
