import type { PostgresConfig } from '../config/postgres-config.js';
import { PmsError } from '../errors/catalogue.js';
import { findPgProgram } from '../postgres/binaries.js';
import { libpqEnv } from '../postgres/connection-options.js';
import { type ToolProcess, startTool } from '../process/tool-process.js';

export interface BaseBackupProcess extends ToolProcess {
  /** Start/stop points as pg_basebackup reported them; only after `done` resolved. */
  points(): { startLsn: string; stopLsn: string; timeline: number };
}

/**
 * `pg_basebackup -D - -Ft -X none`: the whole cluster as one tar on stdout, without WAL (the
 * archive supplies it; that is what makes a backup usable for any later target time).
 * With -X none the server itself waits for the stop segment to be archived before the backup
 * ends. A cluster with extra tablespaces would need one tar per tablespace and pg_basebackup
 * refuses to write those to stdout; that refusal is passed on as is. --checkpoint=fast: the
 * backup starts now instead of at the next scheduled checkpoint. The server's backup_manifest
 * is injected into the tar, so pg_verifybackup can check an unpacked copy.
 */
export function startBaseBackup(config: PostgresConfig, label: string, signal?: AbortSignal): BaseBackupProcess {
  const program = findPgProgram('pg_basebackup');
  const tool = startTool(program, ['-D', '-', '-F', 'tar', '-X', 'none', '--checkpoint=fast', `--label=${label}`, '--no-password', '--verbose'], {
    env: libpqEnv(config),
    ...(signal ? { signal } : {}),
  });
  let log = '';
  tool.child.stderr?.on('data', (chunk: string) => {
    if (log.length < 64 * 1024) log += chunk;
  });
  return {
    ...tool,
    points() {
      const start = /write-ahead log start point: ([0-9A-F]+\/[0-9A-F]+) on timeline (\d+)/.exec(log);
      const stop = /write-ahead log end point: ([0-9A-F]+\/[0-9A-F]+)/.exec(log);
      if (!start?.[1] || !start[2] || !stop?.[1]) {
        throw new PmsError('PMS_ERR_TOOL_FAILED', `pg_basebackup did not report its start and end points: ${log.trim().split('\n').slice(-4).join(' | ')}`);
      }
      return { startLsn: start[1], stopLsn: stop[1], timeline: Number(start[2]) };
    },
  };
}
