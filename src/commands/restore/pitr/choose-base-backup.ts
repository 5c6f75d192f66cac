import type { TrustPolicy } from '../../../crypto/signing.js';
import { listBackups, resolveBackup } from '../../../repository/backup-catalog.js';
import type { BaseManifest } from '../../../repository/manifest.js';
import { PmsError } from '../../../errors/catalogue.js';
import type { Storage } from '../../../storage/storage.js';

export type TargetTime = Date | 'latest';

/** `latest` or a timestamp with an explicit zone (a zone-less time would be read in the server's zone). */
export function parseTargetTime(value: string): TargetTime {
  if (value === 'latest') return 'latest';
  const hasZone = /(Z|[+-]\d{2}(:?\d{2})?)$/i.test(value.trim());
  const time = new Date(value);
  if (!hasZone || Number.isNaN(time.getTime())) {
    throw new PmsError(
      'PMS_ERR_USAGE',
      `--target-time ${JSON.stringify(value)} is not a timestamp with a time zone: use e.g. 2026-11-23T14:06:00Z or 2026-11-23T14:06:00+00:00, or "latest"`,
    );
  }
  return time;
}

/**
 * The newest complete base backup that finished before the target: recovery can only stop at
 * a moment after the backup's own end, and the newest such backup needs the least WAL replayed.
 */
export async function chooseBaseBackup(storage: Storage, trust: TrustPolicy, target: TargetTime, base?: string): Promise<BaseManifest> {
  const before = (m: BaseManifest): boolean => target === 'latest' || new Date(m.finishedAt).getTime() < target.getTime();
  if (base !== undefined) {
    const manifest = await resolveBackup(storage, base, 'base', trust);
    if (!before(manifest)) {
      throw new PmsError(
        'PMS_ERR_USAGE',
        `base backup ${manifest.id} finished at ${manifest.finishedAt}, after the target time ${(target as Date).toISOString()}: choose an earlier base backup or a later target`,
      );
    }
    return manifest;
  }
  const candidates = (await listBackups(storage, trust))
    .map((e) => (e.status === 'complete' && e.manifest?.kind === 'base' ? e.manifest : undefined))
    .filter((m): m is BaseManifest => m !== undefined && before(m))
    .sort((a, b) => b.finishedAt.localeCompare(a.finishedAt));
  const chosen = candidates[0];
  if (chosen === undefined) {
    throw new PmsError(
      'PMS_ERR_NOT_FOUND',
      target === 'latest'
        ? `no complete base backup in ${storage.location}: run pms-backup base-backup first`
        : `no complete base backup in ${storage.location} finished before ${target.toISOString()}: the earliest restorable time is the end of the oldest base backup (see pms-backup list)`,
    );
  }
  return chosen;
}
