import { Readable } from 'node:stream';
import { ReadableStream } from 'node:stream/web';

/**
 * Node → web stream that pulls one chunk per `pull()`, so openpgp reads only as fast as its
 * consumer drains (Readable.toWeb on Node 20 reads ahead without bound). Cancelling the web
 * stream destroys the Node stream.
 */
export function nodeToWeb(source: Readable): ReadableStream<Uint8Array> {
  const iterator = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const { value, done } = await iterator.next();
          if (done) controller.close();
          else controller.enqueue(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
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
