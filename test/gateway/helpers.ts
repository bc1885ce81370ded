/** Shared setup for gateway tests: a gateway in this process over fake engines. */
import { validateFleet, type FleetInput } from '../../src/fleet/config.ts';
import { runFleet, type RunningFleet } from '../../src/gateway/runtime.ts';
import type { FakeEngine } from './fake-engine.ts';

export type FleetPatch = Omit<Partial<FleetInput>, 'gateway'> & { gateway?: Record<string, unknown> };

/** Starts a gateway (random port, silent logs, no background scrapes unless asked) over `engines` as model `m`. */
export async function startGateway(engines: FakeEngine[], patch: FleetPatch = {}, modelPatch: Record<string, unknown> = {}): Promise<RunningFleet> {
  const cfg = validateFleet({
    ...patch,
    gateway: { port: 0, logLevel: 'silent', scrapeIntervalMs: 3_600_000, healthIntervalMs: 3_600_000, drainGraceMs: 2_000, ...patch.gateway },
    models: patch.models ?? [{ name: 'm', endpoints: engines.map((e) => ({ url: e.url, id: e.id })), ...modelPatch }],
  } as FleetInput);
  return runFleet(cfg, { port: 0 });
}

/** POSTs JSON, returns status, headers and text. */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; text: string; json: () => any }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, headers: r.headers, text, json: () => JSON.parse(text) };
}

export const chat = (extra: Record<string, unknown> = {}) => ({ model: 'm', messages: [{ role: 'user', content: 'hi there' }], max_tokens: 8, ...extra });
