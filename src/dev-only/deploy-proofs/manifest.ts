/** A rendered Kubernetes object as plain JSON (what `kubectl kustomize` prints). */
export interface Manifest {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly labels?: Readonly<Record<string, string>> } & Readonly<
    Record<string, unknown>
  >;
  readonly [field: string]: unknown;
}

export function describe(object: Manifest): string {
  return `${object.kind}/${object.metadata.name}`;
}

/** Plain-object check for walking untyped JSON. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
