/**
 * The pms-backup program's entry (bin/pms-backup.js imports it). restore_command calls wal-fetch
 * once per segment while PostgreSQL waits: a segment the prefetcher already spooled is served
 * here, before the CLI parser, the configuration, keys, the S3 SDK or OpenPGP are loaded (see
 * commands/wal-fetch/prefetch/). Everything else, and every miss, goes to the full CLI.
 */
const args = process.argv.slice(2);
// archive_command's common case (a WAL file already archived ahead, or archived now by the
// running background pusher) is answered before the CLI loads too: see wal-push-fast-path.ts.
const pushed = args[0] === 'wal-push' ? await (await import('./wal-push-fast-path.js')).answerWalPush(args) : undefined;
if (pushed !== undefined) process.exit(pushed);
const servedFromSpool =
  args[0] === 'wal-fetch' &&
  !args.includes('--help') &&
  !args.includes('-h') &&
  (await (await import('../commands/wal-fetch/prefetch/fast-path.js')).serveFromSpool(args.slice(1)));

if (!servedFromSpool) await import('./pms-backup.js');

export {};
