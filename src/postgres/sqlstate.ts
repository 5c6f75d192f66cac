/**
 * The PostgreSQL SQLSTATE codes this program branches on (node-postgres puts them in
 * `error.code`). Named so a reader sees what is being caught without looking the code up; values
 * from PostgreSQL's "Appendix A. PostgreSQL Error Codes", which never change once published.
 */
export const SQLSTATE = Object.freeze({
  /** A second registration of the same device or reader: reported as PMS_ERR_ALREADY_EXISTS. */
  uniqueViolation: '23505',
  /** An insert into a partitioned table with no partition for the row (one was just dropped by retention). */
  checkViolation: '23514',
  /** A write on a server in recovery: the primary it was moved (a failover demoted this one). */
  readOnlySqlTransaction: '25006',
  /** For BASE_BACKUP on a standby: it was promoted while the backup ran. */
  objectNotInPrerequisiteState: '55000',
  /** Wrong password: a credentials problem, not a network one. */
  invalidPassword: '28P01',
  /** No pg_hba.conf line lets this role in (for base-backup: no "replication" line). */
  invalidAuthorizationSpecification: '28000',
  /** The database named by POSTGRES_DB does not exist. */
  invalidCatalogName: '3D000',
  /** The role lacks a privilege, e.g. REPLICATION for BASE_BACKUP. */
  insufficientPrivilege: '42501',
  /** Someone else created the restore's target database while the restore ran. */
  duplicateDatabase: '42P04',
  /** max_connections reached: the server is there but full, so retry later. */
  tooManyConnections: '53300',
  /** A statement cancelled by the server (statement_timeout, pg_cancel_backend): retryable. */
  queryCanceled: '57014',
  /** The server is starting up, shutting down or in crash recovery. */
  cannotConnectNow: '57P03',
} as const);

/**
 * SQLSTATE prefixes: the first two characters are a class, and PostgreSQL groups its own
 * shutdown codes under 57P (57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now,
 * ...). Matching a prefix catches codes a future server version adds to the same group.
 */
export const SQLSTATE_PREFIX = Object.freeze({
  /** Class 08: the connection failed or was lost. */
  connectionException: '08',
  /** Class 53: out of connections, memory or disk on the server. */
  insufficientResources: '53',
  /** PostgreSQL's shutdown and crash-recovery codes (part of class 57, operator intervention). */
  serverShutdown: '57P',
} as const);
