import { type BackupFromStandby, type PostgresConfig, describeEndpoints, endpointsOf, pinnedTo } from '../config/postgres-config.js';
import { PmsError } from '../errors/catalogue.js';
import { connectToTarget } from './connect.js';
import type { ServerRole, SessionTarget } from './session-target.js';

export interface BackupSource {
  /** The one server the backup reads, pinned: every connection of the backup goes there. */
  readonly config: PostgresConfig;
  readonly role: ServerRole;
}

const TARGET: Record<BackupFromStandby, SessionTarget> = { no: 'read-write', prefer: 'prefer-standby', require: 'standby' };

/**
 * Which server base-backup and create read (BACKUP_FROM_STANDBY): no = the primary (with one
 * server: that server, whatever it is, as before), prefer = a standby when one answers, else
 * the primary, require = a standby or nothing. Reading a standby spares the primary's disks
 * and CPU while it serves the wards.
 */
export async function chooseBackupSource(postgres: PostgresConfig, fromStandby: BackupFromStandby): Promise<BackupSource> {
  const single = endpointsOf(postgres).length === 1;
  const target = single && fromStandby === 'no' ? 'any' : TARGET[fromStandby];
  const found = await connectToTarget(postgres, target, { applicationName: 'pms-backup' });
  await found.client.end().catch(() => undefined);
  if (fromStandby === 'require' && found.role !== 'standby') {
    throw new PmsError(
      'PMS_ERR_CONFIG',
      `BACKUP_FROM_STANDBY=require but ${describeEndpoints(postgres)} has no standby (${found.endpoint.host}:${found.endpoint.port} is the primary): add a standby to POSTGRES_HOST or set BACKUP_FROM_STANDBY=prefer`,
    );
  }
  return { config: pinnedTo(postgres, found.endpoint), role: found.role };
}
