import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parse } from 'yaml';
import {
  BACKUP_PROMETHEUS_RULE_FILE,
  BACKUP_RULES_FILE,
  buildBackupPrometheusRule,
  generatedBackupPrometheusRule,
} from './prometheus-rule.js';
import { parseManifests } from './render.js';
import { validateManifest } from './schema-validation.js';

test('the committed backup PrometheusRule is exactly what the rules file generates', () => {
  assert.equal(readFileSync(BACKUP_PROMETHEUS_RULE_FILE, 'utf8'), generatedBackupPrometheusRule());
});

test('the generated PrometheusRule carries every alert of the rules file and validates against the CRD schema', () => {
  const rules = parse(readFileSync(BACKUP_RULES_FILE, 'utf8')) as { groups: Array<{ rules: Array<{ alert?: string }> }> };
  const [object] = parseManifests(generatedBackupPrometheusRule(), 'generated');
  assert.ok(object);
  assert.deepEqual(validateManifest(object), []);
  const generatedAlerts = (object['spec'] as typeof rules).groups.flatMap((g) => g.rules.map((r) => r.alert));
  assert.deepEqual(
    generatedAlerts,
    rules.groups.flatMap((g) => g.rules.map((r) => r.alert)),
  );
  assert.ok(generatedAlerts.includes('PmsBackupFailed'));
});

test('a change to the rules file changes the generated PrometheusRule (drift is detectable)', () => {
  const original = readFileSync(BACKUP_RULES_FILE, 'utf8');
  const edited = original.replace(/> 25 \* 3600/, '> 26 * 3600');
  assert.notEqual(edited, original);
  assert.notEqual(buildBackupPrometheusRule(edited), buildBackupPrometheusRule(original));
});

test('a rules file field the CRD does not know fails schema validation', () => {
  const [object] = parseManifests(
    buildBackupPrometheusRule('groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        fore: 5m\n'),
    'edited',
  );
  assert.ok(object);
  assert.match(validateManifest(object)[0]?.message ?? '', /rules\/0\/fore is not a field/);
});

test('a rules file without groups is refused with PMS_ERR_CONFIG', () => {
  assert.throws(() => buildBackupPrometheusRule('rules: []\n'), { code: 'PMS_ERR_CONFIG' });
});
