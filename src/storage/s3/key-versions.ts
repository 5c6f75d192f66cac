import { ListObjectVersionsCommand, type S3Client } from '@aws-sdk/client-s3';

/** One version or delete marker of a key in a versioned bucket. */
export interface KeyVersion {
  readonly versionId: string;
  readonly deleteMarker: boolean;
  readonly modifiedAt: number;
  readonly bytes: number;
}

/** Every version and every delete marker of exactly `key`, each list newest first (as S3 returns them). */
export interface KeyHistory {
  readonly versions: readonly KeyVersion[];
  readonly markers: readonly KeyVersion[];
}

export async function listKeyVersions(client: S3Client, bucket: string, key: string): Promise<KeyHistory> {
  const versions: KeyVersion[] = [];
  const markers: KeyVersion[] = [];
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  for (;;) {
    const page = await client.send(
      new ListObjectVersionsCommand({ Bucket: bucket, Prefix: key, KeyMarker: keyMarker, VersionIdMarker: versionIdMarker }),
    );
    for (const v of page.Versions ?? []) {
      if (v.Key !== key || v.VersionId === undefined) continue;
      versions.push({ versionId: v.VersionId, deleteMarker: false, modifiedAt: v.LastModified?.getTime() ?? 0, bytes: v.Size ?? 0 });
    }
    for (const m of page.DeleteMarkers ?? []) {
      if (m.Key !== key || m.VersionId === undefined) continue;
      markers.push({ versionId: m.VersionId, deleteMarker: true, modifiedAt: m.LastModified?.getTime() ?? 0, bytes: 0 });
    }
    // `key` sorts before every longer key with the same prefix, so once the listing has moved
    // past it, all of its versions have been seen.
    if (!page.IsTruncated || page.NextKeyMarker !== key) break;
    keyMarker = page.NextKeyMarker;
    versionIdMarker = page.NextVersionIdMarker;
  }
  return { versions, markers };
}

export type RaceOutcome = { readonly won: true } | { readonly won: false; readonly winner: KeyVersion };

/**
 * Who owns a write-once key after we stored version `ours` in a versioned bucket, where a store
 * may have ignored If-None-Match (Ceph RGW does). A delete marker ends one life of the key (a
 * released lock, a pruned object); within the current life the earliest version is the one
 * that was written first and wins. Versions are ordered by S3's own listing; only delete
 * markers are placed between them by time, and a marker stamped the same instant as a version
 * counts as ending the life before it, so an ambiguous tie never takes a key from its writer.
 */
export function raceOutcome(history: KeyHistory, ours: string): RaceOutcome {
  const { versions, markers } = history;
  const start = versions.findIndex((v) => v.versionId === ours);
  if (start < 0) return { won: true }; // already gone (deleted meanwhile): nobody to lose to
  let earliest = start;
  for (let i = start + 1; i < versions.length; i++) {
    const newer = versions[i - 1];
    const older = versions[i];
    if (newer === undefined || older === undefined) break;
    const markerBetween = markers.some((m) => m.modifiedAt >= older.modifiedAt && m.modifiedAt <= newer.modifiedAt);
    if (markerBetween) break;
    earliest = i;
  }
  const winner = versions[earliest];
  return earliest === start || winner === undefined ? { won: true } : { won: false, winner };
}
