import { type WriteStream, createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { WAL_FETCH_EXIT } from '../../wal-fetch/wal-fetch-command.js';

/**
 * restore_command of a sandboxed server: `node wal-feed-client.js <socket> %f %p`. Asks the
 * WAL feed (wal-feed.ts, inside pms-backup) for %f and writes what it gets to %p, through a
 * temporary file so %p never holds a partial file. It holds no credentials and no key: the
 * server it runs for is running code from a backup. Exit statuses are wal-fetch's contract:
 * 0 fetched, 1 not archived, 200 anything else (recovery stops rather than promote early).
 */
function main(socketPath: string, name: string, destination: string): Promise<number> {
  const temp = `${destination}.pms-feed`;
  return new Promise<number>((resolve, reject) => {
    const socket = connect(socketPath, () => socket.write(`${name}\n`));
    let header = Buffer.alloc(0);
    let out: WriteStream | undefined;
    let expected = -1;
    let received = 0;
    const fail = (error: Error): void => {
      socket.destroy();
      out?.destroy();
      if (out) void unlink(temp).catch(() => undefined);
      reject(error);
    };
    socket.on('error', fail);
    socket.on('data', (chunk: Buffer) => {
      let body = chunk;
      if (!out) {
        header = Buffer.concat([header, chunk]);
        const newline = header.indexOf(0x0a);
        if (newline < 0) {
          if (header.length > 4096) fail(new Error('the WAL feed sent no header'));
          return;
        }
        const line = header.subarray(0, newline).toString('utf8');
        if (line === 'missing') {
          socket.destroy();
          resolve(WAL_FETCH_EXIT.notFound);
          return;
        }
        if (!line.startsWith('ok ')) {
          fail(new Error(line.replace(/^error /, '')));
          return;
        }
        expected = Number(line.slice(3));
        out = createWriteStream(temp, { flags: 'wx', mode: 0o600 });
        out.on('error', fail);
        body = header.subarray(newline + 1);
      }
      received += body.length;
      if (body.length > 0 && !out.write(body)) {
        socket.pause();
        out.once('drain', () => socket.resume());
      }
    });
    socket.on('end', () => {
      if (!out) {
        fail(new Error('the WAL feed closed the connection without an answer'));
        return;
      }
      const file = out;
      file.end(() => {
        if (received !== expected) {
          fail(new Error(`the WAL feed sent ${received} bytes of ${name}, announced ${expected}`));
          return;
        }
        rename(temp, destination).then(() => resolve(WAL_FETCH_EXIT.fetched), fail);
      });
    });
  });
}

const [socketPath, name, destination] = process.argv.slice(2);
if (!socketPath || !name || !destination) {
  process.stderr.write('usage: wal-feed-client.js <socket> <%f> <%p>\n');
  process.exitCode = WAL_FETCH_EXIT.fatal;
} else {
  main(socketPath, name, destination).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`pms-backup WAL feed client ${name}: ${(error as Error).message}\n`);
      process.exitCode = WAL_FETCH_EXIT.fatal;
    },
  );
}
