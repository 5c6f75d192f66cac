import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { shellFirstArchiveCommand } from '../../wal-push/archive-command.js';
import { usingDataDirectory } from '../../../postgres/data-directory-writer.js';
import { SPOOL_STALE_MS, USED_NOTE } from '../../wal-fetch/prefetch/spool.js';
import type { TargetTime } from './choose-base-backup.js';

/** bin/pms-backup.js of this installation (dist/commands/restore/pitr/ → ../../../../bin). */
export function pmsBackupBin(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'bin', 'pms-backup.js');
}

/** For the shell PostgreSQL runs restore_command with: single-quoted, quotes escaped. */
function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * For postgresql.conf: a single-quoted string with quotes and backslashes doubled, as ALTER
 * SYSTEM writes them. The file's parser reads backslash escapes (a backslash before a quote makes
 * it a plain quote), so the '\'' that shellQuote writes for a quote would otherwise break the line.
 */
function confString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/**
 * archive_command calling wal-push by absolute paths (tests, the demo, a server without pms-backup
 * on PATH), in its shell-first form: a file archived ahead is answered without starting Node.
 */
export function archiveCommand(node = process.execPath, bin = pmsBackupBin()): string {
  return shellFirstArchiveCommand(`${shellQuote(node)} ${shellQuote(bin)} wal-push`);
}

/** restore_command calling wal-fetch by absolute paths: the server's PATH may not hold node. */
export interface RestoreCommandOptions {
  /** Only for a recovery through WAL archived before signing (restore --pitr --allow-unsigned). */
  readonly allowUnsigned?: boolean;
  /** Only for a standby restore --pitr prepared to recover to the end of the archive (writeRecoverySettings). */
  readonly promoteAtEnd?: boolean;
}

export function restoreCommand(node = process.execPath, bin = pmsBackupBin(), options: RestoreCommandOptions = {}): string {
  const flags = `${options.allowUnsigned ? ' --allow-unsigned' : ''}${options.promoteAtEnd ? ' --promote-at-end' : ''}`;
  return `${shellQuote(node)} ${shellQuote(bin)} wal-fetch${flags} %f %p`;
}

/**
 * restore_command for a data directory restore --pitr prepared, answered in the shell when it
 * can. First, a segment the prefetcher published in place (commands/wal-fetch/prefetch/spool.ts):
 * `read` (a builtin) of postmaster.pid and one `stat` of pg_wal/%f build the name of the note that
 * would vouch for that very file in this server run; a non-empty regular note of the server's
 * user is emptied (a builtin redirection, so it vouches once) and the shell exits 1, upon which
 * PostgreSQL reads pg_wal/%f itself, as it does with any segment its restore_command did not
 * deliver. So a segment costs PostgreSQL a shell and a stat, with no rename and fsyncs of a
 * restored file. Second, a segment still in the spool directory is moved onto %p (find keeps two
 * of the fast path's rules there: a regular file only, younger than SPOOL_STALE_MS). Third, a
 * segment the live prefetcher is fetching right now is waited for in the shell, looking again
 * at both. Anything else starts Node (wal-fetch), which decides as before. PostgreSQL removes %p before each call,
 * so a file there afterwards is the one moved. See docs/pitr.md, "Segments published in place".
 */
export function spoolFirstRestoreCommand(
  systemIdentifier: string,
  node = process.execPath,
  bin = pmsBackupBin(),
  options: RestoreCommandOptions = {},
): string {
  if (!/^\d+$/.test(systemIdentifier)) throw new RangeError(`not a system identifier: ${systemIdentifier}`);
  const spool = `pg_wal/.pms-prefetch/${systemIdentifier}${options.allowUnsigned ? '-unsigned' : ''}`;
  const inPlace = [
    `{ read -r pm_pid; read -r pm_dir; read -r pm_start; } 2>/dev/null < postmaster.pid`,
    `[ -f pg_wal/%f ]`,
    `[ ! -L pg_wal/%f ]`,
    `m="${spool}/%f@$pm_pid-$pm_start-$(stat -c %%d-%%i-%%s-%%.9Y-%%.9Z pg_wal/%f 2>/dev/null)"`,
    `[ -f "$m" ]`,
    `[ ! -L "$m" ]`,
    `[ -s "$m" ]`,
    `[ -O "$m" ]`,
    `echo ${USED_NOTE.trim()} > "$m"`,
    `exit 1`,
  ].join(' && ');
  const take = `find ${spool} -maxdepth 1 -name %f -type f -mmin -${SPOOL_STALE_MS / 60_000} -exec mv -f {} %p ';' 2>/dev/null`;
  // In flight: the prefetcher's temporary file for %f exists and the prefetcher lives. Globbing
  // and kill -0 are builtins, so each look costs one `sleep`.
  const inFlight = [
    `set -- ${spool}/.pms-fetch-*-%f`,
    `[ -f "$1" ]`,
    `{ read -r q; } 2>/dev/null < pg_wal/.pms-prefetch/prefetcher.lock`,
    `kill -0 "$q" 2>/dev/null`,
  ].join(' && ');
  // The temporary file goes (renamed into the spool) a moment before the segment is published
  // and its note written: after a wait, one more look once that moment has passed.
  const wait = `w=0; while [ ! -f %p ] && [ $w -lt ${IN_FLIGHT_SHELL_LOOKS} ] && ${inFlight}; do sleep ${IN_FLIGHT_SHELL_POLL_S}; p; ${take}; w=$((w+1)); done; [ $w -eq 0 ] || [ -f %p ] || { sleep ${IN_FLIGHT_SHELL_POLL_S}; p; ${take}; }`;
  // Timeline 1 never has a history file (PostgreSQL writes one only for a timeline it creates, and
  // 1 is the first), yet a promotion asks for it: answered here instead of by a Node start.
  const noFirstHistory = `[ %f != 00000001.history ] || exit 1`;
  return `${noFirstHistory}; p() { ${inPlace}; }; p; ${take}; ${wait}; test -f %p || exec ${restoreCommand(node, bin, options)}`;
}

/**
 * How restore_command's shell waits for a segment the prefetcher is fetching right now (it fell
 * behind): polls every 20 ms for up to 10 s, so the segment is read in place as soon as it is
 * published, instead of starting Node (~140 ms of CPU on the cores the prefetcher and the
 * startup process share) only to wait for the same file and hand it over through %p.
 */
const IN_FLIGHT_SHELL_POLL_S = '0.02';
const IN_FLIGHT_SHELL_LOOKS = 500;

/** recovery_end_command: stops wal-fetch's prefetcher and removes its spool. */
export function prefetchCleanCommand(node = process.execPath, bin = pmsBackupBin()): string {
  return `${shellQuote(node)} ${shellQuote(bin)} wal-prefetch clean`;
}

/**
 * recovery_target_time in the form PostgreSQL's GUC check accepts ("2026-11-23 14:06:00.000+00");
 * it rejects the ISO form with T and Z that timestamptz input would take.
 */
export function postgresTimestamp(time: Date): string {
  return time.toISOString().replace('T', ' ').replace('Z', '+00');
}

export interface RecoverySettings {
  readonly restoreCommand: string;
  /** Run once recovery ended (wal-fetch's prefetch spool is removed by it). */
  readonly recoveryEndCommand?: string;
  readonly target: TargetTime;
  /**
   * Recover as a standby that wal-fetch --promote-at-end promotes when the archive ends, instead of
   * archive recovery: the server opens without waiting for the end-of-recovery checkpoint
   * (commands/wal-fetch/promote-at-end.ts). Only with target 'latest' and a restore_command that
   * carries the flag; otherwise the standby would wait for WAL forever.
   */
  readonly promoteAtEnd?: boolean;
  /** Extra settings (e.g. archive_mode = off for a throwaway verification server). */
  readonly extra?: Readonly<Record<string, string>>;
}

export function recoveryConfText(settings: RecoverySettings, note: string): string {
  const lines = [
    `# ${note}`,
    `restore_command = ${confString(settings.restoreCommand)}`,
    `recovery_target_timeline = 'latest'`,
    // A backup read from a standby (or a Patroni member) carries its streaming settings: the
    // recovered copy replays the archive only and never connects to the live cluster.
    `primary_conninfo = ''`,
    `primary_slot_name = ''`,
  ];
  if (settings.recoveryEndCommand !== undefined) lines.push(`recovery_end_command = ${confString(settings.recoveryEndCommand)}`);
  if (settings.target !== 'latest') {
    lines.push(`recovery_target_time = ${confString(postgresTimestamp(settings.target))}`, `recovery_target_action = 'promote'`);
  }
  for (const [name, value] of Object.entries(settings.extra ?? {})) lines.push(`${name} = ${confString(value)}`);
  return `\n${lines.join('\n')}\n`;
}

/**
 * Appends the recovery settings to postgresql.auto.conf (later lines win over the backup's own)
 * and creates recovery.signal, both owned like the data directory. We may be root and the
 * directory came out of a tar: nothing planted there (a link to a file of root's) is followed.
 */
export async function writeRecoverySettings(dataDir: string, settings: RecoverySettings, note: string): Promise<void> {
  if (
    settings.promoteAtEnd &&
    (settings.target !== 'latest' || !/ wal-fetch(?: --[a-z-]+)* --promote-at-end /.test(settings.restoreCommand))
  ) {
    throw new RangeError('promoteAtEnd needs target latest and a restore_command running wal-fetch --promote-at-end');
  }
  await usingDataDirectory(dataDir, async (directory) => {
    await directory.append('postgresql.auto.conf', recoveryConfText(settings, note));
    // standby.signal wins over recovery.signal, so the one not wanted goes: without a promotion at
    // the end of the archive, the copy would wait as a standby forever.
    if (settings.promoteAtEnd) {
      await directory.remove('recovery.signal');
      await directory.replace('standby.signal', '');
    } else {
      await directory.remove('standby.signal');
      await directory.replace('recovery.signal', '');
    }
  });
}
