import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { archiveCommand } from '../../commands/restore/pitr/recovery-settings.js';
import { type ThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { freePort } from '../../postgres/free-port.js';
import { runTool } from '../../process/tool-process.js';
import { FsStorage } from '../../storage/fs/fs-storage.js';
import { type GpgKeyPair, generateGpgKeyPair, signingEnv } from '../../testing/gpg-keys.js';
import { type PatroniCluster, type PatroniMember, startPatroniCluster } from '../../testing/patroni-harness.js';
import { binPath } from '../../testing/run-cli.js';
import { archivedWalNames, checkContinuity } from '../../wal/timeline-continuity.js';
import { cleanUpOnInterrupt, cli, createSteps, recoverToTarget, serialized, stopProcess, waitFor } from './demo-kit.js';
import { type ApiReading, DEMO_PATIENTS, type DemoDevice, simulatedReading } from './simulated-devices.js';

/**
 * `npm run demo -- --ha`: the ingest chain on a three-member Patroni cluster (etcd, strict
 * synchronous mode, every member archiving through wal-push with archive_mode = always), the
 * leader's Patroni and PostgreSQL SIGKILLed while devices stream readings through the API, which
 * is given all three members. Ends with what the devices were told compared with what is stored,
 * and a PITR to a moment after the failover from a base backup taken before it. Exits non-zero if
 * a check failed; removes everything it started either way.
 */

const READINGS_PER_BATCH = 20;
/** How long a device waits before resending a batch answered 503 (the API says Retry-After: 1). */
const RESEND_MS = 250;

interface Ingest {
  /** reading id → how many times the API acknowledged it (a resend after a lost answer counts again). */
  readonly acknowledged: Map<string, number>;
  /** Batches answered 200, and 503. */
  acks: number;
  unavailable: number;
  /** Set once the leader is dead: a 200 for a batch sent after it proves a new primary. */
  killedAt?: number;
  firstOkAfterKill?: number;
  readonly okAfterKill: Set<string>;
  stop: boolean;
}

/** A device: sends batches until told to stop, resending the same batch (same reading ids) until it gets 200. */
async function runDevice(url: string, device: DemoDevice, ingest: Ingest, sequenceStart: number, batches = Infinity): Promise<number> {
  const patientIndex = DEMO_PATIENTS.indexOf(device.patient as (typeof DEMO_PATIENTS)[number]);
  let sequence = sequenceStart;
  for (let b = 0; b < batches && !ingest.stop; b += 1) {
    const readings: ApiReading[] = Array.from({ length: READINGS_PER_BATCH }, (_, i) =>
      simulatedReading(patientIndex, sequence + i, new Date(Date.now() - (READINGS_PER_BATCH - i) * 1000)),
    );
    sequence += READINGS_PER_BATCH;
    for (;;) {
      const sentAt = Date.now();
      const response = await fetch(`${url}/v1/readings`, {
        method: 'POST',
        // A device gives up on an answer that does not come and resends, as firmware would.
        signal: AbortSignal.timeout(20_000),
        headers: { 'content-type': 'application/json', authorization: `Bearer ${device.token}` },
        body: JSON.stringify({ readings }),
      });
      const text = await response.text();
      if (response.status === 200) {
        const body = JSON.parse(text) as { rejected: unknown[] };
        if (body.rejected.length > 0)
          throw new Error(`ingest API rejected simulated readings: ${JSON.stringify(body.rejected.slice(0, 3))}`);
        for (const r of readings) ingest.acknowledged.set(r.readingId, (ingest.acknowledged.get(r.readingId) ?? 0) + 1);
        ingest.acks += 1;
        if (ingest.killedAt !== undefined && sentAt > ingest.killedAt) {
          ingest.firstOkAfterKill ??= Date.now();
          ingest.okAfterKill.add(device.deviceId);
        }
        break;
      }
      if (response.status !== 503 || !response.headers.get('retry-after'))
        throw new Error(`ingest API answered ${response.status} (expected 200, or 503 with Retry-After): ${text}`);
      ingest.unavailable += 1;
      await sleep(RESEND_MS);
    }
  }
  return sequence;
}

/** Row count and a digest of every reading id, so two servers' rows compare exactly. */
const ROWS_DIGEST =
  "SELECT count(*) || ' ' || md5(coalesce(string_agg(reading_id::text, ',' ORDER BY reading_id), '')) FROM telemetry.reading";

export async function runHaDemo(): Promise<number> {
  const started = Date.now();
  const { step, info, finish } = createSteps(9);
  if (process.argv.includes('--keep')) throw new Error('--keep is for the single-node demo; --ha always removes what it started');
  process.stdout.write('PMS Data Platform HA demo — three PostgreSQL members under Patroni, one killed; everything local.\n');
  process.stdout.write('The OpenPGP keys generated below are DEMO-ONLY: they protect no real patient data.\n\n');
  const work = mkdtempSync(join(tmpdir(), 'pms-demo-'));
  chmodSync(work, 0o755);
  const resources: { cluster?: PatroniCluster; recovered?: ThrowawayCluster; api?: ChildProcess; keys: GpgKeyPair[] } = { keys: [] };
  // Run by the finally below and, on Ctrl-C or SIGTERM, by exitWhenDone (the harness's own signal
  // handler stops only Patroni, PostgreSQL and etcd).
  const release = serialized(async () => {
    const { api, recovered, cluster } = resources;
    delete resources.api;
    delete resources.recovered;
    delete resources.cluster;
    if (api) await stopProcess(api);
    await recovered?.destroy().catch(() => undefined);
    await cluster?.stop().catch(() => undefined);
    for (const k of resources.keys.splice(0)) k.remove();
    rmSync(work, { recursive: true, force: true });
  });
  cleanUpOnInterrupt(release);
  try {
    step('Generating demo-only OpenPGP keys (backups, and the servers’ WAL signing key)');
    const key = await generateGpgKeyPair({ name: 'PMS DEMO ONLY key - not for patient data', passphrase: 'demo-only-passphrase' });
    resources.keys.push(key);
    const walKey = await generateGpgKeyPair({ name: 'PMS DEMO ONLY WAL signing key' });
    resources.keys.push(walKey);
    const repo = join(work, 'repository');
    mkdirSync(repo, { mode: 0o700 });
    if (process.getuid?.() === 0) {
      // The servers run as postgres: the members' archive_command writes the repository and signs
      // with the WAL key; the recovered server's restore_command decrypts with the backup key.
      const pgUid = Number((await runTool('id', ['-u', 'postgres'])).stdout.trim());
      chownSync(repo, pgUid, -1);
      chownSync(walKey.privateKeyFile, pgUid, -1);
      chownSync(key.privateKeyFile, pgUid, -1);
      if (key.passphraseFile) chownSync(key.passphraseFile, pgUid, -1);
    }
    const backupEnv: Record<string, string> = {
      BACKUP_REPOSITORY: `file://${repo}`,
      BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
      BACKUP_GPG_KEY_ID: key.fingerprint,
      BACKUP_GPG_PRIVATE_KEY_FILE: key.privateKeyFile,
      BACKUP_GPG_PASSPHRASE_FILE: key.passphraseFile ?? '',
      BACKUP_LOG_DIR: join(work, 'logs'),
      ...signingEnv(key, [key, walKey]),
    };
    const serverEnv = { ...backupEnv, ...signingEnv(walKey, [key, walKey]) };
    info(`work directory ${work}; repository file://${repo}`);

    step('Starting etcd and three Patroni members (strict synchronous mode; every member archives through wal-push)');
    const cluster = await startPatroniCluster({ archiveCommand: archiveCommand(), serverEnv, synchronousModeStrict: true });
    resources.cluster = cluster;
    const roles = await cluster.status();
    info(`cluster files ${cluster.root}`);
    info(roles.map((m) => `${m.name} ${m.role} (port ${cluster.members.find((x) => x.name === m.name)?.port})`).join(', '));
    const first = await cluster.leader();
    await cluster.psql(first, 'CREATE DATABASE patient_telemetry');
    // Every command below is given the three members, as production's would be: writers find the
    // primary themselves, backups prefer a standby.
    const env: Record<string, string> = { ...cluster.postgresEnv, POSTGRES_DB: 'patient_telemetry', ...backupEnv };
    info(`POSTGRES_HOST=${env['POSTGRES_HOST']} POSTGRES_PORT=${env['POSTGRES_PORT']}`);
    await cli('pms-telemetry', ['migrate'], env);
    const devices: DemoDevice[] = [];
    for (const [index, patient] of DEMO_PATIENTS.entries()) {
      const out = JSON.parse(
        await cli('pms-telemetry', ['device', 'register', '--device-id', `watch-${index + 1}`, '--patient-id', patient, '--json'], env),
      ) as { token: string };
      devices.push({ deviceId: `watch-${index + 1}`, patient, token: out.token });
    }
    info(`schema migrated on the primary (${first.name}); ${devices.length} simulated watches registered`);

    step('Starting the ingest API on the three members and streaming readings; base backup from a standby meanwhile');
    const port = await freePort();
    const api = spawn(process.execPath, [binPath('pms-telemetry'), 'serve'], {
      env: {
        PATH: process.env['PATH'],
        ...env,
        TELEMETRY_HOST: '127.0.0.1',
        TELEMETRY_PORT: String(port),
        // Not the default 9464: two demos (or a demo and a real API) may run on one machine.
        TELEMETRY_METRICS_PORT: String(await freePort()),
        TELEMETRY_RATE_LIMIT_PER_MINUTE: '100000',
        TELEMETRY_RATE_LIMIT_BURST: '1000',
        TELEMETRY_STATEMENT_TIMEOUT_MS: '3000',
      },
      stdio: 'ignore',
    });
    resources.api = api;
    const url = `http://127.0.0.1:${port}`;
    await waitFor('the ingest API', async () => (await fetch(`${url}/readyz`)).status === 200);
    info(`ingest API on ${url} (pid ${api.pid}), given every member`);
    const ingest: Ingest = { acknowledged: new Map(), acks: 0, unavailable: 0, okAfterKill: new Set(), stop: false };
    const sequences = new Map<string, number>();
    const load = Promise.all(devices.map(async (d) => sequences.set(d.deviceId, await runDevice(url, d, ingest, 0))));
    // Awaited by stopLoad; a device's failure meanwhile must not count as unhandled.
    load.catch(() => undefined);
    // Whatever way the demo ends, the devices stop first.
    const stopLoad = async () => {
      ingest.stop = true;
      await load;
    };
    try {
      const base = JSON.parse(await cli('pms-backup', ['base-backup', '--json'], env)) as {
        id: string;
        timeline: number;
        startWalSegment: string;
        bytes: { stored: number };
      };
      info(
        `base backup ${base.id} (${(base.bytes.stored / 1e6).toFixed(1)} MB, timeline ${base.timeline}) read from a standby, ingest running`,
      );
      info(`${ingest.acknowledged.size} readings acknowledged so far`);

      await waitFor('readings acknowledged before the kill', async () => ingest.acks >= 4 * devices.length);
      step('Killing the leader’s Patroni and PostgreSQL with SIGKILL mid-ingest');
      const killed = await cluster.killLeader();
      ingest.killedAt = Date.now();
      info(`${killed.member.name} killed with ${ingest.acknowledged.size} readings acknowledged; devices resend on 503`);

      step('Waiting for Patroni to promote the synchronous standby; ingest goes on');
      const promoted = await cluster.waitForNewLeader(killed.member);
      await waitFor('every device to get 200 from the new primary', async () => ingest.okAfterKill.size === devices.length, 90);
      const outageSeconds = ((ingest.firstOkAfterKill ?? Date.now()) - killed.killedAt) / 1000;
      info(
        `${promoted.leader.name} leads; write outage ${outageSeconds.toFixed(1)} s (SIGKILL to the first 200 for a batch sent after it), ${ingest.unavailable} answers 503 with Retry-After`,
      );
      await sleep(2000);
      await stopLoad();
      const newLeader: PatroniMember = promoted.leader;
      const timeline = Number(await cluster.psql(newLeader, 'SELECT timeline_id FROM pg_control_checkpoint()'));
      info(`${ingest.acknowledged.size} readings acknowledged in total; the new primary writes timeline ${timeline}`);

      step('Marking a recovery target after the failover, then more readings (the PITR must not have these)');
      const atTarget = await cluster.psql(newLeader, ROWS_DIGEST, 'patient_telemetry');
      await sleep(1100);
      const targetTime = new Date().toISOString();
      await sleep(1100);
      ingest.stop = false;
      await Promise.all(devices.map((d) => runDevice(url, d, ingest, sequences.get(d.deviceId) ?? 0, 2)));
      const walName = await cluster.psql(newLeader, 'SELECT pg_walfile_name(pg_current_wal_lsn()) FROM pg_switch_wal()');
      await waitFor(
        `${walName} to be archived`,
        async () => (await cluster.psql(newLeader, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")) >= walName,
        180,
      ).catch(async (error: Error) => {
        throw new Error(`${error.message}\n${await cluster.describeArchiver(newLeader)}`);
      });
      info(`target ${targetTime}: ${atTarget.split(' ')[0]} readings stored by then; WAL archived up to ${walName}`);

      step('Checking the archive’s continuity across the timelines');
      const history = readFileSync(
        join(newLeader.dataDir, 'pg_wal', `${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`),
        'utf8',
      );
      const switchLsn = new RegExp(`^${timeline - 1}\\s+([0-9A-F]+/[0-9A-F]+)`, 'm').exec(history)?.[1];
      const continuity = checkContinuity(
        await archivedWalNames(new FsStorage(repo)),
        base.startWalSegment,
        new Map(switchLsn ? [[timeline, switchLsn]] : []),
      );
      for (const t of continuity.timelines)
        info(`timeline ${t.timeline}: ${t.first} … ${t.last}${t.history ? '' : ' (no .history archived)'}`);
      for (const p of continuity.problems) info(`gap: ${p}`);

      step('Point-in-time recovery to the target from the base backup taken before the failover');
      const recovered = await recoverToTarget({
        work,
        targetTime,
        env,
        serverEnv: backupEnv,
        onStarted: (c) => (resources.recovered = c),
      });
      const restored = await recovered.psql(ROWS_DIGEST, 'patient_telemetry');
      info(`recovered server: ${restored.split(' ')[0]} readings`);

      step('Comparing what the devices were told with what was stored and restored');
      const storedIds = (await cluster.psql(newLeader, 'SELECT reading_id FROM telemetry.reading', 'patient_telemetry'))
        .split('\n')
        .filter(Boolean);
      const stored = new Set(storedIds);
      const lost = [...ingest.acknowledged.keys()].filter((id) => !stored.has(id)).length;
      const unacknowledged = [...stored].filter((id) => !ingest.acknowledged.has(id)).length;
      const twice = storedIds.length - stored.size;
      const resent = [...ingest.acknowledged.values()].filter((n) => n > 1).length;
      const acknowledged = ingest.acknowledged.size;
      const checks: Array<[string, boolean]> = [
        [
          `acknowledged ${acknowledged} = stored ${storedIds.length}: ${lost} lost, ${twice} stored twice, ${unacknowledged} stored but never acknowledged`,
          lost === 0 && twice === 0 && unacknowledged === 0 && acknowledged === storedIds.length,
        ],
        [`the API answered 503 with Retry-After during the failover (${ingest.unavailable}) and 200 after it`, ingest.unavailable > 0],
        [`write outage ${outageSeconds.toFixed(1)} s ≤ 30 s`, outageSeconds <= 30],
        [
          `PITR to after the failover: ${restored.split(' ')[0]} rows = ${atTarget.split(' ')[0]} committed by then, same reading ids`,
          restored === atTarget,
        ],
        [
          `archive continuous from the base backup across timelines ${continuity.timelines.map((t) => t.timeline).join(' → ')}`,
          continuity.ok && continuity.timelines.length >= 2,
        ],
      ];
      for (const [text, ok] of checks) info(`${ok ? 'ok  ' : 'FAIL'} ${text}`);
      if (resent > 0) info(`${resent} readings were acknowledged twice (a resend after a lost answer): stored once`);
      const ok = checks.every(([, passed]) => passed);
      finish();
      const seconds = ((Date.now() - started) / 1000).toFixed(0);
      process.stdout.write(
        ok
          ? `PMS HA demo OK in ${seconds} s: ${acknowledged} readings acknowledged = ${storedIds.length} stored, each once, across a failover (${killed.member.name} SIGKILLed, ${newLeader.name} promoted, write outage ${outageSeconds.toFixed(1)} s); PITR after the failover from a base backup before it: ${restored.split(' ')[0]} rows = ${atTarget.split(' ')[0]} committed by then\n`
          : `PMS HA demo FAILED in ${seconds} s: data was lost or a check failed (see FAIL lines above)\n`,
      );
      return ok ? 0 : 1;
    } finally {
      await stopLoad().catch(() => undefined);
    }
  } finally {
    await release();
  }
}
