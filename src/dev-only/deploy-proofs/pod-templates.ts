import { type Manifest, describe, isRecord } from './manifest.js';

type Json = Record<string, unknown>;

export interface PodTemplate {
  /** e.g. CronJob/pms-backup */
  readonly owner: string;
  readonly namespace: string | undefined;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly spec: Json;
  /** A StatefulSet's volumeClaimTemplates: volumes its pods mount without listing them. */
  readonly claimTemplates: readonly string[];
}

export interface ContainerRef {
  readonly name: string;
  readonly kind: 'containers' | 'initContainers' | 'ephemeralContainers';
  readonly container: Json;
}

function templateOf(object: Manifest): Json | undefined {
  const spec = object['spec'];
  if (!isRecord(spec)) return undefined;
  switch (object.kind) {
    case 'Pod':
      return { metadata: object.metadata, spec };
    case 'Deployment':
    case 'StatefulSet':
    case 'DaemonSet':
    case 'ReplicaSet':
    case 'Job':
      return isRecord(spec['template']) ? spec['template'] : undefined;
    case 'CronJob': {
      const job = spec['jobTemplate'];
      const jobSpec = isRecord(job) ? job['spec'] : undefined;
      return isRecord(jobSpec) && isRecord(jobSpec['template']) ? jobSpec['template'] : undefined;
    }
    default:
      return undefined;
  }
}

/** Every pod the objects would create, with the labels NetworkPolicies select on. */
export function podTemplates(objects: readonly Manifest[]): PodTemplate[] {
  const pods: PodTemplate[] = [];
  for (const object of objects) {
    const template = templateOf(object);
    if (!template) continue;
    const metadata = isRecord(template['metadata']) ? template['metadata'] : {};
    pods.push({
      owner: describe(object),
      namespace: object.metadata.namespace,
      labels: (isRecord(metadata['labels']) ? metadata['labels'] : {}) as Record<string, string>,
      annotations: (isRecord(metadata['annotations']) ? metadata['annotations'] : {}) as Record<string, string>,
      spec: isRecord(template['spec']) ? template['spec'] : {},
      claimTemplates: (Array.isArray(field(object, 'spec', 'volumeClaimTemplates'))
        ? (field(object, 'spec', 'volumeClaimTemplates') as unknown[])
        : []
      ).map((c) => String(field(c, 'metadata', 'name'))),
    });
  }
  return pods;
}

export function containersOf(pod: PodTemplate): ContainerRef[] {
  const refs: ContainerRef[] = [];
  for (const kind of ['containers', 'initContainers', 'ephemeralContainers'] as const) {
    const list = pod.spec[kind];
    if (!Array.isArray(list)) continue;
    for (const container of list) {
      if (isRecord(container)) refs.push({ name: String(container['name']), kind, container });
    }
  }
  return refs;
}

export function field(value: unknown, ...path: string[]): unknown {
  let node = value;
  for (const key of path) {
    if (!isRecord(node)) return undefined;
    node = node[key];
  }
  return node;
}
