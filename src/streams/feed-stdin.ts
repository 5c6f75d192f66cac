import type { Readable } from 'node:stream';

/**
 * Writes the archive into a consumer process's stdin with backpressure. A consumer may stop
 * reading before the end (pg_restore skipping trailing data it does not need): the rest is then
 * drained and discarded, so the archive is still read to its end and fully verified.
 */
export async function feedStdin(
  archive: Readable,
  stdin: NodeJS.WritableStream & { destroyed?: boolean; writableEnded?: boolean },
): Promise<void> {
  let closed = false;
  const onError = () => {
    closed = true;
  };
  stdin.on('error', onError);
  stdin.on('close', onError);
  try {
    for await (const chunk of archive) {
      if (closed || stdin.destroyed) continue;
      if (!stdin.write(chunk as Buffer)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            stdin.off('drain', done);
            stdin.off('close', done);
            resolve();
          };
          stdin.on('drain', done);
          stdin.on('close', done);
        });
      }
    }
    if (!closed && !stdin.destroyed) stdin.end();
  } finally {
    stdin.off('close', onError);
  }
}
