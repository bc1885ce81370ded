/**
 * The gateway's logger: pino JSON lines to stdout through an asynchronous, buffered destination
 * (sonic-boom, `minLength` 4 KiB), so a request never waits on a write and the hot path makes one
 * write per ~4 KiB of logs instead of one per line. Buffered lines are flushed every
 * `flushEveryMs` (default 250 ms) and on `flush()`/exit, so a quiet gateway's logs still appear.
 */
import pino, { type Logger } from 'pino';

export function createLogger(level: string, flushEveryMs = 250): Logger {
  const dest = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  const log = pino({ level, base: { pid: process.pid } }, dest);
  const t = setInterval(() => dest.flush(), flushEveryMs);
  t.unref();
  process.once('exit', () => {
    try {
      dest.flushSync();
    } catch {
      /* not ready or already closed */
    }
  });
  return log;
}
