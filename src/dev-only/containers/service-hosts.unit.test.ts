import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Manifest } from '../deploy-proofs/manifest.js';
import type { NetPod } from './network-policy.js';
import { serviceHosts } from './service-hosts.js';

const service = (name: string, selector: Record<string, string>, headless = false) =>
  ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'ns' },
    spec: { selector, ...(headless ? { clusterIP: 'None' } : {}) },
  }) as Manifest;

test("Services resolve by the pods' labels: the role-selected primary to one member, the headless Service to each member by name", () => {
  const objects = [
    service('db', { app: 'db', role: 'master' }),
    service('db-replicas', { app: 'db', role: 'replica' }),
    service('db-headless', { app: 'db' }, true),
  ];
  const pods: NetPod[] = [
    { name: 'h-0', namespace: 'ns', ip: '10.0.0.10', hostname: 'db-0', labels: { app: 'db', role: 'replica' } },
    { name: 'h-1', namespace: 'ns', ip: '10.0.0.11', hostname: 'db-1', labels: { app: 'db', role: 'master' } },
    { name: 'h-2', namespace: 'ns', ip: '10.0.0.12', hostname: 'db-2', labels: { app: 'db' } },
  ];
  const hosts = serviceHosts(objects, pods, []);
  const of = (name: string) => hosts.filter(([n]) => n === name).map(([, ip]) => ip);
  assert.deepEqual(of('db.ns.svc'), ['10.0.0.11']);
  assert.deepEqual(of('db-replicas.ns.svc'), ['10.0.0.10']);
  assert.deepEqual(of('db-0.db-headless.ns.svc'), ['10.0.0.10']);
  assert.deepEqual(of('db-2.db-headless.ns.svc.cluster.local'), ['10.0.0.12']);
  // Only a headless Service names its pods.
  assert.deepEqual(of('db-1.db.ns.svc'), []);
  // The leader's label moves: the name follows it.
  const [first, second, third] = pods as [NetPod, NetPod, NetPod];
  const moved = [{ ...first, labels: { app: 'db', role: 'master' } }, { ...second, labels: { app: 'db', role: 'replica' } }, third];
  assert.deepEqual(
    serviceHosts(objects, moved, [])
      .filter(([n]) => n === 'db.ns.svc')
      .map(([, ip]) => ip),
    ['10.0.0.10'],
  );
});
