import { loadTelemetryConfig } from '../../config/telemetry-config.js';
import { usingClient } from '../../postgres/connect.js';
import { registerDevice, revokeDevice } from '../devices/device-registry.js';
import { listReaders, registerReader, revokeReader, setReaderScope } from '../readers/reader-registry.js';
import { type ReaderScope, describeScope, parseReaderScope } from '../readers/reader-scope.js';
import { printResult } from './output.js';

const connectOptions = { applicationName: 'pms-telemetry admin' };

/** The token is printed once, on stdout only (never logged); the database keeps its hash. */
export async function runDeviceRegister(options: { deviceId: string; patientId: string; json?: boolean }): Promise<void> {
  const config = loadTelemetryConfig(process.env);
  const device = await usingClient(
    config.postgres,
    (client) => registerDevice(client, options.deviceId, options.patientId),
    connectOptions,
  );
  printResult(
    options.json,
    { deviceId: device.deviceId, patientId: device.patientId, token: device.token },
    `device ${device.deviceId} registered; its token (shown only now, store it on the device):\n${device.token}`,
  );
}

export async function runDeviceRevoke(deviceId: string, options: { json?: boolean }): Promise<void> {
  const config = loadTelemetryConfig(process.env);
  const result = await usingClient(config.postgres, (client) => revokeDevice(client, deviceId), connectOptions);
  printResult(options.json, { ok: true, ...result }, `device ${result.deviceId} revoked at ${result.revokedAt}`);
}

export interface ReaderScopeOptions {
  patient?: string[];
  allPatients?: boolean;
  json?: boolean;
}

export async function runReaderRegister(options: ReaderScopeOptions & { name: string }): Promise<void> {
  const scope = parseReaderScope(options);
  const config = loadTelemetryConfig(process.env);
  const reader = await usingClient(config.postgres, (client) => registerReader(client, options.name, scope), connectOptions);
  printResult(
    options.json,
    { name: reader.name, token: reader.token, scope: scopeJson(reader.scope) },
    `reader ${reader.name} registered for ${describeScope(reader.scope)}; its token (shown only now):\n${reader.token}`,
  );
}

/** Replaces a reader's scope; the token is unchanged (and starts working again if it was unscoped). */
export async function runReaderScope(name: string, options: ReaderScopeOptions): Promise<void> {
  const scope = parseReaderScope(options);
  const config = loadTelemetryConfig(process.env);
  const result = await usingClient(config.postgres, (client) => setReaderScope(client, name, scope), connectOptions);
  printResult(
    options.json,
    { ok: true, name: result.name, scope: scopeJson(result.scope) },
    `reader ${result.name} may now read ${describeScope(result.scope)}`,
  );
}

export async function runReaderList(options: { json?: boolean }): Promise<void> {
  const config = loadTelemetryConfig(process.env);
  const readers = await usingClient(config.postgres, (client) => listReaders(client), connectOptions);
  const lines = readers.map((r) => {
    const scope =
      r.scope === 'unscoped'
        ? 'UNSCOPED (refused until: reader scope NAME ...)'
        : r.scope.allPatients
          ? 'all patients'
          : `patients ${r.scope.patients.join(' ')}`;
    return `${r.name}\t${r.revokedAt ? `revoked ${r.revokedAt}` : 'active'}\t${scope}`;
  });
  printResult(
    options.json,
    { readers: readers.map((r) => ({ ...r, scope: r.scope === 'unscoped' ? 'unscoped' : scopeJson(r.scope) })) },
    lines.join('\n') || 'no readers registered',
  );
}

function scopeJson(scope: ReaderScope): Record<string, unknown> {
  return scope.allPatients ? { allPatients: true } : { allPatients: false, patients: scope.patients };
}

export async function runReaderRevoke(name: string, options: { json?: boolean }): Promise<void> {
  const config = loadTelemetryConfig(process.env);
  const result = await usingClient(config.postgres, (client) => revokeReader(client, name), connectOptions);
  printResult(options.json, { ok: true, ...result }, `reader ${result.name} revoked at ${result.revokedAt}`);
}
