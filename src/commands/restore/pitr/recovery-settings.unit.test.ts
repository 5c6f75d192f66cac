import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import {
  archiveCommand,
  pmsBackupBin,
  postgresTimestamp,
  prefetchCleanCommand,
  recoveryConfText,
  restoreCommand,
  spoolFirstRestoreCommand,
} from './recovery-settings.js';
import { USED_NOTE, claimFetch, publishSegment, spoolDirectory } from '../../wal-fetch/prefetch/spool.js';

/**
 * Reads a postgresql.conf line the way PostgreSQL 15's guc-file.l does: a quoted value ends at
 * the first quote that is neither doubled nor escaped, '' is a quote, and a backslash escapes
 * the next character (\n, \t... become control characters). Confirmed against
 * `postgres -C restore_command` on a value with a quote and a backslash.
 */
function readConfLine(line: string): { name: string; value: string } {
  const m = /^([a-z_]+) = '(.*)$/.exec(line);
  assert.ok(m, `not a quoted setting: ${line}`);
  const [, name = '', rest = ''] = m;
  const escapes: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
  let value = '';
  for (let i = 0; i < rest.length; i++) {
    const c = rest[i] ?? '';
    if (c === '\\') {
      const next = rest[++i] ?? '';
      value += escapes[next] ?? next;
    } else if (c === "'" && rest[i + 1] === "'") {
      value += "'";
      i++;
    } else if (c === "'") {
      assert.equal(rest.slice(i + 1), '', `text after the closing quote in ${line}`);
      return { name, value };
    } else {
      value += c;
    }
  }
  assert.fail(`unterminated string in ${line}`);
}

/** The words sh makes of a command line that uses only single quotes, backslashes and spaces. */
function shellWords(command: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < command.length; i++) {
    const c = command[i] ?? '';
    if (c === ' ') {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === "'") {
      const end = command.indexOf("'", i + 1);
      assert.ok(end > i, `unterminated quote in ${command}`);
      word = (word ?? '') + command.slice(i + 1, end);
      i = end;
    } else if (c === '\\') {
      word = (word ?? '') + (command[++i] ?? '');
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

function settingsOf(text: string): Map<string, string> {
  const lines = text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
  return new Map(
    lines.map((line) => {
      const { name, value } = readConfLine(line);
      return [name, value];
    }),
  );
}

test('restore_command survives both quotings: PostgreSQL reads back the command, and sh splits it into the paths', () => {
  const paths: Array<[string, string]> = [
    ['/usr/bin/node', '/opt/pms/bin/pms-backup.js'],
    ["/opt/it's here/node", '/srv/a\\b/pms backup.js'],
    ["/o'''dd/node", "/x/'\\'/bin.js"],
  ];
  for (const [node, bin] of paths) {
    const command = restoreCommand(node, bin);
    assert.deepEqual(shellWords(command), [node, bin, 'wal-fetch', '%f', '%p']);
    const settings = settingsOf(recoveryConfText({ restoreCommand: command, target: 'latest' }, 'restored'));
    assert.equal(settings.get('restore_command'), command, `${node} ${bin}`);
  }
  // archive_command: the shell-first check (archive-command.unit.test.ts), then exec of these words.
  const archive = archiveCommand("/opt/it's/node", '/b.js');
  const exec = archive.lastIndexOf('; exec ');
  assert.ok(exec > 0, archive);
  // "$p" is %p, set once at the start (the command must fit PostgreSQL's 1023 bytes).
  assert.match(archive, /^d=\S+ f=%f p=%p; /);
  assert.deepEqual(shellWords(archive.slice(exec + '; exec '.length)), ["/opt/it's/node", '/b.js', 'wal-push', '"$p"']);
});

test('latest follows the newest timeline and sets no target time; a target time promotes at exactly that instant', () => {
  const latest = settingsOf(recoveryConfText({ restoreCommand: 'x', target: 'latest' }, 'n'));
  assert.deepEqual([...latest.keys()], ['restore_command', 'recovery_target_timeline', 'primary_conninfo', 'primary_slot_name']);
  assert.equal(latest.get('primary_conninfo'), '', 'a copy of a standby never streams from the live cluster');
  assert.equal(latest.get('recovery_target_timeline'), 'latest');

  const timed = settingsOf(recoveryConfText({ restoreCommand: 'x', target: new Date('2026-11-23T14:06:00.250Z') }, 'n'));
  assert.equal(timed.get('recovery_target_time'), '2026-11-23 14:06:00.250+00');
  assert.equal(timed.get('recovery_target_action'), 'promote');
  assert.equal(timed.get('recovery_target_timeline'), 'latest');
});

test('extra settings come after the recovery settings, quoted the same way', () => {
  const text = recoveryConfText(
    { restoreCommand: 'x', target: 'latest', extra: { archive_mode: 'off', cluster_name: "it's \\ here" } },
    'n',
  );
  const names = [...settingsOf(text).keys()];
  assert.deepEqual(names.slice(-2), ['archive_mode', 'cluster_name']);
  assert.equal(settingsOf(text).get('cluster_name'), "it's \\ here");
});

test('the text starts on a new line and its note is a comment, so appending to any postgresql.auto.conf is safe', () => {
  const text = recoveryConfText({ restoreCommand: 'x', target: 'latest' }, 'added by pms-backup restore --pitr');
  assert.ok(text.startsWith('\n# added by pms-backup restore --pitr\n'));
  assert.ok(text.endsWith('\n'));
});

test('recovery_target_time is written as PostgreSQL’s GUC check accepts it: a space, milliseconds and +00', () => {
  assert.equal(postgresTimestamp(new Date('2026-01-05T00:00:00Z')), '2026-01-05 00:00:00.000+00');
  assert.equal(postgresTimestamp(new Date(Date.UTC(2026, 11, 31, 23, 59, 59, 999))), '2026-12-31 23:59:59.999+00');
});

test('the pms-backup this installation runs as restore_command exists at the path given to PostgreSQL', () => {
  const bin = pmsBackupBin();
  assert.equal(basename(bin), 'pms-backup.js');
  assert.ok(existsSync(bin), `${bin} does not exist: the path from dist/ to bin/ is wrong`);
});

/** restore_command as PostgreSQL expands it: %f, %p = pg_wal/RECOVERYXLOG, %% = %. */
function expand(command: string, name: string): string {
  return command.replace(/%[fp%]/g, (m) => (m === '%f' ? name : m === '%p' ? 'pg_wal/RECOVERYXLOG' : '%'));
}

test("restore --pitr's restore_command answers a segment published in place with 1 from the shell, for that unchanged file in that server run only", () => {
  const dir = mkdtempSync(join(tmpdir(), 'pms-restore-in-place-'));
  try {
    const system = '7300000000000000001';
    const command = spoolFirstRestoreCommand(system, '/bin/echo', '/b.js');
    const spool = spoolDirectory(dir, system, false);
    mkdirSync(spool, { recursive: true });
    mkdirSync(join(dir, 'pg_wal', 'archive_status'));
    const postmaster = (start: string) => writeFileSync(join(dir, 'postmaster.pid'), `4242\n${dir}\n${start}\n5432\n`);
    postmaster('1764700000');
    const run = (name: string) => {
      rmSync(join(dir, 'pg_wal', 'RECOVERYXLOG'), { force: true });
      const result = spawnSync('/bin/sh', ['-c', expand(command, name)], { cwd: dir, encoding: 'utf8' });
      return { status: result.status, stdout: result.stdout };
    };
    const publish = (name: string) => {
      writeFileSync(join(spool, name), `segment ${name}`);
      const note = publishSegment(dir, spool, name);
      assert.ok(note !== undefined, 'published while a postmaster runs');
      return join(spool, note);
    };
    const node = (name: string) => ({ status: 0, stdout: `/b.js wal-fetch ${name} pg_wal/RECOVERYXLOG\n` });

    const first = '000000010000000000000003';
    const note = publish(first);
    assert.equal(readFileSync(join(dir, 'pg_wal', first), 'utf8'), `segment ${first}`, 'the segment is in pg_wal under its name');
    assert.ok(existsSync(join(dir, 'pg_wal', 'archive_status', `${first}.done`)), 'marked .done, as a restored file');
    assert.ok(!existsSync(join(spool, first)));
    assert.deepEqual(run(first), { status: 1, stdout: '' }, 'answered by the shell: PostgreSQL reads pg_wal/%f');
    assert.equal(readFileSync(note, 'utf8'), USED_NOTE, 'the note is marked used, for the prefetcher');
    assert.ok(!existsSync(join(dir, 'pg_wal', 'RECOVERYXLOG')));
    // PostgreSQL reads the last segment again before it promotes: the same file, still unchanged.
    assert.deepEqual(run(first), { status: 1, stdout: '' }, 'a used note still vouches for the file it names');
    const touched = statSync(join(dir, 'pg_wal', first));
    writeFileSync(join(dir, 'pg_wal', first), `segment ${first}`);
    utimesSync(join(dir, 'pg_wal', first), touched.atime, touched.mtime);
    assert.deepEqual(run(first), node(first), 'rewritten after its use (same bytes, same mtime): its ctime moved');

    // The file changed after it was published (same size, new content): its identity moved.
    const changed = '000000010000000000000004';
    publish(changed);
    writeFileSync(join(dir, 'pg_wal', changed), `segment ${changed}`.replace('s', 'S'));
    assert.deepEqual(run(changed), node(changed));

    // Replaced by another file under the same name.
    const replaced = '000000010000000000000005';
    publish(replaced);
    rmSync(join(dir, 'pg_wal', replaced));
    writeFileSync(join(dir, 'pg_wal', replaced), `segment ${replaced}`);
    assert.deepEqual(run(replaced), node(replaced));

    // Another server run (the postmaster restarted): every note of the last one is void.
    const restarted = '000000010000000000000006';
    publish(restarted);
    postmaster('1764700099');
    assert.deepEqual(run(restarted), node(restarted));
    rmSync(join(dir, 'postmaster.pid'));
    assert.deepEqual(run(restarted), node(restarted), 'no postmaster.pid: Node decides');
    postmaster('1764700099');

    // Planted under the note's name: a link, an empty file, a directory.
    for (const [segment, plant] of [
      ['000000010000000000000007', (path: string) => symlinkSync(join(dir, 'postmaster.pid'), path)],
      ['000000010000000000000008', (path: string) => writeFileSync(path, '')],
      ['000000010000000000000009', (path: string) => mkdirSync(path)],
    ] as const) {
      const planted = publish(segment);
      rmSync(planted);
      plant(planted);
      assert.deepEqual(run(segment), node(segment), `planted note for ${segment}`);
    }
    // A link planted under the segment's own name in pg_wal, with a note for the link's target.
    const linked = '00000001000000000000000A';
    publish(linked);
    rmSync(join(dir, 'pg_wal', linked));
    symlinkSync(join(dir, 'pg_wal', first), join(dir, 'pg_wal', linked));
    assert.deepEqual(run(linked), node(linked));
    // Another segment's note does not vouch for this one, and history files are never published.
    writeFileSync(join(dir, 'pg_wal', '00000001000000000000000B'), 'no note');
    assert.deepEqual(run('00000001000000000000000B'), node('00000001000000000000000B'));
    assert.deepEqual(run('00000002.history'), node('00000002.history'));
    // Timeline 1 has no history file by definition: answered by the shell, no Node start.
    assert.deepEqual(run('00000001.history'), { status: 1, stdout: '' });
    assert.equal(publishSegment(dir, spool, '00000002.history'), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("restore --pitr's restore_command waits in the shell for a segment the live prefetcher is fetching, for a bounded number of looks", () => {
  const dir = mkdtempSync(join(tmpdir(), 'pms-restore-in-flight-'));
  try {
    const system = '7300000000000000001';
    const command = spoolFirstRestoreCommand(system, '/bin/echo', '/b.js');
    const spool = spoolDirectory(dir, system, false);
    mkdirSync(spool, { recursive: true });
    mkdirSync(join(dir, 'pg_wal', 'archive_status'));
    writeFileSync(join(dir, 'postmaster.pid'), `4242\n${dir}\n1764700000\n5432\n`);
    // A sleep that only counts its calls and, at the third, runs the hook the case set up: the
    // prefetcher's work arriving while the shell waits.
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'sleep'),
      `#!/bin/sh\necho x >> '${dir}/sleeps'\nn=$(wc -l < '${dir}/sleeps')\n[ "$n" -eq 3 ] && [ -f '${dir}/hook' ] && . '${dir}/hook'\n[ "$n" -eq 4 ] && [ -f '${dir}/hook4' ] && . '${dir}/hook4'\nexit 0\n`,
      { mode: 0o755 },
    );
    const run = (name: string, hook?: string, hook4?: string) => {
      rmSync(join(dir, 'pg_wal', 'RECOVERYXLOG'), { force: true });
      rmSync(join(dir, 'sleeps'), { force: true });
      rmSync(join(dir, 'hook'), { force: true });
      rmSync(join(dir, 'hook4'), { force: true });
      if (hook) writeFileSync(join(dir, 'hook'), hook);
      if (hook4) writeFileSync(join(dir, 'hook4'), hook4);
      const result = spawnSync('/bin/sh', ['-c', expand(command, name)], {
        cwd: dir,
        encoding: 'utf8',
        env: { PATH: `${bin}:/usr/bin:/bin` },
      });
      const sleeps = existsSync(join(dir, 'sleeps')) ? readFileSync(join(dir, 'sleeps'), 'utf8').split('\n').length - 1 : 0;
      return { status: result.status, stdout: result.stdout, sleeps };
    };
    const node = (name: string) => `/b.js wal-fetch ${name} pg_wal/RECOVERYXLOG\n`;
    const lock = (pid: number) => writeFileSync(join(dir, 'pg_wal', '.pms-prefetch', 'prefetcher.lock'), `${pid}\n`);
    const temp = (name: string) => join(spool, `.pms-fetch-0a1b2c3d-${name}`);
    lock(process.pid);

    // Published in place while the shell waits: answered with 1, PostgreSQL reads pg_wal/%f.
    const inPlace = '000000010000000000000003';
    writeFileSync(join(spool, inPlace), `segment ${inPlace}`);
    const note = join(spool, publishSegment(dir, spool, inPlace) ?? assert.fail('published'));
    renameSync(note, join(dir, 'held-note'));
    writeFileSync(temp(inPlace), 'partial');
    assert.deepEqual(run(inPlace, `mv '${dir}/held-note' '${note}'; rm -f '${temp(inPlace)}'\n`), { status: 1, stdout: '', sleeps: 3 });
    assert.equal(readFileSync(note, 'utf8'), USED_NOTE, 'the note is marked used');

    // The temporary file gone a moment before the note is written: one more look catches it.
    const between = '000000010000000000000007';
    writeFileSync(join(spool, between), `segment ${between}`);
    const later = join(spool, publishSegment(dir, spool, between) ?? assert.fail('published'));
    renameSync(later, join(dir, 'held-note'));
    writeFileSync(temp(between), 'partial');
    assert.deepEqual(run(between, `rm -f '${temp(between)}'\n`, `mv '${dir}/held-note' '${later}'\n`), {
      status: 1,
      stdout: '',
      sleeps: 4,
    });

    // Left in the spool (no server to bind a note to when it was published): moved onto %p.
    const spooled = '000000010000000000000004';
    writeFileSync(join(dir, 'ready'), `segment ${spooled}`);
    writeFileSync(temp(spooled), 'partial');
    assert.deepEqual(run(spooled, `mv '${dir}/ready' '${join(spool, spooled)}'; rm -f '${temp(spooled)}'\n`), {
      status: 0,
      stdout: '',
      sleeps: 3,
    });
    assert.equal(readFileSync(join(dir, 'pg_wal', 'RECOVERYXLOG'), 'utf8'), `segment ${spooled}`);

    // Claimed by the prefetcher (before its keys loaded, or before the object's bytes arrive)
    // and then published: the shell waits on the claim as on a temporary file.
    const claimed = '000000010000000000000008';
    writeFileSync(join(spool, claimed), `segment ${claimed}`);
    const claimedNote = join(spool, publishSegment(dir, spool, claimed) ?? assert.fail('published'));
    renameSync(claimedNote, join(dir, 'held-note'));
    const claim = claimFetch(spool, claimed);
    assert.deepEqual(run(claimed, `mv '${dir}/held-note' '${claimedNote}'; rm -f '${claim}'\n`), { status: 1, stdout: '', sleeps: 3 });

    // Never finished: after the bounded number of looks (and the one more), Node decides.
    const stuck = '000000010000000000000005';
    writeFileSync(temp(stuck), 'partial');
    assert.deepEqual(run(stuck), { status: 0, stdout: node(stuck), sleeps: 501 });

    // A temporary file left by a prefetcher that is gone, or with no lock at all: no wait.
    const child = spawnSync('/bin/true');
    assert.equal(child.status, 0);
    lock(child.pid ?? assert.fail('a pid'));
    assert.deepEqual(run(stuck), { status: 0, stdout: node(stuck), sleeps: 0 });
    rmSync(join(dir, 'pg_wal', '.pms-prefetch', 'prefetcher.lock'));
    assert.deepEqual(run(stuck), { status: 0, stdout: node(stuck), sleeps: 0 });
    // Nothing in flight for this segment (another one's temporary file does not count): no wait.
    lock(process.pid);
    assert.deepEqual(run('000000010000000000000006'), { status: 0, stdout: node('000000010000000000000006'), sleeps: 0 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("restore --pitr's restore_command takes a spooled segment (a regular file under an hour old) with mv and starts wal-fetch only on a miss", () => {
  const dir = mkdtempSync(join(tmpdir(), 'pms-restore-command-'));
  try {
    // /bin/echo stands in for node: it prints the wal-fetch command line it would have run.
    const command = spoolFirstRestoreCommand('7300000000000000001', '/bin/echo', "/opt/it's/bin.js");
    const settings = settingsOf(
      recoveryConfText({ restoreCommand: command, recoveryEndCommand: prefetchCleanCommand('/bin/echo', '/b.js'), target: 'latest' }, 'n'),
    );
    assert.equal(settings.get('restore_command'), command, 'PostgreSQL reads back the command written');
    assert.equal(settings.get('recovery_end_command'), "'/bin/echo' '/b.js' wal-prefetch clean");
    // As PostgreSQL runs it: %p removed first, %f and %p substituted, through sh, in the data directory.
    const runAs = (name: string) => {
      rmSync(join(dir, 'pg_wal', 'RECOVERYXLOG'), { force: true });
      return execFileSync('/bin/sh', ['-c', expand(command, name)], { cwd: dir }).toString();
    };
    mkdirSync(join(dir, 'pg_wal', '.pms-prefetch', '7300000000000000001'), { recursive: true });
    writeFileSync(join(dir, 'pg_wal', '.pms-prefetch', '7300000000000000001', '000000010000000000000003'), 'spooled');
    assert.equal(runAs('000000010000000000000003'), '', 'a hit starts nothing');
    assert.equal(readFileSync(join(dir, 'pg_wal', 'RECOVERYXLOG'), 'utf8'), 'spooled');
    assert.ok(!existsSync(join(dir, 'pg_wal', '.pms-prefetch', '7300000000000000001', '000000010000000000000003')));
    assert.equal(runAs('000000010000000000000004'), "/opt/it's/bin.js wal-fetch 000000010000000000000004 pg_wal/RECOVERYXLOG\n");
    // Two of the fast path's rules hold in the shell too: a link planted under a segment's name
    // and an entry older than an hour are not served (Node fetches; the prefetcher sweeps them).
    const spooled = (name: string) => join(dir, 'pg_wal', '.pms-prefetch', '7300000000000000001', name);
    writeFileSync(join(dir, 'elsewhere'), 'not a segment');
    symlinkSync(join(dir, 'elsewhere'), spooled('000000010000000000000005'));
    assert.equal(runAs('000000010000000000000005'), "/opt/it's/bin.js wal-fetch 000000010000000000000005 pg_wal/RECOVERYXLOG\n");
    assert.ok(!existsSync(join(dir, 'pg_wal', 'RECOVERYXLOG')));
    writeFileSync(spooled('000000010000000000000006'), 'spooled long ago');
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    utimesSync(spooled('000000010000000000000006'), twoHoursAgo, twoHoursAgo);
    assert.equal(runAs('000000010000000000000006'), "/opt/it's/bin.js wal-fetch 000000010000000000000006 pg_wal/RECOVERYXLOG\n");
    assert.ok(!existsSync(join(dir, 'pg_wal', 'RECOVERYXLOG')));
    assert.equal(runAs('00000002.history'), "/opt/it's/bin.js wal-fetch 00000002.history pg_wal/RECOVERYXLOG\n");
    const unsigned = spoolFirstRestoreCommand('7300000000000000001', '/bin/echo', '/b.js', { allowUnsigned: true });
    assert.ok(
      unsigned.includes('find pg_wal/.pms-prefetch/7300000000000000001-unsigned -maxdepth 1 -name %f ') &&
        unsigned.endsWith('wal-fetch --allow-unsigned %f %p'),
    );
    assert.throws(() => spoolFirstRestoreCommand('1; rm -rf /'), RangeError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
