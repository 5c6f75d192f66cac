import type { PostgresConfig } from '../../config/postgres-config.js';
import { usingClient } from '../../postgres/connect.js';
import type { DoctorCheck } from './doctor-check.js';

interface ArchiveState {
  archive_mode: string;
  can_replicate: boolean | null;
  in_recovery: boolean;
  last_archived_wal: string | null;
  last_archived_time: Date | null;
  last_failed_wal: string | null;
  last_failed_time: Date | null;
}

const NAME = 'point-in-time recovery';

/**
 * What base-backup and wal-push need from the server: archive_mode on, archive_command running
 * wal-push and not failing now, a primary, and a role allowed replication connections. Off is
 * not a failure (PITR is optional); everything else that would make base-backup fail or leave
 * a gap in the WAL archive is.
 */
export async function checkPointInTimeRecovery(config: PostgresConfig): Promise<DoctorCheck> {
  return usingClient(config, async (client) => {
    const state = (
      await client.query<ArchiveState>(
        `SELECT current_setting('archive_mode') AS archive_mode,
                (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS can_replicate,
                pg_is_in_recovery() AS in_recovery,
                a.last_archived_wal, a.last_archived_time, a.last_failed_wal, a.last_failed_time
           FROM pg_stat_archiver a`,
      )
    ).rows[0];
    if (!state) return { name: NAME, ok: false, detail: 'pg_stat_archiver returned no row', fix: 'check the server' };
    if (state.archive_mode === 'off') {
      return {
        name: NAME,
        ok: true,
        warning: true,
        detail:
          'archive_mode is off: point-in-time recovery is NOT set up; only the nightly logical backups can be restored (base-backup refuses to run)',
        fix: "set archive_mode = on and archive_command = 'pms-backup wal-push %p' (docs/pitr.md), then take a base backup",
      };
    }
    // archive_command is readable only with pg_read_all_settings (pg_monitor has it).
    const command = await client.query<{ setting: string | null }>("SELECT current_setting('archive_command') AS setting").then(
      (r) => r.rows[0]?.setting ?? '',
      () => undefined,
    );
    const problems: Array<{ detail: string; fix: string }> = [];
    if (state.in_recovery)
      problems.push({ detail: 'the server is a standby', fix: 'point POSTGRES_HOST at the primary: base backups are taken there' });
    if (command !== undefined && !/\bwal-push\b/.test(command)) {
      problems.push({
        detail: `archive_command is '${command}', not pms-backup wal-push`,
        fix: "set archive_command = 'pms-backup wal-push %p' with the same BACKUP_* environment (docs/pitr.md)",
      });
    }
    if (state.can_replicate === false) {
      problems.push({
        detail: `role ${config.user ?? '(default)'} may not open replication connections`,
        fix: 'ALTER ROLE ... REPLICATION and add a "replication" line for it to pg_hba.conf',
      });
    }
    const failedAt = state.last_failed_time?.getTime() ?? 0;
    if (failedAt > (state.last_archived_time?.getTime() ?? 0)) {
      problems.push({
        detail: `archiving is failing: ${state.last_failed_wal} failed at ${state.last_failed_time?.toISOString()} (last success: ${state.last_archived_wal ?? 'none'})`,
        fix: "read the server log for wal-push's PMS_ERR_* line; WAL piles up in pg_wal until it succeeds",
      });
    }
    if (problems.length > 0)
      return { name: NAME, ok: false, detail: problems.map((p) => p.detail).join('; '), fix: problems.map((p) => p.fix).join('; ') };
    const last = state.last_archived_wal
      ? `last archived ${state.last_archived_wal} at ${state.last_archived_time?.toISOString()}`
      : 'nothing archived yet';
    const commandNote =
      command === undefined ? ' (archive_command not readable: grant pg_read_all_settings to check it)' : ', archive_command runs wal-push';
    return { name: NAME, ok: true, detail: `archive_mode ${state.archive_mode}${commandNote}, ${last}; the role may take base backups` };
  });
}
