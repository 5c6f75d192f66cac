import { loadBackupConfig } from '../../config/config.js';
import { PmsError } from '../../errors/catalogue.js';
import { startVerifyServer } from './verify-server.js';

export interface VerifyServerCommandOptions {
  readonly socketDir?: string;
  readonly clientUser: readonly string[];
  readonly major: string;
  readonly json?: boolean;
}

/**
 * `pms-backup verify-server`: the verify pod's sidecar. Runs until SIGTERM (the pod ends when
 * verify's container exits), then stops the server and removes its files; exits non-zero if the
 * server dies first, so that the sidecar is restarted with a fresh cluster.
 */
export async function runVerifyServer(options: VerifyServerCommandOptions): Promise<number> {
  const config = loadBackupConfig(process.env);
  const socketDir = options.socketDir ?? config.operations.verifyServerSocketDir;
  if (socketDir === undefined)
    throw new PmsError(
      'PMS_ERR_USAGE',
      'verify-server needs --socket-dir or BACKUP_VERIFY_SERVER_SOCKET_DIR: the directory shared with verify',
    );
  const major = Number(options.major);
  if (!Number.isInteger(major) || major < 15)
    throw new PmsError('PMS_ERR_USAGE', `--major ${options.major}: use the PostgreSQL major version of the dumps (15 or later)`);
  const server = await startVerifyServer({ socketDir, clientUsers: options.clientUser, major, env: process.env });
  const stopped = new Promise<'signal'>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve('signal'));
  });
  const ready = { ready: true, socket: server.socketPath, major, clients: server.clients, osUser: server.cluster.isolation?.osUser };
  process.stdout.write(
    options.json
      ? `${JSON.stringify(ready)}\n`
      : `verify-server: PostgreSQL ${major} ready on ${server.socketPath} for ${server.clients.join(', ')} (Unix socket only, peer authentication, no secret in reach)\n`,
  );
  const outcome = await Promise.race([stopped, server.died.then(() => 'died' as const)]);
  await server.cluster.destroy();
  if (outcome === 'died')
    throw new PmsError(
      'PMS_ERR_DB_UNAVAILABLE',
      'the throwaway PostgreSQL of verify-server stopped by itself (code restored from a backup may have stopped it); exiting so that a fresh one starts',
    );
  process.stdout.write(options.json ? `${JSON.stringify({ stopped: true })}\n` : 'verify-server: stopped, files removed\n');
  return 0;
}
