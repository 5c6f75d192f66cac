import { inspect } from 'node:util';

/**
 * A value that must never be printed. String conversion, JSON and util.inspect all redact it,
 * so a stray log line or error dump cannot leak it; only `reveal()` gives the value.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return '[redacted]';
  }

  toJSON(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return 'Secret([redacted])';
  }
}
