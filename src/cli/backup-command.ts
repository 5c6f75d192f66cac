import { appendAudit, currentActor } from '../repository/audit-log.js';
import { type BackupConfigFor, type ConfigNeeds, loadBackupConfig } from '../config/config.js';
import { type ErrorCode, PmsError, isPmsError } from '../errors/catalogue.js';
import { type LogStream, type Logger, createLogger } from '../logging/json-log.js';
import type { CommandOutcome } from '../metrics/command-outcome.js';
import { type SigningKey, type TrustPolicy, type TrustedSigners, loadSigningKey, loadTrustedSigners } from '../crypto/signing.js';
import { openStorage } from '../storage/open-storage.js';
import { reportInsecureTransportTo } from '../postgres/transport-security.js';
import type { Storage } from '../storage/storage.js';

export interface CommandContext<N extends ConfigNeeds = ConfigNeeds> {
  /** Typed by the command's needs: what they require is present (e.g. keys.publicKeyFile for encryption). */
  readonly config: BackupConfigFor<N>;
  readonly logger: Logger;
  readonly startedAt: Date;
  /**
   * Aborted on the first SIGTERM/SIGINT (Kubernetes' activeDeadlineSeconds, pod eviction):
   * long commands stop their programs and uploads, clean up and still record the failure.
   */
  readonly signal: AbortSignal;
  /** The repository, opened on first use and closed after the command. */
  storage(): Storage;
  /** The signing key (BACKUP_SIGNING_KEY_FILE), loaded and unlocked on first use. */
  signer(): Promise<SigningKey>;
  /** The trusted signers (BACKUP_TRUSTED_SIGNERS_FILE), loaded on first use; allowUnsigned from the command's flag. */
  trust(options?: { allowUnsigned?: boolean }): Promise<TrustPolicy>;
}

/** What a command body reports besides its exit code. */
export interface CommandReport {
  readonly exitCode: number;
  readonly backupId?: string | null;
  /** Facts for the Pushgateway (see metrics/command-outcome.ts). */
  readonly metrics?: Partial<Omit<CommandOutcome, 'command' | 'ok' | 'startedAt' | 'finishedAt'>>;
  /** Safe facts for the audit record and the log (no secrets, no patient data). */
  readonly details?: Readonly<Record<string, unknown>>;
  /** Whether to append an audit record (default true; read-only listings say false). */
  readonly audit?: boolean;
}

export interface CommandSpec<N extends ConfigNeeds = ConfigNeeds> {
  readonly name: string;
  readonly logStream: LogStream;
  readonly needs: N;
  /** The command stops cleanly on `context.signal`; others keep Node's default (exit at once). */
  readonly interruptible?: boolean;
}

/**
 * Runs one pms-backup command with what every command owes the operators: the config parsed
 * once, a JSON log line at start and end, an audit record in the repository (success or
 * failure), and its metrics pushed to the Pushgateway (a failed command still pushes its
 * failure). Errors are rethrown to the CLI's single error boundary.
 */
export async function runBackupCommand<const N extends ConfigNeeds>(
  spec: CommandSpec<N>,
  body: (context: CommandContext<N>) => Promise<CommandReport>,
): Promise<number> {
  const config = loadBackupConfig(process.env, spec.needs);
  const logger = createLogger({
    dir: config.operations.logDir,
    stream: spec.logStream,
    command: spec.name,
    level: config.operations.logLevel,
  });
  reportInsecureTransportTo((message) => logger.warn(message, { sslmode: config.postgres.sslmode, insecure: true }));
  const startedAt = new Date();
  let storage: Storage | undefined;
  let signer: Promise<SigningKey> | undefined;
  let trusted: Promise<TrustedSigners> | undefined;
  const interrupted = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted.signal.aborted) process.exit(130); // a second signal: stop now
    logger.warn(`${signal} received: stopping ${spec.name} and cleaning up`);
    interrupted.abort(new PmsError('PMS_ERR_ABORTED', `${spec.name} was interrupted by ${signal}; nothing it was writing was committed`));
  };
  if (spec.interruptible) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  const context: CommandContext<N> = {
    config,
    logger,
    startedAt,
    signal: interrupted.signal,
    storage() {
      if (!config.repository)
        throw new PmsError(
          'PMS_ERR_CONFIG',
          'BACKUP_REPOSITORY is not set: use s3://bucket/prefix or file:///absolute/path (or set S3_BUCKET)',
        );
      storage ??= openStorage(config.repository);
      return storage;
    },
    signer() {
      const file = config.keys.signingKeyFile;
      if (file === undefined) {
        return Promise.reject(new PmsError('PMS_ERR_CONFIG', 'BACKUP_SIGNING_KEY_FILE is not set: this command signs what it writes'));
      }
      signer ??= loadSigningKey(file, config.keys.signingPassphraseFile);
      return signer;
    },
    async trust(options = {}) {
      const file = config.keys.trustedSignersFile;
      if (file === undefined) {
        throw new PmsError(
          'PMS_ERR_CONFIG',
          'BACKUP_TRUSTED_SIGNERS_FILE is not set: this command accepts only objects signed by a trusted key',
        );
      }
      trusted ??= loadTrustedSigners(file, new Date(), config.keys.walSignerFingerprints);
      if (options.allowUnsigned) {
        logger.warn(
          '--allow-unsigned: objects without any signature are accepted for this run (it is audited); badly signed ones are still refused',
        );
      }
      return { trusted: await trusted, ...(options.allowUnsigned ? { allowUnsigned: true } : {}) };
    },
  };
  logger.info(`${spec.name} started`, { repository: config.repository?.url });
  let report: CommandReport | undefined;
  let failure: PmsError | undefined;
  try {
    report = await body(context);
    return report.exitCode;
  } catch (error) {
    failure = isPmsError(error) ? error : new PmsError('PMS_ERR_INTERNAL', (error as Error)?.message ?? String(error), { cause: error });
    // Whatever stage noticed first, the reason is the signal.
    if (interrupted.signal.aborted) failure = interrupted.signal.reason as PmsError;
    throw failure;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    const finishedAt = new Date();
    const ok = failure === undefined && report?.exitCode === 0;
    const durationSeconds = (finishedAt.getTime() - startedAt.getTime()) / 1000;
    const fields = {
      ok,
      durationSeconds,
      backupId: report?.backupId ?? null,
      ...(failure ? { errorCode: failure.code, error: failure.message } : {}),
      ...report?.details,
    };
    if (ok) logger.info(`${spec.name} finished`, fields);
    else logger.error(`${spec.name} failed`, fields);
    // Only a command that can sign appends (a record nobody can prove is worth nothing, and
    // verify would flag it as an insertion).
    if (
      report?.audit !== false &&
      config.repository &&
      config.keys.signingKeyFile !== undefined &&
      !(failure && isRepositoryFailure(failure.code))
    ) {
      try {
        await appendAudit(
          context.storage(),
          {
            at: finishedAt.toISOString(),
            actor: currentActor(config.operations.podName),
            operation: spec.name,
            backupId: report?.backupId ?? null,
            outcome: ok ? 'success' : 'failure',
            details: { durationSeconds, ...(failure ? { errorCode: failure.code } : {}), ...report?.details },
          },
          await context.signer(),
        );
      } catch (error) {
        logger.warn('could not append the audit record', { error: (error as Error).message });
      }
    }
    // Loaded here, not at start-up, and only when there is a Pushgateway to push to: prom-client
    // (and the tracing API it pulls in) costs ~0.1 s of module loading.
    if (config.metrics.pushgateway !== undefined) {
      const { pushCommandMetrics } = await import('../metrics/push-command-metrics.js');
      await pushCommandMetrics(
        config.metrics,
        { command: spec.name, ok, errorCode: failure?.code, startedAt, finishedAt, ...report?.metrics },
        { warn: (message) => logger.warn(message) },
      );
    }
    await storage?.close().catch(() => undefined);
  }
}

function isRepositoryFailure(code: ErrorCode): boolean {
  return code === 'PMS_ERR_REPO_UNAVAILABLE' || code === 'PMS_ERR_REPO_ACCESS';
}
