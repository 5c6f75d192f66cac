/**
 * PostgreSQL runs `wal-push %p` once per WAL file. When the file was already archived ahead (a
 * marker) or the running background pusher archives it, the answer needs neither commander nor
 * the catalogue of commands: bin/pms-backup.js asks here first and loads the CLI only when this
 * returns undefined (no marker and no pusher, an option given, or any other command).
 */
export async function answerWalPush(args: readonly string[]): Promise<number | undefined> {
  if (args[0] !== 'wal-push' || args.length !== 2 || args[1] === undefined || args[1].startsWith('-')) return undefined;
  const path = args[1];
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
