/**
 * The Patroni configuration of one member of the StatefulSet (deploy/components/postgres-ha),
 * built from what the pod knows about itself. Pure: inputs in, a plain object out (written as YAML
 * by src/cli/pms-patroni-config.ts), so the contract tests can check it and `patroni --validate-config` can too.
 */

/** Patroni 3.0 labels the leader's pod `role: master` and a streaming standby's `role: replica`. */
export const PATRONI_ROLE_LABEL = 'role';
export const PATRONI_LEADER_ROLE = 'master';
export const PATRONI_REPLICA_ROLE = 'replica';
export const PATRONI_REST_PORT = 8008;
/** Logins Patroni creates itself at bootstrap; fixed names, so pg_hba.conf can name them. */
export const REPLICATION_USER = 'pms_replicator';
export const REWIND_USER = 'pms_rewind';
export const RESTAPI_USER = 'patroni';

/**
 * Where the members keep the leader lock and the cluster state. `kubernetes` (the StatefulSet's
 * default): ConfigMaps and pod labels through the pod's service account. `etcd3`: an etcd cluster
 * of the site's own, for a site whose members may not write to the Kubernetes API (and the
 * container test, which has no API server); Patroni then labels no pods, so nothing selects the
 * leader by its role label and clients find it through the REST API (GET /primary).
 */
export type PatroniDcs =
  | { readonly kind: 'kubernetes' }
  | {
      readonly kind: 'etcd3';
      /** host:port of each etcd member. */
      readonly hosts: readonly string[];
      /** The CA etcd's certificate is verified with: https when set, plain http when not (a trusted network only). */
      readonly caFile: string | undefined;
    };

export interface PatroniMemberInputs {
  /** The pod's name (downward API metadata.name): Patroni's member name, the pod it labels. */
  readonly podName: string;
  readonly podNamespace: string;
  /** status.podIP: where the REST API is reached and which address Patroni reports. */
  readonly podIp: string;
  /** The cluster's name in the DCS (its ConfigMaps are <scope>-leader, -config, -sync, -failover). */
  readonly scope: string;
  /** The pod label Patroni stores the scope in; the pod template carries it with the scope's value. */
  readonly scopeLabel: string;
  /** Labels every member's pod carries, besides the scope label (Patroni lists pods by them). */
  readonly memberLabels: Readonly<Record<string, string>>;
  readonly dcs: PatroniDcs;
  /** The headless Service giving each pod a DNS name (the name the server certificate carries). */
  readonly headlessService: string;
  readonly dataDir: string;
  readonly binDir: string;
  /** The ConfigMap's postgresql.conf: Patroni includes it and overrides only what it manages. */
  readonly baseConfigFile: string;
  /** The ConfigMap's pg_hba.conf lines; Patroni writes them (after its own two) into the data directory. */
  readonly hbaLines: readonly string[];
  readonly tlsCaFile: string;
  readonly socketDir: string;
  /** Where Patroni keeps its pgpass (a memory emptyDir). */
  readonly runDir: string;
  readonly postBootstrap: string;
  readonly replicationPassword: string;
  readonly rewindPassword: string;
  readonly restApiPassword: string;
}

/**
 * Timing like Patroni's defaults (ttl 30, loop_wait 10, retry_timeout 10): a dead leader's lock
 * expires within 30 s, after which a synchronous standby takes over.
 *
 * synchronous_mode_strict: a write is acknowledged only once a second member has it. With three
 * members one may be lost without stopping writes; losing two stops writes (the API answers 503
 * and devices retry) rather than acknowledging a reading that exists on one disk only.
 */
export function patroniConfig(inputs: PatroniMemberInputs): Record<string, unknown> {
  const memberHost = `${inputs.podName}.${inputs.headlessService}.${inputs.podNamespace}.svc`;
  const tls = { sslmode: 'verify-full', sslrootcert: inputs.tlsCaFile };
  const hba = [...patroniHbaLines(), ...inputs.hbaLines];
  return {
    scope: inputs.scope,
    name: inputs.podName,
    log: { level: 'INFO', format: '%(asctime)s %(levelname)s: %(message)s' },
    restapi: {
      listen: `0.0.0.0:${PATRONI_REST_PORT}`,
      connect_address: `${inputs.podIp}:${PATRONI_REST_PORT}`,
      // Reads (GET /cluster, /primary, /readiness) are open to what the NetworkPolicy admits; every
      // change (POST /switchover, /restart, PATCH /config) needs this password.
      authentication: { username: RESTAPI_USER, password: inputs.restApiPassword },
    },
    ...dcsSection(inputs),
    bootstrap: {
      dcs: {
        ttl: 30,
        loop_wait: 10,
        retry_timeout: 10,
        maximum_lag_on_failover: 1048576,
        synchronous_mode: true,
        synchronous_mode_strict: true,
        postgresql: {
          use_pg_rewind: true,
          use_slots: true,
          parameters: {
            // Every member archives, standbys included: a segment the old primary never got to
            // push is pushed by a standby that received it (wal-push skips identical re-pushes).
            archive_mode: 'always',
            max_connections: 200,
            max_wal_senders: 10,
            max_replication_slots: 10,
            hot_standby: 'on',
            wal_level: 'replica',
          },
        },
      },
      initdb: ['data-checksums', { 'auth-local': 'peer' }, { 'auth-host': 'scram-sha-256' }, { encoding: 'UTF8' }],
      post_bootstrap: inputs.postBootstrap,
      // Unused while postgresql.pg_hba is set, but Patroni 3.0's --validate-config requires it.
      pg_hba: hba,
    },
    postgresql: {
      listen: '*:5432',
      connect_address: `${memberHost}:5432`,
      data_dir: inputs.dataDir,
      bin_dir: inputs.binDir,
      custom_conf: inputs.baseConfigFile,
      // A new or rebuilt member clones the leader with pg_basebackup, which by default waits for a
      // spread checkpoint: checkpoint_completion_target x checkpoint_timeout (13.5 min with the
      // ConfigMap's), all of it running with one copy fewer (the container test saw 96 s on a fresh,
      // idle cluster). A fast checkpoint costs the leader one burst of at most shared_buffers.
      basebackup: [{ checkpoint: 'fast' }],
      pgpass: `${inputs.runDir}/pgpass`,
      use_unix_socket: true,
      authentication: {
        // Over the Unix socket with peer authentication (the container runs as the postgres OS
        // user): the superuser has no password and pg_hba.conf refuses it over TCP.
        superuser: { username: 'postgres' },
        replication: { username: REPLICATION_USER, password: inputs.replicationPassword, ...tls },
        rewind: { username: REWIND_USER, password: inputs.rewindPassword, ...tls },
      },
      parameters: { unix_socket_directories: inputs.socketDir },
      pg_hba: hba,
    },
    // No /dev/watchdog in a restricted pod: the leader lock's ttl is the only fence.
    watchdog: { mode: 'off' },
  };
}

function dcsSection(inputs: PatroniMemberInputs): Record<string, unknown> {
  if (inputs.dcs.kind === 'etcd3') {
    const { hosts, caFile } = inputs.dcs;
    // Patroni 3.0's etcd3 module speaks etcd's v3 JSON gateway; it needs python3-etcd (which the
    // pms-postgres image installs by name) and no gRPC library.
    return { etcd3: { hosts: [...hosts], ...(caFile === undefined ? { protocol: 'http' } : { protocol: 'https', cacert: caFile }) } };
  }
  return {
    kubernetes: {
      namespace: inputs.podNamespace,
      labels: { ...inputs.memberLabels },
      scope_label: inputs.scopeLabel,
      role_label: PATRONI_ROLE_LABEL,
      pod_ip: inputs.podIp,
      // ConfigMaps, not Endpoints: the Services select by the role label, so Patroni needs no
      // right to create Services or write Endpoints (docs/deploy.md, "High availability").
      use_endpoints: false,
    },
  };
}

/** First, so the ConfigMap's catch-all rejects never see them: the members' own logins, TLS and SCRAM only. */
export function patroniHbaLines(): string[] {
  return [
    `hostssl replication ${REPLICATION_USER} 0.0.0.0/0 scram-sha-256`,
    `hostssl replication ${REPLICATION_USER} ::/0 scram-sha-256`,
    `hostssl postgres ${REWIND_USER} 0.0.0.0/0 scram-sha-256`,
    `hostssl postgres ${REWIND_USER} ::/0 scram-sha-256`,
  ];
}

/** pg_hba.conf text → its rule lines (comments and blank lines dropped; Patroni rewrites the file). */
export function hbaRuleLines(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.replace(/#.*$/, '').trim())
    .filter((line) => line !== '')
    .map((line) => line.replace(/\s+/g, ' '));
}

/** "a=b,c=d" → { a: 'b', c: 'd' }; undefined when malformed. */
export function parseLabels(text: string): Record<string, string> | undefined {
  const labels: Record<string, string> = {};
  for (const pair of text.split(',')) {
    const match = /^\s*([A-Za-z0-9./_-]+)=([A-Za-z0-9._-]*)\s*$/.exec(pair);
    if (!match?.[1]) return undefined;
    labels[match[1]] = match[2] ?? '';
  }
  return labels;
}
