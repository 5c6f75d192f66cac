import { formatBytes } from '../../cli/progress.js';
import { escapeHtml as e } from './html-escape.js';
import type { ReportData } from './report-data.js';
import { barChart, timeChart } from './svg-chart.js';

/**
 * The page loads nothing: no script, font, image or stylesheet from anywhere. The policy makes
 * the browser refuse any request the markup might still cause (an escaping bug, a future edit).
 */
export const CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

const BLUE = '#2563eb';
const GREEN = '#16a34a';
const PURPLE = '#7c3aed';
const AMBER = '#d97706';

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;margin:24px auto;max-width:960px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
.meta{color:#4b5563;margin:0 0 16px}
table{border-collapse:collapse;width:100%;margin:8px 0 12px;font-size:12.5px}
th,td{border:1px solid #e5e7eb;padding:3px 6px;text-align:left;vertical-align:top}th{background:#f3f4f6}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:11.5px;word-break:break-all}
.ok{color:#166534;font-weight:600}.bad{color:#b91c1c;font-weight:600}.warn{color:#92400e;font-weight:600}
.cards{display:flex;flex-wrap:wrap;gap:8px;margin:12px 0}.card{border:1px solid #e5e7eb;border-radius:6px;padding:8px 12px;min-width:150px}
.card b{display:block;font-size:18px}.card.bad{border-color:#fca5a5;background:#fef2f2}
svg.chart{display:block;max-width:100%;height:auto;margin:6px 0 14px}
svg .grid{stroke:#e5e7eb;stroke-width:1}svg .axis{stroke:#6b7280;stroke-width:1}
svg .tick,svg .legend{font-size:11px;fill:#374151}svg .band{opacity:.18}
.note{color:#4b5563;font-size:12.5px}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}svg.chart,table{break-inside:avoid}}
`;

const statusClass = (ok: boolean): string => (ok ? 'ok' : 'bad');
const when = (iso: string | null): string => (iso ? `${iso.slice(0, 19).replace('T', ' ')}Z` : '–');

export function formatSeconds(seconds: number | null): string {
  if (seconds === null) return '–';
  if (seconds < 90) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86_400).toFixed(1)} d`;
}

function table(id: string, headers: readonly string[], rows: readonly string[], emptyText: string): string {
  if (rows.length === 0) return `<p class="note" data-empty-table="${e(id)}">${e(emptyText)}</p>`;
  return `<table id="${e(id)}"><thead><tr>${headers.map((h) => `<th>${e(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

const row = (cells: readonly string[], attributes = ''): string => `<tr${attributes}>${cells.join('')}</tr>`;
const td = (text: unknown, cls = ''): string => `<td${cls ? ` class="${cls}"` : ''}>${e(text)}</td>`;

function card(label: string, value: string, bad = false): string {
  return `<div class="card${bad ? ' bad' : ''}"><span>${e(label)}</span><b>${e(value)}</b></div>`;
}

/** The whole report as one self-contained HTML document; every repository-derived string is escaped. */
export function renderReportHtml(data: ReportData): string {
  const from = Date.parse(data.period.from);
  const monthEnd = from + data.wal.days.length * 86_400_000;
  const deviation = data.sizeDeviation;
  const logical = data.backups.filter((b) => b.kind === 'logical' && b.status !== 'untrusted' && b.status !== 'corrupt');
  const base = data.backups.filter((b) => b.kind === 'base' && b.status !== 'untrusted' && b.status !== 'corrupt');
  const s = data.summary;

  const sizeChart = timeChart({
    id: 'logical-sizes',
    title: `Logical backup sizes, with the ±${(deviation * 100).toFixed(0)} % band around the previous backup that the size alert allows`,
    from,
    to: monthEnd,
    formatY: formatBytes,
    series: [
      {
        name: 'logical backup size',
        color: BLUE,
        points: logical.map((b) => ({
          x: Date.parse(b.createdAt),
          y: b.bytes,
          label: `${b.id}: ${formatBytes(b.bytes)}${b.deviationRatio === null ? '' : ` (${(b.deviationRatio * 100).toFixed(1)} % vs previous)`}`,
          alert: b.outsideBand,
        })),
      },
    ],
    band: {
      name: `±${(deviation * 100).toFixed(0)} % of previous (BACKUP_SIZE_DEVIATION)`,
      color: BLUE,
      points: logical
        .filter((b) => b.previousBytes !== null)
        .map((b) => ({ x: Date.parse(b.createdAt), low: b.previousBytes! * (1 - deviation), high: b.previousBytes! * (1 + deviation) })),
    },
  });
  const baseChart = timeChart({
    id: 'base-sizes',
    title: 'Base backup sizes',
    from,
    to: monthEnd,
    formatY: formatBytes,
    series: [
      {
        name: 'base backup size',
        color: PURPLE,
        points: base.map((b) => ({ x: Date.parse(b.createdAt), y: b.bytes, label: `${b.id}: ${formatBytes(b.bytes)}` })),
      },
    ],
  });
  const durationChart = timeChart({
    id: 'backup-durations',
    title: 'Backup durations',
    from,
    to: monthEnd,
    formatY: (v) => formatSeconds(v),
    series: [
      {
        name: 'logical',
        color: BLUE,
        points: logical.flatMap((b) =>
          b.durationSeconds === null
            ? []
            : [{ x: Date.parse(b.createdAt), y: b.durationSeconds, label: `${b.id}: ${formatSeconds(b.durationSeconds)}` }],
        ),
      },
      {
        name: 'base',
        color: PURPLE,
        points: base.flatMap((b) =>
          b.durationSeconds === null
            ? []
            : [{ x: Date.parse(b.createdAt), y: b.durationSeconds, label: `${b.id}: ${formatSeconds(b.durationSeconds)}` }],
        ),
      },
    ],
  });
  const rtoChart = timeChart({
    id: 'verification-durations',
    title: 'Verification (test restore) durations: the measured RTO; failed runs in red',
    from,
    to: monthEnd,
    formatY: (v) => formatSeconds(v),
    series: [
      {
        name: 'verification duration',
        color: GREEN,
        points: data.verifications.map((v) => ({
          x: Date.parse(v.verifiedAt),
          y: v.durationSeconds,
          label: `${v.backupId} (${v.kind}): ${v.ok ? 'passed' : 'FAILED'} in ${formatSeconds(v.durationSeconds)}`,
          alert: !v.ok,
        })),
      },
    ],
  });
  const walChart = barChart({
    id: 'wal-per-day',
    title: 'WAL archived per day',
    color: AMBER,
    formatY: formatBytes,
    bars: data.wal.days.map((d) => ({
      label: d.date.slice(8),
      value: d.measured ? d.walBytes : null,
      tooltip: `${d.date}: ${d.walSegments} segments, ${formatBytes(d.walBytes)}`,
    })),
  });
  const rpoChart = barChart({
    id: 'rpo-per-day',
    title: 'Worst data loss per day if disaster had struck at the worst moment (measured RPO); days with no recovery possible in red',
    color: GREEN,
    formatY: (v) => formatSeconds(v),
    bars: data.wal.days.map((d) => ({
      label: d.date.slice(8),
      value: !d.measured ? null : d.worstRpoSeconds,
      tooltip: `${d.date}: worst RPO ${formatSeconds(d.worstRpoSeconds)}${d.uncoveredSeconds > 0 ? `; no recovery possible for ${formatSeconds(d.uncoveredSeconds)}` : ''}`,
      alert: d.measured && d.uncoveredSeconds > 0,
    })),
  });

  const backupRows = data.backups.map((b) =>
    row(
      [
        `<td class="mono">${e(b.id)}</td>`,
        td(b.kind),
        td(b.status, b.status === 'complete' ? 'ok' : 'bad'),
        td(when(b.createdAt)),
        td(formatBytes(b.bytes), 'num'),
        td(formatSeconds(b.durationSeconds), 'num'),
        td(b.deviationRatio === null ? '–' : `${(b.deviationRatio * 100).toFixed(1)} %`, `num${b.outsideBand ? ' bad' : ''}`),
        b.verification
          ? td(
              `${b.verification.ok ? 'ok' : `FAILED (${b.verification.failed.join(', ')})`} ${when(b.verification.verifiedAt)}`,
              statusClass(b.verification.ok),
            )
          : td(b.status === 'complete' ? 'never' : '–', b.status === 'complete' ? 'warn' : ''),
        `<td class="mono">${e(b.signer ?? '–')}</td>`,
        td(b.problem ?? ''),
      ],
      ` data-backup-id="${e(b.id)}" data-status="${e(b.status)}"`,
    ),
  );
  const verificationRows = data.verifications.map((v) =>
    row(
      [
        td(when(v.verifiedAt)),
        `<td class="mono">${e(v.backupId)}</td>`,
        td(v.kind),
        td(v.ok ? 'passed' : 'FAILED', statusClass(v.ok)),
        td(formatSeconds(v.durationSeconds), 'num'),
        td(v.checks.map((c) => `${c.ok ? '✓' : '✗'} ${c.name}${c.ok ? '' : `: ${c.detail}`}`).join('; ')),
      ],
      ` data-ok="${v.ok}"`,
    ),
  );
  const restoreRows = data.restores.map((r) =>
    row(
      [
        td(when(r.at)),
        td(r.operation),
        `<td class="mono">${e(r.backupId ?? '–')}</td>`,
        td(r.ok ? 'success' : `failure${r.errorCode ? ` (${r.errorCode})` : ''}`, statusClass(r.ok)),
        td(formatSeconds(r.durationSeconds), 'num'),
        td(r.actor),
      ],
      ` data-ok="${r.ok}"`,
    ),
  );
  const dayRows = data.wal.days
    .filter((d) => d.measured)
    .map((d) =>
      row(
        [
          td(d.date),
          td(d.walSegments, 'num'),
          td(formatBytes(d.walBytes), 'num'),
          td(when(d.recoverableFrom)),
          td(when(d.recoverableTo)),
          td(formatSeconds(d.worstRpoSeconds), 'num'),
          td(d.uncoveredSeconds > 0 ? formatSeconds(d.uncoveredSeconds) : '–', d.uncoveredSeconds > 0 ? 'num bad' : 'num'),
        ],
        ` data-date="${e(d.date)}"`,
      ),
    );
  const keyRows = data.keys.keys.map((k) =>
    row([
      td(k.role),
      `<td class="mono">${e(k.fingerprint)}</td>`,
      td(`${k.algorithm}${k.bits ? ` ${k.bits}` : ''}`),
      td(k.userIds.join(', ')),
      td(k.createdAt.slice(0, 10)),
      td(
        k.expiresAt === null ? 'never' : k.expiresAt.slice(0, 10),
        k.expired ? 'bad' : k.daysLeft !== null && k.daysLeft <= data.keys.warnDays ? 'warn' : '',
      ),
      td(k.daysLeft === null ? '–' : k.expired ? 'EXPIRED' : `${k.daysLeft} d`, 'num'),
    ]),
  );
  const problemRows = data.problems.map((p) =>
    row([td(p.kind), `<td class="mono">${e(p.object)}</td>`, td(p.status, 'bad'), td(p.detail)], ` data-status="${e(p.status)}"`),
  );
  const auditProblemRows = data.audit.problems.map((p) =>
    row([td(p.seq, 'num'), `<td class="mono">${e(p.key)}</td>`, td(p.kind, 'bad'), td(p.reason)]),
  );
  const operations = Object.entries(data.audit.monthOperations)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([op, count]) => row([td(op), td(count, 'num')]));
  const head = data.audit.head;

  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${e(CONTENT_SECURITY_POLICY)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="pms-backup report">
<title>Backup evidence report ${e(data.month)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>Backup evidence report — ${e(data.month)}</h1>
<p class="meta">Repository <code>${e(data.repository)}</code> · period ${e(when(data.period.from))} to ${e(when(data.period.to))} · generated ${e(when(data.generatedAt))} by <code>pms-backup report</code> from trusted (signed) repository objects only.</p>
<div class="cards" id="summary">
${card('backups this month', `${s.backupsComplete} complete of ${s.backups}`, s.backupsComplete < s.backups)}
${card('verifications', `${s.verifications} (${s.verificationsFailed} failed)`, s.verificationsFailed > 0 || s.verifications === 0)}
${card('restores', String(s.restores))}
${card('longest test restore (RTO)', formatSeconds(s.longestVerificationSeconds))}
${card('worst RPO (PITR)', s.worstRpoSeconds === null ? 'no PITR' : formatSeconds(s.worstRpoSeconds))}
${card('untrusted or failed objects', String(s.problems), s.problems > 0)}
${card('audit chain', s.auditOk ? 'intact' : 'BROKEN', !s.auditOk)}
</div>

<h2 id="backups-heading">Backups</h2>
${sizeChart}
${baseChart}
${durationChart}
${table('backups', ['ID', 'Kind', 'Status', 'Created', 'Size', 'Duration', 'Size vs previous', 'Verification', 'Signed by', 'Problem'], backupRows, 'No backup was taken this month.')}

<h2 id="pitr-heading">WAL archive and point-in-time recovery</h2>
<p>${data.wal.segments} segments (${e(formatBytes(data.wal.bytes))}) in the archive now; newest <code>${e(data.wal.newestSegment ?? '–')}</code> stored ${e(when(data.wal.newestSegmentAt))}. Recovery possible now from ${e(when(data.wal.earliestRestorableTime))} to ${e(when(data.wal.latestRestorableTime))}.${data.wal.gaps.length ? ` <span class="bad">Gaps: ${e(data.wal.gaps.map((g) => `${g.from}..${g.to}`).join(', '))}</span>` : ' <span class="ok">No gaps.</span>'}</p>
${walChart}
${rpoChart}
<p class="note">RPO per day: for a disaster at any moment of the day, the time back to the newest point recovery could reach (a base backup's end, or the storage time of the newest archived WAL segment after it in an unbroken chain); the largest such value of the day. Storage times are an upper bound of each segment's last commit.</p>
${table('pitr-days', ['Day', 'WAL segments', 'WAL bytes', 'Recoverable from', 'Recoverable to (end of day)', 'Worst RPO', 'No recovery possible for'], dayRows, 'Nothing measured for this month yet.')}

<h2 id="tests-heading">Verifications and restore tests</h2>
${rtoChart}
${table('verifications', ['Verified', 'Backup', 'Kind', 'Result', 'Duration (RTO)', 'Checks'], verificationRows, 'No verification ran this month.')}
${table('restores', ['At', 'Operation', 'Backup', 'Outcome', 'Duration', 'By'], restoreRows, 'No restore was run this month (audit log).')}

<h2 id="keys-heading">Keys and their expiry</h2>
${table('keys', ['Role', 'Fingerprint', 'Algorithm', 'User IDs', 'Created', 'Expires', 'Days left'], keyRows, 'No key configured.')}
${data.keys.problems.length ? `<ul id="key-problems">${data.keys.problems.map((p) => `<li class="bad">${e(p)}</li>`).join('')}</ul>` : `<p class="ok">No key expires within ${data.keys.warnDays} days.</p>`}

<h2 id="problems-heading">Untrusted or failed objects</h2>
${table('problems', ['Kind', 'Object', 'Status', 'Detail'], problemRows, 'None: every object is signed by a trusted key and no backup failed its verification.')}

<h2 id="audit-heading">Audit chain</h2>
<p id="audit-status" class="${statusClass(data.audit.ok)}">${data.audit.ok ? 'Intact' : 'BROKEN'}: ${data.audit.records} records, ${data.audit.signedRecords} signed${data.audit.unsignedRecords ? `, ${data.audit.unsignedRecords} written before signing` : ''}; head ${head ? `${head.seq}:<code>${e(head.hash)}</code> (${e(when(head.at))})` : '–'}.${data.audit.firstBroken ? ` First broken record ${e(data.audit.firstBroken.seq)} (${e(data.audit.firstBroken.key)}): ${e(data.audit.firstBroken.reason)}` : ''}</p>
<p class="note">Note the head outside the repository; <code>pms-backup audit verify --anchor SEQ:HASH</code> later proves nothing before it was removed or changed.</p>
${table('audit-problems', ['Seq', 'Key', 'Problem', 'Reason'], auditProblemRows, 'No problem in the chain.')}
${table('audit-operations', ['Operation and outcome (this month)', 'Records'], operations, 'No audit record this month.')}
</body>
</html>
`;
}
