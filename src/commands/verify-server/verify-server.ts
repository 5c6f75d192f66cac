import { lstatSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { secretVariables } from '../../config/secret-variables.js';
import { PmsError } from '../../errors/catalogue.js';
import { runTool } from '../../process/tool-process.js';
import { type ThrowawayCluster, startThrowawayCluster } from '../../postgres/throwaway-cluster.js';

export interface VerifyServerOptions {
  readonly socketDir: string;
  /** OS users (names or uids) that may log in as the superuser: verify's, in the other container. */
  readonly clientUsers: readonly string[];
  readonly major: number;
  readonly env: NodeJS.ProcessEnv;
}

export interface RunningVerifyServer {
  readonly cluster: ThrowawayCluster;
  readonly socketPath: string;
  readonly clients: readonly string[];
  /** Resolves when the server process is gone (restored code may stop it): a reason to exit non-zero. */
  readonly died: Promise<void>;
}

/**
 * Starts the throwaway server of the verify pod's sidecar: a process that holds no secret (it
 * refuses to start with one in its environment), runs as its own uid, and puts the socket into
 * the directory it shares with pms-backup's container. verify in that container attaches to it
 * (commands/verify/attached-server.ts) and checks all of this again from the server's side.
 */
export async function startVerifyServer(options: VerifyServerOptions): Promise<RunningVerifyServer> {
  const secrets = secretVariables(options.env);
  if (secrets.length > 0)
    throw new PmsError(
      'PMS_ERR_CONFIG',
      `verify-server refuses to start with secrets in its environment (${secrets.join(', ')}): code restored from a backup runs in this server; give the keys and credentials to the verify container only`,
    );
  if (process.getuid?.() === 0)
    throw new PmsError(
      'PMS_ERR_CONFIG',
      'verify-server runs as the unprivileged uid of its own container, not root (as root, verify starts its own sandbox and needs no verify-server)',
    );
  checkSocketDir(options.socketDir);
  removeStaleSockets(options.socketDir);
  const clients = await Promise.all(options.clientUsers.map(resolveUserName));
  if (clients.length === 0) throw new PmsError('PMS_ERR_USAGE', 'verify-server needs --client-user: the OS user verify runs as');
  const cluster = await startThrowawayCluster({
    major: options.major,
    sandbox: { protectedFiles: [], socketDir: options.socketDir, clientOsUsers: clients },
  });
  return { cluster, socketPath: join(options.socketDir, `.s.PGSQL.${cluster.port}`), clients, died: watchPostmaster(cluster) };
}

function checkSocketDir(dir: string): void {
  let stat: ReturnType<typeof lstatSync>;
  try {
    stat = lstatSync(dir);
  } catch (error) {
    throw new PmsError(
      'PMS_ERR_CONFIG',
      `BACKUP_VERIFY_SERVER_SOCKET_DIR: ${dir} does not exist (${(error as NodeJS.ErrnoException).code ?? 'unreadable'}); it is the directory shared with verify's container`,
    );
  }
  if (!stat.isDirectory()) throw new PmsError('PMS_ERR_CONFIG', `BACKUP_VERIFY_SERVER_SOCKET_DIR: ${dir} is not a directory`);
}

/** A previous server of this container (restarted sidecar) may have left its socket behind. */
function removeStaleSockets(dir: string): void {
  const own = process.getuid?.();
  for (const name of readdirSync(dir)) {
    if (!name.startsWith('.s.PGSQL.')) continue;
    const path = join(dir, name);
    if (lstatSync(path).uid === own) rmSync(path, { force: true });
  }
}

async function resolveUserName(user: string): Promise<string> {
  if (!/^\d+$/.test(user)) {
    await runTool('id', ['-u', '--', user]).catch(() => {
      throw new PmsError('PMS_ERR_CONFIG', `--client-user ${user}: no such OS user in this container`);
    });
    return user;
  }
  const { stdout } = await runTool('id', ['-nu', '--', user]).catch(() => {
    throw new PmsError(
      'PMS_ERR_CONFIG',
      `--client-user ${user}: uid ${user} has no passwd entry in this container (peer authentication admits OS users by name)`,
    );
  });
  return stdout.trim();
}

/** Polls the postmaster named in postmaster.pid: once gone, nothing can be verified any more. */
async function watchPostmaster(cluster: ThrowawayCluster): Promise<void> {
  const pidFile = join(cluster.dataDir, 'postmaster.pid');
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  for (;;) {
    await sleep(1000, undefined, { ref: false });
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
  }
}
