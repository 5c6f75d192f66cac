import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { startThrowawayCluster, type ThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { type ArchiveFixture, createArchiveFixture } from '../../testing/archive-fixture.js';
import { chromiumAvailable, dumpDom, pageRequests, screenshot } from '../../testing/headless-chromium.js';
import { decodePng } from '../../testing/png-image.js';
import { runCli } from '../../testing/run-cli.js';
import { archiveCommand } from '../restore/pitr/recovery-settings.js';
import type { ReportData } from './report-data.js';

let fixture: ArchiveFixture;
let cluster: ThrowawayCluster;
let env: Record<string, string>;
let report: ReportData;
let html: string;
let month: string;
const ids: string[] = [];

const cli = (args: string[]) => runCli('pms-backup', args, { ...cluster.postgresEnv, ...env });

async function ok(args: string[]): Promise<string> {
  const result = await cli(args);
  assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

async function waitFor(what: string, probe: () => Promise<boolean>, seconds = 60): Promise<void> {
  for (let i = 0; i < seconds * 10; i += 1) {
    if (await probe().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

before(async () => {
  assert.ok(await chromiumAvailable(), 'chromium is installed (.ci/run installs it: apt-get install chromium)');
  fixture = await createArchiveFixture('report');
  env = { POSTGRES_DB: 'patient_telemetry', ...fixture.env, TMPDIR: join(fixture.work, 'tmp') };
  mkdirSync(env['TMPDIR']!, { mode: 0o1777 });
  cluster = await startThrowawayCluster({
    settings: { archive_mode: 'on', wal_level: 'replica', archive_command: archiveCommand() },
    serverEnv: fixture.env,
  });
  await cluster.psql('CREATE DATABASE patient_telemetry');
  await cluster.psql(
    'CREATE TABLE reading (id bigserial PRIMARY KEY, label text NOT NULL); INSERT INTO reading (label) SELECT md5(g::text) FROM generate_series(1, 2000) g',
    'patient_telemetry',
  );
  await ok(['base-backup', '--json']);
  for (const rows of [0, 200, 60_000]) {
    if (rows)
      await cluster.psql(`INSERT INTO reading (label) SELECT md5(random()::text) FROM generate_series(1, ${rows})`, 'patient_telemetry');
    ids.push((JSON.parse(await ok(['create', '--json'])) as { id: string }).id);
  }
  // A test restore (audited with its duration), a passing verification, and a failing one.
  await ok(['restore', ids[2]!, '--target-db', 'restore_test']);
  await ok(['verify', ids[2]!, '--json']);
  const dir = join(fixture.repoRoot, 'backups', ids[1]!);
  const dump = join(dir, readdirSync(dir).find((f) => f.endsWith('.gpg'))!);
  writeFileSync(dump, readFileSync(dump).subarray(0, 100));
  assert.equal((await cli(['verify', ids[1]!, '--json'])).code, 1);
  // A manifest planted by someone who can write to the repository but holds no trusted key.
  const planted = `${ids[0]!.slice(0, 9)}000001Z-beef`;
  mkdirSync(join(fixture.repoRoot, 'backups', planted));
  writeFileSync(
    join(fixture.repoRoot, 'backups', planted, 'manifest.json'),
    readFileSync(join(fixture.repoRoot, 'backups', ids[0]!, 'manifest.json'), 'utf8').replaceAll(ids[0]!, planted),
  );
  const name = await cluster.psql('SELECT pg_walfile_name(pg_current_wal_lsn()) FROM pg_switch_wal()');
  await waitFor(
    `${name} archived`,
    async () => (await cluster.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")) >= name,
  );

  month = (
    JSON.parse(readFileSync(join(fixture.repoRoot, 'backups', ids[0]!, 'manifest.json'), 'utf8')) as { startedAt: string }
  ).startedAt.slice(0, 7);
  const out = join(fixture.work, 'out', `report-${month}.html`);
  report = JSON.parse(await ok(['report', '--month', month, '--out', out, '--json'])) as ReportData;
  html = readFileSync(out, 'utf8');
});

after(async () => {
  await cluster?.destroy();
  fixture?.remove();
});

const count = (text: string, pattern: RegExp): number => text.match(new RegExp(pattern.source, 'g'))?.length ?? 0;
const chart = (dom: string, id: string): string => new RegExp(`<svg[^>]*data-chart="${id}"[\\s\\S]*?</svg>`).exec(dom)?.[0] ?? '';

describe('pms-backup report: the monthly evidence page', () => {
  test('--json carries every backup, verification, restore, the day-by-day PITR coverage, keys, problems and the audit chain', () => {
    assert.equal(report.formatVersion, 1);
    assert.equal(report.month, month);
    const kinds = report.backups.map((b) => `${b.kind}:${b.status}`).sort();
    assert.deepEqual(kinds, ['base:complete', 'logical:complete', 'logical:complete', 'logical:failed', 'logical:untrusted'].sort());
    const third = report.backups.find((b) => b.id === ids[2]);
    assert.equal(third?.outsideBand, true, `60 000 more rows is far outside ±50 % (${third?.deviationRatio})`);
    assert.deepEqual(
      report.verifications.map((v) => [v.backupId, v.ok]),
      [
        [ids[2], true],
        [ids[1], false],
      ],
    );
    assert.ok(report.verifications.every((v) => v.durationSeconds > 0));
    assert.equal(report.restores.length, 1);
    assert.equal(report.restores[0]?.backupId, ids[2]);
    assert.ok((report.restores[0]?.durationSeconds ?? 0) > 0, 'the restore duration comes from its audit record');
    const today = report.wal.days.filter((d) => d.measured).at(-1);
    assert.ok(today && today.walSegments > 0 && today.worstRpoSeconds !== null, JSON.stringify(today));
    assert.ok(today.recoverableFrom && today.recoverableTo);
    assert.ok(report.keys.keys.some((k) => k.role === 'encryption' && k.fingerprint === fixture.key.fingerprint));
    assert.ok(report.keys.keys.some((k) => k.role === 'trusted-signer'));
    assert.deepEqual(report.problems.map((p) => `${p.kind}:${p.status}:${p.object}`).sort(), [
      `backup:failed:${ids[1]}`,
      `backup:untrusted:${ids[0]!.slice(0, 9)}000001Z-beef`,
    ]);
    assert.equal(report.audit.ok, true);
    assert.ok((report.audit.monthOperations['create success'] ?? 0) >= 3);
  });

  test('headless Chromium renders the tables and the charts, and the page requests nothing', async () => {
    const file = join(fixture.work, 'out', `report-${month}.html`);
    const netLog = join(fixture.work, 'net.json');
    const dom = await dumpDom(file, { netLog, userDataDir: join(fixture.work, 'chromium') });
    assert.equal(count(dom, /<tr data-backup-id=/), 5);
    assert.equal(count(dom, /<tr data-ok="false"/), 1, 'the failed verification');
    assert.ok(count(dom, /<tr data-date=/) >= 1);
    assert.equal(count(dom, /<tr data-status="(failed|untrusted)"/), 2, 'the problems table');
    assert.match(dom, /id="audit-status" class="ok">Intact/);
    assert.equal(count(chart(dom, 'logical-sizes'), /<circle class="point/), 3);
    assert.equal(count(chart(dom, 'logical-sizes'), /<circle class="point alert"/), 1);
    assert.equal(count(chart(dom, 'logical-sizes'), /<path class="band"/), 1);
    assert.equal(count(chart(dom, 'verification-durations'), /<circle class="point/), 2);
    assert.ok(count(chart(dom, 'wal-per-day'), /<rect class="bar/) >= 1);
    assert.ok(count(chart(dom, 'rpo-per-day'), /<rect class="bar/) >= 1);
    assert.deepEqual(pageRequests(netLog), [], 'no request from the page');

    // The same detector sees a page that does fetch something (so the empty list above means something).
    const control = join(fixture.work, 'control.html');
    writeFileSync(control, '<!DOCTYPE html><html><body><img src="http://report-test.invalid/x.png"></body></html>');
    await dumpDom(control, { netLog: join(fixture.work, 'net-control.json'), userDataDir: join(fixture.work, 'chromium') });
    assert.deepEqual(pageRequests(join(fixture.work, 'net-control.json')), ['http://report-test.invalid/x.png']);
    // And the page's own policy blocks such a request before it is made.
    const injected = join(fixture.work, 'injected.html');
    writeFileSync(injected, html.replace('</body>', '<img src="http://report-test.invalid/y.png"></body>'));
    await dumpDom(injected, { netLog: join(fixture.work, 'net-injected.json'), userDataDir: join(fixture.work, 'chromium') });
    assert.deepEqual(pageRequests(join(fixture.work, 'net-injected.json')), [], 'the Content-Security-Policy refuses it');
  });

  test('the screenshot shows the charts: the series colours, the alert red and the band are drawn', async () => {
    const png = join(fixture.work, 'report.png');
    await screenshot(join(fixture.work, 'out', `report-${month}.html`), png, {
      width: 1280,
      height: 2000,
      userDataDir: join(fixture.work, 'chromium'),
    });
    const image = decodePng(readFileSync(png));
    assert.equal(image.width, 1280);
    assert.equal(image.height, 2000);
    const colours = new Map<string, number>();
    const near = (p: readonly number[], [r, g, b]: readonly number[]) =>
      Math.abs(p[0]! - r!) + Math.abs(p[1]! - g!) + Math.abs(p[2]! - b!) < 40;
    const wanted = { blue: [0x25, 0x63, 0xeb], red: [0xdc, 0x26, 0x26], purple: [0x7c, 0x3a, 0xed], amber: [0xd9, 0x77, 0x06] };
    const distinct = new Set<number>();
    for (let y = 0; y < image.height; y += 2)
      for (let x = 0; x < image.width; x += 2) {
        const p = image.pixel(x, y);
        distinct.add((p[0] << 16) | (p[1] << 8) | p[2]);
        for (const [name, rgb] of Object.entries(wanted)) if (near(p, rgb)) colours.set(name, (colours.get(name) ?? 0) + 1);
      }
    assert.ok(distinct.size > 50, `a real page, not a blank one (${distinct.size} colours)`);
    for (const name of Object.keys(wanted))
      assert.ok((colours.get(name) ?? 0) > 20, `${name} chart pixels: ${JSON.stringify([...colours])}`);
  });
});
