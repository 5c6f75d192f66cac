import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { shellFirstArchiveCommand } from '../../wal-push/archive-command.js';
import { usingDataDirectory } from '../../../postgres/data-directory-writer.js';
import { SPOOL_STALE_MS } from '../../wal-fetch/prefetch/spool.js';
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
export function restoreCommand(node = process.execPath, bin = pmsBackupBin(), options: { allowUnsigned?: boolean } = {}): string {
  // --allow-unsigned only for a recovery through WAL archived before signing (restore --pitr --allow-unsigned).
  return `${shellQuote(node)} ${shellQuote(bin)} wal-fetch${options.allowUnsigned ? ' --allow-unsigned' : ''} %f %p`;
}

/**
 * restore_command for a data directory restore --pitr prepared: the shell first tries to move
 * the segment out of the prefetch spool (pg_wal/.pms-prefetch/<system id>/, see
 * commands/wal-fetch/prefetch/spool.ts), and starts Node only on a miss. A segment enters that
 * directory only after every check wal-fetch makes, and the path binds it to this system, the
 * timeline in its name and the trust mode; so the shell hit serves what wal-fetch's own fast path
 * would, without a Node start per segment, which on a busy server costs more than PostgreSQL
 * spends replaying the segment. find keeps two of the fast path's rules: only a regular file
 * (never a link or a directory planted under the name) and only one younger than about an hour
 * (SPOOL_STALE_MS: a spool left by a recovery long ago may have been verified against signers no
 * longer trusted). The fast path's third, re-reading the page header, is left to Node: see
 * docs/pitr.md, "The spool hit in the shell". PostgreSQL removes %p before each call, so a file
 * there afterwards is the one moved.
 */
export function spoolFirstRestoreCommand(
  systemIdentifier: string,
  node = process.execPath,
  bin = pmsBackupBin(),
  options: { allowUnsigned?: boolean } = {},
): string {
  if (!/^\d+$/.test(systemIdentifier)) throw new RangeError(`not a system identifier: ${systemIdentifier}`);
  const spool = `pg_wal/.pms-prefetch/${systemIdentifier}${options.allowUnsigned ? '-unsigned' : ''}`;
  const take = `find ${spool} -maxdepth 1 -name %f -type f -mmin -${SPOOL_STALE_MS / 60_000} -exec mv -f {} %p ';' 2>/dev/null`;
  return `${take}; test -f %p || exec ${restoreCommand(node, bin, options)}`;
}

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
  await usingDataDirectory(dataDir, async (directory) => {
    await directory.append('postgresql.auto.conf', recoveryConfText(settings, note));
    // standby.signal would win over recovery.signal: the copy would wait as a standby forever.
    await directory.remove('standby.signal');
    await directory.replace('recovery.signal', '');
  });
}
