import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { selectorMatches } from './label-selector.js';
import type { Manifest } from './manifest.js';
import { containersOf } from './pod-templates.js';
import { DEPLOY_DIR, renderKustomization } from './render.js';
import { findPod } from './workload-environment.js';

type Json = Record<string, any>;
let overlays: [string, Manifest[]][];

before(async () => {
  overlays = await Promise.all(
    ['dev', 'prod'].map(
      async (name): Promise<[string, Manifest[]]> => [name, await renderKustomization(join(DEPLOY_DIR, 'overlays', name))],
    ),
  );
});

/** The API container's rendered ports by name and its port settings, resolved through the ConfigMap. */
function apiContainer(objects: readonly Manifest[]): { ports: Record<string, number>; env: Record<string, string> } {
  const api = containersOf(findPod(objects, 'Deployment/pms-telemetry')).find((c) => c.name === 'api')?.container as Json;
  const env: Record<string, string> = {};
  for (const e of api['env'] as Json[]) {
    const ref = e['valueFrom']?.['configMapKeyRef'];
    const map = ref ? objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === ref['name']) : undefined;
    env[e['name']] = ref ? String((map?.['data'] as Json | undefined)?.[ref['key']]) : String(e['value']);
  }
  return { ports: Object.fromEntries((api['ports'] as Json[]).map((p) => [p['name'], p['containerPort']])), env };
}

/** Who may reach which port of the ingest API's pods, rule by rule, across every policy selecting them. */
function ingressRules(objects: readonly Manifest[]): { from: Json[]; ports: number[] }[] {
  const pod = findPod(objects, 'Deployment/pms-telemetry');
  return objects
    .filter((o) => o.kind === 'NetworkPolicy' && selectorMatches((o['spec'] as Json)['podSelector'], pod.labels))
    .flatMap((o) => ((o['spec'] as Json)['ingress'] ?? []) as Json[])
    .map((rule) => ({ from: rule['from'] ?? [], ports: ((rule['ports'] ?? []) as Json[]).map((p) => p['port']) }));
}

test('the API container serves /metrics on its own named port, the one TELEMETRY_METRICS_PORT names, and the PodMonitor scrapes it', () => {
  for (const [name, objects] of overlays) {
    const pod = findPod(objects, 'Deployment/pms-telemetry');
    const { ports, env } = apiContainer(objects);
    assert.deepEqual(ports, { http: Number(env['TELEMETRY_PORT']), metrics: Number(env['TELEMETRY_METRICS_PORT']) }, name);
    assert.notEqual(ports['http'], ports['metrics']);
    const monitor = objects.find((o) => o.kind === 'PodMonitor' && o.metadata.name === 'pms-telemetry');
    assert.ok(monitor, `${name}: PodMonitor/pms-telemetry is rendered`);
    assert.deepEqual(
      ((monitor['spec'] as Json)['podMetricsEndpoints'] as Json[]).map((e) => [e['port'], e['path']]),
      [['metrics', '/metrics']],
    );
    assert.ok(selectorMatches((monitor['spec'] as Json)['selector'], pod.labels), `${name}: the PodMonitor selects the API pods`);
  }
});

test('NetworkPolicy: the metrics port admits only Prometheus (as for the exporter), the API port only the ingress controller', () => {
  for (const [name, objects] of overlays) {
    const { env } = apiContainer(objects);
    const apiPort = Number(env['TELEMETRY_PORT']);
    const metricsPort = Number(env['TELEMETRY_METRICS_PORT']);
    // The Prometheus peer exactly as the PostgreSQL policy admits it to the exporter.
    const postgresPolicy = objects.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'postgres') as Json | undefined;
    const prometheus = ((postgresPolicy?.['spec']?.['ingress'] ?? []) as Json[])
      .flatMap((r) => (r['from'] ?? []) as Json[])
      .find((peer) => peer['podSelector']?.matchLabels?.['app.kubernetes.io/name'] === 'prometheus');
    assert.ok(prometheus, `${name}: the postgres policy names Prometheus`);
    const ingressController = { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } };
    const rules = ingressRules(objects);
    assert.ok(rules.length > 0);
    for (const rule of rules) {
      assert.ok(rule.from.length > 0 && rule.ports.length > 0, `${name}: no rule admits every peer or every port`);
      if (rule.ports.includes(metricsPort)) assert.deepEqual(rule.from, [prometheus], `${name}: only Prometheus reaches the metrics port`);
      if (rule.ports.includes(apiPort))
        assert.deepEqual(rule.from, [ingressController], `${name}: only the ingress controller reaches the API port`);
      assert.deepEqual(
        rule.ports.filter((p) => p !== apiPort && p !== metricsPort),
        [],
        `${name}: no other port is open`,
      );
    }
    assert.ok(rules.some((r) => r.ports.includes(metricsPort)) && rules.some((r) => r.ports.includes(apiPort)));
  }
});
