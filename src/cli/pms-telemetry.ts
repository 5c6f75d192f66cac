import { Command } from 'commander';
import { describeExitCodes } from '../errors/catalogue.js';
import { action } from './exit-boundary.js';
import { dryRunOption, jsonOption } from './fragments.js';

const ENVIRONMENT_HELP = `
Configuration (environment; POSTGRES_PASSWORD may instead be given as POSTGRES_PASSWORD_FILE):
  POSTGRES_HOST (localhost)  POSTGRES_PORT (5432)  POSTGRES_DB (patient_telemetry)
  POSTGRES_USER  POSTGRES_PASSWORD  POSTGRES_SSLMODE (verify-full)  POSTGRES_SSLROOTCERT
  TELEMETRY_HOST (0.0.0.0)  TELEMETRY_PORT (8080)  TELEMETRY_METRICS_PORT (9464; /metrics only)
  TELEMETRY_TRUSTED_PROXIES (none; CIDRs whose X-Forwarded-For names the client)
  TELEMETRY_RETENTION_DAYS (never; at least 31)   TELEMETRY_PARTITIONS_AHEAD_MONTHS (3)
  TELEMETRY_RATE_LIMIT_PER_MINUTE (120)  TELEMETRY_RATE_LIMIT_BURST (20)   per device
  TELEMETRY_READER_RATE_LIMIT_PER_MINUTE (300)  TELEMETRY_READER_RATE_LIMIT_BURST (60)   per reader token
  TELEMETRY_BODY_LIMIT_BYTES (1048576)   TELEMETRY_MAX_BATCH_READINGS (1000)
  TELEMETRY_POOL_MAX (10)  TELEMETRY_STATEMENT_TIMEOUT_MS (10000)  TELEMETRY_SHUTDOWN_TIMEOUT_MS (25000)
  TELEMETRY_LOG_LEVEL (info)

${describeExitCodes()}
`;

/** Repeatable options (`--patient A --patient B`) collect into a list. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

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

  const reader = program
    .command('reader')
    .description('register, scope, list and revoke clinical systems that read readings')
    .exitOverride();
  reader
    .command('register')
    .description('issue a reader token for GET /v1/patients/{nhsNumber}/readings, scoped to the given patients or to all (printed once)')
    .requiredOption('--name <name>', 'the clinical system’s name (never reused, so the access trail stays unambiguous)')
    .option('--patient <nhs-number>', 'a patient this reader may read (repeat for more)', collect)
    .option('--all-patients', 'this reader may read every patient (must be explicit)')
    .addOption(jsonOption())
    .addHelpText('after', '\nExactly one of --patient (one or more) or --all-patients is required.')
    .action(
      action(async (options: { name: string; patient?: string[]; allPatients?: boolean; json?: boolean }) => {
        const { runReaderRegister } = await import('../telemetry/commands/credential-commands.js');
        return runReaderRegister(options);
      }),
    );
  reader
    .command('scope')
    .description('replace an active reader’s scope, keeping its token; also re-enables a reader made before scopes existed')
    .argument('<name>')
    .option('--patient <nhs-number>', 'a patient this reader may read (repeat for more)', collect)
    .option('--all-patients', 'this reader may read every patient (must be explicit)')
    .addOption(jsonOption())
    .addHelpText('after', '\nExactly one of --patient (one or more) or --all-patients is required.')
    .action(
      action(async (name: string, options: { patient?: string[]; allPatients?: boolean; json?: boolean }) => {
        const { runReaderScope } = await import('../telemetry/commands/credential-commands.js');
        return runReaderScope(name, options);
      }),
    );
  reader
    .command('list')
    .description('list readers with their scope (UNSCOPED: made before scopes existed, refused until given one)')
    .addOption(jsonOption())
    .action(
      action(async (options: { json?: boolean }) => {
        const { runReaderList } = await import('../telemetry/commands/credential-commands.js');
        return runReaderList(options);
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
    .command('access-log')
    .description('show the reader access trail (who read whose readings, newest first); run as the schema owner (the migrate login)')
    .option('--reader <name>', 'only this reader')
    .option('--patient <nhs-number>', 'only reads of this patient')
    .option('--outcome <outcome>', 'only ok, forbidden (patient outside the scope) or unscoped (reader made before scopes)')
    .option('--since <time>', 'from this date (2025-03-01, UTC) or RFC 3339 date-time, inclusive')
    .option('--until <time>', 'before this date or RFC 3339 date-time, exclusive')
    .option('--limit <n>', 'at most this many entries, 1-100000', '100')
    .addOption(jsonOption())
    .action(
      action(
        async (options: {
          reader?: string;
          patient?: string;
          outcome?: string;
          since?: string;
          until?: string;
          limit?: string;
          json?: boolean;
        }) => {
          const { runAccessLog } = await import('../telemetry/commands/access-log-command.js');
          return runAccessLog(options);
        },
      ),
    );

  program
    .command('serve')
    .description(
      'run the ingest API (POST /v1/readings, POST /fhir/Bundle, GET /v1/patients/{nhsNumber}/readings, /healthz, /readyz) and /metrics on TELEMETRY_METRICS_PORT',
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
