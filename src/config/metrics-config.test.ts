import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isPmsError } from '../errors/catalogue.js';
import { loadMetricsConfig } from './metrics-config.js';

function problemsOf(env: Record<string, string>): string[] {
  let caught: unknown;
  try {
    loadMetricsConfig(env);
  } catch (error) {
    caught = error;
  }
  if (!isPmsError(caught, 'PMS_ERR_CONFIG')) return assert.fail('expected PMS_ERR_CONFIG');
  return (caught.details?.['problems'] as string[] | undefined) ?? [];
}

test('without PUSHGATEWAY_URL metrics are disabled', () => {
  assert.deepEqual(loadMetricsConfig({}), { pushgateway: undefined });
});

test('a valid URL gives job pms-backup, the database as instance, a 5 s timeout, frozen', () => {
  const config = loadMetricsConfig({ PUSHGATEWAY_URL: 'http://pushgateway.monitoring:9091/', POSTGRES_DB: 'patient_telemetry' });
  assert.equal(config.pushgateway?.url, 'http://pushgateway.monitoring:9091');
  assert.equal(config.pushgateway?.jobName, 'pms-backup');
  assert.equal(config.pushgateway?.instance, 'patient_telemetry');
  assert.equal(config.pushgateway?.timeoutMs, 5000);
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.pushgateway));
});

test('PUSHGATEWAY_INSTANCE and PUSHGATEWAY_TIMEOUT_SECONDS override the defaults', () => {
  const config = loadMetricsConfig({
    PUSHGATEWAY_URL: 'https://pgw.example/prefix',
    PUSHGATEWAY_INSTANCE: 'prod-eu',
    PUSHGATEWAY_TIMEOUT_SECONDS: '0.5',
  });
  assert.equal(config.pushgateway?.url, 'https://pgw.example/prefix');
  assert.equal(config.pushgateway?.instance, 'prod-eu');
  assert.equal(config.pushgateway?.timeoutMs, 500);
});

test('every problem is reported at once: non-http scheme, bad timeout, bad instance, half-set credentials', () => {
  const problems = problemsOf({
    PUSHGATEWAY_URL: 'ftp://x',
    PUSHGATEWAY_TIMEOUT_SECONDS: '600',
    PUSHGATEWAY_INSTANCE: 'pod/name with spaces',
    PUSHGATEWAY_USERNAME: 'u',
  });
  assert.equal(problems.length, 4, problems.join('\n'));
  assert.match(problems.join('\n'), /PUSHGATEWAY_URL uses ftp/);
  assert.match(problems.join('\n'), /PUSHGATEWAY_TIMEOUT_SECONDS/);
  assert.match(problems.join('\n'), /PUSHGATEWAY_INSTANCE/);
  assert.match(problems.join('\n'), /PUSHGATEWAY_USERNAME and PUSHGATEWAY_PASSWORD/);
});

test('credentials in the URL are refused without echoing them', () => {
  const problems = problemsOf({ PUSHGATEWAY_URL: 'http://admin:hunter2@pgw:9091' });
  assert.equal(problems.length, 1);
  assert.doesNotMatch(problems[0] ?? '', /hunter2/);
  assert.match(problems[0] ?? '', /PUSHGATEWAY_PASSWORD_FILE/);
});

test('the password comes from PUSHGATEWAY_PASSWORD_FILE and stays redacted', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pms-metrics-config-'));
  try {
    writeFileSync(join(dir, 'pw'), 's3cret-value\n');
    const config = loadMetricsConfig({
      PUSHGATEWAY_URL: 'http://pgw:9091',
      PUSHGATEWAY_USERNAME: 'pms',
      PUSHGATEWAY_PASSWORD_FILE: join(dir, 'pw'),
    });
    assert.equal(config.pushgateway?.password?.reveal(), 's3cret-value');
    assert.doesNotMatch(JSON.stringify(config), /s3cret-value/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a malformed URL is reported', () => {
  assert.match(problemsOf({ PUSHGATEWAY_URL: 'not a url' }).join(), /PUSHGATEWAY_URL="not a url" is invalid/);
});
