/** A single self-overwriting progress line on stderr, only when stderr is a terminal. */
export class ProgressLine {
  readonly #enabled: boolean;
  #last = 0;
  #shown = false;

  constructor(enabled = process.stderr.isTTY === true) {
    this.#enabled = enabled;
  }

  update(text: string): void {
    if (!this.#enabled) return;
    const now = Date.now();
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
