import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startThrowawayCluster, type ThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { freePort } from '../../postgres/free-port.js';
import { findPgProgram } from '../../postgres/binaries.js';
import { waitUntilNoneMention } from '../../process/process-scan.js';
import { runTool } from '../../process/tool-process.js';
import { type GpgKeyPair, generateGpgKeyPair, signingEnv } from '../../testing/gpg-keys.js';
import { binPath } from '../../testing/run-cli.js';
import { cleanUpOnInterrupt, cli, createSteps, exitWhenDone, recoverToTarget, serialized, stopProcess, waitFor } from './demo-kit.js';
import { DEMO_PATIENTS, type DemoDevice, simulatedReading } from './simulated-devices.js';
import { archiveCommand } from '../../commands/restore/pitr/recovery-settings.js';

/**
 * `npm run demo`: the whole chain on one machine, no cloud account. Devices → ingest API →
 * PostgreSQL 15 (archiving WAL through pms-backup wal-push) → encrypted base and logical
 * backups in a local repository → verification → a disaster (a bad DELETE) → recovery by PITR
 * and by a per-patient partial restore → the counts compared. Exits non-zero if anything was lost.
 * `--ha` runs ha-demo.ts instead: a Patroni cluster, its leader killed mid-ingest.
 */

const USAGE = `Usage: npm run demo -- [--keep] [--out-dir DIR]
       npm run demo -- --ha

The whole chain on this machine, nothing leaves it (README.md; --ha: docs/ha.md). The last line
is the summary; the exit status is 0 only if every check passed.

  --keep             after a successful run, leave PostgreSQL, the recovered server and the
                     ingest API running and print how to connect and how to stop them; a run
                     that fails removes everything it started, --keep or not
  --out-dir DIR      where the monthly evidence report is written (default ./demo-output)
  --ha               three Patroni members, the leader SIGKILLed mid-ingest, PITR across the
                     failover; always removes everything it started
  --fail-at-step N   fail on purpose as step N begins (to see the cleanup of a failed run)
  --help             this text

Interrupted (Ctrl-C, SIGTERM, SIGHUP), either demo removes everything it started, --keep or
not, and exits with 128 + the signal's number.
`;

const keep = process.argv.includes('--keep');
/** Where the demo leaves what outlives it (the monthly report): --out-dir DIR, default ./demo-output. */
const outDirFlag = process.argv.indexOf('--out-dir');
const outDir = resolve(outDirFlag >= 0 ? (process.argv[outDirFlag + 1] ?? 'demo-output') : 'demo-output');
const started = Date.now();
const { step, info, finish } = createSteps(11);

async function postReadings(
  url: string,
  device: DemoDevice,
  patientIndex: number,
  from: number,
  count: number,
  now: Date,
): Promise<number> {
  const readings = Array.from({ length: count }, (_, i) =>
    simulatedReading(patientIndex, from + i, new Date(now.getTime() - (count - i) * 1000)),
  );
  const response = await fetch(`${url}/v1/readings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${device.token}` },
    body: JSON.stringify({ readings }),
  });
  if (response.status !== 200) throw new Error(`ingest API answered ${response.status}: ${await response.text()}`);
  const body = (await response.json()) as { accepted: number; duplicates: number; rejected: unknown[] };
  if (body.rejected.length > 0) throw new Error(`ingest API rejected simulated readings: ${JSON.stringify(body.rejected.slice(0, 3))}`);
  return body.accepted;
}

/** Streams `batches` batches from every device concurrently; returns acknowledged readings per patient. */
async function streamReadings(
  url: string,
  devices: DemoDevice[],
  batches: number,
  perBatch: number,
  sequenceStart: number,
): Promise<Map<string, number>> {
  const acknowledged = new Map<string, number>();
  await Promise.all(
    devices.map(async (device) => {
      const patientIndex = DEMO_PATIENTS.indexOf(device.patient as (typeof DEMO_PATIENTS)[number]);
      for (let b = 0; b < batches; b += 1) {
        const accepted = await postReadings(url, device, patientIndex, sequenceStart + b * perBatch, perBatch, new Date());
        acknowledged.set(device.patient, (acknowledged.get(device.patient) ?? 0) + accepted);
      }
    }),
  );
  return acknowledged;
}

/**
 * The one line that stops a --keep demo, run as printed (demo.test.ts runs exactly this): pg_ctl by
 * its full path and as the servers' OS user (it refuses root and is not on Debian's PATH), the gpg
 * agents of the demo's key homes killed, and `&&` so that nothing is deleted under a server that
 * did not stop.
 */
function stopLine(apiPid: number | undefined, clusters: readonly ThrowawayCluster[], keys: readonly GpgKeyPair[], work: string): string {
  const pgCtl = findPgProgram('pg_ctl');
  return [
    `kill ${apiPid}`,
    ...clusters.map((c) => `${c.osUser ? `runuser -u ${c.osUser} -- ` : ''}${pgCtl} -D ${c.dataDir} -w stop`),
    // The background WAL pusher leaves within a second of its server, after finishing the upload
    // in flight; removing the repository under it could leave a half-made directory behind. The
    // bracket keeps pgrep from matching this very line's shell.
    ...clusters.map((c) => `while pgrep -f '[w]al-pusher ${c.dataDir}/pg_wal' >/dev/null; do sleep 0.2; done`),
    ...keys.map((k) => `gpgconf --homedir ${k.gnupgHome} --kill gpg-agent`),
    `rm -rf ${[work, ...keys.map((k) => k.dir)].join(' ')}`,
  ].join(' && ');
}

const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

async function main(): Promise<number> {
  process.stdout.write('PMS Data Platform demo — everything local, nothing leaves this machine.\n');
  process.stdout.write('The OpenPGP key generated below is DEMO-ONLY: it protects no real patient data.\n\n');
  const work = mkdtempSync(join(tmpdir(), 'pms-demo-'));
  chmodSync(work, 0o755);
  const resources: { cluster?: ThrowawayCluster; recovered?: ThrowawayCluster; api?: ChildProcess; key?: GpgKeyPair; walKey?: GpgKeyPair } =
    {};
  // Only a run whose every check passed stays up with --keep: a failed one must not leave a
  // PostgreSQL (and patient-like data) running that nobody asked for.
  let kept = false;
  const release = serialized(async () => {
    if (kept) return;
    const { api, recovered, cluster, key, walKey } = resources;
    for (const name of ['api', 'recovered', 'cluster', 'key', 'walKey'] as const) delete resources[name];
    if (api) await stopProcess(api);
    await recovered?.destroy().catch(() => undefined);
    await cluster?.destroy().catch(() => undefined);
    key?.remove();
    walKey?.remove();
    // The background WAL pusher leaves a moment after its server, finishing its upload into
    // the repository under `work`: removing that first could leave a directory it then makes.
    // Bounded: a process that never leaves must not hang the demo's cleanup.
    await waitUntilNoneMention([`${work}/`], 30_000);
    rmSync(work, { recursive: true, force: true });
  });
  cleanUpOnInterrupt(release);
  try {
    step('Generating a demo-only OpenPGP key pair with gpg');
    const key = await generateGpgKeyPair({ name: 'PMS DEMO ONLY key - not for patient data', passphrase: 'demo-only-passphrase' });
    resources.key = key;
    // The database server signs its WAL with a key of its own (it never holds the jobs' key);
    // consumers trust both.
    const walKey = await generateGpgKeyPair({ name: 'PMS DEMO ONLY WAL signing key' });
    resources.walKey = walKey;
    const repo = join(work, 'repository');
    mkdirSync(repo, { mode: 0o700 });
    const pgUid = process.getuid?.() === 0 ? Number((await runTool('id', ['-u', 'postgres'])).stdout.trim()) : undefined;
    if (pgUid !== undefined) {
      // The server runs as postgres: archive_command writes the repository and restore_command
      // reads the private key.
      chownSync(repo, pgUid, -1);
      chownSync(key.privateKeyFile, pgUid, -1);
      if (key.passphraseFile) chownSync(key.passphraseFile, pgUid, -1);
      chownSync(walKey.privateKeyFile, pgUid, -1);
    }
    info(`key ${key.fingerprint}; repository file://${repo}`);
    const backupEnv: Record<string, string> = {
      BACKUP_REPOSITORY: `file://${repo}`,
      BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
      BACKUP_GPG_KEY_ID: key.fingerprint,
      BACKUP_GPG_PRIVATE_KEY_FILE: key.privateKeyFile,
      BACKUP_GPG_PASSPHRASE_FILE: key.passphraseFile ?? '',
      BACKUP_LOG_DIR: join(work, 'logs'),
      POSTGRES_DB: 'patient_telemetry',
      ...signingEnv(key, [key, walKey]),
    };
    const serverEnv: Record<string, string> = { ...backupEnv, ...signingEnv(walKey, [key, walKey]) };

    step('Starting PostgreSQL 15 with WAL archiving through pms-backup wal-push');
    const cluster = await startThrowawayCluster({
      parentDir: work,
      settings: { archive_mode: 'on', wal_level: 'replica', archive_timeout: 60, archive_command: archiveCommand() },
      serverEnv,
    });
    resources.cluster = cluster;
    const env = { ...cluster.postgresEnv, ...backupEnv };
    await cluster.psql('CREATE DATABASE patient_telemetry');
    await cli('pms-telemetry', ['migrate'], env);
    info(`PostgreSQL on ${cluster.host}:${cluster.port}, schema migrated`);

    step(`Registering ${DEMO_PATIENTS.length * 2} simulated wearables for ${DEMO_PATIENTS.length} patients (NHS test numbers)`);
    const devices: DemoDevice[] = [];
    for (const [index, patient] of DEMO_PATIENTS.entries()) {
      for (const kind of ['watch', 'ring']) {
        const out = JSON.parse(
          await cli('pms-telemetry', ['device', 'register', '--device-id', `${kind}-${index + 1}`, '--patient-id', patient, '--json'], env),
        ) as { token: string };
        devices.push({ deviceId: `${kind}-${index + 1}`, patient, token: out.token });
      }
    }

    step('Starting the ingest API and streaming readings from every device');
    const port = await freePort();
    const apiEnv = {
      ...env,
      TELEMETRY_HOST: '127.0.0.1',
      TELEMETRY_PORT: String(port),
      // Not the default 9464: two demos (or a demo and a real API) may run on one machine.
      TELEMETRY_METRICS_PORT: String(await freePort()),
      TELEMETRY_RATE_LIMIT_PER_MINUTE: '100000',
      TELEMETRY_RATE_LIMIT_BURST: '1000',
    };
    const api = spawn(process.execPath, [binPath('pms-telemetry'), 'serve'], {
      env: { PATH: process.env['PATH'], ...apiEnv },
      stdio: 'ignore',
      detached: keep,
    });
    resources.api = api;
    const url = `http://127.0.0.1:${port}`;
    await waitFor('the ingest API', async () => (await fetch(`${url}/readyz`)).status === 200);
    info(`ingest API on ${url} (pid ${api.pid})`);
    const before = await streamReadings(url, devices, 20, 50, 0);
    info(`${sum(before)} readings acknowledged by the API (${devices.length} devices × 20 batches × 50)`);

    step('Taking an encrypted base backup and an encrypted logical backup');
    const base = JSON.parse(await cli('pms-backup', ['base-backup', '--json'], env)) as { id: string; bytes: { stored: number } };
    const logical = JSON.parse(await cli('pms-backup', ['create', '--json'], env)) as {
      id: string;
      bytes: { stored: number };
      tables: Array<{ rows: number }>;
    };
    info(
      `base backup ${base.id} (${(base.bytes.stored / 1e6).toFixed(1)} MB), logical backup ${logical.id} (${(logical.bytes.stored / 1e6).toFixed(1)} MB)`,
    );

    step('Streaming more readings after the backups (only the WAL archive holds these)');
    const after = await streamReadings(url, devices, 10, 50, 1000);
    const acknowledged = new Map([...before].map(([p, n]) => [p, n + (after.get(p) ?? 0)]));
    const totalAcknowledged = sum(acknowledged);
    const stored = Number(await cluster.psql('SELECT count(*) FROM telemetry.reading', 'patient_telemetry'));
    info(`${totalAcknowledged} readings acknowledged in total; ${stored} stored in PostgreSQL`);

    step('Verifying the backups in throwaway servers (restore, row counts, amcheck; base backup + WAL replay)');
    const verifiedLogical = JSON.parse(await cli('pms-backup', ['verify', logical.id, '--json'], env)) as {
      ok: boolean;
      durationSeconds: number;
    };
    const verifiedBase = JSON.parse(await cli('pms-backup', ['verify', base.id, '--json'], env)) as {
      ok: boolean;
      durationSeconds: number;
    };
    info(
      `logical: ${verifiedLogical.ok ? 'verified' : 'FAILED'} in ${verifiedLogical.durationSeconds.toFixed(1)} s; base: ${verifiedBase.ok ? 'verified' : 'FAILED'} in ${verifiedBase.durationSeconds.toFixed(1)} s`,
    );

    step('Disaster: a bad deployment deletes every heart-rate reading');
    await sleep(1100);
    const targetTime = new Date().toISOString();
    await sleep(1100);
    const deleted = Number(
      await cluster.psql(
        "WITH d AS (DELETE FROM telemetry.reading WHERE code = '8867-4' RETURNING 1) SELECT count(*) FROM d",
        'patient_telemetry',
      ),
    );
    const afterDisaster = Number(await cluster.psql('SELECT count(*) FROM telemetry.reading', 'patient_telemetry'));
    const walName = await cluster.psql('SELECT pg_walfile_name(pg_current_wal_lsn()) FROM pg_switch_wal()');
    await waitFor(
      'the WAL with the delete to be archived',
      async () => (await cluster.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")) >= walName,
    );
    info(`${deleted} readings deleted at ${new Date().toISOString()}; ${afterDisaster} left. Recovery target: ${targetTime}`);

    step('Point-in-time recovery to just before the delete (restore --pitr, then start the server)');
    const recovered = await recoverToTarget({
      work,
      targetTime,
      env,
      serverEnv: backupEnv,
      onStarted: (c) => (resources.recovered = c),
    });
    const restoredByPitr = Number(await recovered.psql('SELECT count(*) FROM telemetry.reading', 'patient_telemetry'));
    info(`recovered server on port ${recovered.port}: ${restoredByPitr} readings`);

    step(`Per-patient partial restore of patient ${DEMO_PATIENTS[0]} from the logical backup into a separate database`);
    const patient = DEMO_PATIENTS[0];
    const targetDb = `patient_${patient}_restored`;
    await cli('pms-backup', ['restore', logical.id, '--target-db', targetDb, '--patient', patient], env);
    const partial = Number(await cluster.psql(`SELECT count(*) FROM telemetry.reading`, targetDb));
    const otherPatients = Number(
      await cluster.psql(`SELECT count(*) FROM telemetry.reading WHERE patient_nhs_number <> '${patient}'`, targetDb),
    );
    const expectedPartial = before.get(patient) ?? 0;
    info(
      `${targetDb}: ${partial} readings of that patient (expected ${expectedPartial}, as acknowledged before the logical backup), ${otherPatients} of anyone else`,
    );

    step('Comparing what the devices were told with what was stored and restored');
    const checks: Array<[string, boolean]> = [
      [`acknowledged ${totalAcknowledged} = stored ${stored}`, totalAcknowledged === stored],
      [`stored ${stored} = restored by PITR ${restoredByPitr}`, stored === restoredByPitr],
      [
        `patient ${patient}: ${partial} restored = ${expectedPartial} acknowledged before the logical backup, 0 of others`,
        partial === expectedPartial && otherPatients === 0,
      ],
      ['logical and base backups verified', verifiedLogical.ok && verifiedBase.ok],
      [`the disaster really deleted readings (${deleted})`, deleted > 0 && afterDisaster === stored - deleted],
    ];
    for (const [text, ok] of checks) info(`${ok ? 'ok  ' : 'FAIL'} ${text}`);
    const ok = checks.every(([, passed]) => passed);
    // The evidence page an auditor would get for this month (docs/report.md), kept after the demo.
    const month = new Date().toISOString().slice(0, 7);
    const reportFile = join(outDir, `report-${month}.html`);
    await cli('pms-backup', ['report', '--month', month, '--out', reportFile], env);
    info(`monthly evidence report: ${reportFile} (open it in a browser)`);
    const seconds = ((Date.now() - started) / 1000).toFixed(0);

    kept = keep && ok;
    if (keep && !ok) info('--keep: not kept, because a check failed; everything the demo started is removed');
    if (kept) {
      const envFile = join(work, 'demo.env');
      writeFileSync(
        envFile,
        `${Object.entries(env)
          .map(([k, v]) => `export ${k}=${JSON.stringify(v)}`)
          .join('\n')}\n`,
        { mode: 0o600 },
      );
      process.stdout.write(
        [
          '',
          'The demo stack is still running (--keep):',
          `  PostgreSQL (primary):    psql -h ${cluster.socketDir} -p ${cluster.port} -U postgres patient_telemetry`,
          `  PostgreSQL (recovered):  psql -h ${recovered.socketDir} -p ${recovered.port} -U postgres patient_telemetry`,
          `  Ingest API:              ${url}  (GET /readyz, /metrics; POST /v1/readings with a device token)`,
          `  Backup environment:      source ${envFile} && npx pms-backup list`,
          `  Stop everything:         ${stopLine(api.pid, [cluster, recovered], [key, walKey], work)}`,
          '',
        ].join('\n'),
      );
      api.unref();
    }
    finish();
    process.stdout.write(
      ok
        ? `PMS demo OK in ${seconds} s: ${totalAcknowledged} readings acknowledged = ${stored} stored = ${restoredByPitr} restored by PITR after deleting ${deleted}; patient partial restore ${partial}/${expectedPartial}; backups verified\n`
        : `PMS demo FAILED in ${seconds} s: data was lost or a check failed (see FAIL lines above)\n`,
    );
    return ok ? 0 : 1;
  } finally {
    await release();
  }
}

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(USAGE);
  process.exit(0);
}
// --ha: the same story on a three-member Patroni cluster with a failover (ha-demo.ts).
exitWhenDone(process.argv.includes('--ha') ? import('./ha-demo.js').then((m) => m.runHaDemo()) : main());
