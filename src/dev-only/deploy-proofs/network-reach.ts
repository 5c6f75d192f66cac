import { selectorMatches } from './label-selector.js';
import { type Manifest, isRecord } from './manifest.js';
import { findPod } from './workload-environment.js';

/** Somewhere a pod might connect to: a pod (by labels, in a namespace) or an IP address. */
export type Destination =
  | {
      readonly namespace: string;
      readonly labels: Readonly<Record<string, string>>;
      readonly port: number;
      readonly protocol?: 'TCP' | 'UDP';
    }
  | { readonly address: string; readonly port: number; readonly protocol?: 'TCP' | 'UDP' };

function ipv4(address: string): number | undefined {
  const parts = address.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined;
  return parts.reduce((n, p) => n * 256 + p, 0);
}

/** IPv4 CIDR membership; an IPv6 block never contains an IPv4 address (and we test IPv4 only). */
export function cidrContains(cidr: string, address: string): boolean {
  const [base, bits] = cidr.split('/');
  const a = ipv4(address);
  const b = ipv4(base ?? '');
  const prefix = Number(bits);
  if (a === undefined || b === undefined || !Number.isInteger(prefix)) return false;
  const size = 2 ** (32 - prefix);
  return Math.floor(a / size) === Math.floor(b / size);
}

function peerMatches(peer: unknown, from: string, to: Destination): boolean {
  if (!isRecord(peer)) return false;
  if ('address' in to) {
    const block = peer['ipBlock'];
    if (!isRecord(block)) return false;
    const except = Array.isArray(block['except']) ? block['except'].map(String) : [];
    return cidrContains(String(block['cidr']), to.address) && !except.some((e) => cidrContains(e, to.address));
  }
  if (peer['ipBlock'] !== undefined) return false;
  const namespaceOk =
    peer['namespaceSelector'] === undefined
      ? to.namespace === from
      : selectorMatches(peer['namespaceSelector'], { 'kubernetes.io/metadata.name': to.namespace });
  const podOk = peer['podSelector'] === undefined || selectorMatches(peer['podSelector'], to.labels);
  return namespaceOk && podOk;
}

function portMatches(ports: unknown, to: Destination): boolean {
  if (!Array.isArray(ports) || ports.length === 0) return true;
  return ports.some(
    (p) => isRecord(p) && (p['port'] === undefined || p['port'] === to.port) && String(p['protocol'] ?? 'TCP') === (to.protocol ?? 'TCP'),
  );
}

/** The NetworkPolicies that restrict a pod's egress. */
export function egressPoliciesOf(objects: readonly Manifest[], owner: string): Manifest[] {
  const pod = findPod(objects, owner);
  return objects.filter((o) => {
    if (o.kind !== 'NetworkPolicy' || !isRecord(o['spec'])) return false;
    const types = Array.isArray(o['spec']['policyTypes']) ? o['spec']['policyTypes'] : ['Ingress'];
    return types.includes('Egress') && selectorMatches(o['spec']['podSelector'], pod.labels);
  });
}

/**
 * Whether the rendered NetworkPolicies let the pods of `owner` open a connection to `to`, by
 * the API's semantics: allowed if any policy selecting the pod has an egress rule whose peers
 * and ports both match (a rule without `to` matches every peer, without `ports` every port).
 */
export function mayReach(objects: readonly Manifest[], owner: string, to: Destination): boolean {
  const from = String(findPod(objects, owner).namespace ?? '');
  const policies = egressPoliciesOf(objects, owner);
  if (policies.length === 0) return true;
  return policies.some((policy) => {
    const spec = policy['spec'] as Record<string, unknown>;
    const rules = Array.isArray(spec['egress']) ? spec['egress'] : [];
    return rules.some(
      (rule) =>
        isRecord(rule) &&
        portMatches(rule['ports'], to) &&
        (!Array.isArray(rule['to']) || rule['to'].length === 0 || rule['to'].some((peer) => peerMatches(peer, from, to))),
    );
  });
}

/** Every ipBlock of every NetworkPolicy (ingress and egress), with where it is. */
export function ipBlocksOf(objects: readonly Manifest[]): Array<{ readonly policy: string; readonly cidr: string }> {
  const found: Array<{ policy: string; cidr: string }> = [];
  for (const policy of objects.filter((o) => o.kind === 'NetworkPolicy')) {
    const spec = isRecord(policy['spec']) ? policy['spec'] : {};
    for (const [direction, key] of [
      ['egress', 'to'],
      ['ingress', 'from'],
    ] as const) {
      for (const rule of Array.isArray(spec[direction]) ? spec[direction] : []) {
        if (!isRecord(rule) || !Array.isArray(rule[key])) continue;
        for (const peer of rule[key])
          if (isRecord(peer) && isRecord(peer['ipBlock']))
            found.push({ policy: policy.metadata.name, cidr: String(peer['ipBlock']['cidr']) });
      }
    }
  }
  return found;
}
