import { loadTelemetryConfig } from '../../config/telemetry-config.js';
import { usingClient } from '../../postgres/connect.js';
import { migrate } from '../schema/migrate.js';
import { printResult } from './output.js';

export async function runMigrate(options: { json?: boolean }): Promise<void> {
  const config = loadTelemetryConfig(process.env);
  const result = await usingClient(config.postgres, (client) => migrate(client, { partitionsAheadMonths: config.partitionsAheadMonths }), {
    applicationName: 'pms-telemetry migrate',
  });
  const human =
    result.applied.length > 0
      ? `applied migration(s) ${result.applied.join(', ')}; schema at version ${result.version}`
      : `schema already at version ${result.version}; nothing to do`;
  printResult(options.json, { ok: true, ...result }, human);
}
