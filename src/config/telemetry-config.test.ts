import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isPmsError } from '../errors/catalogue.js';
import { loadTelemetryConfig } from './telemetry-config.js';

const CA = { POSTGRES_SSLROOTCERT: '/etc/ssl/pg-ca.crt' };

test('defaults: port 8080, never drop partitions, 1 MiB bodies, verify-full, and the config is frozen', () => {
  const config = loadTelemetryConfig({ POSTGRES_SSLROOTCERT: '/etc/ssl/pg-ca.crt' });
  assert.equal(config.postgres.sslmode, 'verify-full');
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

test('the default verify-full without POSTGRES_SSLROOTCERT is PMS_ERR_CONFIG naming both; a Unix socket needs neither', () => {
  assert.throws(
    () => loadTelemetryConfig({ POSTGRES_HOST: 'db.example' }),
    (error) =>
      isPmsError(error, 'PMS_ERR_CONFIG') &&
      /POSTGRES_SSLMODE=verify-full needs POSTGRES_SSLROOTCERT/.test(error.message) &&
      error.exitCode === 2,
  );
  assert.equal(loadTelemetryConfig({ POSTGRES_HOST: '/run/postgresql' }).postgres.sslrootcert, undefined);
});

test('TELEMETRY_RETENTION_DAYS accepts a number of days from 31, or never', () => {
  assert.equal(loadTelemetryConfig({ ...CA, TELEMETRY_RETENTION_DAYS: '2922' }).retentionDays, 2922);
  assert.equal(loadTelemetryConfig({ ...CA, TELEMETRY_RETENTION_DAYS: 'never' }).retentionDays, undefined);
});

test('/metrics has a port of its own (9464 by default), never the API port', () => {
  assert.equal(loadTelemetryConfig(CA).metricsPort, 9464);
  assert.equal(loadTelemetryConfig({ ...CA, TELEMETRY_METRICS_PORT: '9100' }).metricsPort, 9100);
  assert.throws(
    () => loadTelemetryConfig({ ...CA, TELEMETRY_PORT: '9000', TELEMETRY_METRICS_PORT: '9000' }),
    (error: unknown) => isPmsError(error, 'PMS_ERR_CONFIG') && /TELEMETRY_METRICS_PORT=9000 is invalid: it must differ/.test(error.message),
  );
});

test('TELEMETRY_TRUSTED_PROXIES takes addresses and CIDR blocks; unset trusts no proxy', () => {
  assert.deepEqual(loadTelemetryConfig(CA).trustedProxies, []);
  assert.deepEqual(loadTelemetryConfig({ ...CA, TELEMETRY_TRUSTED_PROXIES: '10.0.0.0/8, 192.168.1.4,fd00::/8' }).trustedProxies, [
    '10.0.0.0/8',
    '192.168.1.4',
    'fd00::/8',
  ]);
  for (const bad of ['10.0.0.0/33', 'proxy.local', '10.0.0.0/8/1', 'fd00::/129', ',']) {
    assert.throws(
      () => loadTelemetryConfig({ ...CA, TELEMETRY_TRUSTED_PROXIES: bad }),
      (error: unknown) => isPmsError(error, 'PMS_ERR_CONFIG') && /TELEMETRY_TRUSTED_PROXIES/.test(error.message),
      bad,
    );
  }
});
