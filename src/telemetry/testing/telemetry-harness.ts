import { Writable } from 'node:stream';
import pg from 'pg';
import { type TelemetryConfig, loadTelemetryConfig } from '../../config/telemetry-config.js';
import { type ThrowawayCluster, startThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { pgClientConfig } from '../../postgres/connection-options.js';
import { registerDevice } from '../devices/device-registry.js';
import { migrate } from '../schema/migrate.js';

/** Valid (Modulus 11) NHS numbers from the NHS test range 999 xxx xxxx, never real patients. */
export const PATIENT_A = '9990000018';
export const PATIENT_B = '9990000026';

export interface TelemetryTestDb {
  readonly cluster: ThrowawayCluster;
  /** POSTGRES_* for the superuser (migrate, admin commands). */
  readonly env: Record<string, string>;
  /** POSTGRES_* for a login role that has only pms_telemetry_ingest, as serve runs in production. */
  readonly ingestEnv: Record<string, string>;
  config(extra?: Record<string, string>): TelemetryConfig;
  ingestConfig(extra?: Record<string, string>): TelemetryConfig;
  /** Superuser pool for assertions. */
  readonly admin: pg.Pool;
  registerDevice(deviceId: string, patient: string): Promise<string>;
  destroy(): Promise<void>;
}

/**
 * A throwaway PostgreSQL with the telemetry schema migrated; one per test file. `settings` go to
 * postgresql.conf (e.g. shared_preload_libraries for a test that counts statements).
 */
export async function startTelemetryTestDb(options: { settings?: Readonly<Record<string, string>> } = {}): Promise<TelemetryTestDb> {
  const cluster = await startThrowawayCluster(options.settings ? { settings: options.settings } : {});
  let admin: pg.Pool | undefined;
  try {
    await cluster.psql('CREATE DATABASE patient_telemetry');
    const env = { ...cluster.postgresEnv, POSTGRES_DB: 'patient_telemetry' };
    const config = (extra: Record<string, string> = {}) => loadTelemetryConfig({ ...env, ...extra });
    admin = new pg.Pool({ ...pgClientConfig(config().postgres), max: 4 });
    admin.on('error', () => undefined);
    const client = await admin.connect();
    try {
      await migrate(client, { partitionsAheadMonths: 2 });
    } finally {
      client.release();
    }
    await admin.query('CREATE ROLE telemetry_service LOGIN IN ROLE pms_telemetry_ingest');
    const ingestEnv = { ...env, POSTGRES_USER: 'telemetry_service' };
    const pool = admin;
    return {
      cluster,
      env,
      ingestEnv,
      config,
      ingestConfig: (extra: Record<string, string> = {}) => loadTelemetryConfig({ ...ingestEnv, ...extra }),
      admin: pool,
      async registerDevice(deviceId, patient) {
        return (await registerDevice(pool, deviceId, patient)).token;
      },
      async destroy() {
        await pool.end().catch(() => undefined);
        await cluster.destroy();
      },
    };
  } catch (error) {
    await admin?.end().catch(() => undefined);
    await cluster.destroy();
    throw error;
  }
}

/** Collects JSON log lines so a test can assert what was (not) logged. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    callback();
  }
  text(): string {
    return this.lines.join('\n');
  }
}

/** A reading in the /v1 shape, measured `agoMs` before now. */
export function heartRate(readingId: string, value = 72, agoMs = 60_000): Record<string, unknown> {
  return { readingId, code: '8867-4', value, unit: '/min', measuredAt: new Date(Date.now() - agoMs).toISOString() };
}
