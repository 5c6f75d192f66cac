import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { PmsError } from '../../errors/catalogue.js';
import { DEPLOY_DIR } from './render.js';
import { isRecord } from './manifest.js';

/** The rules file the backup-operations issue owns (promtool-tested there). */
export const BACKUP_RULES_FILE = join(DEPLOY_DIR, '..', 'monitoring', 'prometheus', 'pms-backup-rules.yaml');
/** The generated PrometheusRule the monitoring component applies. */
export const BACKUP_PROMETHEUS_RULE_FILE = join(DEPLOY_DIR, 'components', 'monitoring', 'prometheusrule-backup.yaml');

const HEADER = `# GENERATED from monitoring/prometheus/pms-backup-rules.yaml: do not edit by hand.
# Regenerate with \`npm run deploy:rules\`;
# src/dev-only/deploy-proofs/prometheus-rule.test.ts fails when this file and the rules file disagree.
`;

/**
 * Wraps a Prometheus rule file (groups/rules) in a PrometheusRule. The groups are copied as they
 * are: the CRD uses the rule file's field names, and schema validation rejects anything else.
 */
export function buildBackupPrometheusRule(rulesYaml: string): string {
  const rules: unknown = parse(rulesYaml);
  if (!isRecord(rules) || !Array.isArray(rules['groups']) || rules['groups'].length === 0) {
    throw new PmsError(
      'PMS_ERR_CONFIG',
      'the backup rules file has no groups: expected the Prometheus rule-file format (groups: [{name, rules}])',
    );
  }
  const object = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'pms-backup',
      labels: { 'app.kubernetes.io/name': 'pms-backup', role: 'alert-rules' },
    },
    spec: { groups: rules['groups'] },
  };
  return HEADER + stringify(object, { lineWidth: 0 });
}

export function generatedBackupPrometheusRule(): string {
  return buildBackupPrometheusRule(readFileSync(BACKUP_RULES_FILE, 'utf8'));
}
