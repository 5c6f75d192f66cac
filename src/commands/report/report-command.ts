import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { runBackupCommand } from '../../cli/backup-command.js';
import { renderReportHtml } from './render-html.js';
import { gatherReport } from './report-data.js';
import { parseReportMonth } from './report-month.js';

/**
 * `pms-backup report --month YYYY-MM [--out FILE] [--json]`: the month's evidence as one
 * self-contained HTML page (default report-YYYY-MM.html), or as JSON on stdout. Read-only: it
 * needs the repository and the trusted signers, never a decryption key, and appends no audit record.
 */
export async function runReport(options: { month?: string; out?: string; json?: boolean }): Promise<number> {
  const month = parseReportMonth(options.month);
  return runBackupCommand(
    { name: 'report', logStream: 'monitoring', needs: { repository: true, trust: true } },
    async ({ config, storage, trust, logger }) => {
      const data = await gatherReport(config, storage(), await trust(), month, new Date());
      if (options.json && options.out === undefined) {
        process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
      } else {
        const file = resolve(options.out ?? `report-${month.name}.html`);
        mkdirSync(dirname(file), { recursive: true });
        // Written whole then renamed: a reader never sees half a report.
        writeFileSync(`${file}.tmp`, renderReportHtml(data), { mode: 0o644 });
        renameSync(`${file}.tmp`, file);
        logger.info(`report for ${month.name} written`, { file });
        if (options.json) process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
        else
          process.stdout.write(
            `report for ${month.name} written to ${file}: ${data.summary.backups} backups, ${data.summary.verifications} verifications (${data.summary.verificationsFailed} failed), ${data.summary.restores} restores, ${data.summary.problems} untrusted or failed objects, audit chain ${data.summary.auditOk ? 'intact' : 'BROKEN'}\n`,
          );
      }
      return { exitCode: 0, audit: false, details: { month: month.name, problems: data.summary.problems, auditOk: data.summary.auditOk } };
    },
  );
}
