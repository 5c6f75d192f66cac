import { randomBytes } from 'node:crypto';
import type { PostgresConfig } from '../../config/postgres-config.js';
import { PmsError } from '../../errors/catalogue.js';
import { quoteIdent, usingClient } from '../../postgres/connect.js';
import { SQLSTATE } from '../../postgres/sqlstate.js';
import { stagingComment } from './cleanup/leftovers.js';

const VALID_DB_NAME = /^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/;

/**
 * Restores never write into the target name directly: `fill` works on a fresh staging database
 * which becomes the target only if it succeeds, and is dropped otherwise. An existing target is
 * refused up front and again at the rename, so live data is never overwritten.
 */
export async function withStagingDatabase<T>(
  postgres: PostgresConfig,
  targetDb: string,
  fill: (staging: string) => Promise<T>,
): Promise<T> {
  if (!VALID_DB_NAME.test(targetDb)) {
    throw new PmsError(
      'PMS_ERR_USAGE',
      `--target-db ${JSON.stringify(targetDb)} is not a valid database name (letters, digits, _ $ -; at most 63 characters)`,
    );
  }
  const admin = { ...postgres, database: 'postgres' };
  const staging = `${targetDb.slice(0, 40)}__restoring_${randomBytes(3).toString('hex')}`;
  await usingClient(admin, async (client) => {
    const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [targetDb]);
    if (exists.rowCount)
      throw new PmsError(
        'PMS_ERR_TARGET_EXISTS',
        `database ${targetDb} already exists on ${postgres.host}:${postgres.port}: restore never overwrites; choose another --target-db`,
      );
    await client.query(`CREATE DATABASE ${quoteIdent(staging)} TEMPLATE template0`);
    // Its age and origin, for doctor and restore --cleanup should this process die (SIGKILL).
    await client.query(`COMMENT ON DATABASE ${quoteIdent(staging)} IS ${quoteLiteral(stagingComment(new Date()))}`);
  });
  let renamed = false;
  try {
    const result = await fill(staging);
    await usingClient(admin, async (client) => {
      await client.query(`ALTER DATABASE ${quoteIdent(staging)} RENAME TO ${quoteIdent(targetDb)}`).catch((error: unknown) => {
        if ((error as { code?: string }).code === SQLSTATE.duplicateDatabase) {
          throw new PmsError(
            'PMS_ERR_TARGET_EXISTS',
            `database ${targetDb} was created by someone else while restoring; the restore was discarded`,
          );
        }
        throw error;
      });
    });
    renamed = true;
    return result;
  } finally {
    if (!renamed) {
      await usingClient(admin, (client) => client.query(`DROP DATABASE IF EXISTS ${quoteIdent(staging)} WITH (FORCE)`)).catch(
        () => undefined,
      );
    }
  }
}

function quoteLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}
