import type { Manifest } from '../deploy-proofs/manifest.js';
import { isRecord } from '../deploy-proofs/manifest.js';

/** The data of the rendered ConfigMaps and Secrets, by name, as the kubelet would read them. */
export interface ClusterData {
  configMap(name: string): ReadonlyMap<string, Buffer>;
  secret(name: string): ReadonlyMap<string, Buffer>;
}

function entries(object: Manifest, field: 'data' | 'stringData' | 'binaryData', encoding: 'utf8' | 'base64'): Array<[string, Buffer]> {
  const data = object[field];
  return isRecord(data) ? Object.entries(data).map(([key, value]) => [key, Buffer.from(String(value), encoding)]) : [];
}

/**
 * From the rendered objects, plus Secrets that something else issues in a real cluster (the
 * dev overlay's postgres-tls comes from cert-manager; here from a throwaway CA).
 */
export function clusterData(
  objects: readonly Manifest[],
  issued: ReadonlyMap<string, ReadonlyMap<string, Buffer>> = new Map(),
): ClusterData {
  const configMaps = new Map<string, Map<string, Buffer>>();
  const secrets = new Map<string, Map<string, Buffer>>(issued as Map<string, Map<string, Buffer>>);
  for (const object of objects) {
    if (object.kind === 'ConfigMap') {
      configMaps.set(object.metadata.name, new Map([...entries(object, 'data', 'utf8'), ...entries(object, 'binaryData', 'base64')]));
    } else if (object.kind === 'Secret') {
      secrets.set(object.metadata.name, new Map([...entries(object, 'data', 'base64'), ...entries(object, 'stringData', 'utf8')]));
    }
  }
  const lookup = (kind: string, all: Map<string, Map<string, Buffer>>, name: string) => {
    const found = all.get(name);
    if (!found) throw new Error(`${kind} ${name} is not in the rendered manifests (a pod referring to it would not start)`);
    return found;
  };
  return { configMap: (name) => lookup('ConfigMap', configMaps, name), secret: (name) => lookup('Secret', secrets, name) };
}
