import { PmsError } from '../../errors/catalogue.js';

/** restore's flags as commander hands them over. */
export interface RestoreFlags {
  readonly json?: boolean;
  readonly targetDb?: string;
  /** false with --no-owner. */
  readonly owner?: boolean;
  readonly table: readonly string[];
  readonly patient?: string;
  readonly pitr?: boolean;
  readonly targetTime?: string;
  readonly pgdata?: string;
  readonly base?: string;
  readonly allowUnsigned?: boolean;
}

/** What the flags ask for: a logical restore into a new database, or a point-in-time recovery. */
export type RestorePlan =
  | {
      readonly kind: 'logical';
      readonly id: string;
      readonly json: boolean;
      readonly targetDb: string;
      readonly noOwner: boolean;
      readonly tables: readonly string[];
      readonly patient: string | undefined;
      readonly allowUnsigned: boolean;
    }
  | {
      readonly kind: 'pitr';
      readonly json: boolean;
      readonly targetTime: string;
      readonly pgdata: string;
      readonly base?: string;
      readonly allowUnsigned: boolean;
    };

/**
 * The rules that tie restore's flags together, apart from the CLI so they can be tested alone:
 * --pitr takes --target-time, --pgdata and optionally --base and nothing of a logical restore;
 * a logical restore needs an id and --target-db and none of --pitr's flags.
 */
export function planRestore(id: string | undefined, flags: RestoreFlags): RestorePlan {
  const json = flags.json ?? false;
  const allowUnsigned = flags.allowUnsigned ?? false;
  if (flags.pitr) {
    if (id !== undefined || flags.targetDb !== undefined || flags.table.length > 0 || flags.patient !== undefined) {
      throw new PmsError(
        'PMS_ERR_USAGE',
        '--pitr takes --target-time, --pgdata and optionally --base; not a backup id, --target-db, --table or --patient',
      );
    }
    if (flags.targetTime === undefined || flags.pgdata === undefined) {
      throw new PmsError('PMS_ERR_USAGE', '--pitr needs --target-time <time|latest> and --pgdata <dir>');
    }
    return {
      kind: 'pitr',
      json,
      targetTime: flags.targetTime,
      pgdata: flags.pgdata,
      ...(flags.base ? { base: flags.base } : {}),
      allowUnsigned,
    };
  }
  if (flags.targetTime !== undefined || flags.pgdata !== undefined || flags.base !== undefined) {
    throw new PmsError('PMS_ERR_USAGE', '--target-time, --pgdata and --base need --pitr');
  }
  if (id === undefined || flags.targetDb === undefined) {
    throw new PmsError('PMS_ERR_USAGE', 'restore needs a backup id (or "latest") and --target-db <name> (or --pitr)');
  }
  if (flags.patient !== undefined && flags.table.length > 0) {
    throw new PmsError('PMS_ERR_USAGE', '--patient and --table cannot be combined: a per-patient restore takes the telemetry tables');
  }
  return {
    kind: 'logical',
    id,
    json,
    targetDb: flags.targetDb,
    noOwner: flags.owner === false,
    tables: flags.table,
    patient: flags.patient,
    allowUnsigned,
  };
}
