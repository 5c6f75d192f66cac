import { listBackupsWithVerifications, newestGood, resolveBackup } from '../../repository/backup-catalog.js';
import type { TrustPolicy } from '../../crypto/signing.js';
import type { Storage } from '../../storage/storage.js';
import { loadDecryptionKeys } from '../../crypto/keys.js';
import { PmsError, isPmsError } from '../../errors/catalogue.js';
import { type RestoreScope, restoreLogicalBackup } from './restore-logical-backup.js';
import { isValidNhsNumber, normaliseNhsNumber } from '../../telemetry/validation/nhs-number.js';
import { runBackupCommand } from '../../cli/backup-command.js';
import { ProgressLine, formatBytes } from '../../cli/progress.js';

export interface RestoreCommandOptions {
  readonly json?: boolean;
  readonly targetDb: string;
  readonly noOwner?: boolean;
  readonly tables?: readonly string[];
  readonly patient?: string | undefined;
  /** Accept a backup made before signing (no signature at all); audited. */
  readonly allowUnsigned?: boolean;
}

function scopeOf(options: RestoreCommandOptions): RestoreScope {
  if (options.patient !== undefined) {
    const nhsNumber = normaliseNhsNumber(options.patient);
    if (nhsNumber === undefined || !isValidNhsNumber(nhsNumber)) {
      throw new PmsError('PMS_ERR_USAGE', '--patient is not a valid NHS number (10 digits with a valid Modulus 11 check digit)');
    }
    return { kind: 'patient', nhsNumber };
  }
  if (options.tables && options.tables.length > 0) {
    return {
      kind: 'tables',
      tables: options.tables.map((t) => {
        const m = /^([A-Za-z_][A-Za-z0-9_$]*)\.([A-Za-z_][A-Za-z0-9_$]*)$/.exec(t);
        if (!m) throw new PmsError('PMS_ERR_USAGE', `--table ${JSON.stringify(t)} must be SCHEMA.TABLE, e.g. telemetry.reading`);
        return { schema: m[1] ?? '', name: m[2] ?? '' };
      }),
    };
  }
  return { kind: 'full' };
}

export async function runRestore(reference: string, options: RestoreCommandOptions): Promise<number> {
  const scope = scopeOf(options);
  return runBackupCommand(
    {
      name: 'restore',
      logStream: 'backup',
      needs: { repository: true, decryption: true, trust: true, signing: true, postgres: true },
      interruptible: true,
    },
    async ({ config, storage, signal, trust, logger }) => {
      const trustPolicy = await trust({ allowUnsigned: options.allowUnsigned ?? false });
      const keys = await loadDecryptionKeys(config.keys.privateKeyFile, config.keys.passphraseFile);
      const repository = storage();
      const progress = new ProgressLine({ logger });
      const manifest = await resolveBackup(repository, reference, 'logical', trustPolicy, {
        onNote: (note) => {
          logger.warn(note);
        },
      });
      const result = await restoreLogicalBackup({
        manifest,
        storage: repository,
        postgres: config.postgres,
        keys,
        trust: trustPolicy,
        targetDb: options.targetDb,
        scope,
        noOwner: options.noOwner ?? false,
        signal,
        onProgress: (done, total) => progress.update(`restoring ${manifest.id}: ${formatBytes(done)} of ${formatBytes(total)}`),
      })
        .catch(async (error: unknown) => {
          throw await withGoodBackupHint(error, repository, trustPolicy, manifest.id);
        })
        .finally(() => progress.done());
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ ok: true, ...result }, null, 2)}\n`);
      } else {
        const rows = result.tables.reduce((sum, t) => sum + t.rows, 0);
        const what =
          scope.kind === 'full'
            ? 'every table'
            : scope.kind === 'tables'
              ? `table(s) ${result.tables.map((t) => `${t.schema}.${t.name}`).join(', ')}`
              : "one patient's telemetry";
        const checked =
          scope.kind === 'patient' ? 'sha256 and OpenPGP integrity verified' : 'sha256, OpenPGP integrity and row counts verified';
        process.stdout.write(
          `restored ${what} from backup ${result.id} into database ${result.targetDb}: ${result.tables.length} tables, ${rows} rows, ${formatBytes(result.bytes)} fetched in ${result.durationSeconds.toFixed(1)} s; ${checked}\n`,
        );
      }
      // The patient's identifier stays out of logs and audit records: the scope kind is enough.
      return {
        exitCode: 0,
        backupId: result.id,
        details: {
          targetDb: result.targetDb,
          scope: scope.kind,
          tables: result.tables.length,
          ...(options.allowUnsigned ? { allowUnsigned: true } : {}),
        },
      };
    },
  );
}

/**
 * A backup that failed an integrity check cannot be restored; at 3 a.m. the next question is
 * which one can. Names the newest other complete backup that has not failed verification.
 */
async function withGoodBackupHint(error: unknown, repository: Storage, trust: TrustPolicy, failedId: string): Promise<unknown> {
  if (!isPmsError(error, 'PMS_ERR_INTEGRITY')) return error;
  const entries = await listBackupsWithVerifications(repository, trust).catch(() => []);
  const good = newestGood(entries, 'logical', failedId);
  const hint = good
    ? `; the newest other backup is ${good.id} (${good.verification?.ok ? `verified ${good.verification.verifiedAt}` : 'not verified yet'}): pms-backup restore ${good.id} --target-db NAME`
    : '; no other complete logical backup is in the repository';
  return new PmsError('PMS_ERR_INTEGRITY', `${error.message}${hint}`, {
    cause: error,
    ...(error.details ? { details: error.details } : {}),
  });
}
