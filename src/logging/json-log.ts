import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type LogStream = 'backup' | 'monitoring' | 'verification';
export type LogLevel = 'info' | 'warn' | 'error';

export interface Logger {
  info(message: string, fields?: Readonly<Record<string, unknown>>): void;
  warn(message: string, fields?: Readonly<Record<string, unknown>>): void;
  error(message: string, fields?: Readonly<Record<string, unknown>>): void;
  /** Files written to (for doctor and tests). */
  readonly file: string | undefined;
}

export interface LoggerOptions {
  readonly dir: string;
  readonly stream: LogStream;
  readonly command: string;
  /** Mirror each line on stderr for `kubectl logs` (default: when stderr is not a terminal). */
  readonly mirrorToStderr?: boolean;
  /** Lines below this level are not written anywhere (BACKUP_LOG_LEVEL). */
  readonly level?: LogLevel;
  readonly now?: () => Date;
}

const RANK: Readonly<Record<LogLevel, number>> = { info: 0, warn: 1, error: 2 };

function day(date: Date): string {
  return date.toISOString().slice(0, 10).replace(/-/g, '');
}

/**
 * JSON-lines logs with the seed's names: $BACKUP_LOG_DIR/backup_YYYYMMDD.log,
 * monitoring_YYYYMMDD.log, verification_YYYYMMDD.log (UTC dates). Callers pass only facts
 * that are safe to keep (ids, sizes, codes): never secrets or patient data. A log directory
 * that cannot be written is reported once on stderr and never fails the operation.
 */
export function createLogger(options: LoggerOptions): Logger {
  const now = options.now ?? (() => new Date());
  const mirror = options.mirrorToStderr ?? process.stderr.isTTY !== true;
  let fileBroken = false;
  let file: string | undefined = join(options.dir, `${options.stream}_${day(now())}.log`);
  try {
    mkdirSync(options.dir, { recursive: true, mode: 0o750 });
  } catch (error) {
    fileBroken = true;
    process.stderr.write(
      `warning: cannot create log directory ${options.dir} (${(error as NodeJS.ErrnoException).code ?? 'error'}); logging to stderr only. Set BACKUP_LOG_DIR to a writable directory.\n`,
    );
    file = undefined;
  }
  const lowest = RANK[options.level ?? 'info'];
  const write = (level: LogLevel, message: string, fields: Readonly<Record<string, unknown>> = {}) => {
    if (RANK[level] < lowest) return;
    const at = now();
    const line = `${JSON.stringify({ time: at.toISOString(), level, command: options.command, msg: message, ...fields })}\n`;
    if (!fileBroken) {
      try {
        appendFileSync(join(options.dir, `${options.stream}_${day(at)}.log`), line, { mode: 0o640 });
      } catch (error) {
        fileBroken = true;
        process.stderr.write(
          `warning: cannot write log file in ${options.dir} (${(error as NodeJS.ErrnoException).code ?? 'error'}); logging to stderr only\n`,
        );
      }
    }
    if (mirror) process.stderr.write(line);
  };
  return {
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    file,
  };
}
