import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { z } from 'zod';
import { BACKUPS_PREFIX } from '../../repository/layout.js';
import { loadBackupConfig } from '../../config/config.js';
import { MONITORING_DIR } from './rule-files.js';

// The deploy/s3 files are applied by hand with the AWS CLI (docs/s3-bucket.md); this test keeps
// them consistent with the code. No local S3 evaluates lifecycle rules or bucket policies, so
// their effect on AWS is checked by the commands in that document, not here.

const REPO_ROOT = join(MONITORING_DIR, '..', '..');
const S3_DIR = join(REPO_ROOT, 'deploy', 's3');
const BUCKET = 'pms-production-backups';
/** Days the lifecycle backstop waits beyond retention for a broken prune to be fixed. */
const MARGIN_DAYS = 7;

const readJson = (name: string): unknown => JSON.parse(readFileSync(join(S3_DIR, name), 'utf8'));

const lifecycleSchema = z.strictObject({
  Rules: z.array(
    z.strictObject({
      ID: z.string().min(1).max(255),
      Filter: z.strictObject({ Prefix: z.string() }),
      Status: z.enum(['Enabled', 'Disabled']),
      Expiration: z
        .union([z.strictObject({ Days: z.number().int().positive() }), z.strictObject({ ExpiredObjectDeleteMarker: z.literal(true) })])
        .optional(),
      NoncurrentVersionExpiration: z.strictObject({ NoncurrentDays: z.number().int().positive() }).optional(),
      AbortIncompleteMultipartUpload: z.strictObject({ DaysAfterInitiation: z.number().int().positive() }).optional(),
    }),
  ),
});

const statementSchema = z.strictObject({
  Sid: z.string().regex(/^[A-Za-z0-9]+$/),
  Effect: z.enum(['Allow', 'Deny']),
  Principal: z.literal('*'),
  Action: z.union([z.string(), z.array(z.string())]),
  Resource: z.union([z.string(), z.array(z.string())]),
  Condition: z.record(z.string(), z.record(z.string(), z.string())),
});
const policySchema = z.strictObject({ Version: z.literal('2012-10-17'), Id: z.string(), Statement: z.array(statementSchema) });

const lifecycle = lifecycleSchema.parse(readJson('backup-lifecycle.json'));
const policy = policySchema.parse(readJson('bucket-policy.json'));

test('the lifecycle expires backups at the default retention plus a 7-day margin, never earlier', () => {
  const retentionDays = loadBackupConfig({}).retentionDays;
  const expiring = lifecycle.Rules.filter((r) => r.Status === 'Enabled' && r.Expiration !== undefined && 'Days' in r.Expiration);
  assert.equal(expiring.length, 1, 'exactly one rule expires current objects');
  const rule = expiring[0];
  assert.ok(rule?.Expiration && 'Days' in rule.Expiration);
  assert.equal(rule.Expiration.Days, retentionDays + MARGIN_DAYS);
});

test('only backups expire: the rule is limited to the repository layout backups/ prefix, so audit records are kept', () => {
  const expiring = lifecycle.Rules.filter((r) => r.Expiration !== undefined && 'Days' in r.Expiration);
  assert.deepEqual(
    expiring.map((r) => r.Filter.Prefix),
    [BACKUPS_PREFIX],
  );
});

test('incomplete multipart uploads anywhere in the bucket are aborted after 1 day', () => {
  const abort = lifecycle.Rules.filter((r) => r.Status === 'Enabled' && r.AbortIncompleteMultipartUpload !== undefined);
  assert.deepEqual(
    abort.map((r) => [r.Filter.Prefix, r.AbortIncompleteMultipartUpload?.DaysAfterInitiation]),
    [['', 1]],
  );
});

test('noncurrent versions expire bucket-wide and keep deleted backups recoverable for at least a retention period', () => {
  const retentionDays = loadBackupConfig({}).retentionDays;
  const noncurrent = lifecycle.Rules.filter((r) => r.Status === 'Enabled' && r.NoncurrentVersionExpiration !== undefined);
  assert.equal(noncurrent.length, 1);
  assert.equal(noncurrent[0]?.Filter.Prefix, '');
  assert.ok((noncurrent[0]?.NoncurrentVersionExpiration?.NoncurrentDays ?? 0) >= retentionDays);
});

test('rule IDs are unique', () => {
  const ids = lifecycle.Rules.map((r) => r.ID);
  assert.equal(new Set(ids).size, ids.length);
});

test('the bucket policy denies non-TLS access to the bucket and every object', () => {
  const tls = policy.Statement.filter((s) => s.Condition['Bool']?.['aws:SecureTransport'] === 'false');
  assert.equal(tls.length, 1);
  assert.equal(tls[0]?.Effect, 'Deny');
  assert.equal(tls[0]?.Action, 's3:*');
  assert.deepEqual(tls[0]?.Resource, [`arn:aws:s3:::${BUCKET}`, `arn:aws:s3:::${BUCKET}/*`]);
});

test('the bucket policy denies uploads without the SSE header and uploads asking for anything but AES256', () => {
  const uploads = policy.Statement.filter((s) => s.Effect === 'Deny' && s.Action === 's3:PutObject');
  assert.ok(uploads.every((s) => s.Resource === `arn:aws:s3:::${BUCKET}/*`));
  assert.ok(
    uploads.some((s) => s.Condition['Null']?.['s3:x-amz-server-side-encryption'] === 'true'),
    'missing header is denied',
  );
  assert.ok(
    uploads.some((s) => s.Condition['StringNotEquals']?.['s3:x-amz-server-side-encryption'] === 'AES256'),
    'other algorithms are denied',
  );
  assert.ok(
    policy.Statement.every((s) => s.Effect === 'Deny'),
    'the policy only restricts; access is granted by IAM',
  );
});

test('default encryption, the policy and the docs agree on AES256 and the bucket name', () => {
  const encryption = z
    .strictObject({ Rules: z.array(z.strictObject({ ApplyServerSideEncryptionByDefault: z.strictObject({ SSEAlgorithm: z.string() }) })) })
    .parse(readJson('bucket-encryption.json'));
  assert.deepEqual(
    encryption.Rules.map((r) => r.ApplyServerSideEncryptionByDefault.SSEAlgorithm),
    ['AES256'],
  );
  z.strictObject({
    BlockPublicAcls: z.literal(true),
    IgnorePublicAcls: z.literal(true),
    BlockPublicPolicy: z.literal(true),
    RestrictPublicBuckets: z.literal(true),
  }).parse(readJson('public-access-block.json'));
  const doc = readFileSync(join(REPO_ROOT, 'docs', 's3-bucket.md'), 'utf8');
  assert.match(doc, new RegExp(`BUCKET=${BUCKET}\\b`));
  for (const file of ['backup-lifecycle.json', 'bucket-policy.json', 'bucket-encryption.json', 'public-access-block.json']) {
    assert.ok(doc.includes(`file://deploy/s3/${file}`), `docs/s3-bucket.md applies ${file}`);
  }
  assert.match(doc, /put-bucket-versioning[\s\S]*Status=Enabled/);
});
