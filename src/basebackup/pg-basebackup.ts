import { PmsError } from '../errors/catalogue.js';
import type { PostgresConfig } from '../config/postgres-config.js';
import { findPgProgram } from '../postgres/binaries.js';
import { libpqEnv } from '../postgres/connection-options.js';
import { type ToolProcess, startTool } from '../process/tool-process.js';

/**
 * `pg_basebackup -D - -Ft -X none`: the whole cluster as one tar on stdout, without WAL (the
 * archive supplies it; that is what makes a backup usable for any later target time).
 * With -X none the server itself waits for the stop segment to be archived before the backup
 * ends. A cluster with extra tablespaces would need one tar per tablespace and pg_basebackup
 * refuses to write those to stdout; that refusal is passed on as is. --checkpoint=fast: the
 * backup starts now instead of at the next scheduled checkpoint. The server's backup_manifest
 * is injected into the tar, so pg_verifybackup can check an unpacked copy.
 */
export function startBaseBackup(config: PostgresConfig, label: string, signal?: AbortSignal): ToolProcess {
  const program = findPgProgram('pg_basebackup');
  const tool = startTool(program, ['-D', '-', '-F', 'tar', '-X', 'none', '--checkpoint=fast', `--label=${label}`, '--no-password', '--verbose'], {
    env: libpqEnv(config),
    ...(signal ? { signal } : {}),
  });
  return tool;
}

export interface BackupPoints {
  readonly startLsn: string;
  readonly stopLsn: string;
  readonly timeline: number;
}

/**
 * Start and stop points from the files pg_basebackup puts in the tar: backup_label (START WAL
 * LOCATION, START TIMELINE) and the server's backup_manifest (WAL-Ranges, whose End-LSN is the
 * stop point). With -X none pg_basebackup does not print them. base-backup no longer sees the
 * tar (it goes straight into zstd) and reads the same points from the archived backup history
 * file; tests use this to prove both agree.
 */
export function backupPoints(backupLabel: Buffer | undefined, backupManifest: Buffer | undefined): BackupPoints {
  const label = backupLabel?.toString('utf8') ?? '';
  const start = /^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+)/m.exec(label);
  const timeline = /^START TIMELINE: (\d+)/m.exec(label);
  let ranges: Array<{ Timeline?: number; 'Start-LSN'?: string; 'End-LSN'?: string }> = [];
  try {
    ranges = (JSON.parse(backupManifest?.toString('utf8') ?? '{}') as { 'WAL-Ranges'?: typeof ranges })['WAL-Ranges'] ?? [];
  } catch {
    ranges = [];
  }
  const last = ranges[ranges.length - 1];
  if (!start?.[1] || !timeline?.[1] || !last?.['End-LSN']) {
    throw new PmsError('PMS_ERR_TOOL_FAILED', 'the pg_basebackup tar holds no readable backup_label and backup_manifest WAL range: cannot tell where the backup starts and stops');
  }
  return { startLsn: start[1], stopLsn: last['End-LSN'], timeline: Number(timeline[1]) };
}
