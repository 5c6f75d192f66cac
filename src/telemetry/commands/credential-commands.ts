import { loadTelemetryConfig } from '../../config/telemetry-config.js';
import { usingClient } from '../../postgres/connect.js';
import { registerDevice, revokeDevice } from '../devices/device-registry.js';
import { registerReader, revokeReader } from '../readers/reader-registry.js';
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

export async function runReaderRegister(options: { name: string; json?: boolean }): Promise<void> {
  const config = loadTelemetryConfig(process.env);
  const reader = await usingClient(config.postgres, (client) => registerReader(client, options.name), connectOptions);
  printResult(
    options.json,
    { name: reader.name, token: reader.token },
    `reader ${reader.name} registered; its token (shown only now):\n${reader.token}`,
  );
}

export async function runReaderRevoke(name: string, options: { json?: boolean }): Promise<void> {
  const config = loadTelemetryConfig(process.env);
  const result = await usingClient(config.postgres, (client) => revokeReader(client, name), connectOptions);
  printResult(options.json, { ok: true, ...result }, `reader ${result.name} revoked at ${result.revokedAt}`);
}
