import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Manifest, isRecord } from './manifest.js';
import { type PodTemplate, containersOf, podTemplates } from './pod-templates.js';

export interface MaterialisedContainer {
  /** argv as the container runs it, e.g. ["pms-backup", "create"]. */
  readonly command: readonly string[];
  /** The container's environment, with mount paths mapped into the temporary root. */
  readonly env: Record<string, string>;
  /** mountPath in the container → directory on this machine. */
  readonly paths: ReadonlyMap<string, string>;
  /** Rewrites a container path (e.g. /run/secrets/pms-backup/x) to the local one. */
  mapPath(path: string): string;
}

export interface MaterialiseOptions {
  /** Where the container's volumes are written (one directory per mount). */
  readonly root: string;
  /** Per-variable replacements for what differs on this machine: network addresses and ports. */
  readonly envOverrides?: Readonly<Record<string, string>>;
  /** Per-Secret key replacements (credentials of the local object store), `secret/key` → value. */
  readonly secretOverrides?: Readonly<Record<string, string>>;
  /** Files run by uids other than ours (PostgreSQL's OS user) need to be readable by them. */
  readonly worldReadable?: boolean;
}

function dataOf(objects: readonly Manifest[], kind: 'Secret' | 'ConfigMap', name: string): Record<string, string> {
  const object = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!object) throw new Error(`${kind}/${name} is not in the rendered objects`);
  const out: Record<string, string> = {};
  const data = isRecord(object['data']) ? object['data'] : {};
  for (const [key, value] of Object.entries(data)) {
    out[key] = kind === 'Secret' ? Buffer.from(String(value).replace(/\n/g, ''), 'base64').toString('utf8') : String(value);
  }
  const stringData = isRecord(object['stringData']) ? object['stringData'] : {};
  for (const [key, value] of Object.entries(stringData)) out[key] = String(value);
  return out;
}

export function findPod(objects: readonly Manifest[], owner: string): PodTemplate {
  const pod = podTemplates(objects).find((p) => p.owner === owner);
  if (!pod) throw new Error(`${owner} is not rendered`);
  return pod;
}

/**
 * Turns one container of a rendered pod into something runnable here: every volume it mounts is
 * written to a directory under `root` (Secrets and ConfigMaps with their items and keys, empty
 * directories for emptyDir and PVCs), and its environment is resolved (configMapKeyRef,
 * secretKeyRef, literal values) with mount paths rewritten to those directories.
 */
export function materialiseContainer(
  objects: readonly Manifest[],
  pod: PodTemplate,
  containerName: string,
  options: MaterialiseOptions,
): MaterialisedContainer {
  const ref = containersOf(pod).find((c) => c.name === containerName);
  if (!ref) throw new Error(`${pod.owner} has no container ${containerName}`);
  const { container } = ref;
  const volumes = new Map<string, Record<string, unknown>>();
  for (const v of Array.isArray(pod.spec['volumes']) ? pod.spec['volumes'] : []) if (isRecord(v)) volumes.set(String(v['name']), v);
  for (const claim of pod.claimTemplates) volumes.set(claim, { name: claim, persistentVolumeClaim: { claimName: claim } });
  const fileMode = options.worldReadable ? 0o644 : 0o600;
  const dirMode = options.worldReadable ? 0o755 : 0o700;

  const paths = new Map<string, string>();
  const mounts = Array.isArray(container['volumeMounts']) ? container['volumeMounts'] : [];
  mounts.forEach((mount, index) => {
    if (!isRecord(mount)) return;
    const mountPath = String(mount['mountPath']);
    const volume = volumes.get(String(mount['name']));
    if (!volume) throw new Error(`${pod.owner}: volume ${String(mount['name'])} is mounted but not defined`);
    const local = join(options.root, `mount-${index}`);
    mkdirSync(local, { recursive: true, mode: dirMode });
    chmodSync(local, dirMode);
    const source = isRecord(volume['secret'])
      ? { kind: 'Secret' as const, spec: volume['secret'], name: String(volume['secret']['secretName']) }
      : isRecord(volume['configMap'])
        ? { kind: 'ConfigMap' as const, spec: volume['configMap'], name: String(volume['configMap']['name']) }
        : undefined;
    if (source) {
      const data = dataOf(objects, source.kind, source.name);
      const items = Array.isArray(source.spec['items'])
        ? source.spec['items'].filter(isRecord)
        : Object.keys(data).map((key) => ({ key, path: key }));
      const baseName = source.name.replace(/-[a-z0-9]{10}$/, '');
      const files = new Map<string, string>();
      for (const item of items) {
        const key = String(item['key']);
        const value = options.secretOverrides?.[`${baseName}/${key}`] ?? data[key];
        if (value === undefined) throw new Error(`${source.kind}/${source.name} has no key ${key}`);
        files.set(String(item['path']), value);
      }
      const subPath = typeof mount['subPath'] === 'string' ? mount['subPath'] : undefined;
      if (subPath !== undefined) {
        const value = files.get(subPath);
        if (value === undefined) throw new Error(`${source.kind}/${source.name} has no ${subPath} for subPath`);
        const file = join(local, subPath);
        writeFileSync(file, value, { mode: fileMode });
        paths.set(mountPath, file);
        return;
      }
      for (const [path, value] of files) writeFileSync(join(local, path), value, { mode: fileMode });
    } else if (!isRecord(volume['emptyDir']) && !isRecord(volume['persistentVolumeClaim'])) {
      throw new Error(`${pod.owner}: volume ${String(mount['name'])} has a type this harness cannot provide`);
    }
    paths.set(mountPath, local);
  });

  // Longest mount path first, so /etc/postgresql/tls wins over /etc/postgresql.
  const ordered = [...paths.entries()].sort((a, b) => b[0].length - a[0].length);
  const mapPath = (value: string): string => {
    for (const [from, to] of ordered) if (value === from || value.startsWith(`${from}/`)) return to + value.slice(from.length);
    return value;
  };

  const env: Record<string, string> = {};
  for (const entry of Array.isArray(container['env']) ? container['env'] : []) {
    if (!isRecord(entry)) continue;
    const name = String(entry['name']);
    let value: string | undefined;
    if (typeof entry['value'] === 'string') value = mapPath(entry['value']);
    const from = isRecord(entry['valueFrom']) ? entry['valueFrom'] : undefined;
    if (from && isRecord(from['configMapKeyRef']))
      value = dataOf(objects, 'ConfigMap', String(from['configMapKeyRef']['name']))[String(from['configMapKeyRef']['key'])];
    if (from && isRecord(from['secretKeyRef']))
      value = dataOf(objects, 'Secret', String(from['secretKeyRef']['name']))[String(from['secretKeyRef']['key'])];
    // A downward-API value (fieldRef) exists only in a running pod: the caller supplies it.
    if (value === undefined && options.envOverrides?.[name] === undefined)
      throw new Error(`${pod.owner} container ${containerName}: cannot resolve ${name}`);
    env[name] = options.envOverrides?.[name] ?? value ?? '';
  }
  const command = [
    ...(Array.isArray(container['command']) ? container['command'] : []),
    ...(Array.isArray(container['args']) ? container['args'] : []),
  ].map(String);
  return { command, env, paths, mapPath };
}
