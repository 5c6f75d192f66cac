import type { TrustPolicy } from '../../../crypto/signing.js';
import { listBackups, resolveBackup } from '../../../repository/backup-catalog.js';
import type { BaseManifest } from '../../../repository/manifest.js';
import { PmsError } from '../../../errors/catalogue.js';
import type { Storage } from '../../../storage/storage.js';

export type TargetTime = Date | 'latest';

/**
 * `latest` or a timestamp with an explicit zone (a zone-less time would be read in the server's
 * zone). The zone must follow a time of day: in a bare date (2026-11-23) the day looks like an
 * offset. Dates are checked field by field because Date rolls impossible ones over (Feb 30 →
 * Mar 2), which would recover to another day without a word.
 */
export function parseTargetTime(value: string): TargetTime {
  if (value === 'latest') return 'latest';
  const hasZone = /\d:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)$/i.test(value.trim());
  const time = new Date(value);
  if (!hasZone || Number.isNaN(time.getTime()) || rollsOver(value.trim())) {
    throw new PmsError(
      'PMS_ERR_USAGE',
      `--target-time ${JSON.stringify(value)} is not a timestamp with a time zone: use e.g. 2026-11-23T14:06:00Z or 2026-11-23T14:06:00+00:00, or "latest"`,
    );
  }
  return time;
}

/** Whether the written calendar date or time of day does not exist (Date would move it silently). */
function rollsOver(value: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})/i.exec(value);
  if (!m) return false;
  const [year, month, day, hour, minute] = m.slice(1, 6).map(Number) as [number, number, number, number, number];
  const written = new Date(Date.UTC(year, month - 1, day, hour, minute));
  return written.getUTCMonth() !== month - 1 || written.getUTCDate() !== day || written.getUTCHours() !== hour;
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
