import { basename, dirname, resolve } from 'node:path';
import { type ErrorCode, ERRORS, PmsError } from '../../errors/catalogue.js';
import { consumePushMarker } from './push-marker.js';
import { askPusher, pusherAddress } from './pusher-socket.js';

/** How long wal-push waits for the pusher's answer about its file before failing (PostgreSQL retries). */
export const ANSWER_TIMEOUT_MS = 5 * 60_000;

/**
 * Asks the background pusher of `path`'s directory to archive it. 0: archived (a valid marker
 * was consumed); undefined: no pusher listens. Throws the pusher's error for this file, or
 * PMS_ERR_ABORTED when the pusher died before answering. Imports nothing heavy.
 */
export async function archiveViaPusher(path: string): Promise<0 | undefined> {
  const walDir = dirname(resolve(path));
  const name = basename(path);
  let reply: Awaited<ReturnType<typeof askPusher>>;
  try {
    reply = await askPusher(await pusherAddress(walDir), name, ANSWER_TIMEOUT_MS);
  } catch (error) {
    throw new PmsError('PMS_ERR_ABORTED', `${name} was not archived: ${(error as Error).message}; PostgreSQL will retry`, { cause: error });
  }
  if (reply === undefined) return undefined;
  if (!reply.ok) {
    const code = (reply.code in ERRORS ? reply.code : 'PMS_ERR_INTERNAL') as ErrorCode;
    throw new PmsError(code, reply.message);
  }
  // The answer is a doorbell; the marker, written after the store confirmed the object, is the proof.
  if (await consumePushMarker(path)) return 0;
  throw new PmsError(
    'PMS_ERR_INTEGRITY',
    `the background pusher answered that ${name} is archived, but no valid marker vouches for it; not acknowledging it (PostgreSQL will retry)`,
  );
}
