import { createRequire } from 'node:module';
import { Application } from '@kubernetes-models/argo-cd/argoproj.io/v1alpha1/Application';
import { Certificate } from '@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate';
import { Issuer } from '@kubernetes-models/cert-manager/cert-manager.io/v1/Issuer';
import { Kustomization } from '@kubernetes-models/flux-cd/kustomize.toolkit.fluxcd.io/v1/Kustomization';
import { GitRepository } from '@kubernetes-models/flux-cd/source.toolkit.fluxcd.io/v1/GitRepository';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor';
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';

/** Anything kubernetes-models generates: constructed from plain data, `validate()` throws. */
export interface SchemaModel {
  validate(): void;
}
export type SchemaModelClass = new (data: never) => SchemaModel;

// @kubernetes-models/sealed-secrets' export map has no "types" condition, so TypeScript cannot
// type its ESM entry; the CommonJS build is the same class.
const { SealedSecret } = createRequire(import.meta.url)('@kubernetes-models/sealed-secrets/bitnami.com/v1alpha1/SealedSecret') as {
  SealedSecret: SchemaModelClass;
};

/**
 * Every kind the manifests may use, keyed `apiVersion/kind`. A kind missing here fails
 * validation on purpose: adding a new kind means choosing the schema that checks it.
 */
export const SCHEMAS: ReadonlyMap<string, SchemaModelClass> = new Map<string, SchemaModelClass>([
  ['v1/Namespace', Namespace],
  ['v1/ConfigMap', ConfigMap],
  ['v1/Secret', Secret],
  ['v1/Service', Service],
  ['v1/ServiceAccount', ServiceAccount],
  ['v1/PersistentVolumeClaim', PersistentVolumeClaim],
  ['apps/v1/StatefulSet', StatefulSet],
  ['apps/v1/Deployment', Deployment],
  ['batch/v1/CronJob', CronJob],
  ['policy/v1/PodDisruptionBudget', PodDisruptionBudget],
  ['networking.k8s.io/v1/NetworkPolicy', NetworkPolicy],
  ['rbac.authorization.k8s.io/v1/Role', Role],
  ['rbac.authorization.k8s.io/v1/RoleBinding', RoleBinding],
  ['bitnami.com/v1alpha1/SealedSecret', SealedSecret],
  ['cert-manager.io/v1/Certificate', Certificate],
  ['cert-manager.io/v1/Issuer', Issuer],
  ['monitoring.coreos.com/v1/PrometheusRule', PrometheusRule],
  ['monitoring.coreos.com/v1/ServiceMonitor', ServiceMonitor],
  ['monitoring.coreos.com/v1/PodMonitor', PodMonitor],
  ['argoproj.io/v1alpha1/Application', Application],
  ['kustomize.toolkit.fluxcd.io/v1/Kustomization', Kustomization],
  ['source.toolkit.fluxcd.io/v1/GitRepository', GitRepository],
]);
