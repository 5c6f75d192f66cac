import { Command } from 'commander';
import { describeExitCodes } from '../errors/catalogue.js';
import { action } from './exit-boundary.js';
import { dryRunOption, jsonOption } from './fragments.js';

const ENVIRONMENT_HELP = `
Configuration (environment; POSTGRES_PASSWORD may instead be given as POSTGRES_PASSWORD_FILE):
  POSTGRES_HOST (localhost)  POSTGRES_PORT (5432)  POSTGRES_DB (patient_telemetry)
  POSTGRES_USER  POSTGRES_PASSWORD  POSTGRES_SSLMODE (prefer)  POSTGRES_SSLROOTCERT
  TELEMETRY_HOST (0.0.0.0)  TELEMETRY_PORT (8080)
  TELEMETRY_RETENTION_DAYS (never; at least 31)   TELEMETRY_PARTITIONS_AHEAD_MONTHS (3)
  TELEMETRY_RATE_LIMIT_PER_MINUTE (120)  TELEMETRY_RATE_LIMIT_BURST (20)   per device
  TELEMETRY_BODY_LIMIT_BYTES (1048576)   TELEMETRY_MAX_BATCH_READINGS (1000)
  TELEMETRY_POOL_MAX (10)  TELEMETRY_STATEMENT_TIMEOUT_MS (10000)  TELEMETRY_SHUTDOWN_TIMEOUT_MS (25000)
  TELEMETRY_LOG_LEVEL (info)

${describeExitCodes()}
`;

// Command modules are imported lazily so `--help` stays instant (changesets' habit).
export function buildProgram(): Command {
  const program = new Command('pms-telemetry')
    .description('Telemetry store and ingest API for patients’ wearable devices')
    .version(process.env['npm_package_version'] ?? '0.1.0')
    .showHelpAfterError()
    .exitOverride()
    .addHelpText('after', ENVIRONMENT_HELP);

  program
    .command('migrate')
    .description('create or upgrade the telemetry schema, roles and upcoming partitions (idempotent, safe to run from several replicas)')
    .addOption(jsonOption())
    .action(
      action(async (options: { json?: boolean }) => {
        const { runMigrate } = await import('../telemetry/commands/migrate-command.js');
        return runMigrate(options);
      }),
    );

  const device = program.command('device').description('register and revoke wearable devices').exitOverride();
  device
    .command('register')
    .description('bind a device to one patient and print its token once (only a hash is stored)')
    .requiredOption('--device-id <id>', 'the device’s id (letters, digits, . _ : -)')
    .requiredOption('--patient-id <nhs-number>', 'the patient’s NHS number (Modulus 11 checked)')
    .addOption(jsonOption())
    .action(
      action(async (options: { deviceId: string; patientId: string; json?: boolean }) => {
        const { runDeviceRegister } = await import('../telemetry/commands/credential-commands.js');
        return runDeviceRegister(options);
      }),
    );
  device
    .command('revoke')
    .description('disable a device: its token is refused from the next request on')
    .argument('<device-id>')
    .addOption(jsonOption())
    .action(
      action(async (deviceId: string, options: { json?: boolean }) => {
        const { runDeviceRevoke } = await import('../telemetry/commands/credential-commands.js');
        return runDeviceRevoke(deviceId, options);
      }),
    );

  const reader = program.command('reader').description('register and revoke clinical systems that read readings').exitOverride();
  reader
    .command('register')
    .description('issue a reader token for GET /v1/patients/{nhsNumber}/readings (printed once)')
    .requiredOption('--name <name>', 'the clinical system’s name')
    .addOption(jsonOption())
    .action(
      action(async (options: { name: string; json?: boolean }) => {
        const { runReaderRegister } = await import('../telemetry/commands/credential-commands.js');
        return runReaderRegister(options);
      }),
    );
  reader
    .command('revoke')
    .description('disable a reader token')
    .argument('<name>')
    .addOption(jsonOption())
    .action(
      action(async (name: string, options: { json?: boolean }) => {
        const { runReaderRevoke } = await import('../telemetry/commands/credential-commands.js');
        return runReaderRevoke(name, options);
      }),
    );

  program
    .command('serve')
    .description(
      'run the ingest API (POST /v1/readings, POST /fhir/Bundle, GET /v1/patients/{nhsNumber}/readings, /healthz, /readyz, /metrics)',
    )
    .action(
      action(async () => {
        const { runServe } = await import('../telemetry/commands/serve-command.js');
        return runServe();
      }),
    );

  program
    .command('retention')
    .description('create upcoming partitions and drop partitions older than TELEMETRY_RETENTION_DAYS (default: never drop)')
    .addOption(dryRunOption())
    .addOption(jsonOption())
    .action(
      action(async (options: { dryRun?: boolean; json?: boolean }) => {
        const { runRetention } = await import('../telemetry/commands/retention-command.js');
        return runRetention(options);
      }),
    );

  return program;
}

try {
  await buildProgram().parseAsync(process.argv);
} catch (error) {
  const { reportAndExit } = await import('./exit-boundary.js');
  reportAndExit(error, { json: process.argv.includes('--json') });
}
