/**
 * Write coalescing for the gateway's sockets: a socket written during one event-loop turn is corked
 * and uncorked once at the end of that turn (`setImmediate`, which runs right after the poll phase
 * that delivered the turn's I/O). What the turn wrote to that socket then leaves in one `writev`.
 *
 * Why: on loopback and on a VM, most of a socket write's system time is waking the reader (the
 * engine, or the client) when it sleeps in `epoll_wait`. Under load one turn handles many requests;
 * written as they are produced, nearly every write wakes a peer that has gone back to sleep since
 * the previous one. Written together at the end of the turn, a peer is woken once for all of them.
 * Measured with `npm run bench:gateway` (row "no write coalescing"; docs/benchmarks/gateway.md).
 *
 * Cost: a write waits for the rest of the current turn (the other callbacks already due in it); at
 * low load a turn holds one request and nothing waits. Backpressure is unchanged (`write` still
 * returns false over the high-water mark; `drain` follows the flush). `end()` and `destroy()` flush
 * or drop as usual; the later `uncork` on such a socket is a no-op.
 *
 * `INFERPLANE_WRITE_COALESCING=off` in the environment turns it off (writes go out at once); it
 * exists for the benchmark's comparison row.
 */
import type { Socket } from 'node:net';

const corked: Socket[] = [];
let scheduled = false;
const ENABLED = process.env.INFERPLANE_WRITE_COALESCING !== 'off';

function flush(): void {
  scheduled = false;
  const n = corked.length;
  for (let i = 0; i < n; i++) corked[i]!.uncork();
  corked.length = 0;
}

/**
 * Corks `s` until the end of the current event-loop turn (once per turn; no-op when it is already
 * corked). Call it before writing.
 */
export function corkUntilTurnEnd(s: Socket): void {
  if (!ENABLED || s.writableCorked) return;
  s.cork();
  corked.push(s);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
}
