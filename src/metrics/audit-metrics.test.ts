import * as assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadMetricsConfig } from '../config/metrics-config.js';
import { type PushgatewayHarness, startPushgateway } from '../testing/pushgateway-harness.js';
import type { CommandOutcome } from './command-outcome.js';
import { pushCommandMetrics } from './push-command-metrics.js';

const INSTANCE = 'patient_telemetry';
const monitor = { job: 'pms-backup', command: 'monitor', instance: INSTANCE };

function run(fields: Partial<CommandOutcome>): CommandOutcome {
  return {
    command: 'monitor',
    ok: true,
    startedAt: new Date('2026-01-10T02:00:00Z'),
    finishedAt: new Date('2026-01-10T02:00:05Z'),
    ...fields,
  };
}

describe("monitor's audit head metrics through a real prometheus-pushgateway", () => {
  let gateway: PushgatewayHarness;
  let config: ReturnType<typeof loadMetricsConfig>;
  before(async () => {
    gateway = await startPushgateway();
    config = loadMetricsConfig({ PUSHGATEWAY_URL: gateway.url, POSTGRES_DB: INSTANCE });
  });
  after(async () => {
    await gateway?.stop();
  });

  test('the head sequence, chain status and a single info series naming the current head', async () => {
    const first = 'a1b2c3d4e5f6'.padEnd(64, '0');
    const second = '0f1e2d3c4b5a'.padEnd(64, '9');
    assert.equal((await pushCommandMetrics(config, run({ audit: { headSequence: 41, headHash: first, chainOk: true } }))).status, 'pushed');
    assert.equal(
      (await pushCommandMetrics(config, run({ audit: { headSequence: 42, headHash: second, chainOk: false } }))).status,
      'pushed',
    );
    assert.deepEqual(
      (await gateway.find('pms_backup_audit_head_sequence', monitor)).map((s) => s.value),
      [42],
    );
    assert.deepEqual(
      (await gateway.find('pms_backup_audit_chain_ok', monitor)).map((s) => s.value),
      [0],
    );
    // The push replaces the metric as a whole, so yesterday's head does not linger as a second series.
    assert.deepEqual(
      (await gateway.find('pms_backup_audit_head_info', monitor)).map((s) => [s.labels['sequence'], s.labels['hash_prefix'], s.value]),
      [['42', '0f1e2d3c4b5a', 1]],
    );
    // A monitor run that could not look (repository down) pushes no audit facts: the last ones stay.
    await pushCommandMetrics(config, run({ ok: false, repositoryUp: false }));
    assert.deepEqual(
      (await gateway.find('pms_backup_audit_head_sequence', monitor)).map((s) => s.value),
      [42],
    );
  });
});
