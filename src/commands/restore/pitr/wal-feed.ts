import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, unlink } from 'node:fs/promises';
import { type Server, type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import type { DecryptionKeys } from '../../../crypto/keys.js';
import type { TrustPolicy } from '../../../crypto/signing.js';
import { toPmsError } from '../../../cli/exit-boundary.js';
import type { Storage } from '../../../storage/storage.js';
import { fetchWalFile } from '../../wal-fetch/fetch-wal-file.js';

export interface WalFeedOptions {
  readonly storage: Storage;
  readonly keys: DecryptionKeys;
  /** Whose signatures the WAL must carry, as for wal-fetch. */
  readonly trust: TrustPolicy;
  /** The system the recovering cluster belongs to (the base backup's manifest). */
  readonly systemIdentifier: string;
  /** uid/gid of the server's OS user when it is not ours: it alone may connect. */
  readonly serverOwner?: { readonly uid: number; readonly gid: number } | undefined;
  readonly signal?: AbortSignal;
}

export interface WalFeed {
  /** restore_command for the sandboxed server: the feed client, by absolute paths. */
  readonly restoreCommand: string;
  /** WAL and history files handed over so far. */
  served(): number;
  /** Why requests failed (not "not archived": real failures), oldest first, at most 10. */
  failures(): readonly string[];
  close(): Promise<void>;
}

/** For the shell PostgreSQL runs restore_command with: single-quoted, quotes escaped. */
function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * Hands archived WAL to a sandboxed server without giving it anything to fetch it with.
 * wal-fetch as restore_command would need the repository's credentials and the private key in
 * the server's environment and readable by its OS user: exactly what code restored from a
 * backup must not reach. Instead pms-backup itself (which holds both) fetches and checks each
 * file as wal-fetch would (fetchWalFile: OpenPGP, zstd, sha256, system identifier, size) and
 * serves the plaintext over a Unix socket that only the server's OS user can connect to;
 * restore_command is a small client that writes what it is given to %p. The server can ask for
 * any WAL file name of this system, which is data of the very cluster it is recovering.
 */
export async function startWalFeed(options: WalFeedOptions): Promise<WalFeed> {
  const dir = await mkdtemp(join(tmpdir(), 'pms-walfeed-'));
  const work = join(dir, 'work');
  await mkdir(work, { mode: 0o700 });
  const socketPath = join(dir, 'wal.sock');
  let served = 0;
  const failures: string[] = [];
  const connections = new Set<Socket>();

  const server: Server = createServer({ allowHalfOpen: false }, (socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
    socket.on('error', () => socket.destroy());
    let request = '';
    socket.setEncoding('latin1');
    const onData = (chunk: string): void => {
      request += chunk;
      const end = request.indexOf('\n');
      if (end < 0) {
        if (request.length > 256) socket.destroy();
        return;
      }
      socket.off('data', onData);
      socket.pause();
      void answer(socket, request.slice(0, end));
    };
    socket.on('data', onData);
  });

  async function answer(socket: Socket, name: string): Promise<void> {
    const destination = join(work, `${randomBytes(4).toString('hex')}-${name.replace(/[^0-9A-Za-z._-]/g, '_')}`);
    try {
      const result = await fetchWalFile({
        storage: options.storage,
        keys: options.keys,
        trust: options.trust,
        name,
        destination,
        systemIdentifier: options.systemIdentifier,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      if (result.outcome === 'not-found') {
        socket.end('missing\n');
        return;
      }
      socket.write(`ok ${result.bytes}\n`);
      await pipeline(createReadStream(destination), socket);
      served += 1;
    } catch (error) {
      const pms = toPmsError(error);
      const line = `${name}: ${pms.code}: ${pms.message}`.replace(/\s+/g, ' ');
      if (failures.length < 10) failures.push(line);
      socket.end(`error ${line}\n`);
    } finally {
      await unlink(destination).catch(() => undefined);
    }
  }

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolveListen());
  });
  // The directory is root's (or ours) and nobody else can write in it, so setting the socket's
  // owner by path is safe. Mode 0600 on the socket: only its owner may connect.
  await chmod(socketPath, 0o600);
  if (options.serverOwner && process.getuid?.() === 0) {
    await chown(socketPath, options.serverOwner.uid, options.serverOwner.gid);
    await chmod(dir, 0o711); // the server's user may pass through to the socket, not list or write
  }
  const abort = (): void => void close();
  options.signal?.addEventListener('abort', abort, { once: true });

  async function close(): Promise<void> {
    options.signal?.removeEventListener('abort', abort);
    for (const socket of connections) socket.destroy();
    await new Promise<void>((done) => server.close(() => done()));
    await rm(dir, { recursive: true, force: true });
  }

  return {
    restoreCommand: `${shellQuote(process.execPath)} ${shellQuote(walFeedClientPath())} ${shellQuote(socketPath)} %f %p`,
    served: () => served,
    failures: () => [...failures],
    close,
  };
}

/** The compiled client beside this module. */
export function walFeedClientPath(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), 'wal-feed-client.js');
}
