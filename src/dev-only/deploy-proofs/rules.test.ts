import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { METRIC } from '../../metrics/backup-metrics.js';
import { runTool } from '../../process/tool-process.js';
import { BACKUP_RULES_FILE, MONITORING_DIR, RULE_TESTS_DIR, readAlertCases, readBackupRules, testFiles } from './rule-files.js';

const PROMTOOL = process.env['PROMTOOL_BIN'] ?? 'promtool';
const REPO_ROOT = join(MONITORING_DIR, '..', '..');
const alerts = readBackupRules().groups.flatMap((g) => g.rules);

describe('pms-backup alert rules', () => {
  test('promtool check rules accepts the rules file', async () => {
    const { stdout } = await runTool(PROMTOOL, ['check', 'rules', BACKUP_RULES_FILE]);
    assert.match(stdout, new RegExp(`SUCCESS: ${alerts.length} rules found`));
  });

  test('every promtool unit test passes', async () => {
    // runTool rejects with promtool's output tail (the failing alert and its diff) on exit 1.
    const files = testFiles().map((f) => join(RULE_TESTS_DIR, f));
    assert.ok(files.length > 0);
    const { stdout } = await runTool(PROMTOOL, ['test', 'rules', ...files], { cwd: RULE_TESTS_DIR });
    assert.equal(stdout.match(/SUCCESS/g)?.length, files.length, stdout);
  });

  test('every alert has a unit test case where it fires and one where it does not', () => {
    const cases = readAlertCases();
    const missing: string[] = [];
    for (const { alert } of alerts) {
      if (!cases.some((c) => c.alertname === alert && c.fires)) missing.push(`${alert}: no case where it fires`);
      if (!cases.some((c) => c.alertname === alert && !c.fires)) missing.push(`${alert}: no case where it does not fire`);
    }
    assert.deepEqual(missing, []);
    const unknown = cases.filter((c) => !alerts.some((a) => a.alert === c.alertname)).map((c) => `${c.file}: ${c.alertname}`);
    assert.deepEqual(unknown, [], 'test cases for alerts that do not exist (a typo passes silently in promtool)');
  });

  test('the seed five conditions plus verification and WAL are covered by named alerts', () => {
    const names = alerts.map((a) => a.alert);
    for (const required of [
      'PmsBackupFailed',
      'PmsBackupTooOld',
      'PmsBackupSizeDeviation',
      'PmsBackupRepositoryUnreachable',
      'PmsBackupKeyExpiringSoon',
      'PmsBackupVerificationFailed',
      'PmsBackupVerificationStale',
      'PmsBackupWalArchiveStale',
      'PmsBackupWalGap',
    ]) {
      assert.ok(names.includes(required), `${required} is missing`);
    }
  });

  test('every alert has a severity, a summary, a description and a runbook section named after it', () => {
    for (const rule of alerts) {
      assert.match(rule.labels['severity'] ?? '', /^(critical|warning)$/, rule.alert);
      assert.ok(rule.annotations['summary'], `${rule.alert}: summary`);
      assert.ok(rule.annotations['description'], `${rule.alert}: description`);
      assert.equal(rule.annotations['runbook_url'], `docs/runbook.md#${rule.alert.toLowerCase()}`);
    }
  });

  test('rules use only metrics that src/metrics pushes (or the Pushgateway adds)', () => {
    const pushed = new Set<string>([...Object.values(METRIC), 'push_time_seconds']);
    const used = new Set(alerts.flatMap((a) => [...a.expr.matchAll(/\b(pms_backup_[a-z_]+|push_time_seconds)\b/g)].map((m) => m[1] ?? '')));
    assert.deepEqual(
      [...used].filter((name) => !pushed.has(name)),
      [],
    );
    for (const rule of alerts) {
      for (const selector of rule.expr.match(/\b(?:pms_backup_[a-z_]+|push_time_seconds)\{[^}]*\}/g) ?? []) {
        assert.match(selector, /job="pms-backup"/, `${rule.alert}: ${selector} must select job="pms-backup"`);
      }
    }
  });

  test('docs/monitoring.md documents every metric and every alert', () => {
    const doc = readFileSync(join(REPO_ROOT, 'docs', 'monitoring.md'), 'utf8');
    const undocumented = [...Object.values(METRIC), ...alerts.map((a) => a.alert)].filter((name) => !doc.includes(`\`${name}\``));
    assert.deepEqual(undocumented, []);
  });
});
