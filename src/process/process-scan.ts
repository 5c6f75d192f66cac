import { readFileSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Which processes are running, read from /proc (Linux only): the demo waits on it before deleting
 * a directory a WAL pusher may still write into, and tests use it to prove nothing they started is
 * left. Every read tolerates a process that exits between the listing and the read.
 */

/** Every pid in /proc at this moment. */
export function processIds(): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number);
}

/** A process's argv, or [] once it is gone (a zombie's is empty too: the kernel has freed it). */
export function processArgv(pid: number): string[] {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw === '' ? [] : raw.replace(/\0$/, '').split('\0');
  } catch {
    return [];
  }
}

/** The fields of /proc/<pid>/stat after the command name, which may itself hold spaces and ')'. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The parent's pid, or undefined once the process is gone. */
export function parentPid(pid: number): number | undefined {
  const ppid = statFields(pid)?.[1];
  return ppid === undefined ? undefined : Number(ppid);
}

/**
 * Running: present and not a zombie. A zombie holds no files and no port, but stays in /proc until
 * its parent reaps it, which here may be a pid 1 that reaps late.
 */
export function isRunning(pid: number): boolean {
  const state = statFields(pid)?.[0];
  return state !== undefined && state !== 'Z';
}

export interface MentioningProcess {
  readonly pid: number;
  /** argv joined with spaces, as `ps` shows it. */
  readonly commandLine: string;
}

/**
 * Running processes (zombies left out) whose command line, argv joined with spaces, contains one
 * of `needles` (a postmaster's -D, a gpg-agent's --homedir, a WAL pusher's repository path). This
 * process itself never counts: it is the one asking. A needle is a plain substring, so pass
 * `${dir}/` to match only paths inside dir and not a sibling whose name starts the same.
 */
export function processesMentioning(needles: readonly string[]): MentioningProcess[] {
  const found: MentioningProcess[] = [];
  for (const pid of processIds()) {
    if (pid === process.pid) continue;
    const commandLine = processArgv(pid).join(' ');
    if (needles.some((n) => commandLine.includes(n)) && isRunning(pid)) found.push({ pid, commandLine });
  }
  return found;
}

/** Polls until no process mentions `needles` or `timeoutMs` has passed; resolves with those still there. */
export async function waitUntilNoneMention(needles: readonly string[], timeoutMs: number): Promise<MentioningProcess[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = processesMentioning(needles);
    if (left.length === 0 || Date.now() >= deadline) return left;
    await sleep(200);
  }
}
