import { createHash, randomBytes } from 'node:crypto';

export type TokenKind = 'device' | 'reader';

const PREFIX: Record<TokenKind, string> = { device: 'pmsd_', reader: 'pmsr_' };

/**
 * 256 random bits, prefixed so a leaked token is recognisable (secret scanners) and a device
 * token pasted into a reader's config is obviously wrong.
 */
export function newToken(kind: TokenKind): string {
  return PREFIX[kind] + randomBytes(32).toString('base64url');
}

/**
 * SHA-256 is enough here: the token has 256 bits of entropy, so there is nothing to brute-force
 * and a slow KDF would only cost latency on every request. Only this hash is stored.
 */
export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** The token from an `Authorization: Bearer …` header, or undefined. */
export function bearerToken(header: string | undefined, kind: TokenKind): string | undefined {
  if (header === undefined) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  const token = m?.[1];
  return token !== undefined && token.startsWith(PREFIX[kind]) && token.length < 200 ? token : undefined;
}
