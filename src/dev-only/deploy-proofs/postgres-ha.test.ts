import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  PATRONI_LEADER_ROLE,
  PATRONI_REPLICA_ROLE,
  PATRONI_ROLE_LABEL,
  REPLICATION_USER,
  REWIND_USER,
  hbaRuleLines,
  patroniHbaLines,
} from '../../postgres/patroni/patroni-config.js';
import { runTool } from '../../process/tool-process.js';
import { binPath } from '../../testing/run-cli.js';
import { type Manifest, isRecord } from './manifest.js';
import { field } from './pod-templates.js';
import { HA_OWNER, haViolations } from './postgres-ha.js';
import { DEPLOY_DIR, renderKustomization } from './render.js';
import { mayReach } from './network-reach.js';
import { findPod, materialiseContainer } from './workload-environment.js';
import { shellFirstArchiveCommand } from '../../commands/wal-push/archive-command.js';

/**
 * Contract test of the prod overlay's PostgreSQL HA (deploy/components/postgres-ha): the rendered
 * objects against what Patroni 3.0's Kubernetes DCS does (labels it sets and lists by, API calls
 * it makes, ports members use), and the member's patroni.yml as pms-patroni-config writes it from
 * the rendered container, checked by Patroni's own validator.
 */
let dev: Manifest[];
let prod: Manifest[];
let root: string;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'pms-ha-'));
  [dev, prod] = await Promise.all([
    renderKustomization(join(DEPLOY_DIR, 'overlays', 'dev')),
    renderKustomization(join(DEPLOY_DIR, 'overlays', 'prod')),
  ]);
});

after(() => rmSync(root, { recursive: true, force: true }));

type Json = Record<string, any>;

function find(objects: readonly Manifest[], kind: string, name: string): Manifest {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(found, `${kind}/${name} is rendered`);
  return found;
}

/** The objects with one of them changed (a deep copy), for negative cases. */
function changed(objects: readonly Manifest[], kind: string, name: string, change: (copy: Json) => void): Manifest[] {
  return objects.map((o) => {
    if (o.kind !== kind || o.metadata.name !== name) return o;
    const copy = structuredClone(o) as Json;
    change(copy);
    return copy as Manifest;
  });
}

describe('prod runs PostgreSQL as three Patroni members', () => {
  test('prod passes every HA check; dev stays a single server with no API access', () => {
    assert.deepEqual(haViolations(prod), []);
    const devProblems = haViolations(dev);
    assert.ok(devProblems.includes(`${HA_OWNER}: replicas is 1, not 3`), devProblems.join('\n'));
    assert.ok(devProblems.some((p) => /cannot list pods/.test(p)));
  });

  test("monitor reads every member's REST API, and only monitor and the members may reach port 8008", () => {
    const monitor = (findPod(prod, 'CronJob/pms-backup-monitor').spec['containers'] as Json[])[0] ?? {};
    const urls = ((monitor['env'] as Json[]).find((e) => e['name'] === 'BACKUP_PATRONI_URLS')?.['value'] as string | undefined) ?? '';
    const replicas = Number((find(prod, 'StatefulSet', 'postgres')['spec'] as Json)['replicas']);
    assert.deepEqual(
      urls.split(','),
      Array.from({ length: replicas }, (_, i) => `http://postgres-${i}.postgres-headless.patient-monitoring.svc:8008`),
    );
    const api = { namespace: 'patient-monitoring', labels: { 'app.kubernetes.io/name': 'postgres' }, port: 8008 };
    assert.ok(mayReach(prod, 'CronJob/pms-backup-monitor', api), 'monitor reaches the REST API');
    assert.ok(mayReach(prod, 'StatefulSet/postgres', api), 'members reach each other');
    for (const other of ['CronJob/pms-backup', 'CronJob/pms-backup-verify', 'CronJob/pms-backup-copy', 'Deployment/pms-telemetry']) {
      assert.ok(!mayReach(prod, other, api), `${other} does not reach the REST API`);
    }
    // Without the monitor's egress policy the path is closed (the check above can fail).
    const without = prod.filter((o) => !(o.kind === 'NetworkPolicy' && o.metadata.name === 'pms-backup-monitor-to-patroni-api'));
    assert.ok(!mayReach(without, 'CronJob/pms-backup-monitor', api));
  });

  test("the Services select by Patroni 3.0's role label: postgres the leader, postgres-replicas the standbys", () => {
    assert.deepEqual(find(prod, 'Service', 'postgres')['spec'] && (find(prod, 'Service', 'postgres')['spec'] as Json)['selector'], {
      'app.kubernetes.io/name': 'postgres',
      [PATRONI_ROLE_LABEL]: PATRONI_LEADER_ROLE,
    });
    assert.deepEqual((find(prod, 'Service', 'postgres-replicas')['spec'] as Json)['selector'], {
      'app.kubernetes.io/name': 'postgres',
      [PATRONI_ROLE_LABEL]: PATRONI_REPLICA_ROLE,
    });
    // The values Patroni 3.0 itself writes on the pods (patroni/dcs/kubernetes.py, touch_member).
    const source = readFileSync('/usr/lib/python3/dist-packages/patroni/dcs/kubernetes.py', 'utf8');
    assert.match(source, /role = 'master'/);
    assert.match(source, /self\._role_label = config\.get\('role_label', 'role'\)/);
  });

  const broken: Array<[string, readonly [string, string], (copy: Json) => void, RegExp]> = [
    ['one replica', ['StatefulSet', 'postgres'], (s) => (s.spec.replicas = 1), /replicas is 1, not 3/],
    [
      'a role label in the pod template',
      ['StatefulSet', 'postgres'],
      (s) => (s.spec.template.metadata.labels.role = 'master'),
      /only Patroni may set/,
    ],
    [
      'a preferred (not required) anti-affinity',
      ['StatefulSet', 'postgres'],
      (s) => delete s.spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution,
      /no required pod anti-affinity/,
    ],
    [
      'a budget that blocks every drain',
      ['PodDisruptionBudget', 'postgres'],
      (b) => {
        b.spec = { selector: b.spec.selector, minAvailable: 3 };
      },
      /lets 0 member/,
    ],
    ['a budget that lets two go', ['PodDisruptionBudget', 'postgres'], (b) => (b.spec.maxUnavailable = 2), /lets 2 member/],
    [
      'the primary Service without the role',
      ['Service', 'postgres'],
      (s) => delete s.spec.selector.role,
      /selects the leader and the standbys alike/,
    ],
    [
      "Patroni 4's label value",
      ['Service', 'postgres'],
      (s) => (s.spec.selector.role = 'primary'),
      /Service\/postgres does not select the leader/,
    ],
    ['no replicas Service', ['Service', 'postgres-replicas'], (s) => (s.spec.selector.role = 'standby'), /no Service selects the standbys/],
    [
      'no watch on ConfigMaps',
      ['Role', 'postgres-patroni'],
      (r) => (r.rules[0].verbs = ['get', 'list', 'create', 'patch']),
      /cannot watch configmaps/,
    ],
    ['delete on pods', ['Role', 'postgres-patroni'], (r) => r.rules[1].verbs.push('delete'), /may delete pods/],
    [
      'Secrets readable',
      ['Role', 'postgres-patroni'],
      (r) => r.rules.push({ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }),
      /may get secrets/,
    ],
    [
      'no token',
      ['StatefulSet', 'postgres'],
      (s) => (s.spec.template.spec.automountServiceAccountToken = false),
      /automountServiceAccountToken must be true/,
    ],
    [
      'no member ingress on 8008',
      ['NetworkPolicy', 'postgres-members'],
      (p) => (p.spec.ingress[0].ports = [{ protocol: 'TCP', port: 5432 }]),
      /admits the other members on 8008/,
    ],
  ];
  for (const [name, [kind, object], change, expected] of broken) {
    test(`prod with ${name} is rejected`, () => {
      const problems = haViolations(changed(prod, kind, object, change));
      assert.ok(
        problems.some((p) => expected.test(p)),
        problems.join('\n') || '(no finding)',
      );
    });
  }
  test('prod without the PodDisruptionBudget is rejected', () => {
    const problems = haViolations(prod.filter((o) => o.kind !== 'PodDisruptionBudget' || o.metadata.name !== 'postgres'));
    assert.ok(problems.some((p) => /0 PodDisruptionBudgets/.test(p)));
  });
});

/**
 * Stand-ins for what prod's cluster makes: each SealedSecret's Secret (the controller) and the
 * certificate's (cert-manager), with recognisable values.
 */
function withStandInSecrets(objects: readonly Manifest[]): Manifest[] {
  const secret = (name: string, keys: readonly string[]): Manifest => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: 'patient-monitoring' },
    data: Object.fromEntries(keys.map((k) => [k, Buffer.from(`stand-in ${name}/${k}`).toString('base64')])),
  });
  const sealed = objects
    .filter((o) => o.kind === 'SealedSecret')
    .map((o) => secret(o.metadata.name, Object.keys((field(o, 'spec', 'encryptedData') ?? {}) as Json)));
  return [...objects, ...sealed, secret('postgres-tls', ['tls.crt', 'tls.key', 'ca.crt'])];
}

describe("the member's patroni.yml, written by pms-patroni-config from the rendered container", () => {
  let configFile: string;
  let config: Json;
  let mapPath: (path: string) => string;
  const podIp = '10.244.1.7';

  before(async () => {
    const objects = withStandInSecrets(prod);
    const container = materialiseContainer(objects, findPod(objects, HA_OWNER), 'postgres', {
      root: join(root, 'member'),
      // The downward API, as the kubelet would fill it in for the first pod.
      envOverrides: { POD_NAME: 'postgres-0', POD_NAMESPACE: 'patient-monitoring', POD_IP: podIp },
    });
    mapPath = container.mapPath;
    assert.deepEqual(container.command, ['/usr/local/bin/pms-patroni']);
    configFile = join(container.mapPath('/run/patroni'), 'patroni.yml');
    await runTool(process.execPath, [binPath('pms-patroni-config'), configFile], { env: { ...container.env, PATH: process.env['PATH'] } });
    config = JSON.parse(readFileSync(configFile, 'utf8')) as Json;
  });

  test('Patroni 3.0 accepts it (patroni --validate-config), and rejects it with one wrong value', async () => {
    await runTool('patroni', ['--validate-config', configFile]);
    const wrong = join(root, 'wrong.yml');
    writeFileSync(
      wrong,
      JSON.stringify({ ...config, bootstrap: { ...config['bootstrap'], dcs: { ...config['bootstrap'].dcs, ttl: 'thirty' } } }),
    );
    await assert.rejects(runTool('patroni', ['--validate-config', wrong]), /ttl/);
  });

  test('it is written 0600 into the memory emptyDir, with the passwords of the mounted Secret', () => {
    assert.equal(statSync(configFile).mode & 0o777, 0o600);
    const pod = findPod(prod, HA_OWNER);
    const volume = (pod.spec['volumes'] as Json[]).find((v) => v['name'] === 'patroni-run');
    assert.equal(volume?.['emptyDir']?.medium, 'Memory');
    assert.equal(config['restapi'].authentication.password, 'stand-in postgres-patroni-secrets/restapi-password');
    assert.equal(config['postgresql'].authentication.replication.password, 'stand-in postgres-patroni-secrets/replication-password');
    assert.equal(config['postgresql'].authentication.rewind.password, 'stand-in postgres-patroni-secrets/rewind-password');
    assert.equal(config['postgresql'].authentication.superuser.password, undefined, 'the superuser has no password (peer over the socket)');
  });

  test('its Kubernetes DCS finds exactly these pods: the labels it lists by are on the pod template', () => {
    const pod = findPod(prod, HA_OWNER);
    const k8s = config['kubernetes'] as Json;
    assert.equal(k8s['use_endpoints'], false);
    assert.equal(k8s['namespace'], 'patient-monitoring');
    assert.equal(k8s['pod_ip'], podIp);
    assert.equal(k8s['role_label'], PATRONI_ROLE_LABEL);
    const listedBy = { ...k8s['labels'], [k8s['scope_label']]: config['scope'] };
    for (const [key, value] of Object.entries(listedBy)) assert.equal(pod.labels[key], value, `pod label ${key}`);
    assert.equal(config['name'], 'postgres-0');
    assert.equal(config['restapi'].connect_address, `${podIp}:8008`);
  });

  test('replicas connect to the leader by a name the server certificate carries, with verify-full', () => {
    const host = String(config['postgresql'].connect_address).replace(/:5432$/, '');
    assert.equal(host, 'postgres-0.postgres-headless.patient-monitoring.svc');
    const names = (field(find(prod, 'Certificate', 'postgres-tls'), 'spec', 'dnsNames') as string[]) ?? [];
    assert.ok(
      names.some((n) => n === host || (n.startsWith('*.') && host.slice(host.indexOf('.')) === n.slice(1))),
      `${host} in ${names.join(', ')}`,
    );
    for (const login of ['replication', 'rewind']) {
      assert.equal(config['postgresql'].authentication[login].sslmode, 'verify-full');
      assert.equal(config['postgresql'].authentication[login].sslrootcert, mapPath('/etc/postgresql/tls/ca.crt'));
    }
  });

  test("PostgreSQL runs with the ConfigMap's postgresql.conf and pg_hba.conf, plus only the members' own TLS logins", () => {
    assert.equal(config['postgresql'].custom_conf, mapPath('/etc/postgresql/postgresql.conf'));
    const configMap = prod.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('postgres-config-'));
    const data = (configMap?.['data'] ?? {}) as Record<string, string>;
    assert.deepEqual(config['postgresql'].pg_hba, [...patroniHbaLines(), ...hbaRuleLines(data['pg_hba.conf'] ?? '')]);
    for (const line of patroniHbaLines())
      assert.match(line, new RegExp(`^hostssl (replication ${REPLICATION_USER}|postgres ${REWIND_USER}) \\S+ scram-sha-256$`));
    assert.ok(
      (data['postgresql.conf'] ?? '').split('\n').includes(`archive_command = '${shellFirstArchiveCommand('pms-backup wal-push')}'`),
    );
  });

  test('every member archives (archive_mode always), with strict synchronous replication and pg_rewind', () => {
    const dcs = config['bootstrap'].dcs as Json;
    assert.equal(dcs['synchronous_mode'], true);
    assert.equal(dcs['synchronous_mode_strict'], true);
    assert.equal(dcs['postgresql'].parameters.archive_mode, 'always');
    assert.equal(dcs['postgresql'].use_pg_rewind, true);
    assert.ok(dcs['ttl'] <= 30 && dcs['loop_wait'] <= 10, 'a dead leader is replaced within about 30 s');
    assert.equal(config['bootstrap'].post_bootstrap, '/usr/local/bin/pms-patroni-post-bootstrap');
    // A member being cloned does not wait for a spread checkpoint on the leader.
    assert.deepEqual(config['postgresql'].basebackup, [{ checkpoint: 'fast' }]);
    assert.ok(isRecord(config['watchdog']) && config['watchdog']['mode'] === 'off');
  });

  test('with PMS_PATRONI_DCS=etcd3 (a site without Kubernetes API access) it uses etcd instead, accepted by Patroni 3.0', async () => {
    const objects = withStandInSecrets(prod);
    const container = materialiseContainer(objects, findPod(objects, HA_OWNER), 'postgres', {
      root: join(root, 'member-etcd3'),
      envOverrides: { POD_NAME: 'postgres-1', POD_NAMESPACE: 'patient-monitoring', POD_IP: podIp },
    });
    const file = join(container.mapPath('/run/patroni'), 'patroni.yml');
    const env = {
      ...container.env,
      PATH: process.env['PATH'],
      PMS_PATRONI_DCS: 'etcd3',
      PMS_PATRONI_ETCD3_HOSTS: '10.96.0.21:2379,10.96.0.22:2379',
    };
    await runTool(process.execPath, [binPath('pms-patroni-config'), file], { env });
    const etcd = JSON.parse(readFileSync(file, 'utf8')) as Json;
    // The validator resolves each host, hence addresses rather than names here.
    await runTool('patroni', ['--validate-config', file]);
    assert.deepEqual(etcd['etcd3'], { hosts: ['10.96.0.21:2379', '10.96.0.22:2379'], protocol: 'http' });
    assert.equal(etcd['kubernetes'], undefined);
    // Only the DCS differs from the Kubernetes member's configuration.
    const { etcd3: _etcd3, ...rest } = etcd;
    const { kubernetes: _kubernetes, ...k8sRest } = config;
    assert.deepEqual(
      {
        ...rest,
        name: 'x',
        postgresql: { ...rest['postgresql'], connect_address: 'x', data_dir: 'x', custom_conf: 'x', pgpass: 'x', authentication: 'x' },
        restapi: 'x',
        bootstrap: { ...rest['bootstrap'], post_bootstrap: 'x' },
      },
      {
        ...k8sRest,
        name: 'x',
        postgresql: { ...k8sRest['postgresql'], connect_address: 'x', data_dir: 'x', custom_conf: 'x', pgpass: 'x', authentication: 'x' },
        restapi: 'x',
        bootstrap: { ...k8sRest['bootstrap'], post_bootstrap: 'x' },
      },
    );
    // A DCS setting that does not fit is refused, with the others, before anything is written.
    const refused = await runTool(process.execPath, [binPath('pms-patroni-config'), join(root, 'refused-etcd3.yml')], {
      env: { ...env, PMS_PATRONI_ETCD3_HOSTS: 'etcd-a', PMS_PATRONI_DCS: 'etcd3' },
    }).then(
      () => '',
      (error: Error) => error.message,
    );
    assert.match(refused, /PMS_PATRONI_ETCD3_HOSTS: etcd-a is invalid: use host:port/);
    const mixed = await runTool(process.execPath, [binPath('pms-patroni-config'), join(root, 'refused-mixed.yml')], {
      env: { ...env, PMS_PATRONI_DCS: '' },
    }).then(
      () => '',
      (error: Error) => error.message,
    );
    assert.match(mixed, /PMS_PATRONI_ETCD3_HOSTS is set but PMS_PATRONI_DCS is kubernetes/);
  });

  test('without its Secrets it refuses to write anything, naming every missing file but no value', async () => {
    const out = join(root, 'refused.yml');
    const failure = await runTool(process.execPath, [binPath('pms-patroni-config'), out], {
      env: { PATH: process.env['PATH'], POD_NAME: 'Postgres_0', PMS_PATRONI_SECRETS_DIR: join(root, 'nowhere') },
    }).then(
      () => undefined,
      (error: Error) => error.message,
    );
    assert.ok(failure);
    for (const expected of [
      'POD_NAME=Postgres_0 is invalid',
      'POD_IP is not set',
      'replication-password',
      'restapi-password',
      'PGDATA is not set',
    ])
      assert.ok(failure.includes(expected), `${expected} in ${failure}`);
    assert.throws(() => statSync(out));
  });
});
