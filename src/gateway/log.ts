/**
 * The gateway's logger: pino JSON lines to stdout through a buffered sonic-boom destination
 * (`minLength` 4 KiB), so the hot path makes one write per ~4 KiB of logs instead of one per line.
 * Buffered lines are flushed every `flushEveryMs` (default 250 ms) and synchronously at process
 * exit, so a quiet gateway's logs still appear. Level `silent` builds a logger with no destination.
 *
 * Writes are synchronous when stdout is a file or a character device (a terminal, /dev/null) and
 * asynchronous when it is a pipe or socket: the same policy as Node's own `process.stdout`
 * (nodejs.org/api/process.html, "A note on process I/O"). Why not always asynchronous: while an
 * asynchronous write is in flight sonic-boom appends every new line to a pending string of up to
 * 16 KiB and measures that string's UTF-8 length again on each append, and every batch is a
 * thread-pool round trip that wakes the event loop; on a file that cost more CPU per request than
 * a synchronous 4 KiB write (docs/benchmarks/gateway.md). A pipe stays asynchronous so that a slow
 * reader never blocks the gateway.
 */
import { fstatSync } from 'node:fs';
import pino, { type Logger } from 'pino';

/** True when fd 1 is a regular file or a character device (where Node writes stdout synchronously). */
function stdoutIsSyncTarget(): boolean {
  try {
    const st = fstatSync(1);
    return st.isFile() || st.isCharacterDevice();
  } catch {
    return false;
  }
}

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
  const dest = pino.destination({ dest: 1, sync: stdoutIsSyncTarget(), minLength: 4096 });
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
