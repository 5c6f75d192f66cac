import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { type SigningKey, loadSigningKey } from '../../crypto/signing.js';
import { isPmsError } from '../../errors/catalogue.js';
import { appendAudit } from '../../repository/audit-log.js';
import { type AuditRecord, auditKey } from '../../repository/audit-record.js';
import { signatureKey } from '../../repository/signed-record.js';
import { FsStorage } from '../../storage/fs/fs-storage.js';
import { runCli } from '../../testing/run-cli.js';
import { parseAuditAnchor } from './audit-anchor.js';

describe('pms-backup audit and audit verify --anchor, as a CronJob runs them', () => {
  let dir: string;
  let repo: string;
  let signer: SigningKey;
  let env: Record<string, string>;
  const records: AuditRecord[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pms-audit-cli-'));
    repo = join(dir, 'repo');
    mkdirSync(repo);
    const key = await openpgp.generateKey({ userIDs: [{ name: 'jobs' }], type: 'curve25519', format: 'armored' });
    writeFileSync(join(dir, 'jobs.sec'), key.privateKey, { mode: 0o600 });
    writeFileSync(join(dir, 'jobs.pub'), key.publicKey);
    signer = await loadSigningKey(join(dir, 'jobs.sec'), undefined);
    const storage = new FsStorage(repo);
    for (const operation of ['create', 'verify', 'restore-pitr']) {
      records.push(
        await appendAudit(
          storage,
          {
            at: new Date().toISOString(),
            actor: { user: 'pms', host: 'h', pod: null },
            operation,
            backupId: null,
            outcome: 'success',
            details: {},
          },
          signer,
        ),
      );
    }
    env = {
      BACKUP_REPOSITORY: pathToFileURL(repo).href,
      BACKUP_LOG_DIR: join(dir, 'log'),
      BACKUP_TRUSTED_SIGNERS_FILE: join(dir, 'jobs.pub'),
    };
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('an intact log: verify names the head to note as an anchor, and a noted anchor matches', async () => {
    const head = records[2]!;
    const text = await runCli('pms-backup', ['audit', 'verify'], env);
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      new RegExp(`^audit log intact: 3 records, hash chain verified, signatures verified; head 3:${head.hash.slice(0, 12)} `),
    );
    const json = await runCli('pms-backup', ['audit', 'verify', '--json', '--anchor', `2:${records[1]!.hash.slice(0, 12)}`], env);
    assert.equal(json.code, 0, json.stderr);
    const body = JSON.parse(json.stdout) as Record<string, unknown>;
    // The fields audit verify --json always had, and the new ones beside them.
    assert.equal(body['ok'], true);
    assert.equal(body['records'], 3);
    assert.deepEqual(body['head'], { seq: 3, hash: head.hash, at: head.at });
    assert.deepEqual(body['anchor'], { seq: 2, hash: records[1]!.hash.slice(0, 12), ok: true });
    assert.equal(body['signedRecords'], 3);
    const list = JSON.parse((await runCli('pms-backup', ['audit', '--json'], env)).stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(
      list.map((r) => [r['seq'], r['operation'], r['signer']]),
      records.map((r) => [r.seq, r.operation, signer.description.fingerprint]),
    );
  });

  test('an anchor ahead of the repository exits 4 saying the log was rolled back; a malformed one is a usage error', async () => {
    const ahead = await runCli('pms-backup', ['audit', 'verify', '--anchor', `7:${'ab'.repeat(6)}`], env);
    assert.equal(ahead.code, 4);
    assert.match(
      ahead.stdout,
      /^AUDIT LOG BROKEN at record 7 \(audit\/000000000007\.json\): the repository's audit log ends at record 3, but record 7 was seen outside it/,
    );
    const malformed = await runCli('pms-backup', ['audit', 'verify', '--anchor', '7'], env);
    assert.equal(malformed.code, 64);
    assert.match(malformed.stderr, /PMS_ERR_USAGE: --anchor "7" is not SEQ:HASH/);
  });

  test('a record whose signature was removed: verify exits 4 naming it, and audit lists it as UNTRUSTED', async () => {
    const storage = new FsStorage(repo);
    const saved = await storage.getBytes(signatureKey(auditKey(2)));
    await storage.delete(signatureKey(auditKey(2)));
    try {
      const result = await runCli('pms-backup', ['audit', 'verify'], env);
      assert.equal(result.code, 4);
      assert.match(result.stdout, /^AUDIT LOG BROKEN at record 2 \(audit\/000000000002\.json\): audit\/000000000002\.json is not signed/);
      const list = await runCli('pms-backup', ['audit'], env);
      assert.equal(list.code, 0);
      assert.match(list.stdout.split('\n')[1] ?? '', /verify .*UNTRUSTED: not signed$/);
    } finally {
      await storage.putBytes(signatureKey(auditKey(2)), saved);
    }
  });
});

test('parseAuditAnchor takes SEQ:HASH with 12 to 64 hex digits, lower-cased', () => {
  assert.deepEqual(parseAuditAnchor('42:0A1B2C3D4E5F'), { seq: 42, hash: '0a1b2c3d4e5f' });
  assert.deepEqual(parseAuditAnchor(`1:${'f'.repeat(64)}`), { seq: 1, hash: 'f'.repeat(64) });
  for (const bad of ['42', '42:0a1b', '0:0a1b2c3d4e5f', 'x:0a1b2c3d4e5f', `1:${'f'.repeat(65)}`, '42:0a1b2c3d4e5g']) {
    assert.throws(
      () => parseAuditAnchor(bad),
      (e: unknown) => isPmsError(e, 'PMS_ERR_USAGE'),
      bad,
    );
  }
});
