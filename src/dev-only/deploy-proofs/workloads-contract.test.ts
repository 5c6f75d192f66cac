import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../postgres/throwaway-cluster.js';
import { type PushgatewayHarness, startPushgateway } from '../../testing/pushgateway-harness.js';
import { type CliResult, binPath, runCli } from '../../testing/run-cli.js';
import { S3RVER_ACCESS_KEY_ID, S3RVER_SECRET_ACCESS_KEY, type S3rverHarness, startS3rver } from '../../testing/s3rver-harness.js';
import { type ConfiguredPostgres, startConfiguredPostgres } from './configured-postgres.js';
import type { Manifest } from './manifest.js';
import { DEPLOY_DIR, renderKustomization } from './render.js';
import { type MaterialisedContainer, findPod, materialiseContainer } from './workload-environment.js';

/**
 * Contract test: each CronJob's and Deployment's container, exactly as the dev overlay renders it
 * (command, environment, mounted Secrets and ConfigMaps), runs successfully here against a real
 * PostgreSQL configured by the StatefulSet (TLS, pg_hba.conf, init scripts that create the
 * roles), s3rver in place of MinIO and a real Pushgateway. Only what cannot be the same on this
 * machine is replaced: network addresses, the listening port, and s3rver's fixed credentials.
 * The disaster-recovery bucket (a second bucket on dev's MinIO) is a second s3rver, so a copy
 * that used the primary's endpoint instead of BACKUP_DR_S3_ENDPOINT would fail.
 */
let objects: Manifest[];
let postgres: ConfiguredPostgres | undefined;
let s3: S3rverHarness | undefined;
let drS3: S3rverHarness | undefined;
let gateway: PushgatewayHarness | undefined;
let root: string;
let telemetryPort: number;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'pms-workloads-'));
  const dev = await renderKustomization(join(DEPLOY_DIR, 'overlays', 'dev'));
  s3 = await startS3rver({ bucket: 'pms-dev-backups', parentDir: root });
  drS3 = await startS3rver({ bucket: 'pms-dev-backups-dr', parentDir: root });
  gateway = await startPushgateway();
  // The server archives WAL with the container's own archive_command and environment.
  postgres = await startConfiguredPostgres(dev, {
    runInitScripts: true,
    archiving: { pmsBackupBin: binPath('pms-backup') },
    envOverrides: { S3_ENDPOINT: s3.endpoint, PUSHGATEWAY_URL: gateway.url },
    secretOverrides: SECRET_OVERRIDES,
  });
  objects = [...dev, postgres.tlsSecret];
  telemetryPort = await freePort();
});

after(async () => {
  await Promise.allSettled([postgres?.destroy(), s3?.destroy(), drS3?.destroy(), gateway?.stop()]);
  rmSync(root, { recursive: true, force: true });
});

const SECRET_OVERRIDES = {
  'pms-backup-secrets/aws-access-key-id': S3RVER_ACCESS_KEY_ID,
  'pms-backup-secrets/aws-secret-access-key': S3RVER_SECRET_ACCESS_KEY,
  'pms-backup-dr-secrets/aws-access-key-id': S3RVER_ACCESS_KEY_ID,
  'pms-backup-dr-secrets/aws-secret-access-key': S3RVER_SECRET_ACCESS_KEY,
};

let containers = 0;
/**
 * Where each rendered S3_ENDPOINT points: the DR prune's S3_ENDPOINT is dev's dr-s3-endpoint
 * (the DR bucket's MinIO), every other job's is s3-endpoint.
 */
function endpointFor(owner: string): string {
  assert.ok(s3 && drS3);
  return owner === 'CronJob/pms-backup-dr-prune' ? drS3.endpoint : s3.endpoint;
}

function container(owner: string, name: string): MaterialisedContainer {
  assert.ok(postgres && s3 && drS3 && gateway);
  containers += 1;
  return materialiseContainer(objects, findPod(objects, owner), name, {
    root: join(root, `container-${containers}`),
    envOverrides: {
      POSTGRES_HOST: 'localhost',
      POSTGRES_PORT: String(postgres.cluster.port),
      S3_ENDPOINT: endpointFor(owner),
      BACKUP_DR_S3_ENDPOINT: drS3.endpoint,
      PUSHGATEWAY_URL: gateway.url,
      TELEMETRY_PORT: String(telemetryPort),
    },
    secretOverrides: SECRET_OVERRIDES,
  });
}

function programOf(command: readonly string[]): ['pms-backup' | 'pms-telemetry', string[]] {
  const [program, ...args] = command;
  assert.ok(program === 'pms-backup' || program === 'pms-telemetry', `unexpected program ${String(program)}`);
  return [program, args];
}

async function runContainer(owner: string, name: string): Promise<CliResult> {
  const c = container(owner, name);
  const [program, args] = programOf(c.command);
  const result = await runCli(program, args, c.env);
  assert.equal(result.code, 0, `${owner} ${name}: ${c.command.join(' ')} exited ${result.code}\n${result.stdout}\n${result.stderr}`);
  return result;
}

describe('dev workloads run as rendered', () => {
  test('the ingest API init container (pms-telemetry migrate) migrates the database over verify-full TLS', async () => {
    await runContainer('Deployment/pms-telemetry', 'migrate');
  });

  test('the ingest API container (pms-telemetry serve) becomes ready as the ingest login and stops cleanly on SIGTERM', async () => {
    const c = container('Deployment/pms-telemetry', 'api');
    const [program, args] = programOf(c.command);
    const child = spawn(process.execPath, [binPath(program), ...args], {
      env: { PATH: process.env['PATH'], ...c.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      let status = 0;
      // The readiness probe's own path; poll until the server answers or exits.
      for (let attempt = 0; attempt < 200 && child.exitCode === null; attempt += 1) {
        status = await fetch(`http://127.0.0.1:${telemetryPort}/readyz`).then(
          (r) => r.status,
          () => 0,
        );
        if (status === 200) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(status, 200, `serve never became ready: ${stderr}`);
      assert.equal((await fetch(`http://127.0.0.1:${telemetryPort}/healthz`)).status, 200);
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, stderr);
  });

  test('CronJob pms-telemetry-retention runs (pms-telemetry retention)', async () => {
    await runContainer('CronJob/pms-telemetry-retention', 'retention');
  });

  test('CronJob pms-backup runs (pms-backup create): an encrypted backup lands in the object store and metrics are pushed', async () => {
    await runContainer('CronJob/pms-backup', 'pms-backup');
    assert.ok(s3);
    const stored = readdirSync(s3.directory, { recursive: true }).map(String);
    assert.ok(
      stored.some((f) => f.includes('manifest')),
      `no manifest in the bucket: ${stored.join(', ')}`,
    );
    assert.ok(gateway);
    const pushed = await gateway.find('pms_backup_last_run_success', { job: 'pms-backup', command: 'create' });
    assert.deepEqual(
      pushed.map((s) => s.value),
      [1],
    );
  });

  // In dependency order: a base backup completes once archive_command has archived its WAL;
  // copy takes both backups to the DR bucket; monitor checks the verification verify just
  // stored and the DR copy's lag; prune keeps the newest backups.
  // The timeouts only stop a hang (a base backup waits for WAL archiving forever); they are not
  // performance thresholds.
  for (const [cronJob, subcommand] of [
    ['pms-backup-base', 'base-backup'],
    ['pms-backup-verify', 'verify'],
  ] as const) {
    test(`CronJob ${cronJob} runs (pms-backup ${subcommand})`, { timeout: 600_000 }, async () => {
      await runContainer(`CronJob/${cronJob}`, 'pms-backup');
    });
  }

  test('CronJob pms-backup-copy runs (pms-backup copy): every complete backup lands in the DR bucket, sha256-checked, with the DR credentials and endpoint', {
    timeout: 600_000,
  }, async () => {
    const result = await runContainer('CronJob/pms-backup-copy', 'pms-backup');
    assert.match(
      result.stdout,
      /^copied 2 backup\(s\) and [1-9]\d* WAL file\(s\) .* to s3:\/\/pms-dev-backups-dr\/patient-telemetry; .*every copy's sha256 checked$/m,
    );
    assert.ok(drS3);
    const stored = readdirSync(join(drS3.directory, 'pms-dev-backups-dr'), { recursive: true }).map(String);
    assert.ok(stored.filter((f) => f.includes('manifest')).length >= 2, `DR bucket: ${stored.join(', ')}`);
    // Run again, as the next night would: nothing left to copy.
    const again = await runContainer('CronJob/pms-backup-copy', 'pms-backup');
    assert.match(again.stdout, /^copied 0 backup\(s\) and \d+ WAL file\(s\)/m);
    assert.ok(gateway);
    const pushed = await gateway.find('pms_backup_last_run_success', { job: 'pms-backup', command: 'copy' });
    assert.deepEqual(
      pushed.map((s) => s.value),
      [1],
    );
  });

  test('CronJob pms-backup-monitor runs (pms-backup monitor) and its dr-copy check passes', { timeout: 600_000 }, async () => {
    const result = await runContainer('CronJob/pms-backup-monitor', 'pms-backup');
    assert.match(result.stdout, /^ok {3}dr-copy +s3:\/\/pms-dev-backups-dr\/patient-telemetry holds every complete backup$/m);
    assert.ok(gateway);
    const lag = await gateway.find('pms_backup_dr_lag_seconds', { job: 'pms-backup', command: 'monitor' });
    assert.deepEqual(
      lag.map((s) => s.value),
      [0],
    );
  });

  test('CronJob pms-backup-prune runs (pms-backup prune)', { timeout: 600_000 }, async () => {
    await runContainer('CronJob/pms-backup-prune', 'pms-backup');
  });

  test('CronJob pms-backup-dr-prune runs (pms-backup prune) on the DR bucket only: both copied backups kept, the primary untouched, and the next copy has nothing to re-copy', {
    timeout: 600_000,
  }, async () => {
    assert.ok(s3 && drS3 && gateway);
    const dr = drS3;
    const c = container('CronJob/pms-backup-dr-prune', 'pms-backup');
    assert.deepEqual(c.command, ['pms-backup', 'prune']);
    assert.equal(c.env['BACKUP_REPOSITORY'], 's3://pms-dev-backups-dr/patient-telemetry');
    assert.equal(c.env['BACKUP_RETENTION_DAYS'], '10');
    assert.equal(c.env['S3_ENDPOINT'], drS3.endpoint);
    const primaryBefore = readdirSync(s3.directory, { recursive: true }).map(String);
    const drManifests = (): string[] =>
      readdirSync(join(dr.directory, 'pms-dev-backups-dr'), { recursive: true })
        .map(String)
        .filter((f) => f.includes('manifest'))
        .sort();
    const manifestsBefore = drManifests();
    // WAL object keys in a bucket (s3rver keeps each object as files named after its key).
    const walKeys = (directory: string, bucket: string): Set<string> =>
      new Set(
        readdirSync(join(directory, bucket), { recursive: true })
          .map(String)
          .filter((f) => f.includes(`wal${sep}`))
          .map((f) => f.replace(/\._S3rver_.*$/, '')),
      );
    const drWalBefore = walKeys(dr.directory, 'pms-dev-backups-dr');

    const result = await runContainer('CronJob/pms-backup-dr-prune', 'pms-backup');
    // Fresh backups: each is the newest of its kind, nothing is old enough to go.
    assert.match(result.stdout, /^keep {9}\S+ base {5}newest complete base backup$/m);
    assert.match(result.stdout, /^keep {9}\S+ logical {2}newest complete logical backup$/m);
    // WAL from before the base backup's start segment goes, as it already went from the primary.
    const summary = /^0 to delete, 2 kept, 0 B freed; WAL: (\d+) file\(s\) deleted, kept from ([0-9A-F]{24})$/m.exec(result.stdout);
    assert.ok(summary, result.stdout);
    assert.deepEqual(drManifests(), manifestsBefore);
    const drWalAfter = walKeys(dr.directory, 'pms-dev-backups-dr');
    const walDeleted = [...drWalBefore].filter((k) => !drWalAfter.has(k));
    assert.equal(walDeleted.length > 0, Number(summary[1]) > 0, `deleted from the DR bucket: ${walDeleted.join(', ')}`);
    assert.ok(
      walDeleted.every((k) => (k.split(sep).pop() ?? '') < (summary[2] ?? '')),
      `only WAL before ${summary[2]}: ${walDeleted.join(', ')}`,
    );
    // Nothing the copy would bring back: the primary no longer has what DR prune deleted.
    const primaryWal = walKeys(s3.directory, 'pms-dev-backups');
    assert.deepEqual(
      walDeleted.filter((k) => primaryWal.has(k)),
      [],
      'DR prune deleted WAL the primary still holds',
    );
    const primaryAfter = new Set(readdirSync(s3.directory, { recursive: true }).map(String));
    assert.deepEqual(
      primaryBefore.filter((f) => !primaryAfter.has(f)),
      [],
      'nothing deleted from the primary bucket',
    );
    // Its outcome is pushed in its own group, apart from the primary prune's.
    const pushed = await gateway.find('pms_backup_last_run_success', {
      job: 'pms-backup',
      command: 'prune',
      instance: 'patient_telemetry-dr',
    });
    assert.deepEqual(
      pushed.map((s) => s.value),
      [1],
    );
    const primaryPrune = await gateway.find('pms_backup_last_run_success', {
      job: 'pms-backup',
      command: 'prune',
      instance: 'patient_telemetry',
    });
    assert.deepEqual(
      primaryPrune.map((s) => s.value),
      [1],
    );

    const again = await runContainer('CronJob/pms-backup-copy', 'pms-backup');
    assert.match(again.stdout, /^copied 0 backup\(s\)/m);
  });
});
