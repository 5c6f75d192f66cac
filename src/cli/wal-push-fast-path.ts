/**
 * PostgreSQL runs `wal-push %p` once per WAL file. When the file was already archived ahead (a
 * marker) or the running background pusher archives it, the answer needs neither commander nor
 * the catalogue of commands: bin/pms-backup.js asks here first and loads the CLI only when this
 * returns undefined (no marker and no pusher, an option given, or any other command).
 */
export async function answerWalPush(args: readonly string[]): Promise<number | undefined> {
  const path = args.at(-1);
  if (args[0] !== 'wal-push' || args.length < 2 || path === undefined || path.startsWith('-')) return undefined;
  // Options change how a file is archived, never whether an archived one is: only these skip the CLI.
  if (args.slice(1, -1).some((a) => !/^--(read-ahead|concurrency)(=\d+)?$|^\d+$/.test(a))) return undefined;
  const [{ consumePushMarker, postmasterOf }, { archiveViaPusher }, { dirname, resolve }] = await Promise.all([
    import('../commands/wal-push/push-marker.js'),
    import('../commands/wal-push/wal-push-client.js'),
    import('node:path'),
  ]);
  if (await consumePushMarker(path)) return 0;
  if ((await postmasterOf(dirname(resolve(path)))) === undefined) return undefined;
  try {
    return await archiveViaPusher(path);
  } catch (error) {
    const { reportAndExit } = await import('./exit-boundary.js');
    return reportAndExit(error);
  }
}
