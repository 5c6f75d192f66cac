/**
 * npm run test:containers: the dev overlay's workloads run as podman pods, exactly as the
 * rendered manifests specify them (pod-plan.ts), from the images `npm run images` builds, with
 * the NetworkPolicies enforced between pods by nftables; then the whole chain, each step inside
 * its container: PostgreSQL with TLS, telemetry migrate + serve, readings through the API, every
 * backup CronJob against an S3 endpoint in its own pod, WAL archived by the server, and restores
 * (point in time and to the end of the archive, plus a logical restore) compared with what the
 * API acknowledged. Needs root, podman, nftables (.ci/run installs them).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { PodTemplate } from '../deploy-proofs/pod-templates.js';
import { DEPLOY_DIR, renderKustomization } from '../deploy-proofs/render.js';
import { type LocalBaseImages, builtImages } from '../images/build-images.js';
import { type DevWorkloads, devWorkloads, netPod, plan } from './dev-cluster.js';
import { probePod, pushgatewayPod, s3Pod } from './helper-pods.js';
import { allowedConnections, nftRuleset } from './network-policy.js';
import { type Exit, PodmanCluster, type RunningPod, nft, nftDeleteTable } from './podman-cluster.js';
import { connects as connectsFrom, psqlIn, until } from './pod-probes.js';
import type { PodPlan } from './pod-plan.js';
import { serviceHosts } from './service-hosts.js';
import type { Manifest } from '../deploy-proofs/manifest.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const SUBNET = '10.90.17.0/24';
const TABLE = 'pms_containers_test';
const ip = (n: number) => `10.90.17.${n}`;

type Json = Record<string, unknown>;

/** The pods of the run and their fixed addresses (Service names resolve to them before they start). */
const OWNERS = {
  postgres: 'StatefulSet/postgres',
  telemetry: 'Deployment/pms-telemetry',
  backup: 'CronJob/pms-backup',
  base: 'CronJob/pms-backup-base',
  monitor: 'CronJob/pms-backup-monitor',
  verify: 'CronJob/pms-backup-verify',
  copy: 'CronJob/pms-backup-copy',
  prune: 'CronJob/pms-backup-prune',
  drPrune: 'CronJob/pms-backup-dr-prune',
  retention: 'CronJob/pms-telemetry-retention',
} as const;

function setEnv(template: PodTemplate, container: string, extra: Record<string, string>): PodTemplate {
  const edit = (list: unknown) =>
    (Array.isArray(list) ? list : []).map((c: Json) =>
      c['name'] === container
        ? { ...c, env: [...(Array.isArray(c['env']) ? c['env'] : []), ...Object.entries(extra).map(([name, value]) => ({ name, value }))] }
        : c,
    );
  return { ...template, spec: { ...template.spec, containers: edit(template.spec['containers']) } };
}

function withCommand(template: PodTemplate, container: string, command: string[]): PodTemplate {
  const edit = (list: unknown) =>
    (Array.isArray(list) ? list : []).map((c: Json) => (c['name'] === container ? { ...c, command, args: undefined } : c));
  return { ...template, spec: { ...template.spec, containers: edit(template.spec['containers']) } };
}

/** The login Secret an operator creates for a full restore (docs/runbook.md, "Full restore"). */
const RESTORE_LOGIN_SECRET = 'pms-restore-login';

/**
 * The runbook's restore shell: the verify CronJob's pod (it holds the decryption key and the
 * trusted signers) relabelled `pms-restore`, which the NetworkPolicies let reach the database,
 * with the backup job's connection settings (host, port, TLS mode and CA) and the pms_restore
 * login whose password the operator put in a Secret.
 */
function restoreShell(verify: PodTemplate, backup: PodTemplate, command: string[]): PodTemplate {
  const main = (t: PodTemplate) =>
    (t.spec['containers'] as Json[]).find((c) => c['name'] === 'pms-backup') ?? assert.fail(`${t.owner} has no pms-backup container`);
  const connection = (main(backup)['env'] as Json[]).filter((e) => /^POSTGRES_(HOST|PORT|SSLMODE|SSLROOTCERT)$/.test(String(e['name'])));
  const caVolume =
    (backup.spec['volumes'] as Json[]).find((v) => v['name'] === 'postgres-ca') ?? assert.fail('the backup job mounts no postgres-ca');
  const caMount = (main(backup)['volumeMounts'] as Json[]).find((m) => m['name'] === 'postgres-ca') ?? assert.fail('no postgres-ca mount');
  const shell = {
    ...main(verify),
    command,
    args: undefined,
    env: [
      ...(main(verify)['env'] as Json[]),
      ...connection,
      { name: 'POSTGRES_USER', value: 'pms_restore' },
      { name: 'POSTGRES_PASSWORD_FILE', value: '/run/secrets/pms-restore/password' },
    ],
    volumeMounts: [
      ...(main(verify)['volumeMounts'] as Json[]),
      caMount,
      { name: 'restore-login', mountPath: '/run/secrets/pms-restore', readOnly: true },
    ],
  };
  return {
    ...verify,
    labels: { ...verify.labels, 'app.kubernetes.io/component': 'pms-restore' },
    spec: {
      ...verify.spec,
      containers: (verify.spec['containers'] as Json[]).map((c) => (c['name'] === 'pms-backup' ? shell : c)),
      volumes: [
        ...(verify.spec['volumes'] as Json[]),
        caVolume,
        { name: 'restore-login', secret: { secretName: RESTORE_LOGIN_SECRET, defaultMode: 0o440 } },
      ],
    },
  };
}

describe('the dev overlay under podman: every workload as its manifest says, end to end', { timeout: 20 * 60_000 }, () => {
  let objects: Manifest[];
  let workloads: DevWorkloads;
  let bases: LocalBaseImages;
  const cluster = new PodmanCluster(join(ROOT, '.tmp', 'containers'), 'pms-containers-test', SUBNET);
  const plans = new Map<string, PodPlan>();
  const running = new Map<string, RunningPod>();
  let hosts: Array<[string, string]>;
  let acknowledged = 0;
  let acknowledgedAtTarget = 0;
  let targetTime = '';
  let deviceToken = '';
  let restorePassword = '';

  const addresses = new Map<string, number>([
    ['pms-t-minio', 2],
    ['pms-t-pushgateway', 3],
    ['pms-t-ingress', 4],
    ['pms-t-intruder', 5],
    ['pms-t-postgres-0', 10],
    ['pms-t-telemetry', 11],
    ['pms-t-telemetry-admin', 12],
    ['pms-t-backup', 20],
    ['pms-t-backup-base', 21],
    ['pms-t-monitor', 22],
    ['pms-t-verify', 23],
    ['pms-t-copy', 24],
    ['pms-t-prune', 25],
    ['pms-t-dr-prune', 26],
    ['pms-t-retention', 27],
    ['pms-t-restore', 28],
    ['pms-t-verify-no-tmp', 29],
    ['pms-t-postgres-wrong-uid', 30],
  ]);
  const addressOf = (name: string) => ip(addresses.get(name) ?? assert.fail(`no address for ${name}`));

  /** (Re)writes the nftables table for every pod planned so far (established connections survive by conntrack). */
  async function enforcePolicies(): Promise<void> {
    const netPods = [...plans.values()].map((p) => netPod(p, addressOf(p.name)));
    await nftDeleteTable(TABLE);
    await nft(nftRuleset(TABLE, SUBNET, allowedConnections(objects, netPods)));
  }

  async function start(name: string, kind: 'server' | 'job'): Promise<Exit | undefined> {
    const pod = plans.get(name) ?? assert.fail(`no plan ${name}`);
    await enforcePolicies();
    const handle = await cluster.createPod(pod, { ip: addressOf(name), hosts });
    running.set(name, handle);
    if (kind === 'server') {
      await cluster.startServer(handle);
      return undefined;
    }
    return cluster.runJob(handle);
  }

  async function job(name: string): Promise<string> {
    const exit = (await start(name, 'job')) as Exit;
    await cluster.removePod(name);
    assert.equal(exit.code, 0, `${name} exited ${exit.code}:\n${exit.output}`);
    return exit.output;
  }

  const psql = (sql: string) => psqlIn(cluster, 'pms-t-postgres-0', sql);

  const connects = (pod: string, host: string, port: number) => connectsFrom(cluster, pod, 'probe', host, port);

  const sendReadings = async (from: number, count: number) => {
    const readings = Array.from({ length: count }, (_, i) => ({
      readingId: `r-${from + i}`,
      code: '8867-4',
      value: 60 + ((from + i) % 40),
      unit: '/min',
      measuredAt: new Date(Date.now() - 60_000 + i).toISOString(),
    }));
    const program = `fetch('http://pms-telemetry.patient-monitoring.svc:8080/v1/readings',{method:'POST',headers:{authorization:'Bearer '+process.argv[1],'content-type':'application/json'},body:process.argv[2]}).then(async r=>{console.log(r.status, await r.text())})`;
    const exit = await cluster.exec('pms-t-ingress', 'probe', ['node', '-e', program, deviceToken, JSON.stringify({ readings })]);
    const [status, ...body] = exit.output.trim().split(' ');
    assert.equal(status, '200', exit.output);
    const reply = JSON.parse(body.join(' ')) as { accepted: number };
    return reply.accepted;
  };

  before(async () => {
    bases = await builtImages(ROOT);
    objects = await renderKustomization(join(DEPLOY_DIR, 'overlays', 'dev'));
    // What the runbook has the operator create before a full restore: not in the manifests.
    restorePassword = randomBytes(24).toString('hex');
    const namespace = objects.find((o) => o.kind === 'StatefulSet')?.metadata.namespace ?? 'patient-monitoring';
    objects.push({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: RESTORE_LOGIN_SECRET, namespace },
      stringData: { password: restorePassword },
    } as Manifest);
    workloads = await devWorkloads(objects);
    const secret = (prefix: string, key: string) => {
      const name =
        objects.find((o) => o.kind === 'Secret' && o.metadata.name.startsWith(prefix))?.metadata.name ?? assert.fail(`no Secret ${prefix}`);
      return workloads.data.secret(name).get(key)?.toString('utf8') ?? assert.fail(`Secret ${name} has no ${key}`);
    };
    const config = workloads.data.configMap('pms-backup-config');
    const bucket = (key: string) => new URL(config.get(key)?.toString() ?? '').host;
    const s3 = s3Pod(
      bases.node,
      join(ROOT, 'node_modules'),
      [bucket('backup-repository'), bucket('dr-repository')],
      [
        {
          accessKeyId: secret('pms-backup-secrets', 'aws-access-key-id'),
          secretAccessKey: secret('pms-backup-secrets', 'aws-secret-access-key'),
        },
        {
          accessKeyId: secret('pms-backup-dr-secrets', 'aws-access-key-id'),
          secretAccessKey: secret('pms-backup-dr-secrets', 'aws-secret-access-key'),
        },
      ],
    );
    const all: PodPlan[] = [
      s3.plan,
      pushgatewayPod(bases.debian),
      probePod('pms-t-ingress', 'ingress-nginx', { 'app.kubernetes.io/name': 'ingress-nginx' }, bases.node),
      probePod('pms-t-intruder', 'patient-monitoring', { 'app.kubernetes.io/name': 'intruder' }, bases.node),
      plan(workloads, OWNERS.postgres, 'pms-t-postgres-0'),
      plan(workloads, OWNERS.telemetry, 'pms-t-telemetry'),
      plan(workloads, OWNERS.backup, 'pms-t-backup'),
      plan(workloads, OWNERS.base, 'pms-t-backup-base'),
      plan(workloads, OWNERS.monitor, 'pms-t-monitor'),
      plan(workloads, OWNERS.verify, 'pms-t-verify'),
      plan(workloads, OWNERS.copy, 'pms-t-copy'),
      plan(workloads, OWNERS.prune, 'pms-t-prune'),
      plan(workloads, OWNERS.drPrune, 'pms-t-dr-prune'),
      plan(workloads, OWNERS.retention, 'pms-t-retention'),
    ];
    for (const pod of all) plans.set(pod.name, pod);
    const servers = ['pms-t-minio', 'pms-t-pushgateway', 'pms-t-postgres-0', 'pms-t-telemetry'].map((n) =>
      netPod(plans.get(n) as PodPlan, addressOf(n)),
    );
    hosts = serviceHosts(objects, servers, [
      { name: 'minio', namespace: 'minio', selector: { 'app.kubernetes.io/name': 'minio' } },
      { name: 'pushgateway', namespace: 'monitoring', selector: { 'app.kubernetes.io/name': 'pushgateway' } },
    ]);
    await cluster.setUp();
    for (const name of ['pms-t-minio', 'pms-t-pushgateway', 'pms-t-ingress', 'pms-t-intruder']) await start(name, 'server');
  });

  after(async () => {
    await cluster.tearDown();
    await nftDeleteTable(TABLE);
  });

  test('PostgreSQL initialises from the StatefulSet template (uid 999, read-only root) and serves TLS', async () => {
    await start('pms-t-postgres-0', 'server');
    await until('postgres ready on 127.0.0.1:5432', 180, async () => {
      const exit = await cluster.exec('pms-t-postgres-0', 'postgres', ['pg_isready', '-q', '-h', '127.0.0.1', '-p', '5432']);
      return exit.code === 0 ? true : undefined;
    }).catch(async (error: unknown) => assert.fail(`${String(error)}\n${await cluster.logs('pms-t-postgres-0', 'postgres')}`));
    assert.equal(await psql('SHOW ssl'), 'on');
    assert.equal(await psql("SELECT current_setting('data_checksums')"), 'on');
  });

  test('pms-telemetry migrates (init container) and serves over verify-full TLS', async () => {
    await start('pms-t-telemetry', 'server');
    await until('pms-telemetry /readyz', 120, async () => {
      const response = await fetch(`http://${addressOf('pms-t-telemetry')}:8080/readyz`);
      return response.ok ? true : undefined;
    }).catch(async (error: unknown) => assert.fail(`${String(error)}\n${await cluster.logs('pms-t-telemetry', 'api')}`));
    const ssl = await psql("SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE ssl AND usename = 'pms_ingest'");
    assert.ok(Number(ssl) >= 1, 'the API holds TLS connections as pms_ingest');
  });

  test('readings go in through the API from the ingress namespace and are acknowledged', async () => {
    // An operator's one-off command: the migrate container's spec (the schema owner's login;
    // the ingest login may not write devices) with the command replaced.
    const admin = plan(workloads, OWNERS.telemetry, 'pms-t-telemetry-admin', (t) => {
      const migrate = (t.spec['initContainers'] as Json[]).find((c) => c['name'] === 'migrate') ?? assert.fail('no migrate container');
      const command = ['pms-telemetry', 'device', 'register', '--device-id', 'watch-1', '--patient-id', '9990000018', '--json'];
      return { ...t, spec: { ...t.spec, initContainers: [], containers: [{ ...migrate, command }] } };
    });
    plans.set(admin.name, admin);
    const registered = { output: await job(admin.name) };
    deviceToken = (JSON.parse(registered.output.trim().split('\n').pop() ?? '{}') as { token: string }).token;
    acknowledged += await sendReadings(0, 200);
    assert.equal(acknowledged, 200);
    assert.equal(await psql('SELECT count(*) FROM telemetry.reading'), String(acknowledged));
  });

  test('the backup and base-backup jobs succeed, and the server archives WAL through wal-push', async () => {
    await job('pms-t-backup');
    await job('pms-t-backup-base');
    const archived = await psql('SELECT archived_count FROM pg_stat_archiver');
    assert.ok(Number(archived) >= 1, `pg_stat_archiver archived_count ${archived}`);
    acknowledgedAtTarget = acknowledged;
    await new Promise((r) => setTimeout(r, 1100));
    targetTime = new Date(
      Date.parse(await psql('SELECT to_char(now() AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\')')),
    ).toISOString();
    await new Promise((r) => setTimeout(r, 1100));
    acknowledged += await sendReadings(1000, 150);
    const before = Number(await psql('SELECT archived_count FROM pg_stat_archiver'));
    await psql('SELECT pg_switch_wal()');
    await until('the switched segment archived', 60, async () =>
      Number(await psql('SELECT archived_count FROM pg_stat_archiver')) > before ? true : undefined,
    );
    assert.equal(await psql('SELECT failed_count FROM pg_stat_archiver'), '0');
  });

  test('verify (with its verify-server sidecar), copy, monitor, prune, DR prune and retention jobs succeed', async () => {
    for (const name of ['pms-t-verify', 'pms-t-copy', 'pms-t-monitor', 'pms-t-prune', 'pms-t-dr-prune', 'pms-t-retention']) await job(name);
  });

  test('a pms-backup container restores: the logical backup over TCP as pms_restore, point in time and end of archive, each matching what was acknowledged', async () => {
    // The runbook's first step of a full restore: the superuser, over the socket, lets
    // pms_restore log in with the password of the operator's Secret (stdin, never argv).
    const enable = await cluster.exec(
      'pms-t-postgres-0',
      'postgres',
      ['psql', '-v', 'ON_ERROR_STOP=1', '-XAtq', '-U', 'postgres', '-d', 'postgres'],
      `SET password_encryption = 'scram-sha-256';\nALTER ROLE pms_restore LOGIN PASSWORD '${restorePassword}';\n`,
    );
    assert.equal(enable.code, 0, enable.output);
    const script = `set -eu
# The full restore: into a new database on the live server, over verified TLS, as pms_restore.
pms-backup restore latest --target-db patient_telemetry_restored >&2
export PGHOST="$POSTGRES_HOST" PGPORT="$POSTGRES_PORT" PGUSER="$POSTGRES_USER" PGSSLMODE="$POSTGRES_SSLMODE" PGSSLROOTCERT="$POSTGRES_SSLROOTCERT"
PGPASSFILE=/tmp/pgpass; export PGPASSFILE
sed -e 's/[\\\\:]/\\\\&/g' -e 's/^/*:*:*:*:/' "$POSTGRES_PASSWORD_FILE" > "$PGPASSFILE"; chmod 0600 "$PGPASSFILE"
echo "COUNT logical $(psql -XAt -d patient_telemetry_restored -c 'SELECT count(*) FROM telemetry.reading')"
rm -f "$PGPASSFILE"
unset PGHOST PGPORT PGUSER PGSSLMODE PGSSLROOTCERT PGPASSFILE
# Point-in-time recovery in the pod's /tmp, with the primary's max_connections (recovery
# refuses a lower value than the primary ran with). The two unpacks one after the other (each
# writes an audit record), then both servers replay side by side (most of the time is wal-fetch).
printf 'local all all trust\\n' > /tmp/hba.conf
pms-backup restore --pitr --target-time "$TARGET_TIME" --pgdata /tmp/pitr >&2
pms-backup restore --pitr --target-time latest --pgdata /tmp/latest >&2
replay() {
  pg_ctl -D "/tmp/$1" -w -t 300 -l "/tmp/$1.log" -o "-c max_connections=200 -c archive_mode=off -c listen_addresses='' -c unix_socket_directories=/tmp -c port=$2 -c hba_file=/tmp/hba.conf" start >&2 || { cat "/tmp/$1.log" >&2; exit 1; }
  until [ "$(psql -XAt -h /tmp -p "$2" -U postgres -d postgres -c 'SELECT pg_is_in_recovery()')" = f ]; do sleep 0.2; done
  echo "COUNT $1 $(psql -XAt -h /tmp -p "$2" -U postgres -d patient_telemetry -c 'SELECT count(*) FROM telemetry.reading')" > "/tmp/$1.count"
  pg_ctl -D "/tmp/$1" -w -m fast stop >&2
}
replay pitr 5433 & pitr=$!
replay latest 5434 & latest=$!
wait "$pitr"
wait "$latest"
cat /tmp/pitr.count /tmp/latest.count
`;
    const restore = plan(workloads, OWNERS.verify, 'pms-t-restore', (t) =>
      setEnv(
        restoreShell(t, workloads.templates.get(OWNERS.backup) ?? assert.fail('no backup template'), ['sh', '-c', script]),
        'pms-backup',
        { TARGET_TIME: targetTime },
      ),
    );
    plans.set('pms-t-restore', restore);
    const output = await job('pms-t-restore');
    const counts = Object.fromEntries([...output.matchAll(/^COUNT (\w+) (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
    assert.deepEqual(counts, { logical: acknowledgedAtTarget, pitr: acknowledgedAtTarget, latest: acknowledged }, output);
    // Restored with owner and grants, so the swap the runbook does next gives the API a
    // database it can use; then pms_restore is switched off again.
    const restored = await cluster.exec('pms-t-postgres-0', 'postgres', [
      'psql',
      '-XAt',
      '-U',
      'postgres',
      '-d',
      'patient_telemetry_restored',
      '-c',
      "SELECT tableowner, has_table_privilege('pms_telemetry_ingest', 'telemetry.reading', 'INSERT') FROM pg_tables WHERE schemaname = 'telemetry' AND tablename = 'reading'",
    ]);
    const ownerSecret = objects.find((o) => o.kind === 'Secret' && 'migrate-user' in ((o['data'] as Json | undefined) ?? {}));
    const owner = workloads.data.secret(ownerSecret?.metadata.name ?? assert.fail('no Secret holds migrate-user')).get('migrate-user');
    assert.ok(owner, 'the schema owner login');
    assert.equal(restored.output.trim(), `${owner.toString('utf8')}|t`);
    assert.equal(await psql('ALTER ROLE pms_restore NOLOGIN PASSWORD NULL'), 'ALTER ROLE');
  });

  test('NetworkPolicies hold between pods: the allowed paths open, a pod no policy admits is refused', async () => {
    assert.equal(await connects('pms-t-ingress', 'pms-telemetry.patient-monitoring.svc', 8080), 'open');
    // The ingress namespace may reach the API, not the database; a pod no policy selects for
    // egress (default-deny) reaches nothing.
    assert.equal(await connects('pms-t-ingress', 'postgres.patient-monitoring.svc', 5432), 'ECONNREFUSED');
    assert.equal(await connects('pms-t-intruder', 'postgres.patient-monitoring.svc', 5432), 'ECONNREFUSED');
    assert.equal(await connects('pms-t-intruder', 'minio.minio.svc', 9000), 'ECONNREFUSED');
  });

  test('the run is sensitive to the manifests: verify-server without its /tmp volume, or PostgreSQL under another uid, fails', async () => {
    const noTmp = plan(workloads, OWNERS.verify, 'pms-t-verify-no-tmp', (t) => ({
      ...t,
      spec: {
        ...t.spec,
        initContainers: (t.spec['initContainers'] as Json[]).map((c) =>
          c['name'] === 'verify-server'
            ? { ...c, volumeMounts: (c['volumeMounts'] as Json[]).filter((m) => m['mountPath'] !== '/tmp') }
            : c,
        ),
      },
    }));
    plans.set(noTmp.name, noTmp);
    // The sidecar dies on its read-only root, so no socket ever appears: verify waits for one
    // (and would fail after its 120 s), which is as far as this needs to watch.
    await start(noTmp.name, 'server');
    const sidecarCode = await until('verify-server without /tmp to exit', 60, () => cluster.exitCode(noTmp.name, 'verify-server'));
    const sidecar = await cluster.logs(noTmp.name, 'verify-server');
    await until("verify waiting for verify-server's socket", 60, async () =>
      /waiting for verify-server's socket/.test(await cluster.logs(noTmp.name, 'pms-backup')) ? true : undefined,
    );
    assert.equal(await cluster.exitCode(noTmp.name, 'pms-backup'), undefined, 'verify has not got past its wait');
    await cluster.removePod(noTmp.name);
    assert.notEqual(sidecarCode, 0, sidecar);
    assert.match(sidecar, /EROFS|read-only file system/i);

    const wrongUid = plan(workloads, OWNERS.postgres, 'pms-t-postgres-wrong-uid', (t) => ({
      ...t,
      spec: {
        ...t.spec,
        securityContext: { ...(t.spec['securityContext'] as Json), runAsUser: 1000 },
        containers: (t.spec['containers'] as Json[]).map((c) => ({
          ...c,
          securityContext: { ...(c['securityContext'] as Json), runAsUser: 1000 },
        })),
      },
    }));
    plans.set(wrongUid.name, wrongUid);
    await start(wrongUid.name, 'server');
    const code = await until('the mis-configured server to exit', 60, () => cluster.exitCode(wrongUid.name, 'postgres'));
    assert.notEqual(code, 0);
    // Seen: the entrypoint initialises a cluster owned by 1000, then its own first psql as
    // postgres is refused by peer authentication (OS user 1000 is not postgres) and it exits.
    assert.match(
      await cluster.logs(wrongUid.name, 'postgres'),
      /user ID 1000|Permission denied|must be owned|Peer authentication failed for user "postgres"/i,
    );
    await cluster.removePod(wrongUid.name);
  });
});
