/**
 * Child-process entry point for the s3rver harness: `node s3rver-process.js <dir> <port> <bucket>`.
 * s3rver runs in its own process so a test can kill it like a crashed server, its CPU and
 * memory do not distort the test's own measurements, and it dies with the test (IPC disconnect).
 */
import S3rver from 's3rver';

const [directory, portText, bucket] = process.argv.slice(2);
if (directory === undefined || portText === undefined || bucket === undefined) {
  process.stderr.write('usage: s3rver-process <directory> <port> <bucket>\n');
  process.exit(64);
}

const server = new S3rver({
  address: '127.0.0.1',
  port: Number(portText),
  silent: true,
  directory,
  configureBuckets: [{ name: bucket }],
});

process.on('disconnect', () => process.exit(0));
server.run().then(
  (address) => process.send?.({ ready: true, port: address.port }),
  (error: unknown) => {
    process.send?.({ ready: false, error: (error as NodeJS.ErrnoException).code ?? String(error) });
    process.exit(1);
  },
);
