import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { z } from 'zod';

// Used by tests and manifest generators only (yaml is a devDependency); the CLI never imports it.

export const MONITORING_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'monitoring', 'prometheus');
/** The rules file; its path is a contract with the Kubernetes PrometheusRule generator. */
export const BACKUP_RULES_FILE = join(MONITORING_DIR, 'pms-backup-rules.yaml');
export const RULE_TESTS_DIR = join(MONITORING_DIR, 'tests');

const alertRuleSchema = z.strictObject({
  alert: z.string(),
  expr: z.string(),
  for: z.string().optional(),
  labels: z.record(z.string(), z.string()),
  annotations: z.record(z.string(), z.string()),
});
const rulesFileSchema = z.strictObject({
  groups: z.array(z.strictObject({ name: z.string(), interval: z.string().optional(), rules: z.array(alertRuleSchema) })),
});

export type AlertRule = z.infer<typeof alertRuleSchema>;
export type RulesFile = z.infer<typeof rulesFileSchema>;

/** The rules file as Prometheus reads it (a PrometheusRule's `spec` has the same shape). */
export function readBackupRules(file = BACKUP_RULES_FILE): RulesFile {
  return rulesFileSchema.parse(parse(readFileSync(file, 'utf8')));
}

const ruleTestSchema = z.object({
  rule_files: z.array(z.string()),
  tests: z.array(
    z.object({
      name: z.string().optional(),
      alert_rule_test: z
        .array(z.object({ alertname: z.string(), eval_time: z.string(), exp_alerts: z.array(z.unknown()).nullish() }))
        .optional(),
    }),
  ),
});

export interface AlertCase {
  readonly file: string;
  readonly test: string;
  readonly alertname: string;
  readonly evalTime: string;
  /** The case expects at least one firing alert. */
  readonly fires: boolean;
}

/** Every alert_rule_test case in the promtool test files. */
export function readAlertCases(dir = RULE_TESTS_DIR): AlertCase[] {
  const cases: AlertCase[] = [];
  for (const file of testFiles(dir)) {
    const doc = ruleTestSchema.parse(parse(readFileSync(join(dir, file), 'utf8')));
    for (const group of doc.tests) {
      for (const c of group.alert_rule_test ?? []) {
        cases.push({ file, test: group.name ?? '', alertname: c.alertname, evalTime: c.eval_time, fires: (c.exp_alerts?.length ?? 0) > 0 });
      }
    }
  }
  return cases;
}

export function testFiles(dir = RULE_TESTS_DIR): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .sort();
}
