/** Shared helpers for the simulator-server tests. */
import { startSimServer, type SimServerHandle, type SimServerOptions } from '../../../src/sim/server/server.ts';

export const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';

/** Starts a fast (time-scaled) simulated engine on a random loopback port; register `close` with `t.after`. */
export function startFast(extra: Partial<SimServerOptions> = {}): Promise<SimServerHandle> {
  return startSimServer({ model: MODEL, maxModelLen: 4096, timeScale: 50, ...extra });
}

/** POSTs JSON and returns status, headers and text. */
export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; text: string; type: string | null }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: r.status, text: await r.text(), type: r.headers.get('content-type') };
}

/** A prompt of exactly `n` token ids (distinct per `salt`), for block-exact tests. */
export function tokenPrompt(n: number, salt = 0): number[] {
  return Array.from({ length: n }, (_, i) => 1000 + ((i * 31 + salt * 7919) % 60000));
}
