/**
 * The engine-metrics scraper: every `intervalMs` (default 500 ms) it GETs each registered endpoint's
 * `/metrics` (timeout `timeoutMs`), parses the Prometheus text (`./prom-text.ts`) and maps the
 * dialect's names to canonical signals with the engine dialect map, then writes them into the
 * registry's `EndpointState` in place.
 *
 * A failed scrape (refused, timeout, non-2xx, unparsable) sets `stale: true` and keeps every last
 * known value: a missing signal never reads as zero (ARCHITECTURE.md, "Errors, logs, metrics").
 * Gateway-local counters (`inflightRequests`, `inflightTokens`) are never touched here.
 * Compare AIBrix: 50 ms period, 10 s timeout with three retries (aibrix-gateway.md §3.1); we use one
 * attempt per period with a short timeout, so a slow engine goes stale within one period.
 */
import { Agent, request } from 'undici';
import type { EndpointState } from '../engines/state.ts';
import type { FleetRegistry } from '../fleet/registry.ts';
import { toCanonical, type ScrapeMemory } from '../engines/metric-map.ts';
import { parsePromText } from './prom-text.ts';

export interface ScraperOptions {
  intervalMs: number;
  timeoutMs: number;
  now?: () => number;
  /** Called after every scrape (ok or not), e.g. for logs and tests. */
  onScrape?: (ep: EndpointState, ok: boolean, error?: string) => void;
}

/** Engine fields the scraper owns (never gateway counters, identity or readiness). */
const ENGINE_FIELDS = new Set<keyof EndpointState>([
  'running',
  'waiting',
  'kvCacheUsage',
  'prefixCacheHitRate',
  'promptTokensPerS',
  'generationTokensPerS',
  'ttftMs',
  'itlMs',
  'preemptions',
  'loraAdapters',
  'maxLoras',
]);

export class Scraper {
  private timer: NodeJS.Timeout | null = null;
  private readonly busy = new Set<string>();
  /** Previous scrape's counters/histograms per endpoint (rates come from deltas). */
  private readonly memory = new Map<string, ScrapeMemory>();
  private readonly agent: Agent;
  private readonly now: () => number;

  constructor(
    private readonly fleet: FleetRegistry,
    private readonly opts: ScraperOptions,
  ) {
    this.agent = new Agent({ keepAliveTimeout: 10_000, connections: 2 });
    this.now = opts.now ?? Date.now;
    fleet.on('remove', (ep: EndpointState) => this.memory.delete(ep.id));
  }

  /** Scrapes one endpoint now and applies the result; returns whether it succeeded. Never throws. */
  async scrape(ep: EndpointState): Promise<boolean> {
    if (this.busy.has(ep.id)) return false;
    this.busy.add(ep.id);
    try {
      const r = await request(ep.url + '/metrics', {
        method: 'GET',
        dispatcher: this.agent,
        headersTimeout: this.opts.timeoutMs,
        bodyTimeout: this.opts.timeoutMs,
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
      if (r.statusCode < 200 || r.statusCode >= 300) {
        await r.body.dump();
        throw new Error(`status ${r.statusCode}`);
      }
      const text = await r.body.text();
      const nowMs = this.now();
      const parsed = parsePromText(text);
      const { signals: update, memory } = toCanonical(this.memory.get(ep.id) ?? null, parsed, nowMs, ep.dialect);
      this.memory.set(ep.id, memory);
      for (const k of Object.keys(update) as (keyof EndpointState)[]) {
        if (ENGINE_FIELDS.has(k) && (update as Record<string, unknown>)[k] !== undefined) (ep as unknown as Record<string, unknown>)[k] = (update as Record<string, unknown>)[k];
      }
      ep.stale = false;
      ep.scrapedAtMs = nowMs;
      this.opts.onScrape?.(ep, true);
      return true;
    } catch (e) {
      ep.stale = true;
      this.opts.onScrape?.(ep, false, (e as Error).message);
      return false;
    } finally {
      this.busy.delete(ep.id);
    }
  }

  /** Scrapes every registered endpoint once. */
  async scrapeAll(): Promise<void> {
    await Promise.all(this.fleet.list().map((e) => this.scrape(e)));
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.scrapeAll(), this.opts.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.memory.clear();
    await this.agent.close().catch(() => undefined);
  }
}
