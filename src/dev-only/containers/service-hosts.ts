import { selectorMatches } from '../deploy-proofs/label-selector.js';
import { type Manifest, isRecord } from '../deploy-proofs/manifest.js';
import type { NetPod } from './network-policy.js';

/** A Service the cluster would have that the manifests do not define (MinIO, the Pushgateway). */
export interface ExternalService {
  readonly name: string;
  readonly namespace: string;
  readonly selector: Readonly<Record<string, string>>;
  readonly headless?: boolean;
}

function namesOf(name: string, namespace: string): string[] {
  return [name, `${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.cluster.local`];
}

/**
 * Service names → the address of the pod behind them, for /etc/hosts of every pod (there is no
 * cluster DNS): a ClusterIP Service resolves straight to its backing pod (to each of several, as
 * a round-robin answer would, for postgres-replicas). A Service that selects no running pod gets
 * no name, as DNS would have no useful answer for it. A headless Service also names each of its
 * pods that has a hostname (a StatefulSet's postgres-0.postgres-headless.<namespace>.svc).
 * Ports are the pods' own (no kube-proxy): a client names the Service and its targetPort.
 */
export function serviceHosts(
  objects: readonly Manifest[],
  pods: readonly NetPod[],
  external: readonly ExternalService[],
): Array<[string, string]> {
  const services: ExternalService[] = [...external];
  for (const object of objects) {
    if (object.kind !== 'Service' || !isRecord(object['spec']) || !isRecord(object['spec']['selector'])) continue;
    services.push({
      name: object.metadata.name,
      namespace: object.metadata.namespace ?? 'default',
      selector: object['spec']['selector'] as Record<string, string>,
      headless: object['spec']['clusterIP'] === 'None',
    });
  }
  const hosts: Array<[string, string]> = [];
  for (const service of services) {
    const backing = pods.filter((p) => p.namespace === service.namespace && selectorMatches({ matchLabels: service.selector }, p.labels));
    for (const pod of backing) {
      for (const name of namesOf(service.name, service.namespace)) hosts.push([name, pod.ip]);
      if (service.headless && pod.hostname !== undefined) {
        for (const name of namesOf(service.name, service.namespace).slice(2)) hosts.push([`${pod.hostname}.${name}`, pod.ip]);
      }
    }
  }
  return hosts;
}
