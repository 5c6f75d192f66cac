import { PmsError } from '../../errors/catalogue.js';
import type { AuditAnchor } from '../../repository/audit-log.js';

/**
 * `--anchor SEQ:HASH`: a head noted outside the repository (from `audit verify`'s output, or the
 * `hash_prefix` label of pms_backup_audit_head_info). 12 hex digits are enough to tell a
 * rewritten record apart; the full 64 are accepted.
 */
export function parseAuditAnchor(text: string): AuditAnchor {
  const m = /^(\d{1,12}):([0-9a-fA-F]{12,64})$/.exec(text.trim());
  if (!m || Number(m[1]) < 1) {
    throw new PmsError(
      'PMS_ERR_USAGE',
      `--anchor ${JSON.stringify(text)} is not SEQ:HASH (a sequence number from 1, a colon, 12 to 64 hex digits of that record's hash), e.g. 1234:0a1b2c3d4e5f`,
    );
  }
  return { seq: Number(m[1]), hash: m[2]!.toLowerCase() };
}
