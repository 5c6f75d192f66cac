import type { MetricsConfig } from '../config/metrics-config.js';
import { isPmsError } from '../errors/catalogue.js';
import type { CommandOutcome } from './command-outcome.js';
import { type PushOptions, pushCommandMetrics } from './push-command-metrics.js';

/** The facts a command can report while it runs (everything but the run's own bookkeeping). */
export type CommandFacts = Omit<CommandOutcome, 'command' | 'ok' | 'errorCode' | 'startedAt' | 'finishedAt'>;

export interface WithMetricsOptions<T> extends PushOptions {
  /** Decides success from the result, e.g. `(code) => code === 0` for monitor. Default: resolved means ok. */
  readonly isSuccess?: (result: T) => boolean;
}

/**
 * Runs a command and pushes its metrics afterwards, whether it resolved or threw; the
 * command's result or error passes through unchanged and the push never adds an error.
 * `report` may be called any number of times; later facts override earlier ones.
 */
export async function withCommandMetrics<T>(
  config: MetricsConfig,
  command: string,
  run: (report: (facts: CommandFacts) => void) => Promise<T>,
  options: WithMetricsOptions<T> = {},
): Promise<T> {
  const startedAt = new Date();
  let facts: CommandFacts = {};
  const report = (more: CommandFacts): void => {
    facts = { ...facts, ...more };
  };
  let result: T;
  try {
    result = await run(report);
  } catch (error) {
    // Anything that is not a PmsError is a bug; the exit boundary reports it as PMS_ERR_INTERNAL too.
    const errorCode = isPmsError(error) ? error.code : 'PMS_ERR_INTERNAL';
    await pushCommandMetrics(config, { ...facts, command, ok: false, errorCode, startedAt, finishedAt: new Date() }, options);
    throw error;
  }
  const ok = options.isSuccess ? options.isSuccess(result) : true;
  await pushCommandMetrics(config, { ...facts, command, ok, startedAt, finishedAt: new Date() }, options);
  return result;
}
