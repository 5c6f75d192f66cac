import type { Manifest } from './manifest.js';
import { isRecord } from './manifest.js';

export interface AccessRequest {
  readonly serviceAccount: string;
  readonly namespace: string;
  readonly verb: string;
  /** "pods", "secrets", "jobs.batch" (resource.group, as kubectl auth can-i spells it) */
  readonly resource: string;
  readonly name?: string;
}

/**
 * Answers `kubectl auth can-i <verb> <resource> --as=system:serviceaccount:<ns>:<sa> -n <ns>`
 * from the rendered Roles and RoleBindings alone (RBAC is purely additive, so the rendered
 * objects are the whole answer for a namespace without cluster-wide bindings).
 */
export function canI(objects: readonly Manifest[], request: AccessRequest): boolean {
  const [resource, group = ''] = splitResource(request.resource);
  const roles = new Map(
    objects.filter((o) => o.kind === 'Role' && o.metadata.namespace === request.namespace).map((o) => [o.metadata.name, o]),
  );
  for (const binding of objects) {
    if (binding.kind !== 'RoleBinding' || binding.metadata.namespace !== request.namespace) continue;
    const subjects = Array.isArray(binding['subjects']) ? binding['subjects'] : [];
    const bound = subjects.some(
      (s) =>
        isRecord(s) &&
        s['kind'] === 'ServiceAccount' &&
        s['name'] === request.serviceAccount &&
        (s['namespace'] ?? binding.metadata.namespace) === request.namespace,
    );
    const roleRef = binding['roleRef'];
    if (!bound || !isRecord(roleRef) || roleRef['kind'] !== 'Role') continue;
    const role = roles.get(String(roleRef['name']));
    const rules = role && Array.isArray(role['rules']) ? role['rules'] : [];
    for (const rule of rules) {
      if (!isRecord(rule)) continue;
      const has = (key: string, value: string): boolean =>
        Array.isArray(rule[key]) && (rule[key] as unknown[]).some((v) => v === value || v === '*');
      const names = Array.isArray(rule['resourceNames']) ? (rule['resourceNames'] as unknown[]) : [];
      const nameOk = names.length === 0 || (request.name !== undefined && names.includes(request.name));
      if (has('apiGroups', group) && has('resources', resource) && has('verbs', request.verb) && nameOk) return true;
    }
  }
  return false;
}

function splitResource(spec: string): [string, string?] {
  const dot = spec.indexOf('.');
  return dot === -1 ? [spec] : [spec.slice(0, dot), spec.slice(dot + 1)];
}
