/**
 * Command-line options shared by the benchmark scripts (`npm run bench:<name> -- --flag value`).
 */

/**
 * Reads `--<name> <value>` from `process.argv` as a positive number; `def` when the flag is absent.
 * @throws Error naming the flag when the value is not a positive finite number.
 */
export function positiveArg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  return v;
}
