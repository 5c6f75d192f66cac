import { accessSync, constants, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { PmsError } from '../errors/catalogue.js';
import { type ToolProcess, runTool } from '../process/tool-process.js';

/**
 * The OS user a sandboxed server runs as when pms-backup is root. A user of its own, not
 * `postgres`: on a database host `postgres` owns the production data directory, and the
 * sandbox runs whatever code a backup carries (index expressions during pg_restore, settings
 * and libraries in a base backup's configuration).
 */
export const SANDBOX_OS_USER = 'pms-sandbox';

export interface SandboxIdentity {
  /** The user to switch to (we are root), or undefined: the server runs as ourselves. */
  readonly osUser: string | undefined;
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

export async function sandboxIdentity(): Promise<SandboxIdentity> {
  if (process.getuid?.() !== 0) {
    return { osUser: undefined, name: ownName(), uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1 };
  }
  const ids = await Promise.all([runTool('id', ['-u', SANDBOX_OS_USER]), runTool('id', ['-g', SANDBOX_OS_USER])]).catch(
    (error: unknown) => {
      throw new PmsError(
        'PMS_ERR_CONFIG',
        `the OS user ${SANDBOX_OS_USER} does not exist: verify runs the throwaway PostgreSQL as that user, which must own nothing else; create it with useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ${SANDBOX_OS_USER}`,
        { cause: error },
      );
    },
  );
  const [uid, gid] = ids.map((r) => Number(r.stdout.trim())) as [number, number];
  if (uid === 0)
    throw new PmsError('PMS_ERR_CONFIG', `the OS user ${SANDBOX_OS_USER} has uid 0: it must be an unprivileged user of its own`);
  return { osUser: SANDBOX_OS_USER, name: SANDBOX_OS_USER, uid, gid };
}

function ownName(): string {
  try {
    return userInfo().username;
  } catch {
    // peer authentication needs a name for the uid (a passwd entry); say so rather than fail later.
    throw new PmsError(
      'PMS_ERR_CONFIG',
      `uid ${process.getuid?.()} has no passwd entry: the throwaway PostgreSQL authenticates its clients by OS user name`,
    );
  }
}

/**
 * Which of `files` the sandbox user can read. Asked of the kernel as that user (find -readable
 * uses access(2): permissions, groups, ACLs and every directory on the way), not computed
 * from mode bits.
 */
export async function readableBy(identity: SandboxIdentity, files: readonly string[]): Promise<string[]> {
  const wanted = [...new Set(files.filter((f) => f !== ''))];
  if (wanted.length === 0) return [];
  if (identity.osUser === undefined) {
    return wanted.filter((file) => {
      try {
        accessSync(file, constants.R_OK);
        return true;
      } catch {
        return false;
      }
    });
  }
  // find exits 1 when an operand does not exist or cannot be reached: that file is not readable.
  const { stdout } = await runTool(
    'find',
    [...wanted.map((f) => (f.startsWith('-') ? `./${f}` : f)), '-maxdepth', '0', '-readable', '-print'],
    {
      runAs: identity.osUser,
      okExitCodes: [1],
    },
  );
  const printed = new Set(stdout.split('\n').filter(Boolean));
  return wanted.filter((f) => printed.has(f) || printed.has(`./${f}`));
}

/** Refuses to start a sandboxed server that could read a secret of ours. */
export async function refuseReadableSecrets(identity: SandboxIdentity, files: readonly string[]): Promise<void> {
  const readable = await readableBy(identity, files);
  if (readable.length === 0) return;
  const who =
    identity.osUser === undefined
      ? `pms-backup's own OS user ${identity.name} (uid ${identity.uid}; pms-backup is not root, so the throwaway PostgreSQL would run as that user too)`
      : `the OS user ${identity.name} (uid ${identity.uid})`;
  const fix =
    identity.osUser === undefined
      ? 'run verify as root (the server then runs as the OS user pms-sandbox), or on a host or pod where the server runs apart from the key (docs/architecture.md, "Verify\'s sandbox")'
      : `make them readable by root only (chmod 0600, chown root, and no group or ACL that ${identity.name} is in)`;
  throw new PmsError(
    'PMS_ERR_CONFIG',
    `refusing to start the throwaway PostgreSQL: ${readable.join(', ')} can be read by ${who}, and code restored from a backup runs as that user; ${fix}`,
    { details: { readable } },
  );
}

export type NetworkIsolation = 'own network namespace' | 'shared network';

export interface SandboxLaunch {
  readonly file: string;
  readonly args: readonly string[];
  readonly network: NetworkIsolation;
}

/**
 * How the server process is started. As root: in new network, PID and mount namespaces
 * (unshare), switched to the sandbox user (runuser, which is PID 1 in there) and with
 * no_new_privs (setpriv: no setuid program such as crontab or su can give it more). The network
 * namespace has only a loopback interface that is down: no TCP in or out. Unix sockets are
 * files and still work, which is how clients and restore_command reach the server and
 * pms-backup. The PID namespace hides every other process, and when its first process dies the
 * kernel kills everything left in it: nothing the restored code started outlives the sandbox.
 * Without root none of this is possible, and the server runs as ourselves with no_new_privs.
 */
export function sandboxLaunch(identity: SandboxIdentity, command: string, args: readonly string[]): SandboxLaunch {
  const server = ['setpriv', '--no-new-privs', '--', command, ...args];
  // --pdeathsig: if pms-backup dies (kill -9), its child dies too and takes the sandbox with it.
  if (identity.osUser === undefined)
    return { file: 'setpriv', args: ['--pdeathsig', 'SIGKILL', '--no-new-privs', '--', command, ...args], network: 'shared network' };
  return {
    file: 'setpriv',
    args: [
      '--pdeathsig',
      'SIGKILL',
      '--',
      'unshare',
      '--net',
      '--pid',
      '--fork',
      '--kill-child',
      '--mount-proc',
      '--',
      'runuser',
      '-u',
      identity.osUser,
      '--',
      ...server,
    ],
    network: 'own network namespace',
  };
}

/**
 * Stops a server started by sandboxLaunch and everything in its namespace. Killing the first
 * process in the PID namespace makes the kernel kill the rest, and unshare (our child) exits
 * only once they are all gone, so when this resolves nothing of the sandbox runs any more.
 */
export async function killSandbox(server: ToolProcess, network: NetworkIsolation): Promise<void> {
  const pid = server.child.pid;
  if (pid === undefined || server.child.exitCode !== null || server.child.signalCode !== null) return;
  // 'exit', not 'close': a process left behind may still hold the server's stderr open.
  const exited = new Promise<void>((resolve) => server.child.once('exit', () => resolve()));
  if (network === 'own network namespace') {
    // Our child is setpriv, which became unshare; its child is the namespace's first process.
    const init = childrenOf(pid)[0];
    if (init !== undefined) process.kill(init, 'SIGKILL');
    else server.child.kill('SIGKILL'); // unshare --kill-child then kills the namespace's first process
  } else {
    server.child.kill('SIGQUIT'); // postgres: immediate shutdown
    setTimeout(() => server.child.kill('SIGKILL'), 10_000).unref();
  }
  await exited;
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** pg_hba.conf of a sandboxed server: the superuser, over the Unix socket, by OS user (peer). */
export function sandboxHba(superuser: string): string {
  return `# pms-backup sandbox: Unix socket only, the superuser only, for the OS users in pg_ident.conf\nlocal all ${superuser} peer map=pms\n`;
}

/** pg_ident.conf: which OS users may log in as the superuser (pms-backup's and the server's). */
export function sandboxIdent(superuser: string, osUsers: readonly string[]): string {
  return `# pms-backup sandbox\n${[...new Set(osUsers)].map((u) => `pms ${u} ${superuser}`).join('\n')}\n`;
}
