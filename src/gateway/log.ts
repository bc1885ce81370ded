/**
 * The gateway's logger: pino JSON lines to stdout through an asynchronous, buffered destination
 * (sonic-boom, `minLength` 4 KiB), so a request never waits on a write and the hot path makes one
 * write per ~4 KiB of logs instead of one per line. Buffered lines are flushed every
 * `flushEveryMs` (default 250 ms) and synchronously at process exit, so a quiet gateway's logs
 * still appear. Level `silent` builds a logger with no destination at all.
 */
import pino, { type Logger } from 'pino';

type Dest = ReturnType<typeof pino.destination>;
const open = new Set<Dest>();
let exitHooked = false;

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.once('exit', () => {
    for (const d of open) {
      try {
        d.flushSync();
      } catch {
        /* not ready or already closed */
      }
    }
  });
}

/** A pino logger at `level` writing JSON lines to stdout (see the module docstring). */
export function createLogger(level: string, flushEveryMs = 250): Logger {
  if (level === 'silent') return pino({ level: 'silent' });
  const dest = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  open.add(dest);
  hookExit();
  const t = setInterval(() => {
    try {
      dest.flush();
    } catch {
      /* not ready yet */
    }
  }, flushEveryMs);
  t.unref();
  dest.on('close', () => (clearInterval(t), open.delete(dest)));
  return pino({ level, base: { pid: process.pid } }, dest);
}
