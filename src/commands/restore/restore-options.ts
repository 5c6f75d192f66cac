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
  readonly cleanup?: boolean;
  readonly yes?: boolean;
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
  | { readonly kind: 'cleanup'; readonly json: boolean; readonly yes: boolean }
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
  if (flags.cleanup) {
    const others = [
      id !== undefined && 'a backup id',
      flags.targetDb !== undefined && '--target-db',
      flags.table.length > 0 && '--table',
      flags.patient !== undefined && '--patient',
      flags.pitr && '--pitr',
      flags.targetTime !== undefined && '--target-time',
      flags.pgdata !== undefined && '--pgdata',
      flags.base !== undefined && '--base',
      flags.allowUnsigned && '--allow-unsigned',
    ].filter(Boolean);
    if (others.length > 0) throw new PmsError('PMS_ERR_USAGE', `--cleanup takes only --yes and --json, not ${others.join(', ')}`);
    return { kind: 'cleanup', json, yes: flags.yes ?? false };
  }
  if (flags.yes) throw new PmsError('PMS_ERR_USAGE', '--yes goes with --cleanup');
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
