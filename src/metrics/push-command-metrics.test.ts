import * as assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { loadMetricsConfig } from '../config/metrics-config.js';
import { freePort } from '../postgres/free-port.js';
import { type PushgatewayHarness, startPushgateway } from '../testing/pushgateway-harness.js';
import type { CommandOutcome } from './command-outcome.js';
import { pushCommandMetrics } from './push-command-metrics.js';

const INSTANCE = 'patient_telemetry';
const group = (command: string) => ({ job: 'pms-backup', command, instance: INSTANCE });

function outcome(command: string, fields: Partial<CommandOutcome> = {}): CommandOutcome {
  return {
    command,
    ok: true,
    startedAt: new Date('2026-01-10T02:00:00Z'),
    finishedAt: new Date('2026-01-10T02:01:30Z'),
    ...fields,
  };
}

describe('pushCommandMetrics against a real prometheus-pushgateway', () => {
  let gateway: PushgatewayHarness;
  let config: ReturnType<typeof loadMetricsConfig>;

  before(async () => {
    gateway = await startPushgateway();
    config = loadMetricsConfig({ PUSHGATEWAY_URL: gateway.url, POSTGRES_DB: INSTANCE });
  });
  after(async () => {
    await gateway?.stop();
  });
  beforeEach(async () => {
    await gateway.wipe();
  });

  const value = async (name: string, labels: Record<string, string>): Promise<number | undefined> => {
    const found = await gateway.find(name, labels);
    assert.ok(found.length <= 1, `more than one ${name} sample for ${JSON.stringify(labels)}`);
    return found[0]?.value;
  };

  test('after a successful create and monitor the gateway holds the seed five metrics with the run values', async () => {
    const create = await pushCommandMetrics(config, outcome('create', { backupSizeBytes: 7_340_032 }));
    assert.equal(create.status, 'pushed');
    const monitor = await pushCommandMetrics(
      config,
      outcome('monitor', { backupAgeSeconds: 3600, backupSizeBytes: 7_340_032, repositoryUp: true }),
    );
    assert.equal(monitor.status, 'pushed');

    assert.equal(await value('pms_backup_duration_seconds', group('create')), 90);
    assert.equal(await value('pms_backup_size_bytes', group('create')), 7_340_032);
    assert.equal(await value('pms_backup_success_total', group('create')), 1);
    assert.equal(await value('pms_backup_failure_total', group('create')), 0);
    assert.equal(await value('pms_backup_age_seconds', group('monitor')), 3600);
    assert.equal(await value('pms_backup_last_success_timestamp_seconds', group('create')), Date.parse('2026-01-10T02:01:30Z') / 1000);
    assert.equal(await value('pms_backup_last_run_success', group('create')), 1);
    assert.equal(await value('pms_backup_repository_up', group('monitor')), 1);
    // The gateway's own freshness gauge is what the "monitor not running" alert reads.
    assert.ok((await value('push_time_seconds', group('monitor'))) !== undefined);
  });

  test('counters continue across runs because each run carries the gateway value forward', async () => {
    await pushCommandMetrics(config, outcome('create', { backupSizeBytes: 100 }));
    await pushCommandMetrics(config, outcome('create', { backupSizeBytes: 120 }));
    await pushCommandMetrics(config, outcome('create', { backupSizeBytes: 130 }));
    assert.equal(await value('pms_backup_success_total', group('create')), 3);
    assert.equal(await value('pms_backup_failure_total', group('create')), 0);
    assert.equal(await value('pms_backup_size_bytes', group('create')), 130);
  });

  test('a failed create increments the failure counter, names its error code and keeps the last good size and success time', async () => {
    await pushCommandMetrics(config, outcome('create', { backupSizeBytes: 5000 }));
    const failed = await pushCommandMetrics(
      config,
      outcome('create', {
        ok: false,
        errorCode: 'PMS_ERR_REPO_UNAVAILABLE',
        startedAt: new Date('2026-01-11T02:00:00Z'),
        finishedAt: new Date('2026-01-11T02:00:07Z'),
      }),
    );
    assert.equal(failed.status, 'pushed');

    assert.equal(await value('pms_backup_failure_total', group('create')), 1);
    assert.equal(await value('pms_backup_success_total', group('create')), 1);
    assert.deepEqual(await gateway.find('pms_backup_last_run_success', group('create')), [
      { name: 'pms_backup_last_run_success', labels: { ...group('create'), error_code: 'PMS_ERR_REPO_UNAVAILABLE' }, value: 0 },
    ]);
    assert.equal(await value('pms_backup_duration_seconds', group('create')), 7);
    assert.equal(await value('pms_backup_size_bytes', group('create')), 5000);
    assert.equal(await value('pms_backup_last_success_timestamp_seconds', group('create')), Date.parse('2026-01-10T02:01:30Z') / 1000);
  });

  test('a failed command that never succeeded still pushes its failure', async () => {
    await pushCommandMetrics(config, outcome('create', { ok: false, errorCode: 'PMS_ERR_DB_UNAVAILABLE' }));
    assert.equal(await value('pms_backup_failure_total', group('create')), 1);
    assert.equal(await value('pms_backup_success_total', group('create')), 0);
    assert.equal(await value('pms_backup_last_success_timestamp_seconds', group('create')), undefined);
  });

  test('each command has its own group so monitor does not overwrite the create counters', async () => {
    await pushCommandMetrics(config, outcome('create'));
    await pushCommandMetrics(config, outcome('monitor', { ok: false }));
    assert.equal(await value('pms_backup_success_total', group('create')), 1);
    assert.equal(await value('pms_backup_failure_total', group('monitor')), 1);
    // Checks that found problems are not errors: no error_code label.
    assert.deepEqual(
      (await gateway.find('pms_backup_last_run_success', group('monitor'))).map((s) => s.labels),
      [group('monitor')],
    );
  });

  test('verification, key expiry and WAL facts are exported with their labels, a never-expiring key as +Inf', async () => {
    await pushCommandMetrics(
      config,
      outcome('verify', { verification: { ok: false, durationSeconds: 42.5, finishedAt: new Date('2026-01-11T03:10:00Z') } }),
    );
    await pushCommandMetrics(
      config,
      outcome('monitor', {
        keys: [
          { fingerprint: 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678', expiresAt: new Date('2027-01-01T00:00:00Z') },
          { fingerprint: 'FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000', expiresAt: undefined },
        ],
        sizeDeviationRatio: -0.62,
        walLastArchivedAt: new Date('2026-01-11T03:59:00Z'),
        walGapSegments: 2,
      }),
    );
    assert.equal(await value('pms_backup_verification_success', group('verify')), 0);
    assert.equal(await value('pms_backup_verification_duration_seconds', group('verify')), 42.5);
    assert.equal(await value('pms_backup_verification_last_timestamp_seconds', group('verify')), Date.parse('2026-01-11T03:10:00Z') / 1000);
    assert.equal(
      await value('pms_backup_key_expiry_timestamp_seconds', {
        ...group('monitor'),
        fingerprint: 'A1B2C3D4E5F60718293A4B5C6D7E8F9012345678',
      }),
      Date.parse('2027-01-01T00:00:00Z') / 1000,
    );
    assert.equal(
      await value('pms_backup_key_expiry_timestamp_seconds', {
        ...group('monitor'),
        fingerprint: 'FFFF0000FFFF0000FFFF0000FFFF0000FFFF0000',
      }),
      Number.POSITIVE_INFINITY,
    );
    assert.equal(await value('pms_backup_size_deviation_ratio', group('monitor')), -0.62);
    assert.equal(
      await value('pms_backup_wal_last_archived_timestamp_seconds', group('monitor')),
      Date.parse('2026-01-11T03:59:00Z') / 1000,
    );
    assert.equal(await value('pms_backup_wal_gap_segments', group('monitor')), 2);
  });

  test('a push the gateway rejects gives a warning with its HTTP status and changes nothing', async () => {
    // Another client pushed pms_backup_success_total as a gauge: the gateway's consistency check refuses our counter.
    const seeded = await fetch(`${gateway.url}/metrics/job/other`, {
      method: 'POST',
      body: '# TYPE pms_backup_success_total gauge\npms_backup_success_total 5\n',
    });
    assert.equal(seeded.status, 200);
    const result = await pushCommandMetrics(config, outcome('create'));
    assert.equal(result.status, 'failed');
    assert.match(result.status === 'failed' ? result.warning : '', /push answered HTTP 400/);
    assert.deepEqual(await gateway.find('pms_backup_duration_seconds', group('create')), []);
  });

  test('a removed key disappears from the gateway on the next monitor push', async () => {
    const old = { fingerprint: '1111111111111111111111111111111111111111', expiresAt: new Date('2026-02-01T00:00:00Z') };
    const current = { fingerprint: '2222222222222222222222222222222222222222', expiresAt: new Date('2028-02-01T00:00:00Z') };
    await pushCommandMetrics(config, outcome('monitor', { keys: [old, current] }));
    await pushCommandMetrics(config, outcome('monitor', { keys: [current] }));
    const fingerprints = (await gateway.find('pms_backup_key_expiry_timestamp_seconds', group('monitor'))).map(
      (s) => s.labels['fingerprint'],
    );
    assert.deepEqual(fingerprints, [current.fingerprint]);
  });
});

describe('pushCommandMetrics when the Pushgateway cannot be used', () => {
  test('an unset PUSHGATEWAY_URL disables pushing without a warning', async () => {
    const result = await pushCommandMetrics(loadMetricsConfig({}), outcome('create'));
    assert.deepEqual(result, { status: 'disabled' });
  });

  test('a refused connection gives a warning naming the gateway and no exception', async () => {
    const port = await freePort(); // nothing listens there
    const warnings: string[] = [];
    const result = await pushCommandMetrics(
      loadMetricsConfig({ PUSHGATEWAY_URL: `http://127.0.0.1:${port}` }),
      outcome('create', { ok: false }),
      {
        warn: (message) => warnings.push(message),
      },
    );
    assert.equal(result.status, 'failed');
    assert.match(warnings[0] ?? '', new RegExp(`127\\.0\\.0\\.1:${port}.*ECONNREFUSED.*result is unaffected`));
  });

  test('a gateway that accepts connections but never answers is abandoned at the configured timeout with a warning', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = silent.address();
    const port = address !== null && typeof address === 'object' ? address.port : assert.fail('no port');
    try {
      const config = loadMetricsConfig({ PUSHGATEWAY_URL: `http://127.0.0.1:${port}`, PUSHGATEWAY_TIMEOUT_SECONDS: '0.2' });
      const result = await pushCommandMetrics(config, outcome('create'));
      assert.equal(result.status, 'failed');
      assert.match(result.status === 'failed' ? result.warning : '', /no answer before the timeout/);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  test('a gateway that rejects the push gives a warning with its HTTP status', async () => {
    const gateway = await startPushgateway();
    try {
      // A route prefix the gateway does not serve: reading the counters gets 404.
      const result = await pushCommandMetrics(loadMetricsConfig({ PUSHGATEWAY_URL: `${gateway.url}/not-the-gateway` }), outcome('create'));
      assert.equal(result.status, 'failed');
      assert.match(result.status === 'failed' ? result.warning : '', /HTTP 404/);
      assert.deepEqual(await gateway.find('pms_backup_success_total'), []);
    } finally {
      await gateway.stop();
    }
  });
});
