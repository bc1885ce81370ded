/**
 * The benchmark toolkit as a library (see `docs/bench.md`): trace loaders, arrival shapes,
 * workload generators, exact-length prompt text, the load client and the report. The workload
 * pieces are pure given a seeded RNG, so the simulator's discrete-event runs and the routing
 * benchmark replay exactly what `inferplane bench run` sends.
 */
export { loadAzureTrace, loadMooncakeTrace, parseAzureTrace, parseMooncakeTrace, spreadBuckets, MOONCAKE_BLOCK_TOKENS, TraceFormatError, type TraceOptions, type TraceRequest } from './traces.ts';
export { arrivalTimes, type ArrivalShape, type ArrivalBounds } from './arrivals.ts';
export { createRng, seedOf, type Rng } from './rng.ts';
export { PromptFactory, randomText, singleTokenPieces } from './prompt.ts';
export {
  randomRequests,
  sharedPrefixRequests,
  multiTurnSessions,
  sessionContextTokens,
  traceRequests,
  hashIdPrefixHits,
  PREBLE_PRESETS,
  type PreblePreset,
  type RequestSpec,
  type SessionSpec,
  type WorkItem,
  type SharedPrefixConfig,
  type MultiTurnConfig,
  type Dist,
} from './workload.ts';
export { loadDataset, parseDataset, type Dataset, type DatasetOptions } from './datasets.ts';
export { buildSchedule, clipSpec, type ScheduleOptions, type BuiltSchedule } from './schedule.ts';
export { startBench, type ClientOptions, type ScheduledItem, type BenchRun, type RunSummary, type RunProgress } from './client.ts';
export type { RequestRecord, ErrorKind } from './record.ts';
export { summarize, reportJson, reportText, readResults, parseSlo, percentile, stat, meetsSlo, tpotOf, type RunReport, type ReportJson, type Slo, type Stat } from './report.ts';
export { renderHtml } from './html.ts';
