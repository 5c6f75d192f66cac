import type { SigningKey } from '../crypto/signing.js';
import { isPmsError } from '../errors/catalogue.js';
import type { Storage } from '../storage/storage.js';
import { type Actor, appendAudit } from './audit-log.js';

const OBSERVED_KEY = 'keys/observed.json';

/**
 * Records a `keys.changed` audit entry when the set of recipient keys differs from the set seen
 * by the previous command (a rotation, or a key file swapped by mistake). Returns the change.
 */
export async function observeRecipientKeys(
  storage: Storage,
  fingerprints: readonly string[],
  actor: Actor,
  signer: SigningKey,
): Promise<{ added: string[]; removed: string[] } | undefined> {
  const current = [...new Set(fingerprints)].sort();
  let previous: string[] | undefined;
  try {
    previous = (JSON.parse((await storage.getBytes(OBSERVED_KEY)).toString('utf8')) as { fingerprints: string[] }).fingerprints;
  } catch (error) {
    if (!isPmsError(error, 'PMS_ERR_NOT_FOUND') && !(error instanceof SyntaxError)) throw error;
  }
  if (previous !== undefined && previous.join() === current.join()) return undefined;
  const added = current.filter((f) => !previous?.includes(f));
  const removed = (previous ?? []).filter((f) => !current.includes(f));
  await appendAudit(
    storage,
    {
      at: new Date().toISOString(),
      actor,
      operation: 'keys.changed',
      backupId: null,
      outcome: 'success',
      details: { added, removed, first: previous === undefined },
    },
    signer,
  );
  await storage.putBytes(OBSERVED_KEY, `${JSON.stringify({ fingerprints: current, observedAt: new Date().toISOString() })}\n`);
  return { added, removed };
}
