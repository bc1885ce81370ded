/**
 * `npm run calibrate`: fits the simulator's latency coefficients on `shared/data/calibration/` only.
 *
 * Every non-overloaded calibration stage is replayed in the DES (see `src/sim/des/calibration-set.ts`
 * for how a record becomes a replay). Loss = RMSE over cases of the absolute percentage error of
 * mean TTFT + the same for mean E2E + the same for mean ITL (the BLIS protocol in
 * shared/reference/sim-latency-model.md, with the ITL term added). Optimizer: Nelder-Mead (written
 * here; derivative-free) over non-negative multipliers of the starting coefficients (BLIS iter29),
 * with restarts. Writes `src/sim/core/coefficients.json` with the loss, the date and the settings.
 *
 * Options: `--max-evals N` (default 260), `--dry-run` (print, do not write), `--from-current` (start
 * from the committed coefficients instead of BLIS iter29), `--train-dataset default_args|trainval`
 * (fit on that dataset only and report the error on the other one: a held-out check), `--out FILE`
 * (write there instead of src/sim/core/coefficients.json).
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { BLIS_ITER29_COEFFICIENTS, DEFAULT_COEFFICIENTS, type CoefficientsFile, type LatencyCoefficients } from '../src/sim/core/latency.ts';
import defaultFile from '../src/sim/core/coefficients.json' with { type: 'json' };
import { QUESTION_REUSE, ape, calibrationFile, loadCalibrationCases, median, replayCase, type CalibrationCase } from '../src/sim/des/calibration-set.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const maxEvals = Number(args[args.indexOf('--max-evals') + 1] ?? 0) || 260;
const dryRun = args.includes('--dry-run');
const fromDefault = args.includes('--from-current');
const trainDataset = args.includes('--train-dataset') ? args[args.indexOf('--train-dataset') + 1] : undefined;
const outFile = args.includes('--out') ? resolve(args[args.indexOf('--out') + 1]!) : resolve(repoRoot, 'src/sim/core/coefficients.json');

/** The coefficients the fit moves, and the scale of each (value at multiplier 1, for zero starts). */
const FIT_KEYS: (keyof LatencyCoefficients)[] = ['beta1a', 'beta2b', 'beta3', 'beta4', 'beta6', 'beta7', 'beta8', 'alpha0', 'alpha1', 'alpha2'];
const ZERO_SCALE: Partial<Record<keyof LatencyCoefficients, number>> = { beta8: 20, beta1b: 0.5, beta2a: 0.2 };

const start: LatencyCoefficients = { ...(fromDefault ? DEFAULT_COEFFICIENTS : BLIS_ITER29_COEFFICIENTS) };
// Start prefill compute at the H100 prefill MFU seen in published fits (0.45, sim-latency-model.md):
// the calibration prompts are mostly prefix-cache hits, so the data barely constrain it.
if (start.beta1a < 1) start.beta1a = 1 / 0.45;
const scales = FIT_KEYS.map((k) => (start[k] !== 0 ? start[k] : ZERO_SCALE[k] ?? 1));

/**
 * Physical lower bounds: prefill compute and weight streaming cannot run faster than the datasheet
 * peaks (multiplier >= 1). Without them the fit can trade prefill cost for the per-request constant
 * α0, because the calibration prompts share prefixes heavily.
 */
const LOWER: Partial<Record<keyof LatencyCoefficients, number>> = { beta1a: 1, beta3: 1 };

function coefFrom(x: readonly number[]): LatencyCoefficients {
  const c = { ...start };
  FIT_KEYS.forEach((k, i) => {
    c[k] = Math.max(LOWER[k] ?? 0, Math.max(0, x[i]!) * scales[i]!);
  });
  return c;
}

function rmse(xs: number[]): number {
  return Math.sqrt(xs.reduce((a, b) => a + b * b, 0) / Math.max(1, xs.length));
}

/** Loss of a coefficient set over the cases (and the per-metric parts). */
export function lossOf(cases: CalibrationCase[], c: LatencyCoefficients): { loss: number; ttft: number; e2e: number; itl: number } {
  const t: number[] = [];
  const e: number[] = [];
  const i: number[] = [];
  for (const cs of cases) {
    const o = replayCase(cs, c);
    t.push(Math.min(ape(o.ttftMs, cs.target.ttftMs), 50));
    e.push(Math.min(ape(o.e2eMs, cs.target.e2eMs), 50));
    i.push(Math.min(ape(o.itlMs, cs.target.itlMs), 50));
  }
  const ttft = rmse(t);
  const e2e = rmse(e);
  const itl = rmse(i);
  return { loss: ttft + e2e + itl, ttft, e2e, itl };
}

/** Nelder-Mead minimization (standard coefficients: reflection 1, expansion 2, contraction 0.5, shrink 0.5). */
function nelderMead(f: (x: number[]) => number, x0: number[], step: number, maxEvals: number, log: (m: string) => void): { x: number[]; fx: number; evals: number } {
  const n = x0.length;
  let evals = 0;
  const F = (x: number[]) => {
    evals++;
    return f(x);
  };
  let simplex: { x: number[]; fx: number }[] = [{ x: x0.slice(), fx: F(x0) }];
  for (let i = 0; i < n; i++) {
    const x = x0.slice();
    x[i] = x[i]! + (x[i]! !== 0 ? step * x[i]! : step);
    simplex.push({ x, fx: F(x) });
  }
  while (evals < maxEvals) {
    simplex.sort((a, b) => a.fx - b.fx);
    const best = simplex[0]!;
    const worst = simplex[n]!;
    if (Math.abs(worst.fx - best.fx) < 1e-5 * Math.max(1e-9, Math.abs(best.fx))) break;
    const centroid = new Array<number>(n).fill(0);
    for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) centroid[j]! += simplex[k]!.x[j]! / n;
    const at = (t: number) => centroid.map((c, j) => c + t * (worst.x[j]! - c));
    const xr = at(-1);
    const fr = F(xr);
    if (fr < best.fx) {
      const xe = at(-2);
      const fe = F(xe);
      simplex[n] = fe < fr ? { x: xe, fx: fe } : { x: xr, fx: fr };
    } else if (fr < simplex[n - 1]!.fx) {
      simplex[n] = { x: xr, fx: fr };
    } else {
      const xc = fr < worst.fx ? at(-0.5) : at(0.5);
      const fc = F(xc);
      if (fc < Math.min(fr, worst.fx)) simplex[n] = { x: xc, fx: fc };
      else {
        simplex = simplex.map((p, k) => (k === 0 ? p : { x: p.x.map((v, j) => best.x[j]! + 0.5 * (v - best.x[j]!)), fx: NaN }));
        for (let k = 1; k <= n; k++) simplex[k]!.fx = F(simplex[k]!.x);
      }
    }
    if (evals % 20 < 2) log(`  evals ${evals}: best loss ${simplex.reduce((a, b) => Math.min(a, b.fx), Infinity).toFixed(4)}`);
  }
  simplex.sort((a, b) => a.fx - b.fx);
  return { x: simplex[0]!.x, fx: simplex[0]!.fx, evals };
}

function main(): void {
  const file = calibrationFile(repoRoot);
  const all = loadCalibrationCases(file);
  const cases = trainDataset ? all.filter((c) => c.dataset === trainDataset) : all;
  const heldOut = trainDataset ? all.filter((c) => c.dataset !== trainDataset) : [];
  if (cases.length === 0) throw new Error(`--train-dataset ${trainDataset}: no cases (use default_args or trainval)`);
  const log = (m: string) => process.stderr.write(m + '\n');
  log(`calibrate: ${cases.length} non-overloaded stages from ${file}; fitting ${FIT_KEYS.join(', ')}`);
  const t0 = performance.now();
  const f = (x: number[]) => lossOf(cases, coefFrom(x)).loss;
  let x = FIT_KEYS.map(() => 1);
  const startLoss = lossOf(cases, coefFrom(x));
  log(`start (${fromDefault ? 'current coefficients.json' : 'BLIS iter29'}): loss ${startLoss.loss.toFixed(4)} (TTFT ${startLoss.ttft.toFixed(3)}, E2E ${startLoss.e2e.toFixed(3)}, ITL ${startLoss.itl.toFixed(3)})`);
  let used = 0;
  let round = 0;
  while (used < maxEvals) {
    const r = nelderMead(f, x, round === 0 ? 0.5 : 0.2, Math.min(maxEvals - used, Math.ceil(maxEvals / 2)), log);
    used += r.evals;
    x = r.x;
    round++;
    log(`round ${round}: loss ${r.fx.toFixed(4)} after ${used} evaluations`);
  }
  const coef = coefFrom(x);
  const fin = lossOf(cases, coef);
  const perOf = (cs: CalibrationCase[]) => cs.map((c) => {
    const o = replayCase(c, coef);
    return { ttft: ape(o.ttftMs, c.target.ttftMs), e2e: ape(o.e2eMs, c.target.e2eMs), itl: ape(o.itlMs, c.target.itlMs) };
  });
  const per = perOf(cases);
  const perHeld = perOf(heldOut);
  const round6 = (v: number) => Math.round(v * 1e6) / 1e6;
  // A --from-current refit records the fit it started from, so the chain stays reproducible.
  const prevFit = fromDefault ? ((defaultFile as CoefficientsFile).fit as Record<string, unknown>) : undefined;
  const history = prevFit ? [...((prevFit.history as unknown[] | undefined) ?? []), { date: prevFit.date, loss: prevFit.loss, start: prevFit.start, optimizer: prevFit.optimizer, note: prevFit.note }] : undefined;
  const out = {
    coefficients: Object.fromEntries(Object.entries(coef).map(([k, v]) => [k, round6(v)])),
    fit: {
      date: new Date().toISOString().slice(0, 10),
      script: 'npm run calibrate (scripts/calibrate.ts)',
      data: `shared/data/calibration/experiments.json (non-overloaded stages only${trainDataset ? `, dataset ${trainDataset}` : ''})`,
      cases: cases.length,
      loss: round6(fin.loss),
      lossDefinition: 'RMSE(APE mean TTFT) + RMSE(APE mean E2E) + RMSE(APE mean ITL), ITL = (E2E - TTFT)/(output - 1); Llama-2-7b default_args use itl_mean_ms_requested_len',
      rmse: { ttft: round6(fin.ttft), e2e: round6(fin.e2e), itl: round6(fin.itl) },
      medianApe: { ttft: round6(median(per.map((p) => p.ttft))), e2e: round6(median(per.map((p) => p.e2e))), itl: round6(median(per.map((p) => p.itl))) },
      ...(trainDataset
        ? {
            trainDataset,
            heldOutCases: heldOut.length,
            heldOutMedianApe: { ttft: round6(median(perHeld.map((p) => p.ttft))), e2e: round6(median(perHeld.map((p) => p.e2e))), itl: round6(median(perHeld.map((p) => p.itl))) },
          }
        : {}),
      startLoss: round6(startLoss.loss),
      start: fromDefault ? 'previous coefficients.json' : 'BLIS iter29 (sim-latency-model.md)',
      fitted: FIT_KEYS,
      lowerBounds: LOWER,
      questionReuse: QUESTION_REUSE,
      optimizer: `Nelder-Mead with restarts, ${used} evaluations`,
      wallS: Math.round((performance.now() - t0) / 1000),
      ...(history ? { history } : {}),
    },
  };
  log(`final: loss ${fin.loss.toFixed(4)} (TTFT ${fin.ttft.toFixed(3)}, E2E ${fin.e2e.toFixed(3)}, ITL ${fin.itl.toFixed(3)}); median APE TTFT ${(out.fit.medianApe.ttft * 100).toFixed(1)}% E2E ${(out.fit.medianApe.e2e * 100).toFixed(1)}% ITL ${(out.fit.medianApe.itl * 100).toFixed(1)}%`);
  if (trainDataset) {
    const h = (out.fit as { heldOutMedianApe?: { ttft: number; e2e: number; itl: number } }).heldOutMedianApe!;
    log(`held out (${heldOut.length} stages not in ${trainDataset}): median APE TTFT ${(h.ttft * 100).toFixed(1)}% E2E ${(h.e2e * 100).toFixed(1)}% ITL ${(h.itl * 100).toFixed(1)}%`);
  }
  const text = JSON.stringify(out, null, 2) + '\n';
  if (dryRun) process.stdout.write(text);
  else {
    writeFileSync(outFile, text);
    log(`wrote ${outFile}`);
  }
}

main();
