import assert from 'node:assert/strict';
import { chownSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { startThrowawayCluster, type ThrowawayCluster } from '../postgres/throwaway-cluster.js';
import { openStorage } from '../storage/open-storage.js';
import { type GpgKeyPair, generateGpgKeyPair, signingEnv } from '../testing/gpg-keys.js';
import { type S3rverHarness, startS3rver } from '../testing/s3rver-harness.js';
import { parseWalFileName } from './wal-file-name.js';
import { WAL_PREFIX, walFileOfKey } from '../repository/wal-layout.js';
import { archiveCommand } from '../commands/restore/pitr/recovery-settings.js';

let cluster: ThrowawayCluster;
let key: GpgKeyPair;
let s3: S3rverHarness;

async function archivedSegments(): Promise<number[]> {
  const storage = openStorage(s3.repository('archive'));
  const segments: number[] = [];
  try {
    for await (const object of storage.list(WAL_PREFIX)) {
      const file = walFileOfKey(object.key);
      if (file?.kind === 'segment') segments.push(file.segment);
    }
  } finally {
    await storage.close();
  }
  return segments.sort((a, b) => a - b);
}

async function waitFor(what: string, probe: () => Promise<boolean>, seconds = 90): Promise<void> {
  for (let i = 0; i < seconds * 5; i += 1) {
    if (await probe().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}`);
}

before(async () => {
  [key, s3] = await Promise.all([generateGpgKeyPair({ name: 'PMS WAL S3 Outage' }), startS3rver({ bucket: 'pms-wal' })]);
  if (process.getuid?.() === 0) chownSync(key.privateKeyFile, Number(process.env['PMS_TEST_PG_UID'] ?? 101), -1);
  const env = {
    ...s3.env('archive'),
    ...signingEnv(key),
    BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
    BACKUP_GPG_KEY_ID: key.fingerprint,
    BACKUP_LOG_DIR: `${key.dir}/logs`,
  };
  cluster = await startThrowawayCluster({
    // archive_command is retried by PostgreSQL itself (every few seconds) until it exits 0.
    settings: { archive_mode: 'on', wal_level: 'replica', archive_command: archiveCommand() },
    serverEnv: env,
  });
  await cluster.psql('CREATE TABLE filler (id bigserial PRIMARY KEY, pad text)');
});

after(async () => {
  await Promise.allSettled([cluster?.destroy(), s3?.destroy()]);
  key?.remove();
});

describe('WAL archiving to S3 through an outage', () => {
  test('S3 down: archive_command fails and PostgreSQL keeps the segments; once S3 is back every segment is archived, none missing', async () => {
    const switchWal = () =>
      cluster.psql("INSERT INTO filler (pad) SELECT repeat('x', 500) FROM generate_series(1, 2000); SELECT pg_switch_wal()");
    await switchWal();
    await waitFor('the first segment to be archived', async () => (await archivedSegments()).length > 0);
    await s3.down();
    try {
      const failedBefore = Number(await cluster.psql('SELECT failed_count FROM pg_stat_archiver'));
      for (let i = 0; i < 3; i += 1) await switchWal();
      await waitFor(
        'archive_command to fail while S3 is down',
        async () => Number(await cluster.psql('SELECT failed_count FROM pg_stat_archiver')) > failedBefore,
      );
      assert.ok(
        Number(await cluster.psql("SELECT count(*) FROM pg_ls_dir('pg_wal/archive_status') f WHERE f LIKE '%.ready'")) > 0,
        'segments wait as .ready',
      );
    } finally {
      await s3.up();
    }
    const last = await cluster.psql('SELECT pg_walfile_name(pg_current_wal_lsn()) FROM pg_switch_wal()');
    const lastSegment = (parseWalFileName(last) as { segment: number }).segment;
    await waitFor(
      'archiving to catch up',
      async () => (await cluster.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")) >= last,
    );
    const segments = await archivedSegments();
    const first = segments[0]!;
    const expected = Array.from({ length: lastSegment - first + 1 }, (_, i) => first + i);
    assert.deepEqual(segments, expected, 'a contiguous chain: no segment lost in the outage');
  });
});
