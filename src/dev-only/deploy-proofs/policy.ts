import { type Manifest, describe, isRecord } from './manifest.js';
import { selectorMatches } from './label-selector.js';
import { ipBlocksOf } from './network-reach.js';
import { podSecurityViolations } from './pod-security.js';
import { containersOf, field, podTemplates } from './pod-templates.js';

export const NAMESPACE = 'patient-monitoring';

/** Kinds that are not namespaced (everything else must live in NAMESPACE). */
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'ClusterIssuer',
  'CustomResourceDefinition',
  'StorageClass',
  'PriorityClass',
]);

/** Every check a rendered overlay must pass; returns human-readable findings (empty = pass). */
export function policyViolations(objects: readonly Manifest[], options: { readonly environment: 'dev' | 'prod' }): string[] {
  return [
    ...namespaceViolations(objects),
    ...podTemplates(objects).flatMap(podSecurityViolations),
    ...hardeningViolations(objects),
    ...imageViolations(objects),
    ...rbacViolations(objects),
    ...networkPolicyViolations(objects),
    ...(options.environment === 'prod' ? [...plaintextSecretViolations(objects), ...digestViolations(objects)] : []),
  ];
}

export function namespaceViolations(objects: readonly Manifest[]): string[] {
  const found: string[] = [];
  for (const object of objects) {
    if (CLUSTER_SCOPED.has(object.kind)) {
      if (object.kind === 'ClusterRole' || object.kind === 'ClusterRoleBinding')
        found.push(`${describe(object)}: cluster-wide RBAC is not allowed`);
      continue;
    }
    if (object.metadata.namespace !== NAMESPACE)
      found.push(`${describe(object)}: must be in namespace ${NAMESPACE}, not ${String(object.metadata.namespace)}`);
  }
  const ns = objects.find((o) => o.kind === 'Namespace' && o.metadata.name === NAMESPACE);
  if (!ns) found.push(`Namespace/${NAMESPACE} is missing`);
  else if (ns.metadata.labels?.['pod-security.kubernetes.io/enforce'] !== 'restricted')
    found.push(`Namespace/${NAMESPACE}: label pod-security.kubernetes.io/enforce must be restricted`);
  return found;
}

/** Beyond PSS: read-only root filesystems, requests and limits, no API token unless needed. */
export function hardeningViolations(objects: readonly Manifest[]): string[] {
  const found: string[] = [];
  const bound = boundServiceAccounts(objects);
  for (const pod of podTemplates(objects)) {
    // Only a pod whose account a RoleBinding grants something may carry a token (Patroni's DCS).
    const account = String(pod.spec['serviceAccountName'] ?? 'default');
    if (pod.spec['automountServiceAccountToken'] !== false && !bound.has(account))
      found.push(`${pod.owner}: automountServiceAccountToken must be false (its service account ${account} has no RoleBinding)`);
    for (const { name, container } of containersOf(pod)) {
      if (field(container, 'securityContext', 'readOnlyRootFilesystem') !== true)
        found.push(`${pod.owner} container ${name}: readOnlyRootFilesystem must be true`);
      for (const kind of ['requests', 'limits'] as const) {
        for (const resource of ['cpu', 'memory'] as const) {
          if (field(container, 'resources', kind, resource) === undefined)
            found.push(`${pod.owner} container ${name}: resources.${kind}.${resource} must be set`);
        }
      }
    }
  }
  for (const object of objects) {
    if (object.kind === 'ServiceAccount' && object['automountServiceAccountToken'] !== false)
      found.push(`${describe(object)}: automountServiceAccountToken must be false`);
  }
  return found;
}

/** Service accounts of this namespace that some RoleBinding names. */
function boundServiceAccounts(objects: readonly Manifest[]): Set<string> {
  const names = new Set<string>();
  for (const binding of objects.filter((o) => o.kind === 'RoleBinding'))
    for (const subject of Array.isArray(binding['subjects']) ? binding['subjects'] : [])
      if (isRecord(subject) && subject['kind'] === 'ServiceAccount') names.add(String(subject['name']));
  return names;
}

/** An image is pinned when it has a digest, or a version tag (not latest, not a bare name). */
export function isPinnedImage(image: string): boolean {
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return true;
  const lastSegment = image.slice(image.lastIndexOf('/') + 1);
  const colon = lastSegment.indexOf(':');
  if (colon === -1) return false;
  const tag = lastSegment.slice(colon + 1);
  return /\d/.test(tag) && !/latest|main|master|edge|nightly/i.test(tag);
}

export function imageViolations(objects: readonly Manifest[]): string[] {
  const found: string[] = [];
  for (const pod of podTemplates(objects)) {
    for (const { name, container } of containersOf(pod)) {
      const image = container['image'];
      if (typeof image !== 'string' || !isPinnedImage(image))
        found.push(`${pod.owner} container ${name}: image ${String(image)} is not pinned to a version or digest`);
    }
  }
  return found;
}

/** Prod runs what was approved: every image by digest, not a tag a push could move. */
export function digestViolations(objects: readonly Manifest[]): string[] {
  const found: string[] = [];
  for (const pod of podTemplates(objects))
    for (const { name, container } of containersOf(pod)) {
      const image = String(container['image']);
      if (!/^[a-z0-9][a-z0-9./-]*(:\d+)?\/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$/.test(image))
        found.push(`${pod.owner} container ${name}: image ${image} is not name@sha256:<64 hex>`);
    }
  return found;
}

export function rbacViolations(objects: readonly Manifest[]): string[] {
  const found: string[] = [];
  for (const object of objects) {
    if (object.kind !== 'Role' && object.kind !== 'ClusterRole') continue;
    const rules = Array.isArray(object['rules']) ? object['rules'] : [];
    for (const [index, rule] of rules.entries()) {
      if (!isRecord(rule)) continue;
      for (const key of ['apiGroups', 'resources', 'verbs', 'resourceNames', 'nonResourceURLs'] as const) {
        const values = Array.isArray(rule[key]) ? (rule[key] as unknown[]) : [];
        if (values.some((v) => typeof v === 'string' && v.includes('*')))
          found.push(`${describe(object)} rule ${index}: wildcard in ${key}`);
      }
      const resources = Array.isArray(rule['resources']) ? (rule['resources'] as unknown[]) : [];
      const verbs = Array.isArray(rule['verbs']) ? (rule['verbs'] as unknown[]) : [];
      if (resources.includes('secrets') && verbs.some((v) => v === 'list' || v === 'watch'))
        found.push(`${describe(object)} rule ${index}: may list or watch Secrets`);
    }
  }
  return found;
}

function isDefaultDenyAll(object: Manifest): boolean {
  const spec = object['spec'];
  if (!isRecord(spec) || !isRecord(spec['podSelector']) || Object.keys(spec['podSelector']).length > 0) return false;
  const types = Array.isArray(spec['policyTypes']) ? spec['policyTypes'] : [];
  const noRules = (key: string): boolean => spec[key] === undefined || (Array.isArray(spec[key]) && spec[key].length === 0);
  return types.includes('Ingress') && types.includes('Egress') && noRules('ingress') && noRules('egress');
}

/** A default-deny policy exists, and every pod is also selected by a policy that lets it work. */
export function networkPolicyViolations(objects: readonly Manifest[]): string[] {
  const found: string[] = [];
  const policies = objects.filter((o) => o.kind === 'NetworkPolicy');
  if (!policies.some(isDefaultDenyAll))
    found.push(`no default-deny NetworkPolicy (podSelector {}, policyTypes Ingress and Egress, no rules) in ${NAMESPACE}`);
  const specific = policies.filter((p) => !isDefaultDenyAll(p) && Object.keys(field(p, 'spec', 'podSelector') ?? {}).length > 0);
  for (const pod of podTemplates(objects)) {
    if (!specific.some((p) => selectorMatches(field(p, 'spec', 'podSelector'), pod.labels))) {
      found.push(`${pod.owner}: no NetworkPolicy selects its pods (labels ${JSON.stringify(pod.labels)})`);
    }
  }
  // "Anywhere" (0.0.0.0/0, ::/0), even with exceptions, is how a backup pod came to reach any
  // host on 443: name the object store's addresses instead (docs/deploy.md, "Egress").
  for (const { policy, cidr } of ipBlocksOf(objects))
    if (cidr.endsWith('/0')) found.push(`NetworkPolicy/${policy}: ipBlock ${cidr} allows any address; list the addresses it needs`);
  return found;
}

export function plaintextSecretViolations(objects: readonly Manifest[]): string[] {
  return objects.filter((o) => o.kind === 'Secret').map((o) => `${describe(o)}: plaintext Secret in prod output; seal it (SealedSecret)`);
}
