import { PATRONI_LEADER_ROLE, PATRONI_REPLICA_ROLE, PATRONI_REST_PORT, PATRONI_ROLE_LABEL } from '../../postgres/patroni/patroni-config.js';
import { selectorMatches } from './label-selector.js';
import { type Manifest, describe, isRecord } from './manifest.js';
import { type PodTemplate, field } from './pod-templates.js';
import { canI } from './rbac.js';
import { findPod } from './workload-environment.js';

export const HA_OWNER = 'StatefulSet/postgres';
export const HA_MEMBERS = 3;

/** What Patroni's Kubernetes DCS calls (ConfigMaps mode), as `kubectl auth can-i` would ask it. */
export const PATRONI_NEEDS: ReadonlyArray<readonly [string, string]> = [
  ['get', 'configmaps'],
  ['list', 'configmaps'],
  ['watch', 'configmaps'],
  ['create', 'configmaps'],
  ['patch', 'configmaps'],
  ['get', 'pods'],
  ['list', 'pods'],
  ['watch', 'pods'],
  ['patch', 'pods'],
];

/** What it must not be able to do: read Secrets, run or remove pods, delete its DCS, touch anything else. */
export const PATRONI_MUST_NOT: ReadonlyArray<readonly [string, string]> = [
  ['get', 'secrets'],
  ['list', 'secrets'],
  ['create', 'pods'],
  ['delete', 'pods'],
  ['create', 'pods/exec'],
  ['delete', 'configmaps'],
  ['deletecollection', 'configmaps'],
  ['update', 'configmaps'],
  ['create', 'services'],
  ['patch', 'endpoints'],
  ['create', 'endpoints'],
  ['get', 'persistentvolumeclaims'],
  ['delete', 'persistentvolumeclaims'],
  ['patch', 'statefulsets.apps'],
  ['create', 'leases.coordination.k8s.io'],
];

const selectorOf = (service: Manifest): Record<string, string> =>
  (isRecord(field(service, 'spec', 'selector')) ? field(service, 'spec', 'selector') : {}) as Record<string, string>;

/** A Service selects a pod when every selector label is on the pod (a selector is a plain map). */
function serviceSelects(service: Manifest, labels: Readonly<Record<string, string>>): boolean {
  const selector = selectorOf(service);
  return Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** Whether some NetworkPolicy selecting `to` admits `from`'s pods on `port` (same namespace, pod selector). */
export function admitsIngress(objects: readonly Manifest[], to: PodTemplate, from: PodTemplate, port: number): boolean {
  return objects.some((policy) => {
    if (policy.kind !== 'NetworkPolicy' || !selectorMatches(field(policy, 'spec', 'podSelector'), to.labels)) return false;
    const rules = field(policy, 'spec', 'ingress');
    return (
      Array.isArray(rules) &&
      rules.some(
        (rule) =>
          isRecord(rule) &&
          Array.isArray(rule['ports']) &&
          rule['ports'].some((p) => isRecord(p) && p['port'] === port) &&
          Array.isArray(rule['from']) &&
          rule['from'].some(
            (peer) => isRecord(peer) && peer['namespaceSelector'] === undefined && selectorMatches(peer['podSelector'], from.labels),
          ),
      )
    );
  });
}

/**
 * The HA contract of a rendered overlay that runs Patroni (prod): three members that never share
 * a node, drained one at a time, Services that follow Patroni's role label, the pod's account able
 * to do exactly what Patroni's DCS needs, and the members able to reach each other. Findings, empty = pass.
 */
export function haViolations(objects: readonly Manifest[]): string[] {
  const found: string[] = [];
  const statefulSet = objects.find((o) => `${o.kind}/${o.metadata.name}` === HA_OWNER);
  if (!statefulSet) return [`${HA_OWNER} is not rendered`];
  const pod = findPod(objects, HA_OWNER);
  const spec = (isRecord(statefulSet['spec']) ? statefulSet['spec'] : {}) as Record<string, unknown>;

  if (spec['replicas'] !== HA_MEMBERS) found.push(`${HA_OWNER}: replicas is ${String(spec['replicas'])}, not ${HA_MEMBERS}`);
  if (Object.hasOwn(pod.labels, PATRONI_ROLE_LABEL))
    found.push(
      `${HA_OWNER}: the pod template sets the ${PATRONI_ROLE_LABEL} label, which only Patroni may set (a new pod would join a Service)`,
    );

  const required = field(pod.spec, 'affinity', 'podAntiAffinity', 'requiredDuringSchedulingIgnoredDuringExecution');
  const spreads =
    Array.isArray(required) &&
    required.some(
      (term) => isRecord(term) && term['topologyKey'] === 'kubernetes.io/hostname' && selectorMatches(term['labelSelector'], pod.labels),
    );
  if (!spreads) found.push(`${HA_OWNER}: no required pod anti-affinity on kubernetes.io/hostname against its own pods`);

  const budgets = objects.filter((o) => o.kind === 'PodDisruptionBudget' && selectorMatches(field(o, 'spec', 'selector'), pod.labels));
  if (budgets.length !== 1) found.push(`${HA_OWNER}: ${budgets.length} PodDisruptionBudgets select its pods, not 1`);
  for (const budget of budgets) {
    const maxUnavailable = field(budget, 'spec', 'maxUnavailable');
    const minAvailable = field(budget, 'spec', 'minAvailable');
    const allowed =
      typeof maxUnavailable === 'number' ? maxUnavailable : typeof minAvailable === 'number' ? HA_MEMBERS - minAvailable : undefined;
    if (allowed !== 1)
      found.push(
        `${describe(budget)}: lets ${String(allowed)} member(s) be disrupted at once; 1 keeps a leader and a synchronous standby and lets a drain proceed`,
      );
  }

  const services = objects.filter((o) => o.kind === 'Service' && field(o, 'spec', 'clusterIP') !== 'None');
  const leaderLabels = { ...pod.labels, [PATRONI_ROLE_LABEL]: PATRONI_LEADER_ROLE };
  const replicaLabels = { ...pod.labels, [PATRONI_ROLE_LABEL]: PATRONI_REPLICA_ROLE };
  const leaderServices = services.filter((s) => serviceSelects(s, leaderLabels));
  const replicaServices = services.filter((s) => serviceSelects(s, replicaLabels));
  if (!leaderServices.some((s) => s.metadata.name === 'postgres'))
    found.push(`Service/postgres does not select the leader (${PATRONI_ROLE_LABEL}: ${PATRONI_LEADER_ROLE}); the clients connect to it`);
  if (replicaServices.length === 0) found.push(`no Service selects the standbys (${PATRONI_ROLE_LABEL}: ${PATRONI_REPLICA_ROLE})`);
  for (const service of services)
    if (serviceSelects(service, leaderLabels) && serviceSelects(service, replicaLabels))
      found.push(`${describe(service)}: selects the leader and the standbys alike (no ${PATRONI_ROLE_LABEL} in its selector)`);

  const account = String(pod.spec['serviceAccountName'] ?? 'default');
  const namespace = String(pod.namespace);
  for (const [verb, resource] of PATRONI_NEEDS)
    if (!canI(objects, { serviceAccount: account, namespace, verb, resource }))
      found.push(`ServiceAccount/${account}: cannot ${verb} ${resource}, which Patroni's Kubernetes DCS needs`);
  for (const [verb, resource] of PATRONI_MUST_NOT)
    if (canI(objects, { serviceAccount: account, namespace, verb, resource }))
      found.push(`ServiceAccount/${account}: may ${verb} ${resource}, which Patroni does not need`);
  if (pod.spec['automountServiceAccountToken'] !== true)
    found.push(`${HA_OWNER}: automountServiceAccountToken must be true (Patroni's DCS is the Kubernetes API)`);

  for (const port of [5432, PATRONI_REST_PORT])
    if (!admitsIngress(objects, pod, pod, port)) found.push(`${HA_OWNER}: no NetworkPolicy admits the other members on ${port}`);
  return found;
}
