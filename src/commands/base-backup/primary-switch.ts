import { type PostgresConfig, endpointsOf } from '../../config/postgres-config.js';
import { PmsError } from '../../errors/catalogue.js';
import { usingClient } from '../../postgres/connect.js';
import { SQLSTATE } from '../../postgres/sqlstate.js';
import { segmentOfLsn } from '../../wal/wal-file-name.js';

/**
 * For a base backup read from a standby: has the primary of the POSTGRES_HOST list switch to a
 * new WAL segment if it is still writing the backup's stop segment, so that segment completes
 * and is archived now rather than whenever traffic fills it. Returns what happened, for the
 * timeout message; only a primary on another timeline (a failover after the backup stopped:
 * the stop segment of the old timeline will only ever exist as a .partial) is an error.
 */
export async function askPrimaryToSwitch(postgres: PostgresConfig, timeline: number, stopSegment: number): Promise<string> {
  if (endpointsOf(postgres).length === 1) {
    return 'POSTGRES_HOST names no primary to switch WAL, so the segment completes when the primary fills it or archive_timeout passes';
  }
  try {
    return await usingClient(
      postgres,
      async (client) => {
        const { rows } = await client.query<{ file: string; lsn: string }>(
          'SELECT pg_walfile_name(pg_current_wal_lsn()) AS file, pg_current_wal_lsn()::text AS lsn',
        );
        const row = rows[0];
        if (!row) return 'the primary did not report its WAL position';
        const primaryTimeline = Number.parseInt(row.file.slice(0, 8), 16);
        if (primaryTimeline !== timeline) {
          throw new PmsError(
            'PMS_ERR_STANDBY_PROMOTED',
            `the cluster failed over while this base backup ended (it stopped on timeline ${timeline}, the primary now writes timeline ${primaryTimeline}): the stop segment of the old timeline will not be completed; run base-backup again`,
          );
        }
        if (segmentOfLsn(row.lsn) > stopSegment) return 'the primary had already moved past the stop segment';
        try {
          await client.query('SELECT pg_switch_wal()');
          return 'the primary was asked to switch WAL (pg_switch_wal)';
        } catch (error) {
          if ((error as { code?: unknown }).code !== SQLSTATE.insufficientPrivilege) throw error;
          return 'the role may not call pg_switch_wal() on the primary (GRANT EXECUTE ON FUNCTION pg_switch_wal() TO it), so the segment completes when the primary fills it or archive_timeout passes';
        }
      },
      { applicationName: 'pms-backup base-backup', target: 'read-write' },
    );
  } catch (error) {
    if (error instanceof PmsError && error.code === 'PMS_ERR_STANDBY_PROMOTED') throw error;
    return `the primary could not be asked to switch WAL (${(error as Error).message})`;
  }
}
