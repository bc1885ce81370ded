/**
 * The gateway's logger: pino JSON lines to stdout through an asynchronous, buffered destination
 * (`LineBuffer` below), so a request never waits on a write and the hot path makes one write
 * (a thread-pool hand-off) per ~32 KiB of logs (~60 request lines) instead of one per line.
 * Buffered lines are flushed every `flushEveryMs` (default 250 ms) and synchronously at process
 * exit, so a quiet gateway's logs still appear. Level `silent` builds a logger with no destination.
 *
 * Why not `pino.destination()` (sonic-boom): its `write` measures the UTF-8 byte length of the whole
 * pending buffer on every line (`Buffer.byteLength(bufs[last])`, sonic-boom 4), which made the log
 * line one of the larger per-request costs under load (profile in docs/benchmarks/gateway.md).
 */
import { write as fsWrite, writeSync } from 'node:fs';
import pino, { type Logger } from 'pino';

/**
 * A pino destination (any object with `write(line)`): lines are kept in an array and written with
 * one `fs.write` of their concatenation once `minChars` characters are pending (and on `flush()`).
 * Writes are ordered (one in flight at a time); EAGAIN (a non-blocking pipe that is full) is retried
 * after 10 ms; any other write error drops the pending lines (stdout is gone).
 */
export class LineBuffer {
  private parts: string[] = [];
  private chars = 0;
  private writing = false;
  private closed = false;

  constructor(
    private readonly fd: number,
    private readonly minChars = 32 * 1024,
  ) {}

  /** Called by pino with one serialized line (newline included). */
  write(line: string): boolean {
    this.parts.push(line);
    this.chars += line.length;
    if (!this.writing && this.chars >= this.minChars) this.flush();
    return true;
  }

  /** Starts writing what is pending (asynchronous; no-op while a write is in flight). */
  flush(): void {
    if (this.writing || this.chars === 0 || this.closed) return;
    const buf = Buffer.from(this.parts.join(''), 'utf8');
    this.parts = [];
    this.chars = 0;
    this.writing = true;
    this.writeOut(buf, 0);
  }

  private writeOut(buf: Buffer, off: number): void {
    fsWrite(this.fd, buf, off, buf.length - off, null, (err, n) => {
      if (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          setTimeout(() => this.writeOut(buf, off), 10).unref();
          return;
        }
        this.writing = false;
        this.parts = [];
        this.chars = 0;
        return;
      }
      if (off + n < buf.length) return this.writeOut(buf, off + n);
      this.writing = false;
      if (this.chars >= this.minChars) this.flush();
    });
  }

  /** Writes every pending line now (used at process exit; a write already in flight is left to finish). */
  flushSync(): void {
    if (this.chars === 0 || this.closed) return;
    const buf = Buffer.from(this.parts.join(''), 'utf8');
    this.parts = [];
    this.chars = 0;
    let off = 0;
    for (let tries = 0; off < buf.length && tries < 1000; ) {
      try {
        off += writeSync(this.fd, buf, off, buf.length - off);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return;
        tries++;
      }
    }
  }
}

const open = new Set<LineBuffer>();
let exitHooked = false;

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.once('exit', () => {
    for (const d of open) d.flushSync();
  });
}

/** A pino logger at `level` writing JSON lines to stdout (see the module docstring). */
export function createLogger(level: string, flushEveryMs = 250): Logger {
  if (level === 'silent') return pino({ level: 'silent' });
  const dest = new LineBuffer(1);
  open.add(dest);
  hookExit();
  const t = setInterval(() => dest.flush(), flushEveryMs);
  t.unref();
  return pino({ level, base: { pid: process.pid } }, dest);
}
