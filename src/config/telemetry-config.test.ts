import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isPmsError } from '../errors/catalogue.js';
import { loadTelemetryConfig } from './telemetry-config.js';

test('defaults: port 8080, never drop partitions, 1 MiB bodies, and the config is frozen', () => {
  const config = loadTelemetryConfig({});
  assert.equal(config.port, 8080);
  assert.equal(config.retentionDays, undefined);
  assert.equal(config.bodyLimitBytes, 1024 * 1024);
  assert.equal(config.postgres.database, 'patient_telemetry');
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.rateLimit));
});

test('every problem is reported at once, unknown TELEMETRY_ names included, and the password never appears', () => {
  try {
    loadTelemetryConfig({
      TELEMETRY_PORT: '99999',
      TELEMETRY_RETENTION_DAYS: '7',
      TELEMETRY_RATE_LIMT_BURST: '3',
      POSTGRES_SSLMODE: 'verify-full',
      POSTGRES_PASSWORD: 's3cret-pw',
    });
    assert.fail('expected a configuration error');
  } catch (error) {
    assert.ok(isPmsError(error, 'PMS_ERR_CONFIG'));
    assert.equal(error.exitCode, 2);
    const problems = error.details?.['problems'] as string[];
    assert.equal(problems.length, 4, problems.join('\n'));
    assert.match(error.message, /TELEMETRY_RATE_LIMT_BURST is not a pms-telemetry setting/);
    assert.doesNotMatch(error.message, /s3cret-pw/);
  }
});

test('TELEMETRY_RETENTION_DAYS accepts a number of days from 31, or never', () => {
  assert.equal(loadTelemetryConfig({ TELEMETRY_RETENTION_DAYS: '2922' }).retentionDays, 2922);
  assert.equal(loadTelemetryConfig({ TELEMETRY_RETENTION_DAYS: 'never' }).retentionDays, undefined);
});
