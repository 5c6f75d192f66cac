import { writeFileSync } from 'node:fs';
import { BACKUP_PROMETHEUS_RULE_FILE, generatedBackupPrometheusRule } from './prometheus-rule.js';

// Regenerates deploy/components/monitoring/prometheusrule-backup.yaml from the rules file.
writeFileSync(BACKUP_PROMETHEUS_RULE_FILE, generatedBackupPrometheusRule());
process.stdout.write(`wrote ${BACKUP_PROMETHEUS_RULE_FILE}\n`);
