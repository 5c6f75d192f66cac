import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Manifest } from '../deploy-proofs/manifest.js';
import { type NetPod, allowedConnections, nftRuleset } from './network-policy.js';

const policy = (name: string, spec: Record<string, unknown>): Manifest => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name, namespace: 'app' },
  spec,
});

const pods: NetPod[] = [
  { name: 'db', namespace: 'app', labels: { role: 'db' }, ip: '10.0.0.2' },
  { name: 'api', namespace: 'app', labels: { role: 'api' }, ip: '10.0.0.3' },
  { name: 'other', namespace: 'app', labels: { role: 'other' }, ip: '10.0.0.4' },
  { name: 'lb', namespace: 'edge', labels: {}, ip: '10.0.0.5' },
];

test('a connection needs both the egress of its source and the ingress of its destination', () => {
  const objects = [
    policy('deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
    policy('db', {
      podSelector: { matchLabels: { role: 'db' } },
      policyTypes: ['Ingress'],
      ingress: [{ from: [{ podSelector: { matchLabels: { role: 'api' } } }], ports: [{ port: 5432 }] }],
    }),
    policy('api', {
      podSelector: { matchLabels: { role: 'api' } },
      policyTypes: ['Ingress', 'Egress'],
      egress: [{ to: [{ podSelector: { matchLabels: { role: 'db' } } }], ports: [{ port: 5432, protocol: 'TCP' }] }],
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'edge' } } }], ports: [{ port: 8080 }] }],
    }),
  ];
  const allowed = allowedConnections(objects, pods);
  assert.deepEqual(allowed.map((a) => `${a.from}>${a.to}:${a.protocol ?? '*'}/${a.port ?? '*'}`).sort(), [
    '10.0.0.3>10.0.0.2:tcp/5432',
    '10.0.0.5>10.0.0.3:tcp/8080',
  ]);
  const rules = nftRuleset('t', '10.0.0.0/24', allowed);
  assert.match(rules, /10\.0\.0\.3 \. 10\.0\.0\.2 \. tcp \. 5432/);
  assert.match(rules, /reject with tcp reset/);
});
