/**
 * Drives one `EngineCore` on the wall clock, optionally sped up: virtual ms = wall ms x `timeScale`.
 *
 * Loop: while the core has work, call `step(t)` at engine time `t`, wait (wall) until `t + durationMs`
 * has come, deliver the step's outputs stamped with that time, and step again at `t + durationMs`.
 * When the core idles, the next arrival restarts the loop at the current time. Engine time advances
 * by modelled step durations, never by timer lateness, so latencies do not inflate with timer jitter;
 * when the process falls behind, outputs are delivered late (in wall time) but stamped correctly.
 */
import type { EngineCore } from '../core/engine.ts';
import type { EngineRequest, StepOutput, StepResult } from '../core/types.ts';

/** Per-request callbacks. `atMs` is engine (virtual) time; `stepStartMs` the start of the step that produced the output. */
export interface RequestListener {
  onOutput(out: StepOutput, stepStartMs: number, atMs: number): void;
}

/** Options of the driver. */
export interface DriverOptions {
  /** Virtual ms per wall ms (>0; e.g. 100 runs 100x faster than real time). */
  timeScale: number;
  /** Called after each step with its result and engine-time bounds (metrics, KV-event flush). */
  onStep?: (res: StepResult, startMs: number, endMs: number) => void;
  /** Wall clock in ms (injectable for tests); default `performance.now()`. */
  wallNowMs?: () => number;
}

/** See the module docstring. */
export class WallClockDriver {
  private readonly listeners = new Map<string, RequestListener>();
  private readonly wall: () => number;
  private readonly wall0: number;
  private engineMs = 0;
  private running = false;
  /** End (engine ms) of the step in flight; Infinity when none. */
  private pendingEndMs = Infinity;
  private closed = false;
  private timer: NodeJS.Timeout | NodeJS.Immediate | null = null;

  constructor(
    readonly core: EngineCore,
    private readonly opts: DriverOptions,
  ) {
    if (!(opts.timeScale > 0)) throw new RangeError(`timeScale must be > 0, got ${opts.timeScale}`);
    this.wall = opts.wallNowMs ?? (() => performance.now());
    this.wall0 = this.wall();
  }

  /** Current virtual time (ms since the driver started). */
  nowMs(): number {
    return (this.wall() - this.wall0) * this.opts.timeScale;
  }

  /** Number of requests with a listener (in flight). */
  get inflight(): number {
    return this.listeners.size;
  }

  /**
   * Adds a request (arrival = now) and starts the loop if idle.
   * @throws whatever `core.addRequest` throws (EngineError), with nothing registered.
   */
  submit(req: Omit<EngineRequest, 'arrivalMs'>, listener: RequestListener): number {
    const arrivalMs = this.clampedNow();
    this.core.addRequest({ ...req, arrivalMs }, arrivalMs);
    this.listeners.set(req.id, listener);
    this.kick();
    return arrivalMs;
  }

  /** Aborts a request (client went away); no more outputs are delivered for it. */
  abort(id: string): void {
    if (!this.listeners.delete(id)) return;
    this.core.abortRequest(id, this.clampedNow());
    this.kick();
  }

  /** Stops the loop; pending requests get no more outputs. */
  close(): void {
    this.closed = true;
    if (this.timer) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
    }
    this.listeners.clear();
  }

  /**
   * Engine time for an arrival/abort now: the virtual now, but never before the current engine time
   * and never after the end of the step in flight (so the next step starts at or after it).
   */
  private clampedNow(): number {
    return Math.min(Math.max(this.engineMs, this.nowMs()), this.pendingEndMs);
  }

  private kick(): void {
    if (this.running || this.closed || !this.core.hasWork()) return;
    this.running = true;
    this.engineMs = Math.max(this.engineMs, this.nowMs());
    this.timer = setImmediate(() => this.loop());
  }

  /** Wall ms the loop may spend running overdue steps back to back before yielding to I/O. */
  private static readonly SLICE_MS = 5;

  private deliver(res: StepResult, start: number, end: number): void {
    this.engineMs = end;
    this.opts.onStep?.(res, start, end);
    for (const out of res.outputs) {
      const l = this.listeners.get(out.requestId);
      if (!l) continue;
      if (out.finished) this.listeners.delete(out.requestId);
      l.onOutput(out, start, end);
    }
  }

  /**
   * Runs steps while the core has work. A step whose end time has already passed on the wall clock
   * (the process is behind, or the time scale is high) is delivered at once and the next one run in
   * the same slice (up to SLICE_MS of wall time, then the loop yields to I/O); otherwise the loop
   * sleeps until the step's end.
   */
  private loop(): void {
    this.timer = null;
    const sliceStart = this.wall();
    for (;;) {
      if (this.closed) return;
      if (!this.core.hasWork()) {
        this.running = false;
        this.pendingEndMs = Infinity;
        return;
      }
      const start = this.engineMs;
      const res = this.core.step(start);
      if (res.durationMs <= 0 && res.outputs.length === 0) {
        // nothing schedulable now (e.g. waiting for a LoRA slot): retry shortly on the wall clock
        this.engineMs = Math.max(start, this.nowMs());
        this.opts.onStep?.(res, start, start);
        this.timer = setTimeout(() => {
          this.engineMs = Math.max(this.engineMs, this.nowMs());
          this.loop();
        }, 1);
        return;
      }
      const end = start + res.durationMs;
      const now = this.wall();
      const delayWall = end / this.opts.timeScale + this.wall0 - now;
      if (delayWall <= 0 && now - sliceStart < WallClockDriver.SLICE_MS) {
        this.deliver(res, start, end);
        continue;
      }
      this.pendingEndMs = end;
      const fire = (): void => {
        this.timer = null;
        this.pendingEndMs = Infinity;
        if (this.closed) return;
        this.deliver(res, start, end);
        this.loop();
      };
      this.timer = delayWall >= 1 ? setTimeout(fire, delayWall) : setImmediate(fire);
      return;
    }
  }
}
