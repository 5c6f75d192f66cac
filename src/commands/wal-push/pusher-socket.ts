import { createHash } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import { type Socket, connect } from 'node:net';

/**
 * How `wal-push` talks to the background pusher of its pg_wal directory (background-pusher.ts).
 *
 * The address is a Linux abstract Unix socket named after the directory's real path. Listening
 * on it is the pusher's lock: the kernel refuses a second listener and releases the name when the
 * process dies however it dies (kill -9 included), so there is no lock file to go stale.
 *
 * The socket is only a doorbell. An abstract name has no file permissions, so whatever answers
 * is not believed: "ok" means "look at your marker now", and wal-push exits 0 only on a valid
 * marker that the postgres OS user wrote after the store confirmed the object (push-marker.ts,
 * a 0700 directory). A process squatting the name can delay archiving (PostgreSQL keeps the
 * .ready files and retries), never make PostgreSQL forget WAL. Imports nothing heavy.
 */

export type PusherReply =
  | { readonly ok: true }
  | { readonly ok: false; readonly code: string; readonly message: string; readonly exitCode: number };

export async function pusherAddress(walDir: string): Promise<string> {
  const real = await realpath(walDir);
  return `\0pms-backup-wal-pusher-${createHash('sha256').update(real).digest('hex').slice(0, 40)}`;
}

/** Reads newline-terminated lines from a socket. */
export function onLines(socket: Socket, each: (line: string) => void): void {
  let buffered = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
      each(buffered.slice(0, at));
      buffered = buffered.slice(at + 1);
    }
    if (buffered.length > 64 * 1024) socket.destroy();
  });
}

/**
 * Asks the running pusher to archive `name` and waits for its answer. undefined: no pusher
 * listens (start one). Rejects when the pusher went away before answering (killed mid-upload).
 */
export function askPusher(address: string, name: string, timeoutMs: number): Promise<PusherReply | undefined> {
  return new Promise((resolve, reject) => {
    const socket = connect(address);
    let answered = false;
    let connected = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the background pusher did not answer for ${name} within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    const finish = (act: () => void): void => {
      clearTimeout(timer);
      answered = true;
      socket.destroy();
      act();
    };
    socket.once('connect', () => {
      connected = true;
      socket.write(`${name}\n`);
    });
    onLines(socket, (line) => {
      if (answered) return;
      try {
        finish(() => resolve(JSON.parse(line) as PusherReply));
      } catch (error) {
        finish(() => reject(error));
      }
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (answered) return;
      if (!connected && (error.code === 'ECONNREFUSED' || error.code === 'ENOENT')) finish(() => resolve(undefined));
      else finish(() => reject(error));
    });
    socket.once('close', () => {
      if (!answered) finish(() => reject(new Error(`the background pusher stopped before it answered for ${name}`)));
    });
  });
}
