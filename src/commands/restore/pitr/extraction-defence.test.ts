import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isPmsError } from '../../../errors/catalogue.js';
import { openDataDirectory, usingDataDirectory } from '../../../postgres/data-directory-writer.js';
import { inspectExtracted } from './inspect-extracted.js';
import { writeRecoverySettings } from './recovery-settings.js';
import { prepareTargetDirectory } from './target-directory.js';

/**
 * The defence against a crafted base backup, on a real file system, as root: the tar has been
 * extracted by the server's OS user; what it left is inspected, and what root writes afterwards
 * never follows a link. "Victims" are root's files elsewhere that a planted link points to.
 */
const SERVER_UID = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
const SERVER_GID = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());

let work: string;
let victims: string;
let count = 0;

before(() => {
  assert.equal(process.getuid?.(), 0, 'these tests prove what root does; run them as root');
  work = mkdtempSync(join(tmpdir(), 'pms-extraction-'));
  victims = mkdtempSync(join(tmpdir(), 'pms-victims-'));
});

after(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(victims, { recursive: true, force: true });
});

/** A data directory as tar (run as the server's OS user) leaves it. */
function extracted(files: Record<string, string> = { PG_VERSION: '15\n', 'postgresql.auto.conf': '# Do not edit\n' }): string {
  count += 1;
  const dir = join(work, `data-${count}`);
  mkdirSync(join(dir, 'base', '1'), { recursive: true, mode: 0o700 });
  mkdirSync(join(dir, 'pg_wal'), { mode: 0o700 });
  mkdirSync(join(dir, 'pg_tblspc'), { mode: 0o700 });
  writeFileSync(join(dir, 'base', '1', '1259'), 'heap');
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  execFileSync('chown', ['-R', `${SERVER_UID}:${SERVER_GID}`, dir]);
  return dir;
}

/** A file of root's, mode 0644, that must come out of every test unchanged. */
function victim(name: string): { path: string; unchanged(): void } {
  const path = join(victims, `${name}-${count}`);
  writeFileSync(path, `root's ${name}\n`, { mode: 0o644 });
  const before = statSync(path);
  return {
    path,
    unchanged() {
      const now = statSync(path);
      assert.equal(readFileSync(path, 'utf8'), `root's ${name}\n`, `${path} content unchanged`);
      assert.deepEqual(
        [now.uid, now.gid, now.mode, now.size],
        [before.uid, before.gid, before.mode, before.size],
        `${path} owner and mode unchanged`,
      );
    },
  };
}

function asServer(path: string): void {
  execFileSync('chown', ['-h', `${SERVER_UID}:${SERVER_GID}`, path]);
}

const refusal = (pattern: RegExp) => (error: unknown) => {
  assert.ok(isPmsError(error, 'PMS_ERR_INTEGRITY'), `PMS_ERR_INTEGRITY expected, got ${String(error)}`);
  assert.match((error as Error).message, pattern);
  return true;
};

describe('inspecting what tar extracted', () => {
  test('a data directory of directories and regular files passes, counted', async () => {
    const dir = extracted();
    assert.deepEqual(await inspectExtracted(dir, 'B1'), { files: 3, directories: 4 });
  });

  test('postgresql.auto.conf as a symbolic link to a file of root is refused, naming the entry and its target', async () => {
    const target = victim('auto');
    const dir = extracted({ PG_VERSION: '15\n' });
    symlinkSync(target.path, join(dir, 'postgresql.auto.conf'));
    asServer(join(dir, 'postgresql.auto.conf'));
    await assert.rejects(
      inspectExtracted(dir, 'B2'),
      refusal(
        /^base backup B2 holds postgresql\.auto\.conf, which is a symbolic link to ".*auto-\d+": .*not made by PostgreSQL; refusing it/,
      ),
    );
    target.unchanged();
  });

  test('a link deep in the tree, a link in pg_tblspc, a FIFO, a hard link and a file of another user are each refused', async () => {
    const cases: Array<[string, (dir: string) => void, RegExp]> = [
      ['deep link', (d) => symlinkSync('/etc', join(d, 'base', '1', 'evil')), /holds base\/1\/evil, which is a symbolic link to "\/etc"/],
      [
        'tablespace',
        (d) => symlinkSync('/srv/ts', join(d, 'pg_tblspc', '16400')),
        /pg_tblspc\/16400, .*\(a tablespace: base-backup refuses/,
      ],
      ['fifo', (d) => execFileSync('mkfifo', [join(d, 'recovery.signal')]), /holds recovery\.signal, which is a FIFO/],
      ['hard link', (d) => linkSync(join(d, 'PG_VERSION'), join(d, 'base', 'copy')), /which is a hard link \(2 names for one file\)/],
      [
        'owner',
        (d) => writeFileSync(join(d, 'stray'), 'root wrote this'),
        /holds stray, which belongs to uid 0, not to the extracting user/,
      ],
    ];
    for (const [what, plant, pattern] of cases) {
      const dir = extracted();
      plant(dir);
      await assert.rejects(inspectExtracted(dir, 'B3'), refusal(pattern), what);
    }
  });
});

describe('writing into an extracted data directory as root', () => {
  test('writeRecoverySettings refuses to append through a planted postgresql.auto.conf link; the file of root is untouched', async () => {
    const target = victim('auto');
    const dir = extracted({ PG_VERSION: '15\n' });
    symlinkSync(target.path, join(dir, 'postgresql.auto.conf'));
    await assert.rejects(
      writeRecoverySettings(dir, { restoreCommand: 'false', target: 'latest' }, 'test'),
      refusal(/postgresql\.auto\.conf is a symbolic link: refusing to follow it/),
    );
    target.unchanged();
  });

  test('recovery.signal planted as a link is replaced by a new file of the server user; the link target is untouched', async () => {
    const target = victim('signal');
    const dir = extracted();
    symlinkSync(target.path, join(dir, 'recovery.signal'));
    await writeRecoverySettings(dir, { restoreCommand: 'false', target: 'latest' }, 'test');
    target.unchanged();
    const signal = lstatSync(join(dir, 'recovery.signal'));
    assert.ok(signal.isFile(), 'a regular file now');
    assert.deepEqual([signal.uid, signal.gid, signal.mode & 0o777], [SERVER_UID, SERVER_GID, 0o600]);
    const auto = statSync(join(dir, 'postgresql.auto.conf'));
    assert.deepEqual([auto.uid, auto.gid], [SERVER_UID, SERVER_GID], 'appended file keeps its owner');
    assert.match(readFileSync(join(dir, 'postgresql.auto.conf'), 'utf8'), /^# Do not edit\n\n# test\nrestore_command = 'false'/);
  });

  test('promoteAtEnd: standby.signal (a planted link replaced) instead of recovery.signal; refused for a time target or a restore_command without --promote-at-end', async () => {
    const target = victim('standby-signal');
    const dir = extracted();
    symlinkSync(target.path, join(dir, 'standby.signal'));
    writeFileSync(join(dir, 'recovery.signal'), '');
    const command = "'/usr/bin/node' '/b.js' wal-fetch --allow-unsigned --promote-at-end %f %p";
    await writeRecoverySettings(dir, { restoreCommand: command, target: 'latest', promoteAtEnd: true }, 'test');
    target.unchanged();
    const signal = lstatSync(join(dir, 'standby.signal'));
    assert.ok(signal.isFile(), 'a regular file now');
    assert.deepEqual([signal.uid, signal.gid, signal.mode & 0o777], [SERVER_UID, SERVER_GID, 0o600]);
    assert.throws(() => lstatSync(join(dir, 'recovery.signal')), /ENOENT/, 'recovery.signal removed');
    const other = extracted();
    await assert.rejects(
      writeRecoverySettings(other, { restoreCommand: command, target: new Date('2026-11-23T14:06:00Z'), promoteAtEnd: true }, 'test'),
      /promoteAtEnd needs target latest/,
    );
    await assert.rejects(
      writeRecoverySettings(
        other,
        { restoreCommand: "'/usr/bin/node' '/b.js' wal-fetch %f %p", target: 'latest', promoteAtEnd: true },
        'test',
      ),
      /wal-fetch --promote-at-end/,
    );
    assert.throws(() => lstatSync(join(other, 'standby.signal')), /ENOENT/, 'nothing written when refused');
  });

  test('a FIFO is refused at once (no hang), a hard link to a file of root is refused and the file is untouched', async () => {
    const fifoDir = extracted({ PG_VERSION: '15\n' });
    execFileSync('mkfifo', [join(fifoDir, 'postgresql.auto.conf')]);
    asServer(join(fifoDir, 'postgresql.auto.conf'));
    const started = Date.now();
    await assert.rejects(
      writeRecoverySettings(fifoDir, { restoreCommand: 'false', target: 'latest' }, 'test'),
      refusal(/postgresql\.auto\.conf is not a regular file/),
    );
    assert.ok(Date.now() - started < 2000, 'refused without waiting for a reader');

    // protected_hardlinks stops the server user from linking root's files; a tar extracted as
    // root (or a kernel without that protection) could: root's writer still refuses.
    const target = victim('hardlinked');
    const linkDir = extracted({ PG_VERSION: '15\n' });
    linkSync(target.path, join(linkDir, 'postgresql.auto.conf'));
    await assert.rejects(
      writeRecoverySettings(linkDir, { restoreCommand: 'false', target: 'latest' }, 'test'),
      refusal(/postgresql\.auto\.conf has 2 hard links/),
    );
    target.unchanged();
  });

  test('files are reached through the directory opened first: swapping the directory for a link afterwards writes nothing elsewhere', async () => {
    const dir = extracted();
    const elsewhere = mkdtempSync(join(victims, 'elsewhere-'));
    writeFileSync(join(elsewhere, 'postgresql.auto.conf'), "root's\n");
    await usingDataDirectory(dir, async (directory) => {
      renameSync(dir, `${dir}.moved`);
      symlinkSync(elsewhere, dir);
      await directory.append('postgresql.auto.conf', 'appended\n');
      await directory.replace('recovery.signal', '');
    });
    assert.equal(readFileSync(join(elsewhere, 'postgresql.auto.conf'), 'utf8'), "root's\n");
    assert.ok(!lstatSync(join(elsewhere)).isSymbolicLink());
    assert.throws(() => lstatSync(join(elsewhere, 'recovery.signal')), /ENOENT/);
    assert.equal(readFileSync(join(`${dir}.moved`, 'postgresql.auto.conf'), 'utf8'), '# Do not edit\nappended\n');
    assert.ok(lstatSync(join(`${dir}.moved`, 'recovery.signal')).isFile());
  });

  test('a data directory that is itself a link is refused', async () => {
    const real = extracted();
    const link = join(work, `link-${count}`);
    symlinkSync(real, link);
    await assert.rejects(openDataDirectory(link), refusal(/is a symbolic link: refusing to follow it/));
  });

  test('restore --pitr refuses a --pgdata that is a symbolic link and chowns nothing', async () => {
    const target = mkdtempSync(join(victims, 'rootdir-'));
    const link = join(work, `pgdata-link-${count}`);
    symlinkSync(target, link);
    await assert.rejects(prepareTargetDirectory(link), (error: unknown) => {
      assert.ok(isPmsError(error, 'PMS_ERR_TARGET_EXISTS'));
      assert.match((error as Error).message, /is not a directory \(a symbolic link: give the real path\)/);
      return true;
    });
    const after = statSync(target);
    assert.deepEqual([after.uid, after.mode & 0o777], [0, 0o700], 'the link target keeps its owner and mode');
    // The ordinary case still works: an absent directory is created and handed to postgres.
    const fresh = join(work, `pgdata-${count}`);
    const prepared = await prepareTargetDirectory(fresh);
    const made = statSync(fresh);
    assert.deepEqual([prepared.osUser, made.uid, made.mode & 0o777], ['postgres', SERVER_UID, 0o700]);
    chownSync(fresh, 0, 0);
  });
});
