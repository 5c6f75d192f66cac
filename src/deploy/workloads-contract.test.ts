import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../postgres/throwaway-cluster.js';
import { type PushgatewayHarness, startPushgateway } from '../testing/pushgateway-harness.js';
import { type CliResult, binPath, runCli } from '../testing/run-cli.js';
import { S3RVER_ACCESS_KEY_ID, S3RVER_SECRET_ACCESS_KEY, type S3rverHarness, startS3rver } from '../testing/s3rver-harness.js';
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
function container(owner: string, name: string): MaterialisedContainer {
  assert.ok(postgres && s3 && drS3 && gateway);
  containers += 1;
  return materialiseContainer(objects, findPod(objects, owner), name, {
    root: join(root, `container-${containers}`),
    envOverrides: {
      POSTGRES_HOST: 'localhost',
      POSTGRES_PORT: String(postgres.cluster.port),
      S3_ENDPOINT: s3.endpoint,
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
    const child = spawn(process.execPath, [binPath(program), ...args], { env: { PATH: process.env['PATH'], ...c.env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      let status = 0;
      // The readiness probe's own path; poll until the server answers or exits.
      for (let attempt = 0; attempt < 200 && child.exitCode === null; attempt += 1) {
        status = await fetch(`http://127.0.0.1:${telemetryPort}/readyz`).then((r) => r.status, () => 0);
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
    assert.ok(stored.some((f) => f.includes('manifest')), `no manifest in the bucket: ${stored.join(', ')}`);
    assert.ok(gateway);
    const pushed = await gateway.find('pms_backup_last_run_success', { job: 'pms-backup', command: 'create' });
    assert.deepEqual(pushed.map((s) => s.value), [1]);
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

  test('CronJob pms-backup-copy runs (pms-backup copy): every complete backup lands in the DR bucket, sha256-checked, with the DR credentials and endpoint', { timeout: 600_000 }, async () => {
    const result = await runContainer('CronJob/pms-backup-copy', 'pms-backup');
    assert.match(result.stdout, /^copied 2 backup\(s\) and [1-9]\d* WAL file\(s\) .* to s3:\/\/pms-dev-backups-dr\/patient-telemetry; .*every copy's sha256 checked$/m);
    assert.ok(drS3);
    const stored = readdirSync(join(drS3.directory, 'pms-dev-backups-dr'), { recursive: true }).map(String);
    assert.ok(stored.filter((f) => f.includes('manifest')).length >= 2, `DR bucket: ${stored.join(', ')}`);
    // Run again, as the next night would: nothing left to copy.
    const again = await runContainer('CronJob/pms-backup-copy', 'pms-backup');
    assert.match(again.stdout, /^copied 0 backup\(s\) and \d+ WAL file\(s\)/m);
    assert.ok(gateway);
    const pushed = await gateway.find('pms_backup_last_run_success', { job: 'pms-backup', command: 'copy' });
    assert.deepEqual(pushed.map((s) => s.value), [1]);
  });

  test('CronJob pms-backup-monitor runs (pms-backup monitor) and its dr-copy check passes', { timeout: 600_000 }, async () => {
    const result = await runContainer('CronJob/pms-backup-monitor', 'pms-backup');
    assert.match(result.stdout, /^ok {3}dr-copy +s3:\/\/pms-dev-backups-dr\/patient-telemetry holds every complete backup$/m);
    assert.ok(gateway);
    const lag = await gateway.find('pms_backup_dr_lag_seconds', { job: 'pms-backup', command: 'monitor' });
    assert.deepEqual(lag.map((s) => s.value), [0]);
  });

  test('CronJob pms-backup-prune runs (pms-backup prune)', { timeout: 600_000 }, async () => {
    await runContainer('CronJob/pms-backup-prune', 'pms-backup');
  });
});
