import { type Manifest, describe, isRecord } from './manifest.js';
import { SCHEMAS, type SchemaModelClass } from './schema-registry.js';

interface AjvError {
  readonly instancePath: string;
  readonly message?: string;
}

/** Runs a kubernetes-models validator and returns its ajv errors (empty when valid). */
function schemaErrors(model: SchemaModelClass, data: unknown): readonly AjvError[] {
  try {
    new model(data as never).validate();
    return [];
  } catch (error) {
    const errors = (error as { errors?: unknown }).errors;
    if (Array.isArray(errors)) return errors as AjvError[];
    throw error;
  }
}

function pointer(path: readonly string[]): string {
  return path.map((p) => `/${p.replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

/** A value no schema type accepts (not string, number, boolean, array, object or null). */
const PROBE = Symbol('unknown-field-probe');

function setAt(root: unknown, path: readonly string[], value: unknown): unknown {
  const clone: unknown = structuredClone(root);
  let node = clone as Record<string, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string, unknown>;
  node[path[path.length - 1] as string] = value;
  return clone;
}

/**
 * kubernetes-models' validators ignore fields the schema does not define (`additionalProperties`
 * is not enforced), so a misspelt `imagePullPolicey` would pass. The compiled validators are all
 * we have (the raw OpenAPI schemas are not shipped), so each field is probed: its value is
 * replaced by a value of no JSON type. A field the schema defines then fails its type check at
 * exactly that path; a field the schema does not know fails nothing, and is reported.
 * A subtree whose schema accepts any value cannot be probed; those are listed in OPEN_SUBTREES
 * and checked another way.
 */
function unknownFields(model: SchemaModelClass, object: unknown, open: readonly string[]): string[] {
  const unknown: string[] = [];
  const walk = (value: unknown, path: string[]): void => {
    if (Array.isArray(value)) {
      for (const [index, item] of value.entries()) walk(item, [...path, String(index)]);
      return;
    }
    if (!isRecord(value)) return;
    for (const key of Object.keys(value)) {
      const here = [...path, key];
      if (path.length === 0 && (key === 'apiVersion' || key === 'kind')) continue;
      const at = pointer(here);
      if (open.includes(at)) continue;
      const errors = schemaErrors(model, setAt(object, here, PROBE));
      if (!errors.some((e) => e.instancePath === at)) {
        unknown.push(at);
        continue;
      }
      walk(value[key], here);
    }
  };
  walk(object, []);
  return unknown;
}

/**
 * Subtrees a package types as "any object". The SealedSecret CRD schema in
 * @kubernetes-models/sealed-secrets leaves `spec.template` and `spec.encryptedData` open, so
 * they are checked by SEALED_SECRET_CHECK instead (the template is validated as a v1 Secret).
 */
const OPEN_SUBTREES: ReadonlyMap<string, readonly string[]> = new Map([
  ['bitnami.com/v1alpha1/SealedSecret', ['/spec/template', '/spec/encryptedData']],
]);

function sealedSecretProblems(object: Manifest): string[] {
  const spec = object['spec'];
  if (!isRecord(spec)) return ['/spec is missing'];
  const problems: string[] = [];
  const encrypted = spec['encryptedData'];
  if (!isRecord(encrypted) || Object.keys(encrypted).length === 0) problems.push('/spec/encryptedData must list the sealed keys');
  else
    for (const [key, value] of Object.entries(encrypted))
      if (typeof value !== 'string') problems.push(`/spec/encryptedData/${key} must be a string`);
  const template = spec['template'];
  if (template !== undefined) {
    const secretModel = SCHEMAS.get('v1/Secret');
    if (!isRecord(template)) problems.push('/spec/template must be an object');
    else if (secretModel) {
      const asSecret = {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: template['metadata'] ?? {},
        ...(template['type'] === undefined ? {} : { type: template['type'] }),
      };
      for (const key of Object.keys(template))
        if (!['metadata', 'type', 'immutable'].includes(key)) problems.push(`/spec/template/${key} is not a field of a Secret template`);
      for (const e of schemaErrors(secretModel, asSecret)) problems.push(`/spec/template${e.instancePath} ${e.message ?? 'is invalid'}`);
      for (const path of unknownFields(secretModel, asSecret, [])) problems.push(`/spec/template${path} is not a field of v1/Secret`);
    }
  }
  return problems;
}

/**
 * kustomize prints long Secret values as folded base64 (a YAML block with newlines). The API
 * server's base64 decoder skips newlines, so the schema's strict "byte" format is checked on the
 * value without them.
 */
function withUnfoldedSecretData(object: Manifest): Manifest {
  if (object.apiVersion !== 'v1' || object.kind !== 'Secret' || !isRecord(object['data'])) return object;
  const data = Object.fromEntries(Object.entries(object['data']).map(([k, v]) => [k, typeof v === 'string' ? v.replace(/\n/g, '') : v]));
  return { ...object, data };
}

export interface SchemaProblem {
  readonly object: string;
  readonly message: string;
}

/** Validates one object against its schema, including unknown (misspelt) fields. */
export function validateManifest(rendered: Manifest): SchemaProblem[] {
  const object = withUnfoldedSecretData(rendered);
  const key = `${object.apiVersion}/${object.kind}`;
  const model = SCHEMAS.get(key);
  const name = describe(object);
  if (!model) return [{ object: name, message: `no schema registered for ${key}` }];
  const problems: SchemaProblem[] = schemaErrors(model, object).map((e) => ({
    object: name,
    message: `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`,
  }));
  for (const path of unknownFields(model, object, OPEN_SUBTREES.get(key) ?? []))
    problems.push({ object: name, message: `${path} is not a field of ${key}` });
  if (key === 'bitnami.com/v1alpha1/SealedSecret')
    for (const message of sealedSecretProblems(object)) problems.push({ object: name, message });
  return problems;
}

export function validateManifests(objects: readonly Manifest[]): SchemaProblem[] {
  return objects.flatMap(validateManifest);
}
