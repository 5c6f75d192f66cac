import { Command, Option } from 'commander';
import { describeExitCodes } from '../errors/catalogue.js';
import { action } from './exit-boundary.js';
import { dryRunOption, jsonOption } from './fragments.js';
import { registerWalCommands } from './wal-commands.js';

/**
 * The help text after the command list. The "Environment:" section comes from the settings
 * table, which imports zod; it is loaded only when help is asked for, so wal-push (PostgreSQL's
 * archive_command, once per segment) does not pay for it. Help shown after a usage error points
 * to `--help` instead.
 */
function afterHelp(environment: string | undefined): string {
  return `\n${environment ?? 'Environment: pms-backup --help lists every variable.'}\n\n${describeExitCodes()}\n`;
}

function asksForHelp(args: readonly string[]): boolean {
  return args.length === 0 || args[0] === 'help' || args.includes('--help') || args.includes('-h');
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

// Command modules are imported lazily so `--help` stays instant (changesets' habit).
export function buildProgram(environmentHelp?: string): Command {
  const program = new Command('pms-backup')
    .description('Encrypted, verified PostgreSQL backups for the PMS telemetry database')
    .version(process.env['npm_package_version'] ?? '0.1.0')
    .showHelpAfterError()
    .exitOverride()
    .addHelpText('after', afterHelp(environmentHelp));

  program
    .command('create')
    .description('dump the database (pg_dump → zstd → OpenPGP) into the repository and write its manifest')
    .addOption(jsonOption())
    .action(
      action(async (options: { json?: boolean }) => {
        const { runCreate } = await import('../commands/create/create-command.js');
        return runCreate(options);
      }),
    );

  program
    .command('list')
    .description('list backups, newest first; a backup without a manifest is incomplete and never restorable')
    .addOption(jsonOption())
    .action(
      action(async (options: { json?: boolean }) => {
        const { runList } = await import('../commands/list/list-command.js');
        return runList(options);
      }),
    );

  program
    .command('restore')
    .description(
      'restore a logical backup into a NEW database (refuses an existing one; checks sha256, OpenPGP integrity and row counts), or with --pitr a base backup + WAL into a data directory, to a moment',
    )
    .argument('[id]', 'logical backup id, or "latest" for the newest complete one')
    .option('--target-db <name>', 'database to create and restore into (logical restore)')
    .addOption(
      new Option('--table <schema.table>', 'restore only this table (repeatable); partitions of a partitioned table come with it')
        .argParser(collect)
        .default([]),
    )
    .addOption(new Option('--patient <nhs-number>', "restore only this patient's telemetry rows and device rows").conflicts('table'))
    .addOption(new Option('--no-owner', 'do not restore ownership and grants (target server lacks the original roles)'))
    .option('--pitr', 'point-in-time recovery: unpack a base backup into --pgdata and configure recovery from the WAL archive')
    .option(
      '--target-time <time>',
      'with --pitr: RFC 3339 time to recover to (e.g. 2026-11-23T14:06:00Z), or "latest" for the end of the archive',
    )
    .option('--pgdata <dir>', 'with --pitr: data directory to create (refused if not empty)')
    .option('--base <id>', 'with --pitr: base backup to start from (default: the newest that finished before the target time)')
    .option('--allow-unsigned', 'accept a backup made before signing (it carries no signature at all); loud warning, audited')
    .option(
      '--cleanup',
      'find what killed restores or verifies left behind (staging databases, throwaway directories), show their age, remove them after confirmation',
    )
    .option('--yes', 'with --cleanup: do not ask for confirmation')
    .addOption(jsonOption())
    .action(
      action(
        async (
          id: string | undefined,
          options: {
            json?: boolean;
            targetDb?: string;
            owner?: boolean;
            table: string[];
            patient?: string;
            pitr?: boolean;
            targetTime?: string;
            pgdata?: string;
            base?: string;
            allowUnsigned?: boolean;
            cleanup?: boolean;
            yes?: boolean;
          },
        ) => {
          const { planRestore } = await import('../commands/restore/restore-options.js');
          const plan = planRestore(id, options);
          if (plan.kind === 'cleanup') {
            const { runCleanup } = await import('../commands/restore/cleanup/cleanup-command.js');
            return runCleanup(plan);
          }
          if (plan.kind === 'pitr') {
            const { runPitrRestore } = await import('../commands/restore/pitr/restore-pitr-command.js');
            return runPitrRestore(plan);
          }
          const { runRestore } = await import('../commands/restore/restore-command.js');
          return runRestore(plan.id, plan);
        },
      ),
    );

  registerWalCommands(program);

  program
    .command('verify')
    .description(
      'restore a backup into a throwaway PostgreSQL (logical: compare row counts; base: recover to the end of the WAL archive), run amcheck, store the result; exit 0 only if every check passes',
    )
    .argument('[id]', 'backup id (logical or base), or "latest"', 'latest')
    .addOption(
      new Option(
        '--kind <kind>',
        'which kind "latest" means: logical (restore + row counts) or base (recover base backup + WAL to the end of the archive)',
      )
        .choices(['logical', 'base'])
        .default('logical'),
    )
    .option('--allow-unsigned', 'accept a backup made before signing (no signature at all); loud warning, audited')
    .addOption(jsonOption())
    .action(
      action(async (id: string, options: { json?: boolean; kind?: 'logical' | 'base'; allowUnsigned?: boolean }) => {
        const { runVerify } = await import('../commands/verify/verify-command.js');
        return runVerify(id, options);
      }),
    );

  program
    .command('verify-server')
    .description(
      "the verify pod's sidecar: run a throwaway PostgreSQL as this container's uid, holding no secret, on a Unix socket in --socket-dir, for verify in the other container to restore into (until SIGTERM)",
    )
    .option('--socket-dir <dir>', 'directory shared with verify (default: $BACKUP_VERIFY_SERVER_SOCKET_DIR)')
    .addOption(
      new Option('--client-user <user>', "verify's OS user (name or uid) admitted by peer authentication (repeatable)")
        .argParser(collect)
        .default([]),
    )
    .option('--major <version>', "PostgreSQL major version to run (the dumps')", '15')
    .addOption(jsonOption())
    .action(
      action(async (options: { socketDir?: string; clientUser: string[]; major: string; json?: boolean }) => {
        const { runVerifyServer } = await import('../commands/verify-server/verify-server-command.js');
        return runVerifyServer(options);
      }),
    );

  program
    .command('monitor')
    .description(
      'check the alert conditions (age, size deviation, repository, key expiry, verification); writes $BACKUP_LOG_DIR/backup_monitoring_YYYYMMDD.json; non-zero if any fails',
    )
    .addOption(jsonOption())
    .action(
      action(async (options: { json?: boolean }) => {
        const { runMonitor } = await import('../commands/monitor/monitor-command.js');
        return runMonitor(options);
      }),
    );

  program
    .command('report')
    .description(
      "the month's evidence for auditors and the monthly review as one self-contained HTML page (inline SVG charts, loads nothing): backups, WAL and PITR coverage (RPO), verifications and restores (RTO), key expiry, untrusted or failed objects, audit chain; read-only",
    )
    .option('--month <YYYY-MM>', 'calendar month in UTC (default: the current month)')
    .option('--out <file>', 'where to write the HTML page (default: ./report-YYYY-MM.html)')
    .addOption(new Option('--json', 'print the same data as JSON on stdout (docs/report.md); with --out also writes the page'))
    .action(
      action(async (options: { month?: string; out?: string; json?: boolean }) => {
        const { runReport } = await import('../commands/report/report-command.js');
        return runReport(options);
      }),
    );

  program
    .command('prune')
    .description(
      'delete backups older than BACKUP_RETENTION_DAYS (never the newest complete or newest verified) and incomplete leftovers older than 24 h',
    )
    .addOption(dryRunOption())
    .addOption(jsonOption())
    .action(
      action(async (options: { json?: boolean; dryRun?: boolean }) => {
        const { runPrune } = await import('../commands/prune/prune-command.js');
        return runPrune(options);
      }),
    );

  program
    .command('keys')
    .description('show every configured public and private key: fingerprint, algorithm, size, expiry')
    .addOption(jsonOption())
    .action(
      action(async (options: { json?: boolean }) => {
        const { runKeys } = await import('../commands/keys/keys-command.js');
        return runKeys(options);
      }),
    );

  const audit = program
    .command('audit')
    .description('list the hash-chained audit records kept in the repository')
    .addOption(jsonOption())
    .action(
      action(async (options: { json?: boolean }) => {
        const { runAuditList } = await import('../commands/audit/audit-command.js');
        return runAuditList(options);
      }),
    );
  audit
    .command('verify')
    .description(
      'check the audit chain: every record signed by a trusted key, in place, chained, none missing; exit 4 naming the first deleted, inserted, edited or moved record',
    )
    .addOption(jsonOption())
    .option(
      '--anchor <seq:hash>',
      "a head seen outside the repository (noted from an earlier run, or monitor's pms_backup_audit_head_info): fail if the log is behind it or differs at it",
    )
    .option('--allow-unsigned', 'accept a log that has no signed record yet (written before signing); loud warning')
    .action(
      action(async (options: { json?: boolean; anchor?: string; allowUnsigned?: boolean }) => {
        const { runAuditVerify } = await import('../commands/audit/audit-command.js');
        // `audit verify --json`: commander may hand --json to the parent command.
        return runAuditVerify({
          json: options.json === true || audit.opts<{ json?: boolean }>().json === true,
          ...(options.anchor !== undefined ? { anchor: options.anchor } : {}),
          ...(options.allowUnsigned ? { allowUnsigned: true } : {}),
        });
      }),
    );

  program
    .command('copy')
    .description(
      "copy every complete trusted backup and sealed WAL file missing from a second (disaster-recovery) repository, checking each copy's sha256; WAL without a trusted seal is refused and listed (exit 4); safe to re-run and to interrupt",
    )
    .option(
      '--to <url>',
      's3://bucket/prefix or file:///path (default BACKUP_DR_REPOSITORY); credentials from BACKUP_DR_AWS_*, BACKUP_DR_S3_*',
    )
    .addOption(jsonOption())
    .action(
      action(async (options: { json?: boolean; to?: string }) => {
        const { runCopy } = await import('../commands/copy/copy-command.js');
        return runCopy(options);
      }),
    );

  program
    .command('doctor')
    .description('check config, database, pg_dump version, repository, keys, Pushgateway and tools; one line per check with a fix')
    .addOption(jsonOption())
    .action(
      action(async (options: { json?: boolean }) => {
        const { runDoctorCommand } = await import('../commands/doctor/doctor-command.js');
        return runDoctorCommand(options);
      }),
    );

  return program;
}

try {
  const environmentHelp = asksForHelp(process.argv.slice(2))
    ? (await import('../config/environment-help.js')).describeEnvironment('pms-backup')
    : undefined;
  await buildProgram(environmentHelp).parseAsync(process.argv);
} catch (error) {
  const { reportAndExit } = await import('./exit-boundary.js');
  // wal-fetch runs as restore_command: PostgreSQL reads any status below 126 other than 1 as
  // "not archived" and may promote early, so even a usage error must be fatal (200) there.
  const walFetch = process.argv[2] === 'wal-fetch';
  reportAndExit(error, { json: process.argv.includes('--json'), ...(walFetch ? { exitCode: 200 } : {}) });
}
