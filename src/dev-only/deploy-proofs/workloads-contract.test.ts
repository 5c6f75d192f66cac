import { execFileSync, spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import { loadDecryptionKeys } from '../../crypto/keys.js';
import { type TrustedSigners, loadSigningKey, loadTrustedSigners } from '../../crypto/signing.js';
import { readEncrypted } from '../../pipeline/open-encrypted.js';
import { SANDBOX_OS_USER } from '../../postgres/sandbox.js';
import { freePort } from '../../postgres/free-port.js';
import { listBackups } from '../../repository/backup-catalog.js';
import { readSignedRecord } from '../../repository/signed-record.js';
import { WAL_PREFIX, WAL_SYSTEM_KEY, walFileOfKey } from '../../repository/wal-layout.js';
import { openStorage } from '../../storage/open-storage.js';
import type { Storage } from '../../storage/storage.js';
import { type PushgatewayHarness, startPushgateway } from '../../testing/pushgateway-harness.js';
import { type CliResult, binPath, runCli } from '../../testing/run-cli.js';
import { S3RVER_ACCESS_KEY_ID, S3RVER_SECRET_ACCESS_KEY, type S3rverHarness, startS3rver } from '../../testing/s3rver-harness.js';
import { probeSigningNeeds } from './command-needs.js';
import { type ConfiguredPostgres, startConfiguredPostgres } from './configured-postgres.js';
import type { Manifest } from './manifest.js';
import { DEPLOY_DIR, renderKustomization } from './render.js';
import {
  type Invocation,
  type SigningNeeds,
  type SigningRole,
  keyPlacementViolations,
  pmsBackupInvocations,
  signingRoleOf,
} from './signing-key-placement.js';
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
let prod: Manifest[];
let postgres: ConfiguredPostgres | undefined;
let s3: S3rverHarness | undefined;
let drS3: S3rverHarness | undefined;
let gateway: PushgatewayHarness | undefined;
let root: string;
let telemetryPort: number;
let verifySocketDir: string;
let telemetryMetricsPort: number;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'pms-workloads-'));
  const [dev, rendered] = await Promise.all([
    renderKustomization(join(DEPLOY_DIR, 'overlays', 'dev')),
    renderKustomization(join(DEPLOY_DIR, 'overlays', 'prod')),
  ]);
  prod = rendered;
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
  verifySocketDir = mkdtempSync(join(tmpdir(), 'pms-verify-socket-'));
  chmodSync(verifySocketDir, 0o777);
  telemetryMetricsPort = await freePort();
});

after(async () => {
  await Promise.allSettled([postgres?.destroy(), s3?.destroy(), drS3?.destroy(), gateway?.stop()]);
  rmSync(root, { recursive: true, force: true });
  if (verifySocketDir) rmSync(verifySocketDir, { recursive: true, force: true });
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
      BACKUP_VERIFY_SERVER_SOCKET_DIR: verifySocketDir,
      TELEMETRY_METRICS_PORT: String(telemetryMetricsPort),
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

function invocationKey(invocation: Invocation): string {
  return `${invocation.owner} ${invocation.container}: pms-backup ${invocation.argv.join(' ')}`;
}

/** A copy of the objects with one pod template changed, for negative tests. */
function withPod(from: readonly Manifest[], owner: string, change: (spec: Record<string, any>) => void): Manifest[] {
  return from.map((o) => {
    if (`${o.kind}/${o.metadata.name}` !== owner) return o;
    const copy = structuredClone(o) as Record<string, any>;
    change(o.kind === 'CronJob' ? copy['spec'].jobTemplate.spec.template.spec : copy['spec'].template.spec);
    return copy as Manifest;
  });
}

function containerSpec(spec: Record<string, any>, name: string): Record<string, any> {
  const found = (spec['containers'] as Array<Record<string, any>>).find((c) => c['name'] === name);
  assert.ok(found, `container ${name}`);
  return found;
}

describe('each workload gets exactly the signing keys its command needs', () => {
  /** Keyed by invocationKey: what each command refuses to start without, from pms-backup itself. */
  const needs = new Map<string, SigningNeeds>();
  const needsOf = (invocation: Invocation): SigningNeeds => {
    const found = needs.get(invocationKey(invocation));
    assert.ok(found, `needs of ${invocationKey(invocation)} were probed`);
    return found;
  };

  before(async () => {
    for (const invocation of pmsBackupInvocations(objects)) {
      const c = container(invocation.owner, invocation.container);
      needs.set(invocationKey(invocation), await probeSigningNeeds(invocation, c.env));
    }
  });

  test('pms-backup names what each deployed command needs: producers a signing key, readers the trusted signers', () => {
    assert.deepEqual(Object.fromEntries([...needs].map(([key, n]) => [key, `${n.signing ? 'sign' : '-'} ${n.trust ? 'trust' : '-'}`])), {
      'CronJob/pms-backup pms-backup: pms-backup create': 'sign -',
      'CronJob/pms-backup-base pms-backup: pms-backup base-backup': 'sign trust',
      'CronJob/pms-backup-monitor pms-backup: pms-backup monitor': '- trust',
      'CronJob/pms-backup-verify pms-backup: pms-backup verify latest': 'sign trust',
      'CronJob/pms-backup-verify verify-server: pms-backup verify-server --client-user 10001': '- -',
      'CronJob/pms-backup-prune pms-backup: pms-backup prune': 'sign trust',
      'CronJob/pms-backup-copy pms-backup: pms-backup copy': 'sign trust',
      'CronJob/pms-backup-dr-prune pms-backup: pms-backup prune': 'sign trust',
      'StatefulSet/postgres postgres: pms-backup wal-push pg_wal/000000010000000000000001': 'sign trust',
    });
  });

  test('dev and prod: the jobs sign with pms-backup-signing, the server with pms-wal-signing, readers trust pms-trusted-signers, and nothing more', () => {
    assert.deepEqual(pmsBackupInvocations(prod).map(invocationKey), pmsBackupInvocations(objects).map(invocationKey));
    assert.deepEqual(keyPlacementViolations(objects, needsOf), []);
    assert.deepEqual(keyPlacementViolations(prod, needsOf), []);
  });

  test('dev: the jobs and the server hold two different keys, each opens with its mounted passphrase, and both are trusted', async () => {
    const fingerprints = new Map<SigningRole, Set<string>>([
      ['jobs', new Set()],
      ['wal', new Set()],
    ]);
    // Unlocking is slow by design (gpg's S2K): the same files, as most jobs mount, are opened once.
    const opened = new Map<string, Promise<string>>();
    for (const invocation of pmsBackupInvocations(objects)) {
      if (!needsOf(invocation).signing) continue;
      const c = container(invocation.owner, invocation.container);
      const keyFile = c.env['BACKUP_SIGNING_KEY_FILE'];
      assert.ok(keyFile);
      const passphraseFile = c.env['BACKUP_SIGNING_PASSPHRASE_FILE'];
      const content = `${readFileSync(keyFile, 'utf8')}\0${passphraseFile === undefined ? '' : readFileSync(passphraseFile, 'utf8')}`;
      // The dev keys are passphrase-protected, so this also proves the passphrase file is the key's.
      if (!opened.has(content))
        opened.set(
          content,
          loadSigningKey(keyFile, passphraseFile).then((k) => k.description.fingerprint),
        );
      fingerprints.get(signingRoleOf(invocation))?.add(await (opened.get(content) ?? ''));
    }
    const [jobs, wal] = [[...(fingerprints.get('jobs') ?? [])], [...(fingerprints.get('wal') ?? [])]];
    assert.equal(jobs.length, 1, `every job signs with the same key: ${jobs.join(', ')}`);
    assert.equal(wal.length, 1, `the server signs with one key: ${wal.join(', ')}`);
    assert.notEqual(jobs[0], wal[0], "the WAL key is not the jobs' key");
    const monitor = container('CronJob/pms-backup-monitor', 'pms-backup');
    const trusted = await loadTrustedSigners(monitor.env['BACKUP_TRUSTED_SIGNERS_FILE'] ?? '');
    assert.deepEqual(trusted.descriptions.map((d) => d.fingerprint).sort(), [jobs[0], wal[0]].sort());
  });

  const brokenCases: Array<[string, (from: readonly Manifest[]) => Manifest[], RegExp]> = [
    [
      'a producer without BACKUP_SIGNING_KEY_FILE',
      (from) =>
        withPod(from, 'CronJob/pms-backup-base', (spec) => {
          const c = containerSpec(spec, 'pms-backup');
          c['env'] = c['env'].filter((e: Record<string, unknown>) => e['name'] !== 'BACKUP_SIGNING_KEY_FILE');
        }),
      /CronJob\/pms-backup-base container pms-backup: its command signs but BACKUP_SIGNING_KEY_FILE is not set/,
    ],
    [
      'a consumer without BACKUP_TRUSTED_SIGNERS_FILE',
      (from) =>
        withPod(from, 'CronJob/pms-backup-monitor', (spec) => {
          const c = containerSpec(spec, 'pms-backup');
          c['env'] = c['env'].filter((e: Record<string, unknown>) => e['name'] !== 'BACKUP_TRUSTED_SIGNERS_FILE');
        }),
      /CronJob\/pms-backup-monitor container pms-backup: its command checks signatures but BACKUP_TRUSTED_SIGNERS_FILE is not set/,
    ],
    [
      'wal-push without BACKUP_TRUSTED_SIGNERS_FILE',
      (from) =>
        withPod(from, 'StatefulSet/postgres', (spec) => {
          const c = containerSpec(spec, 'postgres');
          c['env'] = c['env'].filter((e: Record<string, unknown>) => e['name'] !== 'BACKUP_TRUSTED_SIGNERS_FILE');
        }),
      /StatefulSet\/postgres container postgres: its command checks signatures but BACKUP_TRUSTED_SIGNERS_FILE is not set/,
    ],
    [
      "the jobs' signing key mounted in the PostgreSQL pod",
      (from) =>
        withPod(from, 'StatefulSet/postgres', (spec) => {
          const volume = (spec['volumes'] as Array<Record<string, any>>).find((v) => v['name'] === 'wal-signing-key');
          assert.ok(volume);
          volume['secret'].secretName = 'pms-backup-signing';
        }),
      /StatefulSet\/postgres container postgres: mounts the jobs signing key \(pms-backup-signing\) but does not sign with it/,
    ],
    [
      "the jobs' signing key beside the WAL key in the PostgreSQL pod, even unmounted",
      (from) =>
        withPod(from, 'StatefulSet/postgres', (spec) => {
          spec['volumes'].push({ name: 'spare', secret: { secretName: 'pms-backup-signing', defaultMode: 0o440 } });
        }),
      /StatefulSet\/postgres: volume spare holds the jobs signing key, which no container of the pod signs with/,
    ],
    [
      'the WAL signing key in the exporter beside PostgreSQL',
      (from) =>
        withPod(from, 'StatefulSet/postgres', (spec) => {
          containerSpec(spec, 'exporter')['volumeMounts'].push({
            name: 'wal-signing-key',
            mountPath: '/run/secrets/pms-wal-signing',
            readOnly: true,
          });
        }),
      /StatefulSet\/postgres container exporter: mounts the wal signing key \(pms-wal-signing\) but does not sign with it/,
    ],
    [
      'the WAL signing key in a job',
      (from) =>
        withPod(from, 'CronJob/pms-backup-prune', (spec) => {
          const volume = (spec['volumes'] as Array<Record<string, any>>).find((v) => v['name'] === 'signing-key');
          assert.ok(volume);
          volume['secret'].secretName = 'pms-wal-signing';
        }),
      /CronJob\/pms-backup-prune container pms-backup: BACKUP_SIGNING_KEY_FILE must be key signing-key of Secret pms-backup-signing \(the jobs key\), not Secret pms-wal-signing key signing-key/,
    ],
    [
      'a signing key in monitor',
      (from) =>
        withPod(from, 'CronJob/pms-backup-monitor', (spec) => {
          const c = containerSpec(spec, 'pms-backup');
          c['env'].push({ name: 'BACKUP_SIGNING_KEY_FILE', value: '/run/secrets/pms-backup-signing/signing-key' });
          c['volumeMounts'].push({ name: 'signing-key', mountPath: '/run/secrets/pms-backup-signing', readOnly: true });
          spec['volumes'].push({ name: 'signing-key', secret: { secretName: 'pms-backup-signing', defaultMode: 0o440 } });
        }),
      /CronJob\/pms-backup-monitor container pms-backup: BACKUP_SIGNING_KEY_FILE is set, but its command signs nothing/,
    ],
    [
      'a signing key in the environment',
      (from) =>
        withPod(from, 'CronJob/pms-backup', (spec) => {
          containerSpec(spec, 'pms-backup')['env'].push({
            name: 'SIGNING_KEY',
            valueFrom: { secretKeyRef: { name: 'pms-backup-signing', key: 'signing-key' } },
          });
        }),
      /CronJob\/pms-backup container pms-backup: SIGNING_KEY puts a signing key into the environment/,
    ],
    [
      'trusted signers read from somewhere else than the ConfigMap',
      (from) =>
        withPod(from, 'CronJob/pms-backup-verify', (spec) => {
          const c = containerSpec(spec, 'pms-backup');
          const entry = (c['env'] as Array<Record<string, unknown>>).find((e) => e['name'] === 'BACKUP_TRUSTED_SIGNERS_FILE');
          assert.ok(entry);
          entry['value'] = '/run/secrets/pms-backup/gpg-public-key';
        }),
      /CronJob\/pms-backup-verify container pms-backup: BACKUP_TRUSTED_SIGNERS_FILE must come from ConfigMap pms-trusted-signers, not Secret pms-backup-secrets key gpg-public-key/,
    ],
  ];
  for (const [name, breakIt, expected] of brokenCases) {
    test(`${name} is rejected, in dev and prod`, () => {
      for (const rendered of [objects, prod]) {
        const found = keyPlacementViolations(breakIt(rendered), needsOf);
        assert.ok(
          found.some((f) => expected.test(f)),
          `expected ${expected} in ${JSON.stringify(found)}`,
        );
      }
    });
  }
});

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
      // Prometheus scrapes the metrics port (PodMonitor port "metrics"); the API port has no /metrics.
      assert.equal((await fetch(`http://127.0.0.1:${telemetryMetricsPort}/metrics`)).status, 200);
      assert.equal((await fetch(`http://127.0.0.1:${telemetryPort}/metrics`)).status, 404);
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
  test('CronJob pms-backup-base runs (pms-backup base-backup)', { timeout: 600_000 }, async () => {
    await runContainer('CronJob/pms-backup-base', 'pms-backup');
  });

  // The verify pod's two containers share the socket emptyDir (one directory for both here).
  // verify-server runs as pms-sandbox, standing for its uid 10002; verify runs as us, standing
  // for 10001, so the sidecar's --client-user names us (verify-server.test.ts runs the two
  // unprivileged uids themselves).
  test('CronJob pms-backup-verify runs (pms-backup verify latest) against its verify-server sidecar', { timeout: 600_000 }, async () => {
    const sidecar = container('CronJob/pms-backup-verify', 'verify-server');
    assert.equal(sidecar.env['BACKUP_VERIFY_SERVER_SOCKET_DIR'], verifySocketDir);
    const args = sidecar.command.slice(1).map((a, i, all) => (all[i - 1] === '--client-user' ? 'root' : a));
    const server = spawn(process.execPath, [binPath('pms-backup'), ...args], {
      env: { PATH: process.env['PATH'], ...sidecar.env },
      uid: Number(execFileSync('id', ['-u', SANDBOX_OS_USER]).toString()),
      gid: Number(execFileSync('id', ['-g', SANDBOX_OS_USER]).toString()),
      cwd: '/',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let serverErr = '';
    server.stderr.setEncoding('utf8').on('data', (c: string) => (serverErr += c));
    try {
      const result = await runContainer('CronJob/pms-backup-verify', 'pms-backup');
      assert.match(result.stdout, /^ok {3}sandbox +PostgreSQL 15 ran in verify-server as uid \d+, apart from pms-backup \(uid 0\)/m);
    } finally {
      const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
      server.kill('SIGTERM');
      assert.equal(await exited, 0, serverErr);
    }
  });

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

  test('what the workloads wrote is signed by the key each holds: WAL and wal/system.json by the server, backups and verifications by the jobs, in both buckets', {
    timeout: 600_000,
  }, async () => {
    assert.ok(s3 && drS3);
    const signerOf = async (owner: string, name: string): Promise<string> => {
      const c = container(owner, name);
      return (await loadSigningKey(c.env['BACKUP_SIGNING_KEY_FILE'] ?? '', c.env['BACKUP_SIGNING_PASSPHRASE_FILE'])).description
        .fingerprint;
    };
    const walKey = await signerOf('StatefulSet/postgres', 'postgres');
    const jobsKey = await signerOf('CronJob/pms-backup', 'pms-backup');
    const verify = container('CronJob/pms-backup-verify', 'pms-backup');
    const trusted: TrustedSigners = await loadTrustedSigners(verify.env['BACKUP_TRUSTED_SIGNERS_FILE'] ?? '');
    const keys = await loadDecryptionKeys(verify.env['BACKUP_GPG_PRIVATE_KEY_FILE'] ?? '', verify.env['BACKUP_GPG_PASSPHRASE_FILE']);
    const discard = (): Writable => new Writable({ write: (_chunk, _encoding, done) => done() });

    const check = async (storage: Storage): Promise<void> => {
      const system = await readSignedRecord(storage, WAL_SYSTEM_KEY, trusted);
      assert.equal(system.signature?.signer, walKey, `${WAL_SYSTEM_KEY} in ${storage.location}`);
      const walSigners = new Map<string, string | undefined>();
      for await (const object of storage.list(WAL_PREFIX)) {
        if (walFileOfKey(object.key) === undefined) continue;
        const [, facts] = await readEncrypted({ storage, key: object.key, keys, trust: { trusted }, decompress: true }, (plaintext) =>
          pipeline(plaintext, discard()),
        );
        walSigners.set(object.key, facts.signer);
      }
      assert.ok(walSigners.size > 0, `WAL in ${storage.location}`);
      assert.deepEqual([...new Set(walSigners.values())], [walKey], `signers of ${[...walSigners.keys()].join(', ')}`);

      const backups = await listBackups(storage, { trusted });
      assert.ok(backups.length >= 2, `backups in ${storage.location}`);
      for (const backup of backups) assert.deepEqual([backup.status, backup.signer], ['complete', jobsKey], backup.id);
    };
    const primary = openStorage(s3.repository('patient-telemetry'));
    const dr = openStorage(drS3.repository('patient-telemetry'));
    try {
      await check(primary);
      await check(dr);
      const records: string[] = [];
      for await (const object of primary.list('backups/'))
        if (/\/verification-\d{8}T\d{6}Z\.json$/.test(object.key)) records.push(object.key);
      assert.ok(records.length > 0, 'verify stored a verification record');
      for (const key of records) assert.equal((await readSignedRecord(primary, key, trusted)).signature?.signer, jobsKey, key);
    } finally {
      await Promise.allSettled([primary.close(), dr.close()]);
    }
  });
});
