import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { runTool } from '../../process/tool-process.js';
import type { Manifest } from './manifest.js';
import { isRecord } from './manifest.js';
import { selectorMatches } from './label-selector.js';
import { containersOf, podTemplates } from './pod-templates.js';
import { findPod } from './workload-environment.js';
import { type Destination, ipBlocksOf, mayReach } from './network-reach.js';
import { policyViolations } from './policy.js';
import { canI } from './rbac.js';
import { DEPLOY_DIR, renderKustomization } from './render.js';
import { trustedSignersText } from './signing-key-placement.js';
import { validateManifest, validateManifests } from './schema-validation.js';
import { VERIFY_OWNER, verifyPodViolations } from './verify-pod.js';
import { shellFirstArchiveCommand } from '../../commands/wal-push/archive-command.js';
import { REPO_ROOT } from '../../testing/run-cli.js';

let dev: Manifest[];
let prod: Manifest[];
let gitops: Manifest[];

before(async () => {
  [dev, prod, gitops] = await Promise.all([
    renderKustomization(join(DEPLOY_DIR, 'overlays', 'dev')),
    renderKustomization(join(DEPLOY_DIR, 'overlays', 'prod')),
    renderKustomization(join(DEPLOY_DIR, 'gitops')),
  ]);
});

function find(objects: readonly Manifest[], kind: string, name: string): Manifest {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(found, `${kind}/${name} is rendered`);
  return found;
}

/** A deep copy with one change, for negative tests. */
function mutate(object: Manifest, change: (copy: Record<string, any>) => void): Manifest {
  const copy = structuredClone(object) as Record<string, any>;
  change(copy);
  return copy as Manifest;
}

function replaced(objects: readonly Manifest[], original: Manifest, replacement: Manifest): Manifest[] {
  return objects.map((o) => (o === original ? replacement : o));
}

describe('rendering', () => {
  test('both overlays render with kubectl kustomize into the patient-monitoring namespace', () => {
    for (const objects of [dev, prod]) {
      assert.ok(objects.length > 30);
      for (const o of objects)
        if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, 'patient-monitoring', `${o.kind}/${o.metadata.name}`);
    }
  });

  test("the CronJobs carry the seed's names and schedules and every job safety setting", () => {
    const expected: Record<string, [string, string[]]> = {
      'pms-backup': ['0 2 * * *', ['pms-backup', 'create']],
      'pms-backup-monitor': ['0 * * * *', ['pms-backup', 'monitor']],
      'pms-backup-verify': ['0 3 * * 0', ['pms-backup', 'verify', 'latest']],
      'pms-backup-base': ['0 1 * * *', ['pms-backup', 'base-backup']],
      'pms-backup-prune': ['0 5 * * *', ['pms-backup', 'prune']],
      'pms-backup-copy': ['30 4 * * *', ['pms-backup', 'copy']],
      'pms-backup-dr-prune': ['0 9 * * *', ['pms-backup', 'prune']],
      'pms-telemetry-retention': ['30 4 * * *', ['pms-telemetry', 'retention']],
    };
    for (const objects of [dev, prod]) {
      const cronJobs = objects.filter((o) => o.kind === 'CronJob');
      assert.deepEqual(cronJobs.map((c) => c.metadata.name).sort(), Object.keys(expected).sort());
      for (const cronJob of cronJobs) {
        const spec = cronJob['spec'] as Record<string, any>;
        const [schedule, command] = expected[cronJob.metadata.name] ?? ['', []];
        assert.equal(spec['schedule'], schedule);
        assert.equal(spec['concurrencyPolicy'], 'Forbid');
        assert.equal(typeof spec['startingDeadlineSeconds'], 'number');
        const job = spec['jobTemplate'].spec;
        for (const key of ['backoffLimit', 'activeDeadlineSeconds', 'ttlSecondsAfterFinished'])
          assert.equal(typeof job[key], 'number', `${cronJob.metadata.name} ${key}`);
        assert.deepEqual(job.template.spec.containers[0].command, command);
      }
    }
  });

  test('the DR copy runs after the nightly backups and before prune, and copies ciphertext with no decryption key or database login', () => {
    const minutes = (schedule: string): number => {
      const [minute, hour] = schedule.split(' ');
      return Number(hour) * 60 + Number(minute);
    };
    for (const objects of [dev, prod]) {
      const schedule = (name: string): number =>
        minutes(String((find(objects, 'CronJob', name)['spec'] as Record<string, unknown>)['schedule']));
      const copy = schedule('pms-backup-copy');
      assert.ok(copy > schedule('pms-backup-base') && copy > schedule('pms-backup'), 'copy after the base and logical backups');
      assert.ok(copy < schedule('pms-backup-prune'), 'copy before prune');

      const pod = findPod(objects, 'CronJob/pms-backup-copy');
      const container = (pod.spec['containers'] as Array<Record<string, any>>)[0] ?? {};
      const env = new Map<string, Record<string, any>>((container['env'] as Array<Record<string, any>>).map((e) => [String(e['name']), e]));
      for (const [name, key] of [
        ['BACKUP_DR_REPOSITORY', 'dr-repository'],
        ['BACKUP_DR_AWS_REGION', 'dr-aws-region'],
        ['BACKUP_DR_S3_ENDPOINT', 'dr-s3-endpoint'],
        ['BACKUP_DR_S3_FORCE_PATH_STYLE', 'dr-s3-force-path-style'],
      ]) {
        assert.deepEqual(env.get(name ?? '')?.['valueFrom']?.configMapKeyRef, { name: 'pms-backup-config', key }, name);
      }
      assert.equal(env.get('BACKUP_DR_AWS_ACCESS_KEY_ID_FILE')?.['value'], '/run/secrets/pms-backup-dr/aws-access-key-id');
      assert.equal(env.get('BACKUP_DR_AWS_SECRET_ACCESS_KEY_FILE')?.['value'], '/run/secrets/pms-backup-dr/aws-secret-access-key');
      // Secrets only as files: no value of the DR (or any) Secret reaches the environment.
      assert.ok([...env.values()].every((e) => e['valueFrom']?.secretKeyRef === undefined));
      const mountedKeys = (pod.spec['volumes'] as Array<Record<string, any>>).flatMap((v) =>
        v['secret']
          ? (v['secret'].items as Array<{ key: string }>).map(
              (i) => `${String(v['secret'].secretName).replace(/-[a-z0-9]{10}$/, '')}/${i.key}`,
            )
          : [],
      );
      // The jobs' signing key: copy signs what it writes (workloads-contract.test.ts checks each key's placement).
      assert.deepEqual(mountedKeys.sort(), [
        'pms-backup-dr-secrets/aws-access-key-id',
        'pms-backup-dr-secrets/aws-secret-access-key',
        'pms-backup-secrets/aws-access-key-id',
        'pms-backup-secrets/aws-secret-access-key',
        'pms-backup-signing/signing-key',
        'pms-backup-signing/signing-passphrase',
      ]);

      // The monitor job gets the same DR settings, so its dr-copy check runs.
      const monitor = (findPod(objects, 'CronJob/pms-backup-monitor').spec['containers'] as Array<Record<string, any>>)[0] ?? {};
      const monitorEnv = (monitor['env'] as Array<Record<string, any>>).map((e) => String(e['name']));
      for (const name of [
        'BACKUP_DR_REPOSITORY',
        'BACKUP_DR_AWS_REGION',
        'BACKUP_DR_S3_ENDPOINT',
        'BACKUP_DR_S3_FORCE_PATH_STYLE',
        'BACKUP_DR_MAX_LAG_HOURS',
        'BACKUP_DR_AWS_ACCESS_KEY_ID_FILE',
        'BACKUP_DR_AWS_SECRET_ACCESS_KEY_FILE',
      ])
        assert.ok(monitorEnv.includes(name), `monitor has ${name}`);
    }
    const drRepository = (objects: readonly Manifest[]): string =>
      String((find(objects, 'ConfigMap', 'pms-backup-config')['data'] as Record<string, string>)['dr-repository']);
    const primary = (objects: readonly Manifest[]): string =>
      String((find(objects, 'ConfigMap', 'pms-backup-config')['data'] as Record<string, string>)['backup-repository']);
    assert.equal(drRepository(prod), 's3://pms-prod-backups-dr/patient-telemetry');
    assert.equal(drRepository(dev), 's3://pms-dev-backups-dr/patient-telemetry');
    for (const objects of [dev, prod])
      assert.notEqual(drRepository(objects).split('/')[2], primary(objects).split('/')[2], 'the DR copy goes to another bucket');
    const prodData = find(prod, 'ConfigMap', 'pms-backup-config')['data'] as Record<string, string>;
    assert.notEqual(prodData['dr-aws-region'], prodData['aws-region'], 'prod copies to another region');
  });

  test('the DR prune runs prune against the DR repository only, after the copy and the primary prune, keeping at least as long as the primary', () => {
    for (const objects of [dev, prod]) {
      const schedule = (name: string): string => String((find(objects, 'CronJob', name)['spec'] as Record<string, unknown>)['schedule']);
      const minutes = (name: string): number => {
        const [minute, hour] = schedule(name).split(' ');
        return Number(hour) * 60 + Number(minute);
      };
      assert.ok(minutes('pms-backup-dr-prune') > minutes('pms-backup-prune'), 'DR prune after the primary prune');
      // Never beside the copy: it takes no lock on the DR repository, and a backup it is still
      // copying (no manifest yet, older than 24 h) is an incomplete leftover to prune.
      const window = (name: string): [number, number] => {
        const spec = find(objects, 'CronJob', name)['spec'] as Record<string, any>;
        const start = minutes(name);
        return [start, start + (spec['startingDeadlineSeconds'] + spec['jobTemplate'].spec.activeDeadlineSeconds) / 60];
      };
      const [copyStart, copyEnd] = window('pms-backup-copy');
      const [pruneStart, pruneEnd] = window('pms-backup-dr-prune');
      assert.ok(pruneStart >= copyEnd, `DR prune starts (${pruneStart} min) after the copy's latest end (${copyEnd} min)`);
      assert.ok(pruneEnd <= copyStart + 24 * 60, "DR prune ends before the next night's copy");

      const pod = findPod(objects, 'CronJob/pms-backup-dr-prune');
      const container = (pod.spec['containers'] as Array<Record<string, any>>)[0] ?? {};
      const env = Object.fromEntries(
        (container['env'] as Array<Record<string, any>>).map((e) => [String(e['name']), e['value'] ?? e['valueFrom']]),
      );
      const key = (k: string): Record<string, unknown> => ({ configMapKeyRef: { name: 'pms-backup-config', key: k } });
      // Exactly these: the primary's repository, endpoint, credentials, encryption keys and database never appear.
      assert.deepEqual(env, {
        BACKUP_REPOSITORY: key('dr-repository'),
        AWS_REGION: key('dr-aws-region'),
        S3_ENDPOINT: key('dr-s3-endpoint'),
        S3_FORCE_PATH_STYLE: key('dr-s3-force-path-style'),
        BACKUP_RETENTION_DAYS: key('dr-retention-days'),
        PUSHGATEWAY_URL: key('pushgateway-url'),
        PUSHGATEWAY_INSTANCE: key('dr-pushgateway-instance'),
        BACKUP_LOG_DIR: key('log-dir'),
        AWS_ACCESS_KEY_ID_FILE: '/run/secrets/pms-backup-dr/aws-access-key-id',
        AWS_SECRET_ACCESS_KEY_FILE: '/run/secrets/pms-backup-dr/aws-secret-access-key',
        BACKUP_SIGNING_KEY_FILE: '/run/secrets/pms-backup-signing/signing-key',
        BACKUP_SIGNING_PASSPHRASE_FILE: '/run/secrets/pms-backup-signing/signing-passphrase',
        BACKUP_TRUSTED_SIGNERS_FILE: '/etc/pms/trusted-signers/trusted-signers.asc',
        BACKUP_WAL_SIGNER_FINGERPRINTS: key('wal-signer-fingerprints'),
      });
      const mountedKeys = (pod.spec['volumes'] as Array<Record<string, any>>).flatMap((v) =>
        v['secret']
          ? (v['secret'].items as Array<{ key: string }>).map(
              (i) => `${String(v['secret'].secretName).replace(/-[a-z0-9]{10}$/, '')}/${i.key}`,
            )
          : [],
      );
      assert.deepEqual(mountedKeys.sort(), [
        'pms-backup-dr-secrets/aws-access-key-id',
        'pms-backup-dr-secrets/aws-secret-access-key',
        'pms-backup-signing/signing-key',
        'pms-backup-signing/signing-passphrase',
      ]);

      const data = find(objects, 'ConfigMap', 'pms-backup-config')['data'] as Record<string, string>;
      // Shorter would fight the copy: it re-copies every complete primary backup DR lacks.
      assert.ok(
        Number(data['dr-retention-days']) >= Number(data['retention-days']),
        `dr-retention-days ${data['dr-retention-days']} >= retention-days ${data['retention-days']}`,
      );
      assert.match(data['dr-pushgateway-instance'] ?? '', /^[A-Za-z0-9_.:-]{1,128}$/);
      assert.notEqual(data['dr-pushgateway-instance'], data['postgres-db'], "the DR prune's metrics group is not the primary prune's");
    }
    const retention = (objects: readonly Manifest[]): string | undefined =>
      (find(objects, 'ConfigMap', 'pms-backup-config')['data'] as Record<string, string>)['dr-retention-days'];
    assert.equal(retention(dev), '10');
    assert.equal(retention(prod), '42');
  });

  test('the DR prune job may reach the object stores like the copy job', () => {
    for (const objects of [dev, prod]) {
      const policies = (owner: string): string[] => {
        const pod = findPod(objects, owner);
        return objects
          .filter((o) => o.kind === 'NetworkPolicy' && selectorMatches((o['spec'] as Record<string, unknown>)['podSelector'], pod.labels))
          .map((o) => o.metadata.name)
          .sort();
      };
      assert.deepEqual(policies('CronJob/pms-backup-dr-prune'), policies('CronJob/pms-backup-copy'));
    }
  });

  test('archive_command in the PostgreSQL ConfigMap is pms-backup wal-push, behind the shell-first check', () => {
    const config = dev.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('postgres-config'));
    assert.ok(config);
    const conf = (config['data'] as Record<string, string>)['postgresql.conf'] ?? '';
    const line = `archive_command = '${shellFirstArchiveCommand('pms-backup wal-push')}'`;
    assert.ok(conf.split('\n').includes(line), conf);
    // docs/pitr.md shows operators the same line.
    assert.ok(
      readFileSync(join(REPO_ROOT, 'docs', 'pitr.md'), 'utf8')
        .split('\n')
        .includes(line),
      'docs/pitr.md shows the deployed archive_command',
    );
    assert.match(conf, /^archive_mode = on$/m);
  });
});

/**
 * Where each workload may connect to, by the rendered NetworkPolicies' semantics (network-reach.ts).
 * The object store is dev's MinIO pods, and in prod any address of the CIDRs the overlay lists.
 */
describe('egress', () => {
  const dns: Destination = { namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' }, port: 53, protocol: 'UDP' };
  const database: Destination = { namespace: 'patient-monitoring', labels: { 'app.kubernetes.io/name': 'postgres' }, port: 5432 };
  const pushgateway: Destination = { namespace: 'monitoring', labels: { 'app.kubernetes.io/name': 'pushgateway' }, port: 9091 };
  const api: Destination = { namespace: 'patient-monitoring', labels: { 'app.kubernetes.io/name': 'pms-telemetry' }, port: 8080 };
  const minio: Destination = { namespace: 'minio', labels: { 'app.kubernetes.io/name': 'minio' }, port: 9000 };
  const otherInMinioNamespace: Destination = { namespace: 'minio', labels: { 'app.kubernetes.io/name': 'console' }, port: 9000 };
  // Addresses the policies must not allow: a public host, the cloud metadata service, a node.
  const strangers: Destination[] = [
    { address: '203.0.113.7', port: 443 },
    { address: '8.8.8.8', port: 443 },
    { address: '169.254.169.254', port: 80 },
    { address: '10.0.0.1', port: 443 },
  ];
  /** An address inside each CIDR prod names for an object store (policy name → first address). */
  const prodStores = (policy: string): Destination[] =>
    ipBlocksOf(prod)
      .filter((b) => b.policy === policy)
      .map((b) => ({ address: b.cidr.replace(/\.0\/\d+$/, '.10'), port: 443 }));
  const primaryStore = (environment: 'dev' | 'prod'): Destination[] =>
    environment === 'dev' ? [minio] : prodStores('prod-object-store-egress');
  const drStore = (environment: 'dev' | 'prod'): Destination[] =>
    environment === 'dev' ? [minio] : prodStores('prod-dr-object-store-egress');
  const environments = [
    ['dev', () => dev],
    ['prod', () => prod],
  ] as const;
  const backupJobs = (objects: readonly Manifest[]): string[] =>
    objects.filter((o) => o.kind === 'CronJob' && o.metadata.name.startsWith('pms-backup')).map((o) => `CronJob/${o.metadata.name}`);

  test('no NetworkPolicy in either overlay allows 0.0.0.0/0 or ::/0, and adding one is rejected', () => {
    for (const objects of [dev, prod])
      assert.deepEqual(
        ipBlocksOf(objects).filter((b) => b.cidr.endsWith('/0')),
        [],
      );
    const original = find(prod, 'NetworkPolicy', 'pms-backup');
    const anywhere = mutate(original, (p) =>
      p.spec.egress.push({ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] } }], ports: [{ port: 443 }] }),
    );
    assert.ok(
      policyViolations(replaced(prod, original, anywhere), { environment: 'prod' }).some((f) =>
        /ipBlock 0\.0\.0\.0\/0 allows any address/.test(f),
      ),
    );
  });

  for (const [environment, objectsOf] of environments) {
    test(`${environment}: verify reaches DNS and the primary object store only: not the database, the Pushgateway, the DR store or anything else`, () => {
      const objects = objectsOf();
      const verify = 'CronJob/pms-backup-verify';
      assert.ok(mayReach(objects, verify, dns), 'DNS');
      for (const store of primaryStore(environment)) assert.ok(mayReach(objects, verify, store), `object store ${JSON.stringify(store)}`);
      assert.ok(!mayReach(objects, verify, database), 'the database');
      assert.ok(!mayReach(objects, verify, pushgateway), 'the Pushgateway');
      assert.ok(!mayReach(objects, verify, api), 'the ingest API');
      if (environment === 'prod') for (const store of drStore('prod')) assert.ok(!mayReach(objects, verify, store), 'the DR object store');
      else assert.ok(!mayReach(objects, verify, otherInMinioNamespace), 'another pod of the minio namespace');
      for (const stranger of strangers) assert.ok(!mayReach(objects, verify, stranger), JSON.stringify(stranger));
      // Nor does the pod carry what it would need to use them.
      const c = findPod(objects, verify).spec['containers'] as Array<Record<string, any>>;
      const names = c.flatMap((x) => (x['env'] as Array<Record<string, string>>).map((e) => e['name']));
      assert.deepEqual(
        names.filter((n) => /^POSTGRES_|^PUSHGATEWAY_/.test(n ?? '')),
        [],
      );
    });

    test(`${environment}: the backup jobs reach DNS, the Pushgateway and the object stores; only create and base-backup the database; nothing else`, () => {
      const objects = objectsOf();
      const jobs = backupJobs(objects).filter((j) => j !== 'CronJob/pms-backup-verify');
      assert.equal(jobs.length, 6);
      for (const job of jobs) {
        assert.ok(mayReach(objects, job, dns), `${job}: DNS`);
        assert.ok(mayReach(objects, job, pushgateway), `${job}: the Pushgateway`);
        for (const store of primaryStore(environment)) assert.ok(mayReach(objects, job, store), `${job}: the object store`);
        const readsDatabase = job === 'CronJob/pms-backup' || job === 'CronJob/pms-backup-base';
        assert.equal(mayReach(objects, job, database), readsDatabase, `${job}: the database`);
        assert.ok(!mayReach(objects, job, api), `${job}: the ingest API`);
        for (const stranger of strangers) assert.ok(!mayReach(objects, job, stranger), `${job}: ${JSON.stringify(stranger)}`);
      }
      for (const job of ['CronJob/pms-backup-copy', 'CronJob/pms-backup-monitor', 'CronJob/pms-backup-dr-prune'])
        for (const store of drStore(environment)) assert.ok(mayReach(objects, job, store), `${job}: the DR object store`);
      if (environment === 'prod')
        for (const job of ['CronJob/pms-backup', 'CronJob/pms-backup-base', 'CronJob/pms-backup-prune'])
          for (const store of drStore('prod')) assert.ok(!mayReach(objects, job, store), `${job}: the DR object store`);
    });

    test(`${environment}: PostgreSQL reaches DNS and the primary object store (wal-push), in prod also the other members and the API server (Patroni), nothing else`, () => {
      const objects = objectsOf();
      const server = 'StatefulSet/postgres';
      assert.ok(mayReach(objects, server, dns));
      for (const store of primaryStore(environment)) assert.ok(mayReach(objects, server, store));
      for (const to of [pushgateway, api, ...strangers]) assert.ok(!mayReach(objects, server, to), JSON.stringify(to));
      const patroniApi: Destination = { ...database, port: 8008 };
      const apiServer = ipBlocksOf(objects)
        .filter((b) => b.policy === 'kubernetes-api-egress')
        .map((b): Destination => ({ address: b.cidr.replace(/\.\d+\/\d+$/, '.70'), port: 443 }));
      assert.equal(apiServer.length, environment === 'prod' ? 1 : 0);
      for (const to of [database, patroniApi, ...apiServer])
        assert.equal(mayReach(objects, server, to), environment === 'prod', `${environment}: ${JSON.stringify(to)}`);
      if (environment === 'prod') for (const store of drStore('prod')) assert.ok(!mayReach(objects, server, store), 'the DR object store');
    });

    test(`${environment}: the database admits only the ingest API and the backup jobs that read it`, () => {
      const objects = objectsOf();
      const policy = find(objects, 'NetworkPolicy', 'postgres');
      const admits = (labels: Record<string, string>): boolean =>
        (policy['spec'] as Record<string, any>)['ingress'].some(
          (rule: Record<string, any>) =>
            rule['ports'].some((p: Record<string, unknown>) => p['port'] === 5432) &&
            rule['from'].some(
              (peer: Record<string, unknown>) => peer['namespaceSelector'] === undefined && selectorMatches(peer['podSelector'], labels),
            ),
        );
      for (const owner of ['Deployment/pms-telemetry', 'CronJob/pms-telemetry-retention', 'CronJob/pms-backup', 'CronJob/pms-backup-base'])
        assert.ok(admits(findPod(objects, owner).labels), owner);
      for (const owner of backupJobs(objects).filter((j) => j !== 'CronJob/pms-backup' && j !== 'CronJob/pms-backup-base'))
        assert.ok(!admits(findPod(objects, owner).labels), owner);
    });
  }
});

describe('release integrity', () => {
  const ZERO = `sha256:${'0'.repeat(64)}`;
  const images = (objects: readonly Manifest[]): string[] =>
    [...new Set(podTemplates(objects).flatMap((pod) => containersOf(pod).map((c) => String(c.container['image']))))].sort();

  test('every container image in the rendered prod overlay is name@sha256:<64 hex>, and a tag is rejected', () => {
    const found = images(prod);
    assert.deepEqual(
      found.filter((i) => !/^[a-z0-9.-]+\/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$/.test(i)),
      [],
    );
    assert.deepEqual(found.map((i) => i.split('@')[0]).sort(), [
      'ghcr.io/nhs-pms/pms-backup',
      'ghcr.io/nhs-pms/pms-postgres',
      'ghcr.io/nhs-pms/pms-telemetry',
      'quay.io/prometheuscommunity/postgres-exporter',
    ]);
    const original = find(prod, 'Deployment', 'pms-telemetry');
    const tagged = mutate(original, (d) => (d.spec.template.spec.containers[0].image = 'ghcr.io/nhs-pms/pms-telemetry:0.1.0'));
    assert.ok(policyViolations(replaced(prod, original, tagged), { environment: 'prod' }).some((f) => /is not name@sha256/.test(f)));
  });

  /** The deploy workflow's placeholder gate, run as the workflow runs it, in `dir`. */
  const runGate = async (dir: string): Promise<{ code: number; output: string }> => {
    const workflow = parse(readFileSync(join(DEPLOY_DIR, '..', '.github', 'workflows', 'deploy.yml'), 'utf8')) as Record<string, any>;
    const step = (workflow['jobs']['prod-plan']['steps'] as Array<Record<string, any>>).find((s) =>
      /^Refuse placeholders/.test(s['name'] ?? ''),
    );
    assert.ok(step, 'the prod plan has a placeholder gate');
    try {
      const { stdout } = await runTool('bash', ['-e', '-o', 'pipefail', '-c', String(step['run'])], {
        cwd: dir,
        env: { PATH: process.env['PATH'], GITHUB_OUTPUT: '/dev/null' },
      });
      return { code: 0, output: stdout };
    } catch (error) {
      return { code: 1, output: (error as Error).message };
    }
  };

  test("the deploy workflow's gate refuses this repository's prod placeholders (digests, sealed values, CIDRs) and passes once they are replaced", async () => {
    const work = mkdtempSync(join(tmpdir(), 'pms-gate-'));
    try {
      cpSync(DEPLOY_DIR, join(work, 'deploy'), { recursive: true });
      const refused = await runGate(work);
      assert.equal(refused.code, 1);
      // Each kind of placeholder fails on its own.
      const prodDir = join(work, 'deploy', 'overlays', 'prod');
      const edit = (file: string, change: (text: string) => string): void =>
        writeFileSync(join(prodDir, file), change(readFileSync(join(prodDir, file), 'utf8')));
      edit('sealed-secrets.yaml', (t) => t.replace(/SEALED_PLACEHOLDER_run_kubeseal/g, 'AgBsealedvalue'));
      edit('trusted-signers.asc', () => '-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nstand-in\n-----END PGP PUBLIC KEY BLOCK-----\n');
      assert.equal((await runGate(work)).code, 1, 'digests and CIDRs are still placeholders');
      let n = 0;
      edit('kustomization.yaml', (t) =>
        t.replaceAll(ZERO, () => {
          n += 1;
          return `sha256:${String(n).padStart(64, 'a')}`;
        }),
      );
      assert.ok(n >= 4, 'every image had a placeholder digest');
      assert.equal((await runGate(work)).code, 1, 'the CIDRs are still placeholders');
      edit('object-store-network.yaml', (t) => t.replace('192.0.2.0/24', '52.95.148.0/23').replace('198.51.100.0/24', '52.218.0.0/17'));
      assert.equal((await runGate(work)).code, 1, "the API server's CIDR is still a placeholder");
      edit('kubernetes-api-network.yaml', (t) => t.replace('203.0.113.64/28', '172.20.0.10/32'));
      const passed = await runGate(work);
      assert.equal(passed.code, 0, passed.output);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});

describe('schema validation', () => {
  test('every rendered object (dev, prod, GitOps entry points) validates against its schema', () => {
    assert.deepEqual(validateManifests(dev), []);
    assert.deepEqual(validateManifests(prod), []);
    assert.deepEqual(validateManifests(gitops), []);
  });

  test('a misspelt field anywhere fails validation, in core kinds and in CRDs', () => {
    const cronJob = find(dev, 'CronJob', 'pms-backup');
    const misspelt = mutate(cronJob, (c) => {
      c.spec.jobTemplate.spec.template.spec.containers[0].imagePullPolicey = 'Always';
    });
    assert.deepEqual(
      validateManifest(misspelt).map((p) => p.message),
      ['/spec/jobTemplate/spec/template/spec/containers/0/imagePullPolicey is not a field of batch/v1/CronJob'],
    );

    const statefulSet = mutate(find(dev, 'StatefulSet', 'postgres'), (s) => {
      s.spec.volumeClaimTemplate = s.spec.volumeClaimTemplates;
    });
    assert.equal(validateManifest(statefulSet).length, 1);

    const rule = mutate(find(dev, 'PrometheusRule', 'pms-postgres'), (r) => {
      r.spec.groups[0].rulez = r.spec.groups[0].rules;
    });
    assert.match(validateManifest(rule)[0]?.message ?? '', /groups\/0\/rulez is not a field/);

    const sealed = mutate(find(prod, 'SealedSecret', 'pms-backup-secrets'), (s) => {
      s.spec.template.metadata.lables = { a: 'b' };
    });
    assert.match(validateManifest(sealed)[0]?.message ?? '', /template\/metadata\/lables is not a field/);

    const application = mutate(find(gitops, 'Application', 'pms-data-platform-prod'), (a) => {
      a.spec.source.targetRevison = 'main';
    });
    assert.equal(validateManifest(application).length, 1);
  });

  test('a wrong type fails validation', () => {
    const deployment = mutate(find(dev, 'Deployment', 'pms-telemetry'), (d) => {
      d.spec.replicas = 'two';
    });
    assert.match(validateManifest(deployment)[0]?.message ?? '', /replicas must be integer/);
  });
});

describe('policy checks', () => {
  test('both overlays pass every policy (PSS restricted, hardening, images, RBAC, NetworkPolicies, secrets)', () => {
    assert.deepEqual(policyViolations(dev, { environment: 'dev' }), []);
    assert.deepEqual(policyViolations(prod, { environment: 'prod' }), []);
  });

  const podCases: Array<[string, (spec: Record<string, any>) => void, RegExp]> = [
    ['hostNetwork', (s) => (s.hostNetwork = true), /host-namespaces/],
    ['hostPID', (s) => (s.hostPID = true), /host-namespaces/],
    ['hostIPC', (s) => (s.hostIPC = true), /host-namespaces/],
    ['pod hostProcess', (s) => (s.securityContext.windowsOptions = { hostProcess: true }), /host-process/],
    ['privileged', (s) => (s.containers[0].securityContext.privileged = true), /\[privileged\]/],
    ['added capability', (s) => (s.containers[0].securityContext.capabilities.add = ['NET_ADMIN']), /capability NET_ADMIN/],
    ['no drop ALL', (s) => (s.containers[0].securityContext.capabilities.drop = ['NET_RAW']), /drop must include ALL/],
    ['hostPath volume', (s) => s.volumes.push({ name: 'h', hostPath: { path: '/' } }), /host-path-volumes/],
    ['nfs volume', (s) => s.volumes.push({ name: 'n', nfs: { server: 'x', path: '/' } }), /volume type nfs/],
    ['hostPort', (s) => (s.containers[0].ports = [{ containerPort: 1, hostPort: 1 }]), /host-ports/],
    ['AppArmor unconfined', (s) => (s.containers[0].securityContext.appArmorProfile = { type: 'Unconfined' }), /apparmor/],
    ['SELinux type', (s) => (s.securityContext.seLinuxOptions = { type: 'spc_t' }), /selinux/],
    ['SELinux user', (s) => (s.containers[0].securityContext.seLinuxOptions = { user: 'root' }), /selinux/],
    ['procMount', (s) => (s.containers[0].securityContext.procMount = 'Unmasked'), /proc-mount/],
    ['seccomp Unconfined', (s) => (s.containers[0].securityContext.seccompProfile = { type: 'Unconfined' }), /\[seccomp\]/],
    [
      'no seccomp anywhere',
      (s) => {
        delete s.securityContext.seccompProfile;
        for (const c of s.containers) delete c.securityContext.seccompProfile;
      },
      /\[seccomp\]/,
    ],
    ['unsafe sysctl', (s) => (s.securityContext.sysctls = [{ name: 'kernel.msgmax', value: '1' }]), /sysctls/],
    ['privilege escalation', (s) => delete s.containers[0].securityContext.allowPrivilegeEscalation, /privilege-escalation/],
    ['runAsNonRoot false', (s) => (s.containers[0].securityContext.runAsNonRoot = false), /run-as-non-root/],
    ['runAsUser 0', (s) => (s.containers[0].securityContext.runAsUser = 0), /run-as-user/],
    ['writable root filesystem', (s) => (s.containers[0].securityContext.readOnlyRootFilesystem = false), /readOnlyRootFilesystem/],
    ['no memory limit', (s) => delete s.containers[0].resources.limits.memory, /resources.limits.memory/],
    ['no cpu request', (s) => delete s.containers[0].resources.requests.cpu, /resources.requests.cpu/],
    ['latest image', (s) => (s.containers[0].image = 'ghcr.io/nhs-pms/pms-telemetry:latest'), /not pinned/],
    ['untagged image', (s) => (s.containers[0].image = 'postgres'), /not pinned/],
    ['service account token', (s) => (s.automountServiceAccountToken = true), /automountServiceAccountToken/],
    ['ephemeral debug container', (s) => (s.ephemeralContainers = [{ name: 'debug', image: 'busybox:1.36' }]), /ephemeralContainer debug/],
  ];
  for (const [name, change, expected] of podCases) {
    test(`a pod with ${name} is rejected`, () => {
      const original = find(dev, 'Deployment', 'pms-telemetry');
      const broken = mutate(original, (d) => change(d.spec.template.spec));
      const found = policyViolations(replaced(dev, original, broken), { environment: 'dev' });
      assert.ok(
        found.some((f) => expected.test(f)),
        `expected ${expected} in ${JSON.stringify(found)}`,
      );
    });
  }

  test('an RBAC wildcard or a rule that lists Secrets is rejected', () => {
    const role = find(dev, 'Role', 'pms-backup');
    const wildcard = mutate(role, (r) => (r.rules[0].verbs = ['*']));
    assert.ok(policyViolations(replaced(dev, role, wildcard), { environment: 'dev' }).some((f) => /wildcard in verbs/.test(f)));
    const listSecrets = mutate(role, (r) => r.rules.push({ apiGroups: [''], resources: ['secrets'], verbs: ['list'] }));
    assert.ok(policyViolations(replaced(dev, role, listSecrets), { environment: 'dev' }).some((f) => /list or watch Secrets/.test(f)));
  });

  test('without the default-deny policy, or with a pod no policy selects, the overlay is rejected', () => {
    const withoutDeny = dev.filter((o) => !(o.kind === 'NetworkPolicy' && o.metadata.name === 'default-deny-all'));
    assert.ok(policyViolations(withoutDeny, { environment: 'dev' }).some((f) => /no default-deny/.test(f)));
    const original = find(dev, 'CronJob', 'pms-backup-prune');
    const relabelled = mutate(original, (c) => (c.spec.jobTemplate.spec.template.metadata.labels['app.kubernetes.io/name'] = 'stray'));
    assert.ok(
      policyViolations(replaced(dev, original, relabelled), { environment: 'dev' }).some((f) => /no NetworkPolicy selects/.test(f)),
    );
  });

  test('a plaintext Secret in prod output is rejected, and prod seals every Secret dev generates', () => {
    const secret = find(dev, 'Secret', 'pms-backup-secrets');
    assert.ok(policyViolations([...prod, secret], { environment: 'prod' }).some((f) => /plaintext Secret/.test(f)));
    assert.equal(prod.filter((o) => o.kind === 'Secret').length, 0);
    for (const devSecret of dev.filter((o) => o.kind === 'Secret')) {
      const name = devSecret.metadata.name.replace(/-[a-z0-9]{10}$/, '');
      const sealed = find(prod, 'SealedSecret', name);
      const sealedKeys = Object.keys((sealed['spec'] as Record<string, Record<string, string>>)['encryptedData'] ?? {}).sort();
      assert.deepEqual(sealedKeys, Object.keys(isRecord(devSecret['data']) ? devSecret['data'] : {}).sort(), name);
    }
  });
});

describe('trusted signers', () => {
  test('the trusted signers ConfigMap holds public keys only, in dev and prod', () => {
    for (const objects of [dev, prod]) {
      const text = trustedSignersText(objects);
      assert.doesNotMatch(text, /PRIVATE KEY/, 'a secret key among the trusted signers would let every reader forge');
    }
    const devSigners = trustedSignersText(dev);
    assert.equal(devSigners.match(/-----BEGIN PGP PUBLIC KEY BLOCK-----/g)?.length, 2, "dev: the jobs' and the WAL key, one block each");
  });

  test("prod's trusted signers are armored public keys, or a placeholder the deploy workflow refuses to release", () => {
    const text = trustedSignersText(prod);
    const workflow = readFileSync(join(DEPLOY_DIR, '..', '.github', 'workflows', 'deploy.yml'), 'utf8');
    // The gate as the workflow runs it: grep -rn '<token>' deploy/overlays/prod
    const token = /grep -rn '([A-Z_]+)' deploy\/overlays\/prod/.exec(workflow)?.[1];
    assert.ok(token, 'the deploy workflow greps the prod overlay for a placeholder');
    const blocks = text.match(/-----BEGIN PGP PUBLIC KEY BLOCK-----[\s\S]*?-----END PGP PUBLIC KEY BLOCK-----/g) ?? [];
    if (text.includes(token)) assert.equal(blocks.length, 0, 'a placeholder, not a mix');
    else assert.ok(blocks.length >= 2, "at least the jobs' and the WAL key");
  });
});

describe('RBAC', () => {
  const ns = 'patient-monitoring';
  test("the seed's can-i check passes and the backup account can do nothing more", () => {
    const as = (verb: string, resource: string): boolean => canI(dev, { serviceAccount: 'pms-backup', namespace: ns, verb, resource });
    assert.equal(as('get', 'pods'), true);
    assert.equal(as('get', 'jobs.batch'), true);
    for (const [verb, resource] of [
      ['list', 'pods'],
      ['create', 'pods'],
      ['delete', 'pods'],
      ['get', 'secrets'],
      ['list', 'secrets'],
      ['create', 'pods/exec'],
      ['get', 'configmaps'],
      ['delete', 'persistentvolumeclaims'],
    ] as const) {
      assert.equal(as(verb, resource), false, `${verb} ${resource}`);
    }
  });

  test('the ingest API service account has no API access, nor PostgreSQL in dev (prod: Patroni, postgres-ha.test.ts)', () => {
    for (const objects of [dev, prod])
      assert.equal(canI(objects, { serviceAccount: 'pms-telemetry', namespace: ns, verb: 'get', resource: 'pods' }), false);
    assert.equal(canI(dev, { serviceAccount: 'postgres', namespace: ns, verb: 'get', resource: 'pods' }), false);
  });
});

describe("verify's sidecar", () => {
  /** A copy of the verify pod's spec, changed, for negative cases. */
  function withVerifyPod(from: readonly Manifest[], change: (spec: Record<string, any>) => void): Manifest[] {
    return from.map((o) => {
      if (`${o.kind}/${o.metadata.name}` !== VERIFY_OWNER) return o;
      const copy = structuredClone(o) as Record<string, any>;
      change(copy['spec'].jobTemplate.spec.template.spec);
      return copy as Manifest;
    });
  }
  const sidecar = (spec: Record<string, any>) => spec['initContainers'].find((c: Record<string, unknown>) => c['name'] === 'verify-server');

  test('dev and prod: the throwaway server runs in a sidecar of its own uid with no secret, sharing only the socket directory', () => {
    assert.deepEqual(verifyPodViolations(dev), []);
    assert.deepEqual(verifyPodViolations(prod), []);
  });

  const broken: Array<[string, (spec: Record<string, any>) => void, RegExp]> = [
    ['no sidecar', (s) => delete s['initContainers'], /no verify-server container/],
    ['the same uid', (s) => (sidecar(s).securityContext.runAsUser = 10001), /runs as uid 10001, the same as pms-backup/],
    ['not a native sidecar', (s) => delete sidecar(s).restartPolicy, /native sidecar/],
    [
      'a secret volume mounted',
      (s) => sidecar(s).volumeMounts.push({ name: 'secrets', mountPath: '/run/secrets/pms-backup', readOnly: true }),
      /mounts secrets, which is not an emptyDir/,
    ],
    [
      'a Secret in its environment',
      (s) =>
        sidecar(s).env.push({
          name: 'POSTGRES_PASSWORD',
          valueFrom: { secretKeyRef: { name: 'pms-backup-secrets', key: 'postgres-password' } },
        }),
      /POSTGRES_PASSWORD comes from a Secret/,
    ],
    [
      'a key file named',
      (s) => sidecar(s).env.push({ name: 'BACKUP_GPG_PRIVATE_KEY_FILE', value: '/x' }),
      /names secrets: BACKUP_GPG_PRIVATE_KEY_FILE/,
    ],
    ['a second shared volume', (s) => sidecar(s).volumeMounts.push({ name: 'tmp', mountPath: '/shared-tmp' }), /share 2 volume\(s\)/],
    ['a wrong client uid', (s) => (sidecar(s).command = ['pms-backup', 'verify-server', '--client-user', '10003']), /--client-user 10003/],
    ['a shared process namespace', (s) => (s['shareProcessNamespace'] = true), /shareProcessNamespace/],
    [
      'verify not pointed at the socket',
      (s) => {
        const main = s['containers'][0];
        main.env = main.env.filter((e: Record<string, unknown>) => e['name'] !== 'BACKUP_VERIFY_SERVER_SOCKET_DIR');
      },
      /pms-backup's BACKUP_VERIFY_SERVER_SOCKET_DIR is not the shared socket directory/,
    ],
  ];
  for (const [name, change, expected] of broken) {
    test(`a verify pod with ${name} is rejected`, () => {
      const problems = verifyPodViolations(withVerifyPod(dev, change));
      assert.ok(
        problems.some((p) => expected.test(p)),
        problems.join('\n'),
      );
    });
  }
});
