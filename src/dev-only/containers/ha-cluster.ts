import { randomBytes } from 'node:crypto';
import { field, type PodTemplate, podTemplates } from '../deploy-proofs/pod-templates.js';
import type { Manifest } from '../deploy-proofs/manifest.js';
import { clusterData } from './cluster-objects.js';
import { type DevWorkloads, issuePostgresTls } from './dev-cluster.js';

/**
 * The prod overlay's workloads for a run without a Kubernetes API server, with what such a run
 * cannot have supplied by the harness, each said here once:
 *
 * - Secrets: prod renders SealedSecrets only (no plaintext). Each is supplied with the dev
 *   overlay's throwaway values of the Secret of the same name (every key the SealedSecret seals
 *   must be there); the one dev lacks, postgres-patroni-secrets (dev runs no Patroni), gets
 *   random passwords. postgres-tls, cert-manager's in prod, comes from a throwaway CA issuing for
 *   prod's own Certificate (the members' *.postgres-headless names included).
 * - Site values: prod's pms-backup-config and pms-trusted-signers hold the site's object store
 *   and the placeholder signers the deploy workflow refuses; the dev overlay's (the S3 pod,
 *   the fixtures' signing keys) stand in for them, whole.
 * - Every other ConfigMap (postgresql.conf, pg_hba.conf, the init script) is prod's as rendered.
 *
 * The DCS substitution (etcd for the Kubernetes API) is applied to the member's pod template by
 * `withEtcdDcs`, not here.
 */
export async function haWorkloads(prod: readonly Manifest[], dev: readonly Manifest[]): Promise<DevWorkloads> {
  const supplied: Manifest[] = [];
  for (const sealed of prod.filter((o) => o.kind === 'SealedSecret')) {
    const name = sealed.metadata.name;
    const keys = Object.keys((field(sealed, 'spec', 'encryptedData') ?? {}) as Record<string, unknown>);
    // The dev overlay's generated Secrets carry kustomize's hash suffix.
    const devSecret = dev.find(
      (o) => o.kind === 'Secret' && (o.metadata.name === name || new RegExp(`^${name}-[a-z0-9]{10}$`).test(o.metadata.name)),
    );
    if (devSecret) {
      const data = { ...((devSecret['data'] as Record<string, string> | undefined) ?? {}) };
      for (const [key, value] of Object.entries((devSecret['stringData'] as Record<string, string> | undefined) ?? {}))
        data[key] = Buffer.from(value).toString('base64');
      const missing = keys.filter((k) => data[k] === undefined);
      if (missing.length > 0)
        throw new Error(`the dev overlay's Secret ${devSecret.metadata.name} lacks ${missing.join(', ')} of prod's ${name}`);
      supplied.push({ ...devSecret, metadata: { ...devSecret.metadata, name }, data } as Manifest);
    } else if (name === 'postgres-patroni-secrets') {
      const data = Object.fromEntries(keys.map((k) => [k, Buffer.from(randomBytes(24).toString('hex')).toString('base64')]));
      supplied.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: sealed.metadata.namespace }, data } as Manifest);
    } else {
      throw new Error(`prod's SealedSecret ${name} has no counterpart in the dev overlay to take throwaway values from`);
    }
  }
  const site = new Set(['pms-backup-config', 'pms-trusted-signers']);
  const configMaps = [
    ...prod.filter((o) => o.kind === 'ConfigMap' && !site.has(o.metadata.name)),
    ...dev.filter((o) => o.kind === 'ConfigMap' && site.has(o.metadata.name)),
  ];
  const data = clusterData([...configMaps, ...supplied], new Map([['postgres-tls', await issuePostgresTls(prod)]]));
  return { data, templates: new Map(podTemplates(prod).map((t) => [t.owner, t])) };
}

/**
 * The one change to the member's pod template: Patroni's DCS is etcd (PMS_PATRONI_DCS=etcd3, the
 * product's option for sites without Kubernetes API access) instead of the Kubernetes API,
 * which this machine has none of. Everything else of the template runs as rendered.
 */
export function withEtcdDcs(template: PodTemplate, etcdHosts: string): PodTemplate {
  const containers = (template.spec['containers'] as Array<Record<string, unknown>>).map((c) =>
    c['name'] === 'postgres'
      ? {
          ...c,
          env: [
            ...(c['env'] as unknown[]),
            { name: 'PMS_PATRONI_DCS', value: 'etcd3' },
            { name: 'PMS_PATRONI_ETCD3_HOSTS', value: etcdHosts },
          ],
        }
      : c,
  );
  return { ...template, spec: { ...template.spec, containers } };
}

/** Where a site address of prod's NetworkPolicies is found in this run. */
export interface LocalSite {
  readonly ip: string;
  readonly port: number;
}

/**
 * prod's NetworkPolicies as they apply here. Two kinds of destination are admitted by address
 * (ipBlock) in prod, both outside the cluster's pods: the Kubernetes API server (Patroni's DCS)
 * and the object stores. Their stand-ins here are pods (etcd, the S3 pod), so each named policy's
 * ipBlocks become the stand-in's address and its ports the stand-in's port. Every other policy
 * and rule is prod's as rendered, the namespace's default deny included; a policy named here but
 * not rendered fails the run (the substitution must not silently stop applying).
 */
export function withLocalSites(objects: readonly Manifest[], sites: Readonly<Record<string, LocalSite>>): Manifest[] {
  const unused = new Set(Object.keys(sites));
  const out = objects.map((object) => {
    const site = object.kind === 'NetworkPolicy' ? sites[object.metadata.name] : undefined;
    if (!site) return object;
    unused.delete(object.metadata.name);
    const spec = object['spec'] as Record<string, unknown>;
    const egress = (spec['egress'] as Array<Record<string, unknown>>).map((rule) => {
      const to = (rule['to'] as Array<Record<string, unknown>>).map((peer) =>
        peer['ipBlock'] === undefined ? peer : { ipBlock: { cidr: `${site.ip}/32` } },
      );
      return { ...rule, to, ports: [{ protocol: 'TCP', port: site.port }] };
    });
    return { ...object, spec: { ...spec, egress } } as Manifest;
  });
  if (unused.size > 0) throw new Error(`no rendered NetworkPolicy named ${[...unused].join(', ')} to point at a local stand-in`);
  return out;
}
