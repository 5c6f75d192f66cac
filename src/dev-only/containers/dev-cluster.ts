import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeThrowawayTls } from '../../postgres/throwaway-tls.js';
import { type Manifest, isRecord } from '../deploy-proofs/manifest.js';
import { type PodTemplate, podTemplates } from '../deploy-proofs/pod-templates.js';
import { type ClusterData, clusterData } from './cluster-objects.js';
import type { NetPod } from './network-policy.js';
import { type PodPlan, planPod } from './pod-plan.js';

/** The project's images as `npm run images` tags them, by the repository the manifests name. */
export const LOCAL_IMAGES: ReadonlyMap<string, string> = new Map([
  ['ghcr.io/nhs-pms/pms-backup', 'localhost/pms-backup:dev'],
  ['ghcr.io/nhs-pms/pms-telemetry', 'localhost/pms-telemetry:dev'],
  ['ghcr.io/nhs-pms/pms-postgres', 'localhost/pms-postgres:dev'],
]);

/** Containers whose image cannot be had on a machine without a registry: left out, and said so. */
export const NOT_RUN: ReadonlySet<string> = new Set(['quay.io/prometheuscommunity/postgres-exporter']);

/**
 * The postgres-tls Secret as cert-manager would issue it (ca.crt, tls.crt, tls.key) from the
 * overlay's Certificate, by a throwaway CA for the Certificate's own DNS names (prod's include
 * the members' wildcard *.postgres-headless.<namespace>.svc).
 */
export async function issuePostgresTls(objects: readonly Manifest[]): Promise<Map<string, Buffer>> {
  const certificate = objects.find((o) => o.kind === 'Certificate' && isRecord(o['spec']) && o['spec']['secretName'] === 'postgres-tls');
  const spec = certificate && isRecord(certificate['spec']) ? certificate['spec'] : undefined;
  if (!spec) throw new Error('the overlay has no Certificate for postgres-tls');
  const dnsNames = (Array.isArray(spec['dnsNames']) ? spec['dnsNames'] : []).map(String).filter((n) => n !== 'localhost');
  const dir = mkdtempSync(join(tmpdir(), 'pms-dev-tls-'));
  try {
    const tls = await makeThrowawayTls(join(dir, 'tls'), { dnsNames });
    return new Map([
      ['ca.crt', readFileSync(tls.caFile)],
      ['tls.crt', readFileSync(tls.certFile)],
      ['tls.key', readFileSync(tls.keyFile)],
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface DevWorkloads {
  readonly data: ClusterData;
  readonly templates: ReadonlyMap<string, PodTemplate>;
}

export async function devWorkloads(objects: readonly Manifest[]): Promise<DevWorkloads> {
  const data = clusterData(objects, new Map([['postgres-tls', await issuePostgresTls(objects)]]));
  return { data, templates: new Map(podTemplates(objects).map((t) => [t.owner, t])) };
}

/** A pod template without the containers whose images are not available here. */
export function withoutUnavailable(template: PodTemplate): PodTemplate {
  const keep = (list: unknown) =>
    Array.isArray(list)
      ? list.filter(
          (c) =>
            !(
              isRecord(c) &&
              [...NOT_RUN].some((image) => /^[:@]/.test(String(c['image']).slice(image.length)) && String(c['image']).startsWith(image))
            ),
        )
      : list;
  return {
    ...template,
    spec: { ...template.spec, containers: keep(template.spec['containers']), initContainers: keep(template.spec['initContainers']) },
  };
}

export function plan(
  workloads: DevWorkloads,
  owner: string,
  podName: string,
  edit: (t: PodTemplate) => PodTemplate = (t) => t,
  pod: { readonly metadataName?: string; readonly podIp?: string } = {},
): PodPlan {
  const template = workloads.templates.get(owner);
  if (!template) throw new Error(`${owner} is not in the rendered overlay`);
  return planPod(edit(withoutUnavailable(template)), { podName, data: workloads.data, images: LOCAL_IMAGES, ...pod });
}

export function netPod(pod: PodPlan, ip: string, hostname?: string): NetPod {
  return { name: pod.name, namespace: pod.namespace, labels: pod.labels, ip, ...(hostname === undefined ? {} : { hostname }) };
}
