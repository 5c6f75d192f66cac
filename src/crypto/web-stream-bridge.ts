import { Readable } from 'node:stream';
import { ReadableStream } from 'node:stream/web';

/** Chunks handed to openpgp are joined up to this size (see nodeToWeb). */
const BATCH_BYTES = 1 << 20;

/**
 * Node → web stream that reads up to 1 MiB per `pull()`, so openpgp reads only as fast as its
 * consumer drains (Readable.toWeb on Node 20 reads ahead without bound). Small chunks (64 KiB
 * from a pipe) are joined first: every chunk costs a trip through several of openpgp's web
 * stream stages, and batching took about a third off Node's CPU in a base backup. Cancelling
 * the web stream destroys the Node stream.
 */
export function nodeToWeb(source: Readable): ReadableStream<Uint8Array> {
  const iterator = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const parts: Buffer[] = [];
          let size = 0;
          let ended = false;
          while (size < BATCH_BYTES) {
            const { value, done } = await iterator.next();
            if (done) {
              ended = true;
              break;
            }
            parts.push(value);
            size += value.length;
          }
          const batch = parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
          if (size > 0) controller.enqueue(new Uint8Array(batch.buffer, batch.byteOffset, batch.byteLength));
          if (ended) controller.close();
        } catch (error) {
          controller.error(error);
        }
      },
      async cancel(reason) {
        source.destroy(reason instanceof Error ? reason : undefined);
      },
    },
    { highWaterMark: 0 },
  );
}

/** Web → Node stream with pull-based backpressure; destroying the Node side cancels the web side. */
export function webToNode(source: ReadableStream<Uint8Array>): Readable {
  const reader = source.getReader();
  return new Readable({
    highWaterMark: 1 << 16,
    read() {
      reader.read().then(
        ({ value, done }) => {
          if (done) this.push(null);
          else this.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
        },
        (error: unknown) => this.destroy(error instanceof Error ? error : new Error(String(error))),
      );
    },
    destroy(error, callback) {
      reader.cancel(error ?? undefined).then(
        () => callback(error),
        () => callback(error),
      );
    },
  });
}
