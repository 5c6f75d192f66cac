import * as openpgp from 'openpgp';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { startThrowawayCluster, type ThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { freePort } from '../../postgres/free-port.js';
import { type GpgKeyPair, generateGpgKeyPair } from '../../testing/gpg-keys.js';
import { REPO_ROOT, binPath } from '../../testing/run-cli.js';
import { type S3rverHarness, S3RVER_ACCESS_KEY_ID, S3RVER_SECRET_ACCESS_KEY, startS3rver } from '../../testing/s3rver-harness.js';
import { type DocSection as RunbookSection, runnableSections } from './doc-blocks.js';
import { archiveCommand } from '../../commands/restore/pitr/recovery-settings.js';

const PATIENT = '9990000018';
const OTHER = '9990000026';
const PASSWORD = 'rb:pass\\word 3am';
const asRoot = process.getuid?.() === 0;
let cluster: ThrowawayCluster;
let key: GpgKeyPair;
let breakGlass: GpgKeyPair;
let dr: S3rverHarness;
let work: string;
let env: Record<string, string>;
let sections: RunbookSection[];
const timings: string[] = [];

/** Debian's default PATH for root without /usr/local (where this machine has a pg_ctl stock Debian lacks). */
const DEBIAN_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Runs a script in a fresh `bash -euo pipefail` with only `env` (what the operator's shell holds:
 * the documented variables) and what the script itself sets up. `asPostgres` is for the test's own
 * set-up (the backup jobs that ran before the incident), never for the document's blocks.
 */
function bash(script: string, extraEnv: Record<string, string> = {}, asPostgres = false): Promise<{ code: number | null; output: string }> {
  const full = `set -euo pipefail\n${script}\n`;
  const [command, args] = asPostgres && asRoot ? ['runuser', ['-u', 'postgres', '--', 'bash', '-c', full]] : ['bash', ['-c', full]];
  return new Promise((resolve, reject) => {
    // detached: a session of its own, without a controlling terminal, so a step that would ask for a
    // password (libpq and gpg open /dev/tty) fails instead of waiting for a person.
    const child = spawn(command, args as string[], {
      env: { ...env, ...extraEnv },
      cwd: work,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.stderr.setEncoding('utf8').on(
      'data',
      (c: string) =>
        (output += c
          .split('\n')
          .filter((l) => !l.startsWith('{"time"'))
          .join('\n')),
    );
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

async function must(script: string): Promise<string> {
  const result = await bash(script, {}, true);
  assert.equal(result.code, 0, result.output);
  return result.output;
}

function section(title: string): RunbookSection {
  const found = sections.find((s) => s.title === title);
  assert.ok(found, `runbook section "${title}" exists`);
  return found;
}

/** Runs one runbook section exactly as written, after the "Before you start" block. */
async function runSection(title: string, extraEnv: Record<string, string> = {}): Promise<string> {
  const preamble = section('Before you start').blocks.join('\n');
  const started = Date.now();
  const result = await bash(`${preamble}\n${section(title).blocks.join('\n')}`, extraEnv);
  timings.push(`${title}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.equal(result.code, 0, `runbook section "${title}" failed:\n${result.output}`);
  return result.output;
}

const psql = (sql: string, database = 'patient_telemetry') => cluster.psql(sql, database);

before(async () => {
  sections = runnableSections(join(REPO_ROOT, 'docs', 'runbook.md'));
  work = mkdtempSync(join(tmpdir(), 'pms-runbook-'));
  chmodSync(work, 0o755);
  [key, breakGlass, dr] = await Promise.all([
    generateGpgKeyPair({ name: 'PMS Runbook Current Key', passphrase: 'runbook passphrase' }),
    generateGpgKeyPair({ name: 'PMS Runbook Break-Glass Key' }),
    startS3rver({ bucket: 'pms-dr-backups' }),
  ]);
  const files = join(work, 'files');
  mkdirSync(files);
  for (const dir of ['repository', 'logs', 'bin', 'files', 'home']) mkdirSync(join(work, dir), { recursive: true });
  // A password that needs escaping in a passfile (":" and "\\").
  writeFileSync(join(files, 'postgres-password'), `${PASSWORD}\n`, { mode: 0o600 });
  writeFileSync(join(files, 'public-keys.asc'), readFileSync(key.publicKeyFile, 'utf8') + readFileSync(breakGlass.publicKeyFile, 'utf8'));
  writeFileSync(join(files, 'private-key.asc'), readFileSync(key.privateKeyFile), { mode: 0o600 });
  writeFileSync(join(files, 'passphrase'), readFileSync(key.passphraseFile!), { mode: 0o600 });
  writeFileSync(join(files, 'trusted-signers.asc'), readFileSync(key.publicKeyFile, 'utf8'));
  writeFileSync(join(files, 'break-glass-private.asc'), readFileSync(breakGlass.privateKeyFile), { mode: 0o600 });
  symlinkSync(binPath('pms-backup'), join(work, 'bin', 'pms-backup'));
  symlinkSync(binPath('pms-telemetry'), join(work, 'bin', 'pms-telemetry'));
  if (asRoot) await new Promise((resolve) => spawn('chown', ['-R', 'postgres:postgres', work]).once('close', resolve));

  const backupEnv = {
    BACKUP_REPOSITORY: `file://${join(work, 'repository')}`,
    BACKUP_GPG_PUBLIC_KEY_FILE: join(files, 'public-keys.asc'),
    BACKUP_GPG_KEY_ID: key.fingerprint,
    BACKUP_GPG_PRIVATE_KEY_FILE: join(files, 'private-key.asc'),
    BACKUP_GPG_PASSPHRASE_FILE: join(files, 'passphrase'),
    BACKUP_SIGNING_KEY_FILE: join(files, 'private-key.asc'),
    BACKUP_SIGNING_PASSPHRASE_FILE: join(files, 'passphrase'),
    BACKUP_TRUSTED_SIGNERS_FILE: join(files, 'trusted-signers.asc'),
    BACKUP_LOG_DIR: join(work, 'logs'),
    POSTGRES_DB: 'patient_telemetry',
  };
  cluster = await startThrowawayCluster({
    settings: { archive_mode: 'on', wal_level: 'replica', archive_command: archiveCommand() },
    serverEnv: backupEnv,
  });
  env = {
    // Where pms-backup is installed (/usr/local/bin in the image) after Debian's PATH: no PostgreSQL
    // bin directory, no variable the document does not name.
    PATH: `${DEBIAN_PATH}:${join(work, 'bin')}`,
    HOME: join(work, 'home'),
    ...cluster.postgresEnv,
    POSTGRES_PASSWORD_FILE: join(files, 'postgres-password'),
    ...backupEnv,
    BACKUP_DR_REPOSITORY: 's3://pms-dr-backups/patient-telemetry',
    BACKUP_DR_AWS_REGION: 'eu-west-1',
    BACKUP_DR_AWS_ACCESS_KEY_ID: S3RVER_ACCESS_KEY_ID,
    BACKUP_DR_AWS_SECRET_ACCESS_KEY: S3RVER_SECRET_ACCESS_KEY,
    BACKUP_DR_S3_ENDPOINT: dr.endpoint,
    BACKUP_DR_S3_FORCE_PATH_STYLE: 'true',
  };
  // The server as in production: TCP only over TLS, and a SCRAM password (throwaway clusters trust
  // their users). The test's own psql keeps the Unix socket.
  writeFileSync(
    join(cluster.dataDir, 'pg_hba.conf'),
    'local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostssl replication all 127.0.0.1/32 scram-sha-256\n',
  );
  await psql(`SET password_encryption = 'scram-sha-256'; ALTER ROLE postgres PASSWORD '${PASSWORD}'`, 'postgres');
  await psql('SELECT pg_reload_conf()', 'postgres');
  await cluster.psql('CREATE DATABASE patient_telemetry');
  await must('pms-telemetry migrate');
  await must(
    `pms-telemetry device register --device-id watch-1 --patient-id ${PATIENT} && pms-telemetry device register --device-id watch-2 --patient-id ${OTHER}`,
  );
  const insert = (from: number) =>
    psql(`INSERT INTO telemetry.reading (patient_nhs_number, device_id, reading_id, code, value, unit, measured_at, measured_at_offset_minutes)
          SELECT CASE WHEN g % 2 = 0 THEN '${PATIENT}' ELSE '${OTHER}' END, CASE WHEN g % 2 = 0 THEN 'watch-1' ELSE 'watch-2' END,
                 'r-' || g, CASE WHEN g % 3 = 0 THEN '8867-4' ELSE '2708-6' END, 90 + g % 9, CASE WHEN g % 3 = 0 THEN '/min' ELSE '%' END,
                 now() - g * interval '1 second', 0
          FROM generate_series(${from}, ${from + 7499}) g`);
  await insert(1);
  await must('pms-backup base-backup');
  await insert(10001);
  await must('pms-backup create');
});

after(async () => {
  if (timings.length) process.stdout.write(`# runbook timings: ${timings.join('; ')}\n`);
  await Promise.allSettled([cluster?.destroy(), dr?.destroy()]);
  key?.remove();
  breakGlass?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('docs/runbook.md, executed as written', () => {
  test('"Before you start": psql connects over verified TLS with the password of POSTGRES_PASSWORD_FILE, and the passfile goes with the shell', async () => {
    const result = await bash(`${section('Before you start').blocks.join('\n')}\necho "passfile=$PGPASSFILE"`);
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, /accepting connections/);
    assert.match(result.output, /^connected as postgres$/m);
    const passfile = /^passfile=(\S+)$/m.exec(result.output)?.[1];
    assert.ok(passfile);
    assert.equal(existsSync(passfile), false, 'the passfile is removed when the shell exits');
    assert.ok(!result.output.includes(PASSWORD), 'the password is in no output');
  });

  test('"Is my backup good?": list, verify, monitor and audit verify all pass', async () => {
    const output = await runSection('Is my backup good?');
    assert.match(output, /WAL archive: .*point-in-time recovery possible from/);
    assert.match(output, /VERIFIED/);
    assert.match(output, /all checks passed/);
    assert.match(output, /audit log intact/);
  });

  test('"Full restore": the restored database replaces the damaged one', async () => {
    await psql("DELETE FROM telemetry.reading WHERE code = '8867-4'");
    const output = await runSection('Full restore');
    assert.match(
      output,
      /^restored every table from backup \S+ into database patient_telemetry_restored: .*sha256, OpenPGP integrity and row counts verified/m,
    );
    assert.match(output, /^15000$/m, 'then the reading count');
    assert.equal(await psql('SELECT count(*) FROM telemetry.reading'), '15000');
    assert.equal(await psql("SELECT count(*) FROM pg_database WHERE datname = 'patient_telemetry_damaged'", 'postgres'), '1');
  });

  test('"After a failed or killed restore": restore --cleanup drops the staging database a killed restore left', async () => {
    // What a SIGKILLed restore leaves (cleanup.test.ts kills one for real), an hour old.
    const created = new Date(Date.now() - 3600_000).toISOString();
    await psql('CREATE DATABASE "patient_telemetry_restored__restoring_0a1b2c"', 'postgres');
    await psql(
      `COMMENT ON DATABASE "patient_telemetry_restored__restoring_0a1b2c" IS 'pms-backup restore staging database, created ${created} on runbook by pid 1; dropped when the restore ends'`,
      'postgres',
    );
    const output = await runSection('After a failed or killed restore');
    assert.match(output, /^left over: staging database patient_telemetry_restored__restoring_0a1b2c \(1 h old, 0 session\(s\)\)$/m);
    assert.match(output, /^removed staging database patient_telemetry_restored__restoring_0a1b2c/m);
    assert.equal(await psql("SELECT count(*) FROM pg_database WHERE datname LIKE '%\\_\\_restoring\\_%'", 'postgres'), '0');
  });

  test('"Point-in-time recovery": the recovered server holds exactly what was committed before the target', async () => {
    await sleep(1100);
    const targetTime = new Date().toISOString();
    await sleep(1100);
    await psql('DELETE FROM telemetry.reading WHERE value > 95');
    await psql(`SELECT pg_switch_wal()`);
    while (
      (await psql("SELECT count(*) FROM pg_stat_archiver WHERE last_archived_time > now() - interval '1 minute'", 'postgres')) !== '1'
    ) {
      await sleep(200);
    }
    const pitrData = join(work, 'pitr-data');
    const output = await runSection('Point-in-time recovery', {
      TARGET_TIME: targetTime,
      PITR_DATA: pitrData,
      PITR_PORT: String(await freePort()),
    });
    assert.match(output, /recovery stopping before commit/);
    assert.match(output, /archive recovery complete/);
    // The runbook starts the server with the very command restore --pitr prints (plus its port and socket).
    const printed = /^ {2}(runuser -u postgres -- \/usr\/lib\/postgresql\/15\/bin\/pg_ctl -D \S+ -l \S+ start)$/m.exec(output)?.[1];
    assert.ok(printed, `restore --pitr prints the runuser/full-path start line:\n${output}`);
    const documented = section('Point-in-time recovery').blocks.join('\n');
    assert.ok(documented.includes('runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$PITR_DATA" -l "$PITR_DATA/recovery.log"'));
    // "When done with it": the documented stop line stopped the server.
    assert.equal(existsSync(join(pitrData, 'postmaster.pid')), false, 'the recovered server was stopped');
    assert.match(
      output
        .trim()
        .split('\n')
        .filter((l) => /^\d+$/.test(l))
        .pop() ?? '',
      /^15000$/,
    );
  });

  test('"Partial recovery: one table" restores only that table', async () => {
    await runSection('Partial recovery: one table');
    assert.equal(await psql('SELECT count(*) FROM telemetry.reading', 'reading_restore'), '15000');
    assert.equal(
      await psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'telemetry' AND tablename = 'device'", 'reading_restore'),
      '0',
    );
  });

  test('"Partial recovery: one patient" restores one patient and copies the lost rows back without overwriting', async () => {
    // Every reading of the patient in the logical backup comes back, whatever was lost since.
    const expected = '7500';
    await psql(`DELETE FROM telemetry.reading WHERE patient_nhs_number = '${PATIENT}' AND value < 93`);
    const output = await runSection('Partial recovery: one patient, and copying the rows back safely', { PATIENT });
    assert.match(output, /INSERT 0 [1-9]\d*/);
    assert.equal(await psql(`SELECT count(*) FROM telemetry.reading WHERE patient_nhs_number = '${PATIENT}'`), expected);
    assert.equal(
      await psql(`SELECT count(*) FROM telemetry.reading WHERE patient_nhs_number <> '${PATIENT}'`, `patient_${PATIENT}_restored`),
      '0',
    );
  });

  test('"Cross-region disaster recovery": copy, then list, verify and restore from the DR repository', async () => {
    const output = await runSection('Cross-region disaster recovery');
    assert.match(output, /copied [1-9]\d* backup\(s\) and [1-9]\d* WAL file\(s\)/);
    assert.match(output, /ok {3}dr-copy/);
    assert.equal(await psql('SELECT count(*) FROM telemetry.reading', 'patient_telemetry_dr'), '15000');
  });

  test('"Lost key (break-glass key)": the break-glass private key alone restores the backup', async () => {
    await runSection('Lost key (break-glass key)', { BREAK_GLASS_PRIVATE_KEY_FILE: join(work, 'files', 'break-glass-private.asc') });
    assert.equal(await psql('SELECT count(*) FROM telemetry.reading', 'patient_telemetry_breakglass'), '15000');
  });
});

describe('docs/break-glass.md, executed as written', () => {
  test('gpg, zstd and pg_restore alone: the signature checks out and the backup restores with its row count', async () => {
    // The repository as an operator would browse it: the logical backup made in before().
    const backupsDir = join(work, 'repository', 'backups');
    const id = readdirSync(backupsDir).find((d) => existsSync(join(backupsDir, d, `pms-backup-${d}.dump.zst.gpg`)));
    assert.ok(id, 'a logical backup to break glass on');
    const logical = { id };
    const blocks = runnableSections(join(REPO_ROOT, 'docs', 'break-glass.md')).flatMap((s) => s.blocks);
    const result = await bash(`${section('Before you start').blocks.join('\n')}\n${blocks.join('\n')}`, {
      BACKUP_DIR: join(work, 'repository', 'backups', logical.id),
      TRUSTED_SIGNERS_FILE: join(work, 'files', 'trusted-signers.asc'),
      PRIVATE_KEY_FILE: join(work, 'files', 'break-glass-private.asc'),
    });
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, /Good signature from "PMS Runbook Current Key/);
    assert.match(result.output, new RegExp(`object@pms-data-platform\\.invalid=backups/${logical.id}/manifest\\.json`));
    assert.match(result.output, new RegExp(`^sha256 of pms-backup-${logical.id}\\.dump\\.zst\\.gpg matches the manifest$`, 'm'));
    assert.match(result.output, /^15000$/m);
    assert.equal(await psql('SELECT count(*) FROM telemetry.reading', 'patient_telemetry_restored'), '15000');
    // The key's GnuPG home and its agent are gone.
    const home = /^removed (\S+)$/m.exec(result.output)?.[1];
    assert.ok(home);
    assert.equal(existsSync(home), false);
    assert.deepEqual(processesMentioning(home), [], 'no gpg-agent of the break-glass home is left');
  });
});

/** Processes whose command line names this path (a gpg-agent's --homedir). */
function processesMentioning(path: string): string[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .flatMap((pid) => {
      try {
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
        return cmdline.includes(path) ? [`${pid}: ${cmdline}`] : [];
      } catch {
        return [];
      }
    });
}

describe('docs/key-rotation.md, executed as written (the blocks that need no cluster)', () => {
  test('new encryption and signing keys made offline, rotated key files built, the new signer trusted next to the old', async () => {
    const rotation = join(work, 'rotation');
    mkdirSync(rotation, { mode: 0o700 });
    // What the kubectl blocks would fetch from the cluster, and the break-glass key from the safe.
    writeFileSync(join(rotation, 'old-private.key'), readFileSync(join(work, 'files', 'private-key.asc')), { mode: 0o600 });
    writeFileSync(join(rotation, 'break-glass-public.key'), readFileSync(breakGlass.publicKeyFile));
    writeFileSync(join(rotation, 'current-trusted-signers.asc'), readFileSync(join(work, 'files', 'trusted-signers.asc')));
    const blocks = runnableSections(join(REPO_ROOT, 'docs', 'key-rotation.md')).flatMap((s) => s.blocks);
    const started = Date.now();
    const result = await bash(blocks.join('\n'), { ROTATION_DIR: rotation });
    timings.push(`key rotation: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    try {
      assert.equal(result.code, 0, result.output);
      // Step 1 without a terminal: a real, protected private key (not the empty file gpg writes without loopback).
      const newPrivate = readFileSync(join(rotation, 'new-private.key'), 'utf8');
      // The armor line is assembled, not spelled, so secret scanners do not take the test for a key.
      assert.ok(newPrivate.startsWith(`-----BEGIN PGP ${'PRIVATE'} KEY BLOCK-----`), 'an armored secret key');
      assert.ok((await openpgp.readPrivateKey({ armoredKey: newPrivate })).isPrivate(), 'it parses as a secret key');
      assert.match(readFileSync(join(rotation, 'new-passphrase'), 'utf8'), /^\S{40,}\n$/);
      // Step 2: two public keys (new and break-glass), two secret keys (new and old).
      assert.match(result.output, /^2\n2$/m);
      assert.equal(
        readFileSync(join(rotation, 'rotated-private.key'), 'utf8'),
        newPrivate + readFileSync(join(rotation, 'old-private.key'), 'utf8'),
      );
      // Signing key: the new key is listed next to the old one and signs what readers accept.
      assert.match(result.output, /PMS Runbook Current Key/);
      assert.match(result.output, /PMS backup jobs signing key 2028/);
      assert.match(result.output, / {2}trusted$/m);
      assert.doesNotMatch(result.output, /NOT TRUSTED/);
    } finally {
      for (const home of readdirSync(rotation).filter((d) => d.startsWith('tmp.'))) {
        spawnSync('gpgconf', ['--homedir', join(rotation, home), '--kill', 'gpg-agent'], { stdio: 'ignore' });
      }
    }
  });
});
