import { readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PostgresConfig } from '../../../config/postgres-config.js';
import { quoteIdent, usingClient } from '../../../postgres/connect.js';

/** Restores write into `<target>__restoring_<hex>` first (staging-database.ts). */
export const STAGING_NAME = /__restoring_[0-9a-f]{6}$/;
/** Throwaway servers (verify, tests, demo) and verify's WAL feed, in the temporary directory. */
const THROWAWAY_DIR = /^pms-(pg|walfeed)-[A-Za-z0-9]{6}$/;
/** A staging database nobody is connected to and at least this old is left over, not in progress. */
const QUIET_MS = 5 * 60_000;

export interface StagingDatabase {
  readonly kind: 'staging-database';
  readonly name: string;
  /** From the database's comment (set when it was created); undefined for one made before that. */
  readonly createdAt: string | undefined;
  readonly ageSeconds: number | undefined;
  readonly sessions: number;
  readonly orphaned: boolean;
}

export interface ThrowawayDirectory {
  readonly kind: 'throwaway-directory';
  readonly path: string;
  readonly modifiedAt: string;
  readonly ageSeconds: number;
  /** The postmaster named in its postmaster.pid still runs (on this host): in use. */
  readonly running: boolean;
  readonly orphaned: boolean;
}

export type Leftover = StagingDatabase | ThrowawayDirectory;

/** The comment a staging database carries, so that a leftover can tell its age and origin. */
export function stagingComment(now: Date): string {
  return `pms-backup restore staging database, created ${now.toISOString()} on ${hostname()} by pid ${process.pid}; dropped when the restore ends`;
}

/**
 * Staging databases of restores: with their age and whether a session is connected. A restore
 * killed with SIGKILL (an OOM kill) cannot drop its own, and it holds partial patient data.
 */
export async function findStagingDatabases(postgres: PostgresConfig, now = new Date()): Promise<StagingDatabase[]> {
  return usingClient({ ...postgres, database: 'postgres' }, async (client) => {
    const { rows } = await client.query<{ datname: string; comment: string | null; sessions: string }>(
      `SELECT d.datname, pg_catalog.shobj_description(d.oid, 'pg_database') AS comment,
              (SELECT count(*) FROM pg_catalog.pg_stat_activity a WHERE a.datid = d.oid) AS sessions
         FROM pg_catalog.pg_database d ORDER BY d.datname`,
    );
    return rows
      .filter((r) => STAGING_NAME.test(r.datname))
      .map((r) => {
        const createdAt = /created (\S+Z) on /.exec(r.comment ?? '')?.[1];
        const ageMs = createdAt ? now.getTime() - Date.parse(createdAt) : undefined;
        const sessions = Number(r.sessions);
        return {
          kind: 'staging-database' as const,
          name: r.datname,
          createdAt,
          ageSeconds: ageMs === undefined ? undefined : Math.round(ageMs / 1000),
          sessions,
          orphaned: sessions === 0 && (ageMs === undefined || ageMs >= QUIET_MS),
        };
      });
  });
}

/** Throwaway server and WAL feed directories in `dir` (the temporary directory by default). */
export function findThrowawayDirectories(dir = tmpdir(), now = new Date()): ThrowawayDirectory[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((name) => THROWAWAY_DIR.test(name))
    .flatMap((name) => {
      const path = join(dir, name);
      try {
        const stat = statSync(path);
        if (!stat.isDirectory()) return [];
        const running = postmasterRuns(join(path, 'data', 'postmaster.pid'));
        const ageMs = now.getTime() - stat.mtimeMs;
        return [
          {
            kind: 'throwaway-directory' as const,
            path,
            modifiedAt: stat.mtime.toISOString(),
            ageSeconds: Math.round(ageMs / 1000),
            running,
            orphaned: !running && ageMs >= QUIET_MS,
          },
        ];
      } catch {
        return [];
      }
    });
}

function postmasterRuns(pidFile: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  } catch {
    return false;
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function describeLeftover(leftover: Leftover): string {
  const age = leftover.ageSeconds === undefined ? 'age unknown' : `${formatAge(leftover.ageSeconds)} old`;
  return leftover.kind === 'staging-database'
    ? `staging database ${leftover.name} (${age}, ${leftover.sessions} session(s)${leftover.orphaned ? '' : ', in use'})`
    : `throwaway directory ${leftover.path} (${age}${leftover.running ? ', server running' : ''})`;
}

function formatAge(seconds: number): string {
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86_400)} days`;
}

/** Drops one leftover; the caller decided it is orphaned. */
export async function removeLeftover(postgres: PostgresConfig, leftover: Leftover): Promise<void> {
  if (leftover.kind === 'staging-database') {
    await usingClient({ ...postgres, database: 'postgres' }, (client) =>
      client.query(`DROP DATABASE IF EXISTS ${quoteIdent(leftover.name)} WITH (FORCE)`),
    );
  } else {
    rmSync(leftover.path, { recursive: true, force: true });
  }
}
