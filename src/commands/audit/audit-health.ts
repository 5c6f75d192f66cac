import type { TrustPolicy } from '../../crypto/signing.js';
import type { AuditHeadFacts } from '../../metrics/command-outcome.js';
import { verifyAudit } from '../../repository/audit-log.js';
import type { Storage } from '../../storage/storage.js';

/** monitor's `audit` check and facts: the whole chain verified, the head exported as metrics. */
export async function auditHealth(
  storage: Storage,
  trust: TrustPolicy,
): Promise<{ readonly check: { readonly name: 'audit'; readonly ok: boolean; readonly detail: string }; readonly facts: AuditHeadFacts }> {
  const result = await verifyAudit(storage, trust);
  const facts: AuditHeadFacts = { headSequence: result.head?.seq ?? 0, headHash: result.head?.hash ?? null, chainOk: result.ok };
  const detail = result.ok
    ? `audit log intact: ${result.records} records signed and chained; head ${facts.headSequence}${facts.headHash ? `:${facts.headHash.slice(0, 12)}` : ''}`
    : `AUDIT LOG BROKEN at record ${result.firstBroken?.seq} (${result.firstBroken?.key}): ${result.firstBroken?.reason}${result.problems.length > 1 ? ` (+${result.problems.length - 1} more: pms-backup audit verify)` : ''}`;
  return { check: { name: 'audit', ok: result.ok, detail }, facts };
}
