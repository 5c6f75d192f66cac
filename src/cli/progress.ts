import type { Logger } from '../logging/json-log.js';

/** How often a long command writes a progress line to its log (the CronJob's `kubectl logs`). */
const LOG_EVERY_MS = 30_000;

/**
 * Progress of a long command: a self-overwriting line on stderr when stderr is a terminal, and
 * a `progress` line in the JSON log at most every 30 s, so an hour-long verify or restore in a
 * pod says where it is rather than nothing until it ends.
 */
export class ProgressLine {
  readonly #enabled: boolean;
  readonly #logger: Logger | undefined;
  #last = 0;
  #lastLogged: number;
  #shown = false;
  readonly #now: () => number;

  constructor(options: { logger?: Logger; tty?: boolean; now?: () => number } = {}) {
    this.#enabled = options.tty ?? process.stderr.isTTY === true;
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
    this.#lastLogged = this.#now();
  }

  update(text: string): void {
    const now = this.#now();
    if (this.#logger && now - this.#lastLogged >= LOG_EVERY_MS) {
      this.#lastLogged = now;
      this.#logger.info('progress', { progress: text });
    }
    if (!this.#enabled) return;
    if (now - this.#last < 200) return;
    this.#last = now;
    this.#shown = true;
    process.stderr.write(`\r\x1b[2K${text}`);
  }

  done(): void {
    if (this.#enabled && this.#shown) process.stderr.write('\r\x1b[2K');
    this.#shown = false;
  }
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
