import { isRecord } from '../deploy-proofs/manifest.js';
import type { PodTemplate } from '../deploy-proofs/pod-templates.js';
import type { ClusterData } from './cluster-objects.js';
import { memoryBytes } from './quantity.js';

type Json = Record<string, unknown>;

/** A file of a Secret or ConfigMap volume, as the kubelet writes it (path inside the volume). */
export interface VolumeFile {
  readonly path: string;
  readonly content: Buffer;
  readonly mode: number;
}

export type VolumePlan =
  | { readonly name: string; readonly kind: 'files'; readonly files: readonly VolumeFile[] }
  /** medium Memory: a tmpfs of sizeLimit bytes (the kubelet's default: the pod's memory), else a directory on disk. */
  | { readonly name: string; readonly kind: 'emptyDir'; readonly memoryBytes?: number | undefined }
  | { readonly name: string; readonly kind: 'claim'; readonly claim: string }
  /** Only the test's own helper pods use a host directory; a manifest's hostPath is refused. */
  | { readonly name: string; readonly kind: 'hostPath'; readonly path: string };

export interface MountPlan {
  readonly volume: string;
  readonly mountPath: string;
  readonly subPath: string | undefined;
  readonly readOnly: boolean;
}

export interface ContainerPlan {
  readonly name: string;
  /** init: runs to completion first; sidecar: an init container with restartPolicy Always. */
  readonly role: 'init' | 'sidecar' | 'main';
  readonly image: string;
  /** Kubernetes `command` (replaces the image's ENTRYPOINT and CMD) or undefined. */
  readonly command: readonly string[] | undefined;
  /** Kubernetes `args` (replaces the image's CMD) or undefined. */
  readonly args: readonly string[] | undefined;
  readonly workingDir: string | undefined;
  readonly env: ReadonlyArray<readonly [string, string]>;
  readonly user: number | undefined;
  readonly group: number | undefined;
  readonly supplementalGroups: readonly number[];
  readonly readOnlyRootFilesystem: boolean;
  readonly dropCapabilities: readonly string[];
  readonly addCapabilities: readonly string[];
  readonly noNewPrivileges: boolean;
  readonly memoryLimitBytes: number | undefined;
  readonly mounts: readonly MountPlan[];
}

export interface PodPlan {
  readonly name: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly fsGroup: number | undefined;
  readonly volumes: readonly VolumePlan[];
  readonly containers: readonly ContainerPlan[];
}

export interface PlanContext {
  readonly podName: string;
  /** The pod's metadata.name when it differs from the podman pod's name (a StatefulSet's postgres-0). */
  readonly metadataName?: string;
  /** status.podIP, for a template whose env asks for it. */
  readonly podIp?: string;
  readonly data: ClusterData;
  /** The image a manifest names → the local image that runs for it (by repository, tag ignored). */
  readonly images: ReadonlyMap<string, string>;
  /** A StatefulSet pod's claims are <template>-<pod>; other claims keep their name. */
  readonly claimName?: (template: string) => string;
}

/** Fields of a pod spec or container this translation does not carry out: refused, never ignored. */
const UNSUPPORTED_POD = ['hostNetwork', 'hostPID', 'hostIPC', 'shareProcessNamespace', 'hostUsers', 'dnsConfig', 'hostAliases'];
const UNSUPPORTED_CONTAINER = ['volumeDevices', 'lifecycle', 'stdin', 'tty'];

function list(value: unknown): Json[] {
  return Array.isArray(value) ? value.filter(isRecord) : [];
}

function strings(value: unknown): string[] | undefined {
  return Array.isArray(value) ? value.map(String) : undefined;
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined;
}

function localImage(images: ReadonlyMap<string, string>, image: string): string {
  const repository = image.replace(/@sha256:[0-9a-f]+$/, '').replace(/:[^:/]+$/, '');
  const local = images.get(repository);
  if (!local) throw new Error(`no local image stands in for ${image}`);
  return local;
}

/** Kubernetes' $(VAR) expansion of env values, command and args: earlier variables only; $$ escapes. */
export function expand(text: string, known: ReadonlyMap<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (whole, name: string | undefined) => {
    if (name === undefined) return '$';
    return known.get(name) ?? whole;
  });
}

function keyOf(data: ReadonlyMap<string, Buffer>, key: string, what: string, optional: boolean): string | undefined {
  const value = data.get(key);
  if (value === undefined && !optional) throw new Error(`${what} has no key ${key}`);
  return value?.toString('utf8');
}

function resolveEnv(
  container: Json,
  ctx: PlanContext,
  pod: { name: string; namespace: string; ip: string | undefined },
): Array<[string, string]> {
  const env = new Map<string, string>();
  for (const source of list(container['envFrom'])) {
    const prefix = String(source['prefix'] ?? '');
    const cm = source['configMapRef'];
    const secret = source['secretRef'];
    const data = isRecord(cm)
      ? ctx.data.configMap(String(cm['name']))
      : isRecord(secret)
        ? ctx.data.secret(String(secret['name']))
        : undefined;
    if (!data) throw new Error('envFrom without configMapRef or secretRef');
    for (const [key, value] of data) env.set(prefix + key, value.toString('utf8'));
  }
  for (const entry of list(container['env'])) {
    const name = String(entry['name']);
    const from = entry['valueFrom'];
    if (!isRecord(from)) {
      env.set(name, expand(String(entry['value'] ?? ''), env));
      continue;
    }
    let value: string | undefined;
    if (isRecord(from['configMapKeyRef'])) {
      const ref = from['configMapKeyRef'];
      const what = `ConfigMap ${String(ref['name'])}`;
      value = keyOf(ctx.data.configMap(String(ref['name'])), String(ref['key']), what, ref['optional'] === true);
    } else if (isRecord(from['secretKeyRef'])) {
      const ref = from['secretKeyRef'];
      const what = `Secret ${String(ref['name'])}`;
      value = keyOf(ctx.data.secret(String(ref['name'])), String(ref['key']), what, ref['optional'] === true);
    } else if (isRecord(from['fieldRef'])) {
      const path = String(from['fieldRef']['fieldPath']);
      const fields: Record<string, string | undefined> = {
        'metadata.name': pod.name,
        'metadata.namespace': pod.namespace,
        'status.podIP': pod.ip,
      };
      value = fields[path];
      if (value === undefined) throw new Error(`env ${name}: fieldRef ${path} is not translated`);
    } else {
      throw new Error(`env ${name}: valueFrom ${Object.keys(from).join(',')} is not translated`);
    }
    if (value !== undefined) env.set(name, value);
  }
  return [...env];
}

function volumeOf(volume: Json, ctx: PlanContext): VolumePlan {
  const name = String(volume['name']);
  const source = isRecord(volume['secret']) ? volume['secret'] : isRecord(volume['configMap']) ? volume['configMap'] : undefined;
  if (source) {
    const isSecret = isRecord(volume['secret']);
    const objectName = String(isSecret ? source['secretName'] : source['name']);
    const data = isSecret ? ctx.data.secret(objectName) : ctx.data.configMap(objectName);
    const defaultMode = num(source['defaultMode']) ?? 0o644;
    const items = list(source['items']);
    const files: VolumeFile[] = (items.length > 0 ? items : [...data.keys()].map((key): Json => ({ key, path: key }))).map((item) => {
      const key = String(item['key']);
      const content = data.get(key);
      if (!content) throw new Error(`volume ${name}: ${isSecret ? 'Secret' : 'ConfigMap'} ${objectName} has no key ${key}`);
      return { path: String(item['path']), content, mode: num(item['mode']) ?? defaultMode };
    });
    return { name, kind: 'files', files };
  }
  if (isRecord(volume['emptyDir'])) {
    const emptyDir = volume['emptyDir'];
    if (emptyDir['medium'] === undefined || emptyDir['medium'] === '') return { name, kind: 'emptyDir' };
    if (emptyDir['medium'] !== 'Memory') throw new Error(`volume ${name}: emptyDir medium ${String(emptyDir['medium'])} is not translated`);
    if (emptyDir['sizeLimit'] === undefined) throw new Error(`volume ${name}: a Memory emptyDir without sizeLimit is not translated`);
    return { name, kind: 'emptyDir', memoryBytes: memoryBytes(String(emptyDir['sizeLimit'])) };
  }
  if (isRecord(volume['persistentVolumeClaim']))
    return { name, kind: 'claim', claim: String(volume['persistentVolumeClaim']['claimName']) };
  throw new Error(
    `volume ${name}: ${Object.keys(volume)
      .filter((k) => k !== 'name')
      .join(',')} is not translated`,
  );
}

function containerOf(
  container: Json,
  role: ContainerPlan['role'],
  podSpec: Json,
  ctx: PlanContext,
  pod: { name: string; namespace: string; ip: string | undefined },
) {
  for (const field of UNSUPPORTED_CONTAINER)
    if (container[field] !== undefined) throw new Error(`container field ${field} is not translated`);
  const name = String(container['name']);
  const podSecurity = isRecord(podSpec['securityContext']) ? podSpec['securityContext'] : {};
  const security = isRecord(container['securityContext']) ? container['securityContext'] : {};
  if (security['privileged'] === true) throw new Error(`${name}: privileged containers are not translated`);
  const user = num(security['runAsUser']) ?? num(podSecurity['runAsUser']);
  const runAsNonRoot = security['runAsNonRoot'] ?? podSecurity['runAsNonRoot'];
  if (runAsNonRoot === true && (user === undefined || user === 0)) throw new Error(`${name}: runAsNonRoot without a non-zero runAsUser`);
  const capabilities = isRecord(security['capabilities']) ? security['capabilities'] : {};
  const env = resolveEnv(container, ctx, pod);
  const known = new Map(env);
  const limits = isRecord(container['resources']) && isRecord(container['resources']['limits']) ? container['resources']['limits'] : {};
  const fsGroup = num(podSecurity['fsGroup']);
  const plan: ContainerPlan = {
    name,
    role,
    image: localImage(ctx.images, String(container['image'])),
    command: strings(container['command'])?.map((c) => expand(c, known)),
    args: strings(container['args'])?.map((a) => expand(a, known)),
    workingDir: typeof container['workingDir'] === 'string' ? container['workingDir'] : undefined,
    env,
    user,
    group: num(security['runAsGroup']) ?? num(podSecurity['runAsGroup']),
    supplementalGroups: [...(fsGroup === undefined ? [] : [fsGroup]), ...(strings(podSecurity['supplementalGroups']) ?? []).map(Number)],
    readOnlyRootFilesystem: security['readOnlyRootFilesystem'] === true,
    dropCapabilities: strings(capabilities['drop']) ?? [],
    addCapabilities: strings(capabilities['add']) ?? [],
    noNewPrivileges: security['allowPrivilegeEscalation'] === false,
    memoryLimitBytes: limits['memory'] === undefined ? undefined : memoryBytes(String(limits['memory'])),
    mounts: list(container['volumeMounts']).map((m) => ({
      volume: String(m['name']),
      mountPath: String(m['mountPath']),
      subPath: typeof m['subPath'] === 'string' && m['subPath'] !== '' ? m['subPath'] : undefined,
      readOnly: m['readOnly'] === true,
    })),
  };
  return plan;
}

/** A pod template as podman will run it: every field that changes what a container may do is carried over. */
export function planPod(template: PodTemplate, ctx: PlanContext): PodPlan {
  const spec = template.spec;
  for (const field of UNSUPPORTED_POD)
    if (spec[field] !== undefined && spec[field] !== false) throw new Error(`pod field ${field} is not translated`);
  const pod = { name: ctx.metadataName ?? ctx.podName, namespace: template.namespace ?? 'default', ip: ctx.podIp };
  const volumes = list(spec['volumes']).map((v) => volumeOf(v, ctx));
  for (const claim of template.claimTemplates) {
    volumes.push({
      name: claim,
      kind: 'claim',
      claim: ctx.claimName ? ctx.claimName(claim) : `${claim}-${ctx.metadataName ?? ctx.podName}`,
    });
  }
  const containers = [
    ...list(spec['initContainers']).map((c) => containerOf(c, c['restartPolicy'] === 'Always' ? 'sidecar' : 'init', spec, ctx, pod)),
    ...list(spec['containers']).map((c) => containerOf(c, 'main', spec, ctx, pod)),
  ];
  const names = new Set(volumes.map((v) => v.name));
  for (const container of containers) {
    for (const mount of container.mounts)
      if (!names.has(mount.volume)) throw new Error(`${container.name} mounts ${mount.volume}, which the pod does not define`);
  }
  const podSecurity = isRecord(spec['securityContext']) ? spec['securityContext'] : {};
  return {
    name: ctx.podName,
    namespace: pod.namespace,
    labels: template.labels,
    fsGroup: num(podSecurity['fsGroup']),
    volumes,
    containers,
  };
}
