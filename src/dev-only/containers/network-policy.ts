import { selectorMatches } from '../deploy-proofs/label-selector.js';
import { type Manifest, isRecord } from '../deploy-proofs/manifest.js';
import { cidrContains } from '../deploy-proofs/network-reach.js';

type Json = Record<string, unknown>;

/** A pod of the test run, as NetworkPolicies see it. */
export interface NetPod {
  readonly name: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly ip: string;
  /** A StatefulSet pod's metadata.name (postgres-0), which its headless Service names it by. */
  readonly hostname?: string;
}

/** One permitted kind of new connection: to every port (port undefined) or to one TCP/UDP port. */
export interface Allowed {
  readonly from: string;
  readonly to: string;
  readonly protocol: 'tcp' | 'udp' | undefined;
  readonly port: number | undefined;
}

/** Ports a rule admits: undefined = all; otherwise a list of protocol/port (a missing port = every port of that protocol). */
type PortSet = Array<{ protocol: 'tcp' | 'udp'; port: number | undefined }> | undefined;

function list(value: unknown): Json[] {
  return Array.isArray(value) ? value.filter(isRecord) : [];
}

function portsOf(rule: Json): PortSet {
  const ports = list(rule['ports']);
  if (ports.length === 0) return undefined;
  return ports.map((p) => {
    if (p['port'] !== undefined && typeof p['port'] !== 'number')
      throw new Error(`named port ${String(p['port'])} in a NetworkPolicy is not translated`);
    if (p['endPort'] !== undefined) throw new Error('endPort in a NetworkPolicy is not translated');
    const protocol = String(p['protocol'] ?? 'TCP').toLowerCase();
    if (protocol !== 'tcp' && protocol !== 'udp') throw new Error(`protocol ${protocol} in a NetworkPolicy is not translated`);
    return { protocol, port: p['port'] as number | undefined };
  });
}

function peerMatches(peer: Json, policyNamespace: string, other: NetPod): boolean {
  if (isRecord(peer['ipBlock'])) {
    const except = Array.isArray(peer['ipBlock']['except']) ? peer['ipBlock']['except'].map(String) : [];
    return cidrContains(String(peer['ipBlock']['cidr']), other.ip) && !except.some((e) => cidrContains(e, other.ip));
  }
  const namespaceOk =
    peer['namespaceSelector'] === undefined
      ? other.namespace === policyNamespace
      : selectorMatches(peer['namespaceSelector'], { 'kubernetes.io/metadata.name': other.namespace });
  const podOk = peer['podSelector'] === undefined || selectorMatches(peer['podSelector'], other.labels);
  return namespaceOk && podOk;
}

function union(a: PortSet | null, b: PortSet): PortSet | null {
  if (a === undefined || b === undefined) return undefined;
  return [...(a ?? []), ...b];
}

/**
 * What one side (the source's egress or the destination's ingress) admits for the pair:
 * undefined = everything (no policy of that type selects the pod, or a rule admits all ports),
 * null = nothing, otherwise the ports.
 */
function side(policies: readonly Manifest[], pod: NetPod, other: NetPod, type: 'Ingress' | 'Egress'): PortSet | null {
  const selecting = policies.filter((policy) => {
    const spec = isRecord(policy['spec']) ? policy['spec'] : {};
    const types = Array.isArray(spec['policyTypes'])
      ? spec['policyTypes'].map(String)
      : spec['egress']
        ? ['Ingress', 'Egress']
        : ['Ingress'];
    return (
      (policy.metadata.namespace ?? 'default') === pod.namespace && types.includes(type) && selectorMatches(spec['podSelector'], pod.labels)
    );
  });
  if (selecting.length === 0) return undefined;
  let admitted: PortSet | null = null;
  for (const policy of selecting) {
    const spec = policy['spec'] as Json;
    for (const rule of list(spec[type === 'Ingress' ? 'ingress' : 'egress'])) {
      const peers = list(rule[type === 'Ingress' ? 'from' : 'to']);
      const namespace = policy.metadata.namespace ?? 'default';
      if (peers.length > 0 && !peers.some((peer) => peerMatches(peer, namespace, other))) continue;
      admitted = union(admitted, portsOf(rule));
    }
  }
  return admitted;
}

function intersect(a: PortSet, b: PortSet): PortSet | null {
  if (a === undefined) return b;
  if (b === undefined) return a;
  const out: NonNullable<PortSet> = [];
  for (const x of a)
    for (const y of b) {
      if (x.protocol !== y.protocol) continue;
      if (x.port === undefined) out.push(y);
      else if (y.port === undefined || y.port === x.port) out.push(x);
    }
  return out.length > 0 ? out : null;
}

/** Every new connection between the pods that the policies permit (Kubernetes semantics: egress of the source AND ingress of the destination). */
export function allowedConnections(objects: readonly Manifest[], pods: readonly NetPod[]): Allowed[] {
  const policies = objects.filter((o) => o.kind === 'NetworkPolicy');
  const allowed: Allowed[] = [];
  for (const from of pods)
    for (const to of pods) {
      if (from === to) continue;
      const egress = side(policies, from, to, 'Egress');
      const ingress = side(policies, to, from, 'Ingress');
      if (egress === null || ingress === null) continue;
      const ports = intersect(egress, ingress);
      if (ports === null) continue;
      if (ports === undefined) allowed.push({ from: from.ip, to: to.ip, protocol: undefined, port: undefined });
      else for (const p of ports) allowed.push({ from: from.ip, to: to.ip, protocol: p.protocol, port: p.port });
    }
  return allowed;
}

/**
 * An nftables table that enforces `allowed` on traffic between addresses of `subnet` (pods of
 * one podman network, bridged: br_netfilter hands it to the forward hook). Replies to permitted
 * connections pass by conntrack; anything else between pods is refused at once (TCP reset,
 * ICMP otherwise) so a refused path fails fast instead of timing out.
 */
export function nftRuleset(table: string, subnet: string, allowed: readonly Allowed[]): string {
  const all = allowed.filter((a) => a.protocol === undefined).map((a) => `${a.from} . ${a.to}`);
  const anyPort = allowed.filter((a) => a.protocol !== undefined && a.port === undefined).map((a) => `${a.from} . ${a.to} . ${a.protocol}`);
  const ports = allowed
    .filter((a) => a.protocol !== undefined && a.port !== undefined)
    .map((a) => `${a.from} . ${a.to} . ${a.protocol} . ${a.port}`);
  const elements = (items: string[]) => (items.length > 0 ? `\n    elements = { ${[...new Set(items)].join(', ')} }` : '');
  return `table inet ${table} {
  set pairs {
    type ipv4_addr . ipv4_addr${elements(all)}
  }
  set protocols {
    type ipv4_addr . ipv4_addr . inet_proto${elements(anyPort)}
  }
  set ports {
    type ipv4_addr . ipv4_addr . inet_proto . inet_service${elements(ports)}
  }
  chain forward {
    type filter hook forward priority -10; policy accept;
    ip saddr != ${subnet} accept
    ip daddr != ${subnet} accept
    ct state established,related accept
    ip saddr . ip daddr @pairs accept
    ip saddr . ip daddr . meta l4proto @protocols accept
    ip saddr . ip daddr . meta l4proto . th dport @ports accept
    meta l4proto tcp reject with tcp reset
    reject
  }
}
`;
}
