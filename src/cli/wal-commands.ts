import { type Command, InvalidArgumentError, Option } from 'commander';
import { action } from './exit-boundary.js';
import { jsonOption } from './fragments.js';

const WAL_PUSH_HELP = `
Meant as PostgreSQL's archive_command, run by the server as its OS user with the BACKUP_* environment:
  archive_mode = on
  archive_command = '/usr/bin/node /opt/pms/bin/pms-backup.js wal-push %p'
(docs/pitr.md shows the shell-first form the deployment uses: a file the background pusher archived
ahead is acknowledged without starting Node, and one it is archiving is waited for in the shell.)
Exits 0 only once the file is durably stored. Re-pushing identical content exits 0; different content
under an archived name fails (PMS_ERR_WAL_CONFLICT) and PostgreSQL keeps retrying and logging it.
While the server runs, a background pusher (one per pg_wal, started by the first call, leaving
when idle) archives every .ready file ahead, --concurrency at once; each call then only waits for
its own file. Nothing is ever dropped: a file that cannot be stored stays .ready and every call
for it fails with the reason. See docs/pitr.md.
`;

/** `wal-push`, `wal-fetch` and `base-backup` for the pms-backup program (issue 5). */
export function registerWalCommands(program: Command): void {
  program
    .command('wal-push')
    .description('archive one WAL file (archive_command): zstd → OpenPGP → repository, plus other .ready files')
    .argument('<path>', '%p: the WAL file, relative to the data directory')
    .addOption(
      new Option('--read-ahead <n>', 'other .ready files archived ahead of PostgreSQL at once (0: only <path>, in this process)')
        .argParser(nonNegativeInt)
        .default(32),
    )
    .addOption(new Option('--concurrency <n>', 'files archived at once').argParser(positiveInt).default(2))
    .option('--no-background', 'archive in this process even when the server runs (no background pusher)')
    .addHelpText('after', WAL_PUSH_HELP)
    .action(
      action(async (path: string, options: { readAhead: number; concurrency: number; background: boolean }) => {
        const { runWalPush } = await import('../commands/wal-push/wal-push-command.js');
        return runWalPush(path, options);
      }),
    );

  // Started by wal-push, detached; not for people (its settings arrive on stdin).
  program
    .command('wal-pusher', { hidden: true })
    .argument('<pg_wal>')
    .addOption(new Option('--read-ahead <n>').argParser(nonNegativeInt).default(32))
    .addOption(new Option('--concurrency <n>').argParser(positiveInt).default(2))
    .action(
      action(async (walDir: string, options: { readAhead: number; concurrency: number }) => {
        const { runPusherCommand } = await import('../commands/wal-push/pusher-command.js');
        return runPusherCommand(walDir, options);
      }),
    );

  program
    .command('wal-fetch')
    .description('fetch one archived WAL file for recovery (restore_command), verified, written atomically')
    .argument('<name>', '%f: the WAL file name PostgreSQL wants')
    .argument('<path>', '%p: where to write it, relative to the data directory')
    .option(
      '--allow-unsigned',
      'also accept WAL archived before signing (no signature at all); a bad or untrusted signature still exits 200',
    )
    .option(
      '--promote-at-end',
      'in a standby (standby.signal), promote the server when a segment is not archived; restore --pitr --target-time latest writes it',
    )
    .addHelpText(
      'after',
      `
Meant as PostgreSQL's restore_command (pms-backup restore --pitr writes it for you):
  restore_command = '/usr/bin/node /opt/pms/bin/pms-backup.js wal-fetch %f %p'
  recovery_end_command = '/usr/bin/node /opt/pms/bin/pms-backup.js wal-prefetch clean'
Each call for a segment also makes sure one background prefetcher fetches, verifies and
decompresses the next BACKUP_WAL_PREFETCH segments into pg_wal/.pms-prefetch, from where later
calls are answered without loading keys or contacting the repository. With --promote-at-end
(restore --pitr --target-time latest), a segment that is not archived also asks the standby to
promote: see docs/pitr.md, "Promotion at the end of the archive".
${WAL_FETCH_EXIT_HELP_TEXT}`,
    )
    .action(
      action(async (name: string, path: string, options: { allowUnsigned?: boolean; promoteAtEnd?: boolean }) => {
        const { runWalFetch } = await import('../commands/wal-fetch/wal-fetch-command.js');
        return runWalFetch(name, path, options);
      }),
    );

  const prefetch = program
    .command('wal-prefetch')
    .description("wal-fetch's background prefetch spool (pg_wal/.pms-prefetch): `clean` is recovery_end_command");
  prefetch
    .command('clean')
    .description('stop the prefetcher and remove the spool of the data directory this runs in (recovery_end_command)')
    .action(
      action(async () => {
        const { runPrefetchClean } = await import('../commands/wal-fetch/prefetch/prefetch-command.js');
        return runPrefetchClean();
      }),
    );
  prefetch
    .command('run', { hidden: true })
    .description('the detached prefetcher wal-fetch starts; reads its configuration from stdin')
    .option('--allow-unsigned', 'as the wal-fetch that started it')
    .action(
      action(async (options: { allowUnsigned?: boolean }) => {
        const { runPrefetchWorker } = await import('../commands/wal-fetch/prefetch/prefetch-command.js');
        return runPrefetchWorker(options);
      }),
    );

  program
    .command('base-backup')
    .description('physical base backup (BASE_BACKUP tar, zstd on the server → OpenPGP → repository); complete once its WAL is archived')
    .addOption(
      new Option('--wal-timeout <seconds>', 'how long to wait for the stop segment to reach the archive')
        .argParser(nonNegativeInt)
        .default(300),
    )
    .addOption(jsonOption())
    .action(
      action(async (options: { json?: boolean; walTimeout: number }) => {
        const { runBaseBackup } = await import('../commands/base-backup/base-backup-command.js');
        return runBaseBackup(options);
      }),
    );
}

// Kept here (not imported from commands/wal-fetch.ts) so `--help` loads no command module.
const WAL_FETCH_EXIT_HELP_TEXT = `
Exit status (restore_command contract):
    0  the file was fetched, verified and written to <path> (temporary file + rename)
    1  the file is not in the archive (PostgreSQL treats this as the end of archived WAL)
  200  anything else: repository unreachable, credentials, key, decryption or integrity
       failure, WAL from a different system; above 125, so PostgreSQL stops recovery
       instead of promoting early onto a wrong timeline
`;

function positiveInt(value: string): number {
  const n = nonNegativeInt(value);
  if (n === 0) throw new InvalidArgumentError('must be at least 1');
  return n;
}

function nonNegativeInt(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`${JSON.stringify(value)} is not a whole number`);
  return Number(value);
}
