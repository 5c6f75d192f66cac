import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PmsError } from '../../errors/catalogue.js';
import { type PatroniDcs, type PatroniMemberInputs, hbaRuleLines, parseLabels } from './patroni-config.js';

type Env = Readonly<Record<string, string | undefined>>;

/**
 * The variables the StatefulSet gives the member (deploy/components/postgres-ha/statefulset.yaml).
 * They belong to the postgres image's entrypoint alone, so they live here rather than in the
 * settings table of pms-backup and pms-telemetry (which run beside it and ignore them).
 */
export const PATRONI_VARIABLES = {
  POD_NAME: 'the pod name (downward API metadata.name)',
  POD_NAMESPACE: 'the namespace (downward API metadata.namespace)',
  POD_IP: 'the pod address (downward API status.podIP)',
  PMS_PATRONI_SCOPE: 'the cluster name in the DCS',
  PMS_PATRONI_SCOPE_LABEL: 'the pod label holding the scope',
  PMS_PATRONI_MEMBER_LABELS: 'labels every member pod carries, a=b,c=d',
  PMS_PATRONI_HEADLESS_SERVICE: 'the headless Service naming each member',
  PMS_PATRONI_SECRETS_DIR: 'directory of replication-password, rewind-password, restapi-password',
  PMS_PATRONI_POSTGRESQL_CONF: 'the ConfigMap postgresql.conf Patroni includes',
  PMS_PATRONI_PG_HBA: 'the ConfigMap pg_hba.conf whose rules Patroni writes',
  PMS_PATRONI_TLS_CA: 'the CA certificate replicas verify the leader with',
  PMS_PATRONI_RUN_DIR: 'memory directory for Patroni’s pgpass',
  PMS_PATRONI_POST_BOOTSTRAP: 'script run once after initdb (creates the database and logins)',
  PMS_PATRONI_BIN_DIR: 'PostgreSQL 15 programs',
  PGDATA: 'the data directory',
  PMS_PATRONI_DCS: 'kubernetes (the default: the pod service account) or etcd3 (a site without Kubernetes API access)',
  PMS_PATRONI_ETCD3_HOSTS: 'with etcd3: the etcd members, host:port,host:port',
  PMS_PATRONI_ETCD3_CA: 'with etcd3: the CA etcd is verified with (https); unset means plain http',
} as const;

const DEFAULTS: Partial<Record<keyof typeof PATRONI_VARIABLES, string>> = {
  PMS_PATRONI_SCOPE_LABEL: 'app.kubernetes.io/instance',
  PMS_PATRONI_POSTGRESQL_CONF: '/etc/postgresql/postgresql.conf',
  PMS_PATRONI_PG_HBA: '/etc/postgresql/pg_hba.conf',
  PMS_PATRONI_TLS_CA: '/etc/postgresql/tls/ca.crt',
  PMS_PATRONI_RUN_DIR: '/run/patroni',
  PMS_PATRONI_POST_BOOTSTRAP: '/usr/local/bin/pms-patroni-post-bootstrap',
  PMS_PATRONI_BIN_DIR: '/usr/lib/postgresql/15/bin',
  PMS_PATRONI_DCS: 'kubernetes',
};

const HOST_PORT = /^[A-Za-z0-9.-]+:[0-9]{1,5}$/;

function readDcs(env: Env, problems: string[]): PatroniDcs {
  const kind = env['PMS_PATRONI_DCS'] || DEFAULTS.PMS_PATRONI_DCS;
  const hostsText = env['PMS_PATRONI_ETCD3_HOSTS'] ?? '';
  const caFile = env['PMS_PATRONI_ETCD3_CA'] || undefined;
  if (kind === 'kubernetes') {
    // Set but unused would mislead whoever reads the manifest: the member would not use etcd.
    for (const name of ['PMS_PATRONI_ETCD3_HOSTS', 'PMS_PATRONI_ETCD3_CA'] as const)
      if (env[name]) problems.push(`${name} is set but PMS_PATRONI_DCS is kubernetes: set PMS_PATRONI_DCS=etcd3 or remove it`);
    return { kind };
  }
  if (kind !== 'etcd3') {
    problems.push(`PMS_PATRONI_DCS=${kind} is invalid: use kubernetes or etcd3`);
    return { kind: 'kubernetes' };
  }
  const hosts = hostsText
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h !== '');
  if (hosts.length === 0) problems.push(`PMS_PATRONI_ETCD3_HOSTS is not set: ${PATRONI_VARIABLES.PMS_PATRONI_ETCD3_HOSTS}`);
  for (const host of hosts) if (!HOST_PORT.test(host)) problems.push(`PMS_PATRONI_ETCD3_HOSTS: ${host} is invalid: use host:port`);
  return { kind, hosts, caFile };
}

const NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

/** Reads and checks every input at once; every problem is reported together, never a secret's value. */
export function readPatroniInputs(env: Env): PatroniMemberInputs {
  const problems: string[] = [];
  const get = (name: keyof typeof PATRONI_VARIABLES): string => {
    const value = env[name] || DEFAULTS[name];
    if (value === undefined) problems.push(`${name} is not set: ${PATRONI_VARIABLES[name]}`);
    return value ?? '';
  };
  const read = (path: string, what: string): string => {
    try {
      return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      problems.push(`${what}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`);
      return '';
    }
  };
  const podName = get('POD_NAME');
  const podNamespace = get('POD_NAMESPACE');
  const podIp = get('POD_IP');
  const scope = get('PMS_PATRONI_SCOPE');
  for (const [name, value] of [
    ['POD_NAME', podName],
    ['POD_NAMESPACE', podNamespace],
    ['PMS_PATRONI_SCOPE', scope],
  ] as const)
    if (value !== '' && !NAME.test(value)) problems.push(`${name}=${value} is invalid: use a Kubernetes object name`);
  if (podIp !== '' && !/^[0-9a-fA-F:.]+$/.test(podIp)) problems.push(`POD_IP=${podIp} is invalid: use an IP address`);
  const labelsText = get('PMS_PATRONI_MEMBER_LABELS');
  const memberLabels = labelsText === '' ? {} : parseLabels(labelsText);
  if (!memberLabels) problems.push(`PMS_PATRONI_MEMBER_LABELS=${labelsText} is invalid: use name=value pairs separated by commas`);
  const secretsDir = get('PMS_PATRONI_SECRETS_DIR');
  const hbaFile = get('PMS_PATRONI_PG_HBA');
  const secret = (key: string): string => {
    if (secretsDir === '') return '';
    const value = read(join(secretsDir, key), `PMS_PATRONI_SECRETS_DIR/${key}`);
    if (value === '' && !problems.some((p) => p.includes(key))) problems.push(`PMS_PATRONI_SECRETS_DIR/${key} is empty`);
    return value;
  };
  const inputs: PatroniMemberInputs = {
    podName,
    podNamespace,
    podIp,
    scope,
    scopeLabel: get('PMS_PATRONI_SCOPE_LABEL'),
    memberLabels: memberLabels ?? {},
    dcs: readDcs(env, problems),
    headlessService: get('PMS_PATRONI_HEADLESS_SERVICE'),
    dataDir: get('PGDATA'),
    binDir: get('PMS_PATRONI_BIN_DIR'),
    baseConfigFile: get('PMS_PATRONI_POSTGRESQL_CONF'),
    hbaLines: hbaRuleLines(read(hbaFile, 'PMS_PATRONI_PG_HBA')),
    tlsCaFile: get('PMS_PATRONI_TLS_CA'),
    socketDir: '/var/run/postgresql',
    runDir: get('PMS_PATRONI_RUN_DIR'),
    postBootstrap: get('PMS_PATRONI_POST_BOOTSTRAP'),
    replicationPassword: secret('replication-password'),
    rewindPassword: secret('rewind-password'),
    restApiPassword: secret('restapi-password'),
  };
  if (problems.length > 0) throw new PmsError('PMS_ERR_CONFIG', `pms-patroni-config: ${problems.join('; ')}`);
  return inputs;
}
