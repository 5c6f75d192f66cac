/**
 * npm run test:containers, the HA part: the prod overlay's three-member Patroni StatefulSet
 * (deploy/components/postgres-ha) run as three podman pods from the rendered pod template
 * (pod-plan.ts: image, command, env with the downward API per member, Secret and ConfigMap files
 * with their modes, memory emptyDirs, uid/fsGroup, read-only root, dropped capabilities, memory
 * limits), then the chain each step inside its container: the cluster forms over verify-full
 * replication, a write on the leader reaches the standbys, the leader archives WAL to the S3 pod,
 * the prod backup and base-backup jobs run, the leader's container is killed and a standby takes
 * over on timeline 2, backups and archiving carry on there, monitor passes and a point-in-time
 * restore has every acknowledged row.
 *
 * What cannot be as in the cluster, and stands in (ha-cluster.ts):
 * - The DCS: Patroni's Kubernetes DCS needs an API server, which this machine has none of. The
 *   members' template gets PMS_PATRONI_DCS=etcd3 and the etcd pod's address (the product's
 *   option for sites without API access); that is the only change to the rendered template.
 * - The Service controller: the Services select by Patroni's role label, which Patroni writes
 *   through the API (not here). The harness plays both: before each pod starts it labels each
 *   member by its REST API (200 on /primary: role master; on /replica: role replica) and resolves
 *   the rendered Services from those labels, so `postgres` names the leader, and after the
 *   failover the new one.
 * - Secrets and site values: the dev overlay's throwaway values for prod's SealedSecrets and
 *   site ConfigMaps; a throwaway CA for cert-manager's certificate.
 * - The site addresses of the NetworkPolicies: prod admits the Kubernetes API server and the
 *   object stores by address (ipBlock); here those are the etcd pod (in kube-system, outside the
 *   namespace's default deny, as the API server is) and the S3 pod, so those rules name their
 *   addresses and ports instead (withLocalSites). Every other policy is prod's, enforced between
 *   pod namespaces by nftables as in the dev part.
 * A killed member is not restarted (kubelet behaviour): the two that are left carry on.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Manifest } from '../deploy-proofs/manifest.js';
import type { PodTemplate } from '../deploy-proofs/pod-templates.js';
import { DEPLOY_DIR, renderKustomization } from '../deploy-proofs/render.js';
import { type LocalBaseImages, builtImages } from '../images/build-images.js';
import { PATRONI_LEADER_ROLE, PATRONI_REPLICA_ROLE, PATRONI_REST_PORT, PATRONI_ROLE_LABEL } from '../../postgres/patroni/patroni-config.js';
import { type DevWorkloads, netPod, plan } from './dev-cluster.js';
import { haWorkloads, withEtcdDcs, withLocalSites } from './ha-cluster.js';
import { ETCD_PORT, etcdPod, probePod, pushgatewayPod, s3Pod } from './helper-pods.js';
import { type NetPod, allowedConnections, nftRuleset } from './network-policy.js';
import { type Exit, PodmanCluster, nft, nftDeleteTable } from './podman-cluster.js';
import { connects as connectsFrom, psqlIn, until } from './pod-probes.js';
import type { PodPlan } from './pod-plan.js';
import { serviceHosts } from './service-hosts.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const SUBNET = '10.90.18.0/24';
const ip = (n: number) => `10.90.18.${n}`;
const NAMESPACE = 'patient-monitoring';
const TABLE = 'pms_containers_ha_test';
// Where a cluster's API lives: outside the application namespace and its default deny.
const ETCD_NAMESPACE = 'kube-system';
const ETCD_HOST = `pms-etcd.${ETCD_NAMESPACE}.svc`;
const S3_PORT = 9000;
const MEMBERS = [0, 1, 2] as const;
const memberPod = (i: number) => `pms-ha-postgres-${i}`;
const memberIp = (i: number) => ip(10 + i);

type Json = Record<string, unknown>;

const OWNERS = {
  postgres: 'StatefulSet/postgres',
  backup: 'CronJob/pms-backup',
  base: 'CronJob/pms-backup-base',
  monitor: 'CronJob/pms-backup-monitor',
  copy: 'CronJob/pms-backup-copy',
  verify: 'CronJob/pms-backup-verify',
} as const;

interface PatroniMember {
  readonly name: string;
  readonly role: string;
  readonly state: string;
  readonly timeline?: number;
}

async function restGet(host: string, path: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`http://${host}:${PATRONI_REST_PORT}${path}`, { signal: AbortSignal.timeout(2000) });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // /primary and /replica answer JSON; anything else is kept as text for the message.
  }
  return { status: response.status, body };
}

describe("the prod overlay's HA StatefulSet under podman: three Patroni members, a failover, backups and a restore", {
  timeout: 15 * 60_000,
}, () => {
  let prod: Manifest[];
  let workloads: DevWorkloads;
  let bases: LocalBaseImages;
  const cluster = new PodmanCluster(join(ROOT, '.tmp', 'containers-ha'), 'pms-containers-ha-test', SUBNET);
  const addresses = new Map<string, number>([
    ['pms-t-minio', 2],
    ['pms-t-pushgateway', 3],
    ['pms-t-etcd', 4],
    ['pms-ha-backup', 20],
    ['pms-ha-backup-base', 21],
    ['pms-ha-monitor', 22],
    ['pms-ha-copy', 23],
    ['pms-ha-restore', 24],
    ['pms-ha-verify', 27],
    ['pms-ha-backup-2', 25],
    ['pms-ha-backup-base-2', 26],
    ['pms-ha-no-run-dir', 30],
    ['pms-ha-intruder', 31],
    ['pms-ha-backup-probe', 32],
  ]);
  const addressOf = (name: string) => ip(addresses.get(name) ?? assert.fail(`no address for ${name}`));
  const helpers: NetPod[] = [];
  const members: PodPlan[] = [];
  /** Every pod of the run so far, as NetworkPolicies see it (the Patroni role label plays no part in them). */
  const netPods = new Map<string, NetPod>();
  let policies: Manifest[];

  /** (Re)writes the nftables table for every pod so far (established connections survive by conntrack). */
  async function enforcePolicies(): Promise<void> {
    await nftDeleteTable(TABLE);
    await nft(nftRuleset(TABLE, SUBNET, allowedConnections(policies, [...netPods.values()])));
  }

  const connects = (pod: string, container: string, host: string, port: number) => connectsFrom(cluster, pod, container, host, port);
  const alive = new Set<number>(MEMBERS);
  let acknowledged = 0;
  let leader = -1;

  /**
   * The Service controller's and Patroni's labelling's part: each live member labelled by what its
   * REST API answers now, then every rendered Service resolved from those labels.
   */
  async function hostsNow(): Promise<Array<[string, string]>> {
    const labelled: NetPod[] = [];
    for (const i of MEMBERS) {
      const base = netPod(members[i] as PodPlan, memberIp(i), `postgres-${i}`);
      let role: string | undefined;
      if (alive.has(i)) {
        if ((await restGet(memberIp(i), '/primary').catch(() => undefined))?.status === 200) role = PATRONI_LEADER_ROLE;
        else if ((await restGet(memberIp(i), '/replica').catch(() => undefined))?.status === 200) role = PATRONI_REPLICA_ROLE;
      }
      labelled.push(role === undefined ? base : { ...base, labels: { ...base.labels, [PATRONI_ROLE_LABEL]: role } });
    }
    return serviceHosts(
      prod,
      [...helpers, ...labelled],
      [
        { name: 'minio', namespace: 'minio', selector: { 'app.kubernetes.io/name': 'minio' } },
        { name: 'pushgateway', namespace: 'monitoring', selector: { 'app.kubernetes.io/name': 'pushgateway' } },
        { name: 'pms-etcd', namespace: ETCD_NAMESPACE, selector: { 'app.kubernetes.io/name': 'etcd' } },
      ],
    );
  }

  async function job(name: string, owner: string, edit?: (t: PodTemplate) => PodTemplate): Promise<string> {
    const pod = plan(workloads, owner, name, edit);
    netPods.set(name, netPod(pod, addressOf(name)));
    await enforcePolicies();
    const handle = await cluster.createPod(pod, { ip: addressOf(name), hosts: await hostsNow() });
    const exit: Exit = await cluster.runJob(handle);
    await cluster.removePod(name);
    // The failing lines first: CI keeps only the head of a long message.
    const failing = exit.output.split('\n').filter((line) => /^FAIL |"level":"(error|fatal)"/.test(line));
    assert.equal(exit.code, 0, `${name} exited ${exit.code}:\n${failing.join('\n')}\n--- whole output:\n${exit.output}`);
    return exit.output;
  }

  const psql = (i: number, sql: string, database?: string) => psqlIn(cluster, memberPod(i), sql, database);

  async function clusterMembers(): Promise<PatroniMember[]> {
    for (const i of alive) {
      const answer = await restGet(memberIp(i), '/cluster').catch(() => undefined);
      const list = answer && typeof answer.body === 'object' && answer.body !== null ? (answer.body as Json)['members'] : undefined;
      if (Array.isArray(list)) return list as PatroniMember[];
    }
    return [];
  }

  const memberLogs = async () =>
    (
      await Promise.all([...alive].map(async (i) => `--- postgres-${i}\n${(await cluster.logs(memberPod(i), 'postgres')).slice(-6000)}`))
    ).join('\n');

  /** Rows written on the leader and acknowledged (psql returned): synchronous_mode_strict means a second member has them. */
  async function write(from: number, count: number): Promise<void> {
    await psql(leader, `INSERT INTO public.ha_acknowledged (id) SELECT g FROM generate_series(${from}, ${from + count - 1}) g`);
    acknowledged += count;
  }

  async function archivedAfterSwitch(i: number): Promise<void> {
    const before = Number(await psql(i, 'SELECT archived_count FROM pg_stat_archiver'));
    const segment = await psql(i, 'SELECT pg_walfile_name(pg_switch_wal())');
    await until(`postgres-${i} archives ${segment}`, 60, async () =>
      Number(await psql(i, 'SELECT archived_count FROM pg_stat_archiver')) > before &&
      (await psql(i, 'SELECT last_archived_wal FROM pg_stat_archiver')) >= segment
        ? true
        : undefined,
    );
    assert.equal(await psql(i, 'SELECT failed_count FROM pg_stat_archiver'), '0');
  }

  before(async () => {
    bases = await builtImages(ROOT);
    prod = await renderKustomization(join(DEPLOY_DIR, 'overlays', 'prod'));
    const dev = await renderKustomization(join(DEPLOY_DIR, 'overlays', 'dev'));
    workloads = await haWorkloads(prod, dev);
    const config = workloads.data.configMap('pms-backup-config');
    const bucket = (key: string) => new URL(config.get(key)?.toString() ?? '').host;
    const secret = (name: string, key: string) =>
      workloads.data.secret(name).get(key)?.toString('utf8') ?? assert.fail(`${name} has no ${key}`);
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
    policies = withLocalSites(prod, {
      'kubernetes-api-egress': { ip: addressOf('pms-t-etcd'), port: ETCD_PORT },
      'prod-object-store-egress': { ip: addressOf('pms-t-minio'), port: S3_PORT },
      'prod-dr-object-store-egress': { ip: addressOf('pms-t-minio'), port: S3_PORT },
    });
    // Probes: a pod no policy admits, and one labelled as the backup job's pod.
    const backupLabels = plan(workloads, OWNERS.backup, 'pms-ha-backup-probe').labels;
    const helperPlans = [
      s3.plan,
      pushgatewayPod(bases.debian),
      etcdPod(bases.debian, ETCD_NAMESPACE, ETCD_HOST),
      probePod('pms-ha-intruder', NAMESPACE, { 'app.kubernetes.io/name': 'intruder' }, bases.node),
      probePod('pms-ha-backup-probe', NAMESPACE, backupLabels, bases.node),
    ];
    for (const p of helperPlans) helpers.push(netPod(p, addressOf(p.name)));
    for (const h of helpers) netPods.set(h.name, h);
    for (const i of MEMBERS) {
      members.push(
        plan(workloads, OWNERS.postgres, memberPod(i), (t) => withEtcdDcs(t, `${ETCD_HOST}:${ETCD_PORT}`), {
          metadataName: `postgres-${i}`,
          podIp: memberIp(i),
        }),
      );
    }
    for (const i of MEMBERS) netPods.set(memberPod(i), netPod(members[i] as PodPlan, memberIp(i), `postgres-${i}`));
    await cluster.setUp();
    await enforcePolicies();
    const hosts = await hostsNow();
    for (const p of helperPlans) await cluster.startServer(await cluster.createPod(p, { ip: addressOf(p.name), hosts }));
    // podManagementPolicy Parallel: all three at once; Patroni decides who initialises.
    for (const i of MEMBERS) await cluster.startServer(await cluster.createPod(members[i] as PodPlan, { ip: memberIp(i), hosts }));
  });

  after(async () => {
    await cluster.tearDown();
    await nftDeleteTable(TABLE);
  });

  test('the three members form a cluster (leader, sync standby, replica) replicating over verify-full TLS', async () => {
    const formed = await until('a leader, a sync standby and a replica, all running', 240, async () => {
      const list = await clusterMembers();
      const roles = list.map((m) => m.role).sort();
      const ready = list.every((m) => m.state === 'running' || m.state === 'streaming');
      return roles.join(',') === 'leader,replica,sync_standby' && ready ? list : undefined;
    }).catch(async (error: unknown) => assert.fail(`${String(error)}\n${await memberLogs()}`));
    const leaderName = formed.find((m) => m.role === 'leader')?.name ?? assert.fail('no leader');
    leader = Number(leaderName.replace('postgres-', ''));
    assert.deepEqual(formed.map((m) => m.name).sort(), ['postgres-0', 'postgres-1', 'postgres-2'], 'POD_NAME per member');
    // Both standbys stream from the leader over TLS; one of them synchronously.
    await until('two TLS walsenders on the leader', 60, async () =>
      (await psql(
        leader,
        "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE s.ssl AND r.state = 'streaming'",
      )) === '2'
        ? true
        : undefined,
    );
    assert.equal(await psql(leader, "SELECT string_agg(sync_state, ',' ORDER BY sync_state) FROM pg_stat_replication"), 'async,sync');
    for (const i of MEMBERS.filter((m) => m !== leader)) {
      const receiver = await psql(i, 'SELECT status, conninfo FROM pg_stat_wal_receiver');
      assert.match(receiver, /^streaming\|/, `postgres-${i}: ${receiver}`);
      assert.match(receiver, /sslmode=verify-full/, `postgres-${i}: ${receiver}`);
      assert.match(receiver, new RegExp(`host=postgres-${leader}\\.postgres-headless\\.${NAMESPACE}\\.svc`), `postgres-${i}: ${receiver}`);
    }
    // The memory emptyDirs are tmpfs of their sizeLimit: Patroni's config (with the passwords) never touches a disk.
    const mounts = await cluster.exec(memberPod(leader), 'postgres', ['sh', '-c', 'grep -E " /run/patroni | /dev/shm " /proc/mounts']);
    assert.match(mounts.output, /^tmpfs \/run\/patroni tmpfs .*size=1024k/m, mounts.output);
  });

  test('a write acknowledged on the leader is visible on both standbys', async () => {
    await psql(leader, 'CREATE TABLE public.ha_acknowledged (id integer PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())');
    await write(0, 100);
    for (const i of MEMBERS.filter((m) => m !== leader)) {
      await until(`postgres-${i} has the 100 rows`, 30, async () =>
        (await psql(i, 'SELECT count(*) FROM public.ha_acknowledged')) === '100' ? true : undefined,
      );
    }
  });

  test("the leader's container archives WAL to the S3 pod, and the prod base-backup and backup jobs succeed against it", async () => {
    await archivedAfterSwitch(leader);
    await job('pms-ha-backup-base', OWNERS.base);
    await job('pms-ha-backup', OWNERS.backup);
  });

  test('the leader killed: a standby is promoted on timeline 2, postgres re-resolves to it, and backups and archiving carry on there', async (t) => {
    const old = leader;
    assert.equal(await psql(old, 'SELECT timeline_id FROM pg_control_checkpoint()'), '1');
    const primaryBefore = (await hostsNow()).find(([name]) => name === `postgres.${NAMESPACE}.svc`)?.[1];
    assert.equal(primaryBefore, memberIp(old));
    await cluster.kill(memberPod(old), 'postgres');
    alive.delete(old);
    leader = await until('a standby promoted', 120, async () => {
      for (const i of alive) if ((await restGet(memberIp(i), '/primary')).status === 200) return i;
      return undefined;
    }).catch(async (error: unknown) => assert.fail(`${String(error)}\n${await memberLogs()}`));
    // Patroni answers /primary with 200 as soon as it holds the leader key and has asked
    // PostgreSQL to promote (pg_ctl promote does not wait): the end of recovery follows within
    // a second or so (a CI run saw pg_is_in_recovery() still 't' right after the 200).
    const promoted = leader;
    await until(`postgres-${promoted} out of recovery`, 60, async () =>
      (await psql(promoted, 'SELECT pg_is_in_recovery()')) === 'f' ? true : undefined,
    ).catch(async (error: unknown) => assert.fail(`${String(error)}\n${await memberLogs()}`));
    assert.equal(await psql(leader, 'SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)'), '00000002');
    const hosts = await hostsNow();
    assert.deepEqual(
      hosts.filter(([name]) => name === `postgres.${NAMESPACE}.svc`).map(([, address]) => address),
      [memberIp(leader)],
      'the primary Service names the new leader only',
    );
    // Strict synchronous mode: this returns once the remaining standby confirms it.
    await write(100, 100);
    t.diagnostic(
      `members after the first write on the new leader: ${JSON.stringify((await clusterMembers()).map((m) => [m.name, m.role, m.state]))}`,
    );
    // Patroni names the new synchronous standby in the DCS a loop or two after the promotion
    // (until then strict mode holds commits with synchronous_standby_names '*'): monitor's HA
    // checks below judge a settled cluster, not the seconds after a failover.
    await until('the remaining standby registered as the synchronous one', 120, async () => {
      const list = await clusterMembers();
      const standby = list.find((m) => m.role === 'sync_standby');
      const settled =
        list.length === 2 && list.some((m) => m.role === 'leader') && (standby?.state === 'streaming' || standby?.state === 'running');
      return settled ? true : undefined;
    }).catch(async (error: unknown) => assert.fail(`${String(error)}: ${JSON.stringify(await clusterMembers())}\n${await memberLogs()}`));
    await job('pms-ha-backup-base-2', OWNERS.base);
    await job('pms-ha-backup-2', OWNERS.backup);
    await archivedAfterSwitch(leader);
  });

  test("verify and copy succeed, then monitor passes, reading the cluster through every member's REST API (BACKUP_PATRONI_URLS)", async () => {
    await job('pms-ha-verify', OWNERS.verify);
    await job('pms-ha-copy', OWNERS.copy);
    const output = await job('pms-ha-monitor', OWNERS.monitor);
    assert.match(output, /ha leader/, output);
  });

  test("prod's NetworkPolicies hold between the pods: the members and the jobs' paths open, the rest refused", async () => {
    const other = [...alive].find((i) => i !== leader) ?? assert.fail('no standby left');
    // Between members: replication and Patroni's REST API (the leader race reads it).
    assert.equal(await connects(memberPod(other), 'postgres', `postgres-${leader}.postgres-headless.${NAMESPACE}.svc`, 5432), 'open');
    assert.equal(
      await connects(memberPod(other), 'postgres', `postgres-${leader}.postgres-headless.${NAMESPACE}.svc`, PATRONI_REST_PORT),
      'open',
    );
    // A backup job's pod reaches the database, not the REST API (only monitor reads it) and not etcd.
    // (By address: the probes' hosts files were written before the Service had a leader to name.)
    assert.equal(await connects('pms-ha-backup-probe', 'probe', memberIp(leader), 5432), 'open');
    assert.equal(await connects('pms-ha-backup-probe', 'probe', memberIp(leader), PATRONI_REST_PORT), 'ECONNREFUSED');
    assert.equal(await connects('pms-ha-backup-probe', 'probe', ETCD_HOST, ETCD_PORT), 'ECONNREFUSED');
    // A pod no policy admits reaches nothing.
    assert.equal(await connects('pms-ha-intruder', 'probe', memberIp(leader), 5432), 'ECONNREFUSED');
    assert.equal(await connects('pms-ha-intruder', 'probe', 'minio.minio.svc', S3_PORT), 'ECONNREFUSED');
  });

  test('a point-in-time restore from a pms-backup container has every acknowledged row', async () => {
    // A Patroni member's data directory holds Patroni's postgresql.conf, which includes the
    // StatefulSet's /etc/postgresql/postgresql.conf: a file of the postgres pod, not of this one.
    // restore --pitr warns of it; the recovery gets a config file of its own (config_file, on
    // the command line).
    const script = `set -eu
printf 'local all all trust\\n' > /tmp/hba.conf
printf '# recovery of a Patroni base backup outside the postgres pod\\n' > /tmp/recovery.conf
pms-backup restore --pitr --target-time latest --pgdata /tmp/latest > /tmp/restore.out
cat /tmp/restore.out >&2
grep -q "has include '/etc/postgresql/postgresql.conf', which this host lacks" /tmp/restore.out
pg_ctl -D /tmp/latest -w -t 300 -l /tmp/latest.log -o "-c config_file=/tmp/recovery.conf -c max_connections=200 -c max_wal_senders=10 -c max_replication_slots=10 -c archive_mode=off -c listen_addresses='' -c unix_socket_directories=/tmp -c port=5434 -c hba_file=/tmp/hba.conf" start >&2 || { cat /tmp/latest.log >&2; exit 1; }
until [ "$(psql -XAt -h /tmp -p 5434 -U postgres -d postgres -c 'SELECT pg_is_in_recovery()')" = f ]; do sleep 0.2; done
echo "COUNT $(psql -XAt -h /tmp -p 5434 -U postgres -d patient_telemetry -c 'SELECT count(*) FROM public.ha_acknowledged')"
echo "TIMELINE $(psql -XAt -h /tmp -p 5434 -U postgres -d postgres -c 'SELECT timeline_id FROM pg_control_checkpoint()')"
pg_ctl -D /tmp/latest -w -m fast stop >&2
`;
    // The verify job's pod (it holds the decryption key and the trusted signers) with the
    // restore as its command: a recovery into the pod's /tmp needs no database login.
    const output = await job('pms-ha-restore', OWNERS.verify, (t) => ({
      ...t,
      spec: {
        ...t.spec,
        containers: (t.spec['containers'] as Json[]).map((c) =>
          c['name'] === 'pms-backup' ? { ...c, command: ['sh', '-c', script], args: undefined } : c,
        ),
      },
    }));
    assert.equal(/^COUNT (\d+)$/m.exec(output)?.[1], String(acknowledged), output);
  });

  test('the run is sensitive to the HA template: a member without its patroni-run memory emptyDir fails', async () => {
    const broken = plan(
      workloads,
      OWNERS.postgres,
      'pms-ha-no-run-dir',
      (t) => {
        const edited = withEtcdDcs(t, `${ETCD_HOST}:${ETCD_PORT}`);
        return {
          ...edited,
          spec: {
            ...edited.spec,
            volumes: (edited.spec['volumes'] as Json[]).filter((v) => v['name'] !== 'patroni-run'),
            containers: (edited.spec['containers'] as Json[]).map((c) =>
              c['name'] === 'postgres'
                ? { ...c, volumeMounts: (c['volumeMounts'] as Json[]).filter((m) => m['name'] !== 'patroni-run') }
                : c,
            ),
          },
        };
      },
      { metadataName: 'postgres-3', podIp: addressOf('pms-ha-no-run-dir') },
    );
    netPods.set(broken.name, netPod(broken, addressOf(broken.name), 'postgres-3'));
    await enforcePolicies();
    const handle = await cluster.createPod(broken, { ip: addressOf(broken.name), hosts: await hostsNow() });
    await cluster.startServer(handle);
    const code = await until('the member without /run/patroni to exit', 60, () => cluster.exitCode(broken.name, 'postgres'));
    const logs = await cluster.logs(broken.name, 'postgres');
    await cluster.removePod(broken.name);
    assert.notEqual(code, 0, logs);
    // Seen: the read-only root has no /run/patroni, so pms-patroni-config cannot write patroni.yml.
    assert.match(logs, /EROFS|ENOENT|read-only file system|No such file/i, logs);
  });
});
