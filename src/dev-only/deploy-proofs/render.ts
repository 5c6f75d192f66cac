import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { PmsError } from '../../errors/catalogue.js';
import { runTool } from '../../process/tool-process.js';
import { type Manifest, isRecord } from './manifest.js';

/** The repository's deploy/ folder, found from the compiled file (dist/deploy/ → ../../deploy). */
export const DEPLOY_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'deploy');

/** Renders a kustomization with `kubectl kustomize` (what `kubectl apply -k` would send). */
export async function renderKustomization(dir: string): Promise<Manifest[]> {
  const { stdout } = await runTool('kubectl', ['kustomize', dir]);
  return parseManifests(stdout, dir);
}

export function parseManifests(text: string, source: string): Manifest[] {
  const objects: Manifest[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) {
      throw new PmsError('PMS_ERR_CONFIG', `${source}: invalid YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    if (!isRecord(value) || typeof value['apiVersion'] !== 'string' || typeof value['kind'] !== 'string' || !isRecord(value['metadata'])) {
      throw new PmsError('PMS_ERR_CONFIG', `${source}: a document is not a Kubernetes object (apiVersion, kind, metadata)`);
    }
    objects.push(value as unknown as Manifest);
  }
  return objects;
}
