import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { escapeHtml } from './html-escape.js';
import { CONTENT_SECURITY_POLICY, renderReportHtml } from './render-html.js';
import type { ReportBackup, ReportData } from './report-data.js';
import { parseReportMonth } from './report-month.js';

const HOSTILE_ID = '20261102T010000Z<script>alert(1)</script>';
const HOSTILE_PROBLEM = '"><img src=x onerror=alert(2)>';
const FPR = 'ABCDEF0123456789ABCDEF0123456789ABCDEF01';

function backup(id: string, day: number, bytes: number, previousBytes: number | null, extra: Partial<ReportBackup> = {}): ReportBackup {
  const ratio = previousBytes === null ? null : (bytes - previousBytes) / previousBytes;
  return {
    id,
    kind: 'logical',
    status: 'complete',
    createdAt: new Date(Date.UTC(2026, 10, day, 1)).toISOString(),
    bytes,
    durationSeconds: 12 + day,
    database: 'patient_telemetry',
    tables: 4,
    signer: FPR,
    previousBytes,
    deviationRatio: ratio,
    outsideBand: ratio !== null && Math.abs(ratio) > 0.5,
    verification: null,
    problem: null,
    ...extra,
  };
}

function sample(): ReportData {
  const days = Array.from({ length: 30 }, (_, i) => ({
    date: `2026-11-${String(i + 1).padStart(2, '0')}`,
    walSegments: i < 10 ? 3 : 0,
    walBytes: i < 10 ? 3_000_000 : 0,
    recoverableFrom: i < 10 ? '2026-11-01T02:00:00.000Z' : null,
    recoverableTo: i < 10 ? `2026-11-${String(i + 1).padStart(2, '0')}T23:00:00.000Z` : null,
    worstRpoSeconds: i < 10 ? 600 + i * 60 : null,
    uncoveredSeconds: i === 0 ? 7200 : 0,
    measured: i < 10,
  }));
  return {
    formatVersion: 1,
    month: '2026-11',
    period: { from: '2026-11-01T00:00:00.000Z', to: '2026-11-10T12:00:00.000Z' },
    generatedAt: '2026-11-10T12:00:00.000Z',
    repository: 'file:///srv/repo&<b>',
    sizeDeviation: 0.5,
    backups: [
      backup('20261101T010000Z', 1, 1000, null),
      backup(HOSTILE_ID, 2, 1100, 1000),
      backup('20261103T010000Z', 3, 3000, 1100, {
        status: 'failed',
        verification: { ok: false, verifiedAt: '2026-11-03T02:00:00.000Z', failed: ['row-counts'] },
      }),
      backup('20261104T010000Z', 4, 500, null, { kind: 'unknown', status: 'untrusted', signer: null, problem: HOSTILE_PROBLEM }),
    ],
    verifications: [
      {
        backupId: '20261101T010000Z',
        kind: 'logical',
        ok: true,
        verifiedAt: '2026-11-01T03:00:00.000Z',
        durationSeconds: 42,
        checks: [{ name: 'restore', ok: true, detail: 'ok' }],
      },
      {
        backupId: '20261103T010000Z',
        kind: 'logical',
        ok: false,
        verifiedAt: '2026-11-03T02:00:00.000Z',
        durationSeconds: 50,
        checks: [{ name: 'row-counts', ok: false, detail: '<i>12 expected, 11 found</i>' }],
      },
    ],
    restores: [
      {
        at: '2026-11-05T09:00:00.000Z',
        operation: 'restore',
        backupId: '20261101T010000Z',
        ok: true,
        durationSeconds: 61,
        actor: 'root@host',
        errorCode: null,
      },
    ],
    wal: {
      segments: 30,
      bytes: 30_000_000,
      newestSegment: '000000010000000000000020',
      newestSegmentAt: '2026-11-10T11:00:00.000Z',
      earliestRestorableTime: '2026-11-01T02:00:00.000Z',
      latestRestorableTime: '2026-11-10T11:00:00.000Z',
      gaps: [],
      days,
    },
    keys: {
      warnDays: 30,
      keys: [
        {
          role: 'encryption',
          fingerprint: FPR,
          keyIds: [],
          userIds: ['PMS <backup&ops@example.invalid>'],
          algorithm: 'rsaEncryptSign',
          bits: 3072,
          createdAt: '2026-01-01T00:00:00.000Z',
          expiresAt: '2026-11-20T00:00:00.000Z',
          expired: false,
          secret: false,
          daysLeft: 9,
        },
      ],
      problems: [`encryption key ${FPR} expires on 2026-11-20: rotate it (docs/key-rotation.md)`],
    },
    problems: [
      { kind: 'backup', object: '20261104T010000Z', status: 'untrusted', detail: HOSTILE_PROBLEM },
      { kind: 'backup', object: '20261103T010000Z', status: 'failed', detail: 'verification failed: row-counts' },
    ],
    audit: {
      ok: true,
      records: 7,
      signedRecords: 7,
      unsignedRecords: 0,
      head: { seq: 7, hash: 'a'.repeat(64), at: '2026-11-10T11:00:00.000Z' },
      firstBroken: null,
      problems: [],
      monthOperations: { 'create success': 3, 'verify failure': 1 },
    },
    summary: {
      backups: 4,
      backupsComplete: 2,
      verifications: 2,
      verificationsFailed: 1,
      restores: 1,
      worstRpoSeconds: 1140,
      longestVerificationSeconds: 50,
      problems: 2,
      auditOk: true,
    },
  };
}

const count = (html: string, pattern: RegExp): number => html.match(new RegExp(pattern.source, 'g'))?.length ?? 0;

describe('report HTML', () => {
  test('escapeHtml escapes every character that could open markup or leave an attribute', () => {
    assert.equal(escapeHtml(`<a href="x" onclick='y'>&amp;</a>`), '&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;');
  });

  test('strings from the repository (ids, problems, check details) cannot inject markup', () => {
    const html = renderReportHtml(sample());
    assert.equal(count(html, /<script/i), 0, 'no script element');
    assert.equal(count(html, /<img/i), 0, 'no img element');
    assert.equal(count(html, /<i>/), 0, 'a check detail is text, not markup');
    assert.ok(html.includes('20261102T010000Z&lt;script&gt;alert(1)&lt;/script&gt;'), 'the hostile id is shown, escaped');
    assert.ok(html.includes('&quot;&gt;&lt;img src=x onerror=alert(2)&gt;'), 'the hostile problem is shown, escaped');
    assert.ok(html.includes('file:///srv/repo&amp;&lt;b&gt;'));
    // Attribute values too: the id lands in data-backup-id.
    assert.ok(html.includes('data-backup-id="20261102T010000Z&lt;script&gt;alert(1)&lt;/script&gt;"'));
  });

  test('the page loads nothing: a strict Content-Security-Policy, no src, href or url()', () => {
    const html = renderReportHtml(sample());
    assert.ok(html.includes(`<meta http-equiv="Content-Security-Policy" content="${escapeHtml(CONTENT_SECURITY_POLICY)}">`));
    assert.equal(CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'; img-src data:");
    assert.equal(count(html, /<[^>]*\s(src|href)=/i), 0, 'no tag has src or href');
    assert.equal(count(html, /url\(/i), 0);
    assert.equal(count(html, /@import/i), 0);
  });

  test('tables have a row per backup, verification, restore, measured day, key and problem', () => {
    const html = renderReportHtml(sample());
    assert.equal(count(html, /<tr data-backup-id=/), 4);
    assert.equal(count(html, /<tr data-date=/), 10, 'only measured days');
    assert.equal(count(html, /<tr data-ok="(true|false)"/), 3, 'two verifications and one restore');
    assert.match(html, /<table id="keys">/);
    assert.equal(count(html, /<tr data-status="(untrusted|failed)">/), 2, 'problems table');
    assert.match(html, /id="audit-status" class="ok">Intact: 7 records/);
  });

  test('charts: a dot per logical backup with the deviation band, the jump outside it in red, a bar per measured day', () => {
    const html = renderReportHtml(sample());
    const sizes = /<svg class="chart" data-chart="logical-sizes"[\s\S]*?<\/svg>/.exec(html)?.[0] ?? '';
    assert.equal(count(sizes, /<circle class="point/), 3, 'three logical backups (the untrusted one is not drawn)');
    assert.equal(count(sizes, /<circle class="point alert"/), 1, '3000 bytes after 1100 is outside ±50 %');
    assert.equal(count(sizes, /<path class="band"/), 1);
    const rpo = /<svg class="chart" data-chart="rpo-per-day"[\s\S]*?<\/svg>/.exec(html)?.[0] ?? '';
    assert.equal(count(rpo, /<rect class="bar/), 10);
    assert.equal(count(rpo, /<rect class="bar alert"/), 1, 'the day with uncovered time');
    const rto = /<svg class="chart" data-chart="verification-durations"[\s\S]*?<\/svg>/.exec(html)?.[0] ?? '';
    assert.equal(count(rto, /<circle class="point alert"/), 1, 'the failed verification');
  });

  test('an empty month still renders every chart, marked empty, and says so in the tables', () => {
    const data = sample();
    const html = renderReportHtml({
      ...data,
      backups: [],
      verifications: [],
      restores: [],
      problems: [],
      wal: { ...data.wal, days: data.wal.days.map((d) => ({ ...d, measured: false })) },
    });
    assert.equal(count(html, /data-empty="true"/), 6);
    assert.match(html, /No backup was taken this month/);
    assert.match(html, /None: every object is signed/);
  });

  test('--month is parsed as a UTC calendar month; anything else is a usage error', () => {
    const month = parseReportMonth('2026-02');
    assert.equal(month.days, 28);
    assert.equal(month.start.toISOString(), '2026-02-01T00:00:00.000Z');
    assert.equal(parseReportMonth(undefined, new Date('2026-12-31T23:59:00Z')).name, '2026-12');
    for (const bad of ['2026-13', '2026-1', 'november', '1999-01'])
      assert.throws(
        () => parseReportMonth(bad),
        (error: Error & { code?: string }) => error.code === 'PMS_ERR_USAGE',
      );
  });
});
