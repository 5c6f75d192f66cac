import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Manifest } from '../deploy-proofs/manifest.js';
import { withLocalSites } from './ha-cluster.js';

const policy = (name: string, egress: unknown[]): Manifest => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name },
  spec: { podSelector: {}, policyTypes: ['Egress'], egress },
});

describe("prod's site addresses pointed at the run's stand-ins", () => {
  const api = policy('kubernetes-api-egress', [
    {
      to: [{ ipBlock: { cidr: '203.0.113.64/28' } }],
      ports: [
        { protocol: 'TCP', port: 443 },
        { protocol: 'TCP', port: 6443 },
      ],
    },
  ]);
  const members = policy('postgres-members', [{ to: [{ podSelector: { matchLabels: { app: 'postgres' } } }], ports: [{ port: 5432 }] }]);

  test("a named policy's ipBlocks become the stand-in's address and port; other peers and policies stay as rendered", () => {
    const mixed = policy('kubernetes-api-egress', [
      { to: [{ ipBlock: { cidr: '203.0.113.64/28' } }, { podSelector: {} }], ports: [{ protocol: 'TCP', port: 443 }] },
    ]);
    const [local, untouched] = withLocalSites([mixed, members], { 'kubernetes-api-egress': { ip: '10.90.18.4', port: 2379 } });
    assert.ok(local);
    assert.deepEqual((local['spec'] as { egress: unknown }).egress, [
      { to: [{ ipBlock: { cidr: '10.90.18.4/32' } }, { podSelector: {} }], ports: [{ protocol: 'TCP', port: 2379 }] },
    ]);
    assert.equal(untouched, members);
    assert.deepEqual((api['spec'] as { egress: Array<{ ports: unknown[] }> }).egress[0]?.ports.length, 2, 'the input is not modified');
  });

  test('a stand-in for a policy that is not rendered fails the run', () => {
    assert.throws(
      () => withLocalSites([api], { 'prod-object-store-egress': { ip: '10.90.18.2', port: 9000 } }),
      /no rendered NetworkPolicy named prod-object-store-egress/,
    );
  });
});
