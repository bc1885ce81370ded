/**
 * Buffered append-only writer for results files: lines are kept in memory and written with one
 * synchronous `write` every 200 ms, every 256 lines and on `close()`, so a run that is stopped keeps
 * every finished request while the send loop is not slowed by a syscall per request.
 */
import { closeSync, openSync, writeSync } from 'node:fs';

export class LineWriter {
  private fd: number;
  private buf: string[] = [];
  private timer: NodeJS.Timeout;
  /** Opens (truncates) `path`. @throws the `fs` error when it cannot be opened. */
  constructor(path: string) {
    this.fd = openSync(path, 'w');
    this.timer = setInterval(() => this.flush(), 200);
    this.timer.unref();
  }
  /** Queues one line (the caller adds the newline). */
  write(line: string): void {
    this.buf.push(line);
    if (this.buf.length >= 256) this.flush();
  }
  /** Writes the queued lines now. */
  flush(): void {
    if (this.buf.length === 0) return;
    writeSync(this.fd, this.buf.join(''));
    this.buf = [];
  }
  /** Flushes and closes the file. */
  close(): void {
    clearInterval(this.timer);
    this.flush();
    closeSync(this.fd);
  }
}
