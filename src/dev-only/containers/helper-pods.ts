import type { ContainerPlan, PodPlan, VolumePlan } from './pod-plan.js';

/**
 * Pods the dev cluster has that the manifests do not define: the object store (MinIO there,
 * s3rver here), the Pushgateway, an ingress controller's client side, and a pod no policy
 * allows anything (the intruder). Locked down like the project's own pods.
 */
function container(
  name: string,
  image: string,
  command: string[],
  mounts: ContainerPlan['mounts'] = [],
  env: Array<[string, string]> = [],
): ContainerPlan {
  return {
    name,
    role: 'main',
    image,
    command,
    args: undefined,
    workingDir: undefined,
    env,
    user: 65534,
    group: 65534,
    supplementalGroups: [],
    readOnlyRootFilesystem: true,
    dropCapabilities: ['ALL'],
    addCapabilities: [],
    noNewPrivileges: true,
    memoryLimitBytes: 512 * 2 ** 20,
    mounts,
  };
}

function pod(name: string, namespace: string, labels: Record<string, string>, volumes: VolumePlan[], containers: ContainerPlan[]): PodPlan {
  return { name, namespace, labels, fsGroup: undefined, volumes, containers };
}

export interface S3Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

/** s3rver (the repository's devDependency) on port 9000, serving `buckets`, accepting `credentials`. */
export function s3Pod(
  nodeImage: string,
  nodeModulesDir: string,
  buckets: readonly string[],
  credentials: readonly S3Credentials[],
): { plan: PodPlan; script: string } {
  const script = `'use strict';
const S3rver = require('s3rver');
const { DUMMY_ACCOUNT } = require('s3rver/lib/models/account');
for (const pair of JSON.parse(process.env.S3_KEYS)) DUMMY_ACCOUNT.createKeyPair(pair.accessKeyId, pair.secretAccessKey);
new S3rver({ address: '0.0.0.0', port: 9000, silent: false, vhostBuckets: false, directory: '/data', configureBuckets: JSON.parse(process.env.S3_BUCKETS).map((name) => ({ name })) })
  .run().then(() => console.log('s3rver listening on 9000'));
`;
  const plan = pod(
    'pms-t-minio',
    'minio',
    { 'app.kubernetes.io/name': 'minio' },
    [
      { name: 'data', kind: 'emptyDir' },
      { name: 'script', kind: 'files', files: [{ path: 's3.cjs', content: Buffer.from(script), mode: 0o444 }] },
      { name: 'node-modules', kind: 'hostPath', path: nodeModulesDir },
    ],
    [
      container(
        's3rver',
        nodeImage,
        ['node', '/opt/s3/s3.cjs'],
        [
          { volume: 'data', mountPath: '/data', subPath: undefined, readOnly: false },
          { volume: 'script', mountPath: '/opt/s3/s3.cjs', subPath: 's3.cjs', readOnly: true },
          { volume: 'node-modules', mountPath: '/opt/s3/node_modules', subPath: undefined, readOnly: true },
        ],
        [
          ['S3_KEYS', JSON.stringify(credentials)],
          ['S3_BUCKETS', JSON.stringify(buckets)],
        ],
      ),
    ],
  );
  return { plan, script };
}

export function pushgatewayPod(debianImage: string): PodPlan {
  return pod(
    'pms-t-pushgateway',
    'monitoring',
    { 'app.kubernetes.io/name': 'pushgateway' },
    [{ name: 'binary', kind: 'hostPath', path: '/usr/bin/prometheus-pushgateway' }],
    [
      container(
        'pushgateway',
        debianImage,
        ['/opt/prometheus-pushgateway', '--web.listen-address=:9091'],
        [{ volume: 'binary', mountPath: '/opt/prometheus-pushgateway', subPath: undefined, readOnly: true }],
      ),
    ],
  );
}

/** A pod that only waits, so probes can be run in it with podman exec. */
export function probePod(name: string, namespace: string, labels: Record<string, string>, nodeImage: string): PodPlan {
  return pod(name, namespace, labels, [], [container('probe', nodeImage, ['sleep', 'infinity'])]);
}

/** The etcd the HA members use as their DCS in place of the Kubernetes API (ha-cluster.ts says why). */
export const ETCD_PORT = 2379;

/**
 * One etcd member (Debian's etcd-server binary, in the plain Debian base) on port 2379,
 * advertising itself under `clientHost`: Patroni's etcd3 client asks etcd for its members and then
 * talks to the addresses they advertise, so that name must resolve in the Patroni pods.
 */
export function etcdPod(debianImage: string, namespace: string, clientHost: string): PodPlan {
  return pod(
    'pms-t-etcd',
    namespace,
    { 'app.kubernetes.io/name': 'etcd' },
    [
      { name: 'binary', kind: 'hostPath', path: '/usr/bin/etcd' },
      { name: 'data', kind: 'emptyDir' },
    ],
    [
      container(
        'etcd',
        debianImage,
        [
          '/opt/etcd',
          '--name=e1',
          '--data-dir=/var/lib/etcd/e1',
          `--listen-client-urls=http://0.0.0.0:${ETCD_PORT}`,
          `--advertise-client-urls=http://${clientHost}:${ETCD_PORT}`,
          '--listen-peer-urls=http://127.0.0.1:2380',
          '--initial-advertise-peer-urls=http://127.0.0.1:2380',
          '--initial-cluster=e1=http://127.0.0.1:2380',
        ],
        [
          { volume: 'binary', mountPath: '/opt/etcd', subPath: undefined, readOnly: true },
          { volume: 'data', mountPath: '/var/lib/etcd', subPath: undefined, readOnly: false },
        ],
      ),
    ],
  );
}
