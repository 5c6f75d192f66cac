import { userInfo } from 'node:os';

/** The OS user name for manifests and audit records; the uid where there is no passwd entry (containers). */
export function osUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid:${process.getuid?.() ?? 'unknown'}`;
  }
}
