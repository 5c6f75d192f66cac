import { mkdir, readdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { NATIVE_ZSTD } from '../../compression/zstd.js';
import { SpawnRelay } from '../../process/spawn-relay.js';
import { PmsError, isPmsError } from '../../errors/catalogue.js';
import { readAll } from '../../storage/read-all.js';
import { BackgroundPusher, servePusher } from './background-pusher.js';
import { MARKER_DIR } from './push-marker.js';
import { pusherAddress } from './pusher-socket.js';

/**
 * `pms-backup wal-pusher <pg_wal>` (hidden; started by wal-push, start-pusher.ts). Its
 * environment is the allowlisted child environment (no secret in it or in argv); the BACKUP_*
 * and AWS_* settings arrive as JSON on stdin, which wal-push writes and closes. It answers on
 * stdout with one line: `ready`, `busy` (another pusher holds the address) or a JSON error.
 */
export async function runPusherCommand(walDir: string, options: { readAhead: number; concurrency: number }): Promise<number> {
  // wal-push stops reading after the first line; a late write must not kill the pusher (EPIPE).
  process.stdout.on('error', () => undefined);
  const say = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  let env: Record<string, string>;
  try {
    env = JSON.parse((await readAll(process.stdin)).toString('utf8')) as Record<string, string>;
  } catch (error) {
    say(JSON.stringify({ code: 'PMS_ERR_USAGE', message: 'wal-pusher is started by wal-push, which gives it its settings on stdin' }));
    throw new PmsError('PMS_ERR_USAGE', 'wal-pusher expects its settings as JSON on stdin', { cause: error });
  }
  // The AWS SDK's own credential chain (web identity, container credentials, profiles) reads
  // process.env; our children still get only childEnv(), which never copies it.
  for (const [name, value] of Object.entries(env)) if (name.startsWith('AWS_') || name === 'HOME') process.env[name] = value;
  const dir = resolve(walDir);
  try {
    const [{ loadBackupConfig }, { loadRecipients }, { loadSigningKey, loadTrustedSigners }, { openStorage }] = await Promise.all([
      import('../../config/config.js'),
      import('../../crypto/keys.js'),
      import('../../crypto/signing.js'),
      import('../../storage/open-storage.js'),
    ]);
    const config = loadBackupConfig(env, { repository: true, encryption: true, signing: true, trust: true });
    const [recipients, signer, trusted] = await Promise.all([
      loadRecipients(config.keys.publicKeyFile, config.keys.keyId),
      loadSigningKey(config.keys.signingKeyFile, config.keys.signingPassphraseFile),
      loadTrustedSigners(config.keys.trustedSignersFile, new Date(), config.keys.walSignerFingerprints),
    ]);
    const storage = openStorage(config.repository);
    // Node 20: zstd through a relay, so the pusher never forks per segment (process/spawn-relay.ts).
    const zstd = NATIVE_ZSTD ? undefined : { relay: new SpawnRelay(), scratchDir: await scratchDirectory(dir) };
    try {
      const pusher = new BackgroundPusher({
        walDir: dir,
        context: { storage, recipients, signer, trust: { trusted }, claims: new Map(), zstd },
        readAhead: options.readAhead,
        concurrency: options.concurrency,
      });
      const address = await pusherAddress(dir);
      try {
        const { pushArchiveBacklog } = await import('../../metrics/archive-backlog-metrics.js');
        await servePusher(
          pusher,
          address,
          dir,
          () => {
            say('ready');
            process.stdout.end();
          },
          { onBacklog: async (backlog) => void (await pushArchiveBacklog(config.metrics.pushgateway, backlog)) },
        );
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
          say('busy');
          return 0;
        }
        throw error;
      }
    } finally {
      zstd?.relay.close();
      await storage.close();
    }
    return 0;
  } catch (error) {
    if (process.stdout.writable) {
      const pms = isPmsError(error) ? error : undefined;
      say(JSON.stringify({ code: pms?.code ?? 'PMS_ERR_INTERNAL', message: pms?.message ?? String(error) }));
    }
    throw error;
  }
}

/**
 * The relay's scratch files (compressed segments, until read back) live beside the markers in
 * pg_wal: same file system, readable only by the server's user. One pusher per pg_wal, so any
 * scratch file found at start is a killed pusher's leftover.
 */
async function scratchDirectory(walDir: string): Promise<string> {
  const directory = join(walDir, MARKER_DIR);
  await mkdir(directory, { recursive: true, mode: 0o700 });
  for (const entry of await readdir(directory)) {
    if (entry.startsWith('.pms-zstd-')) await rm(join(directory, entry), { force: true });
  }
  return directory;
}
