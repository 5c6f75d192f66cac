import type { MetricsConfig } from '../config/metrics-config.js';
import { buildCommandRegistry } from './backup-metrics.js';
import type { CommandOutcome } from './command-outcome.js';
import { groupingFor, pushRegistry, readCounters } from './pushgateway-client.js';

export type MetricsPushResult =
  | { readonly status: 'disabled' }
  | { readonly status: 'pushed'; readonly url: string; readonly grouping: Readonly<Record<string, string>> }
  | { readonly status: 'failed'; readonly warning: string };

export interface PushOptions {
  /** Called with the warning when the push fails (wire it to the command's logger). */
  readonly warn?: (message: string) => void;
  /** Cancels the exchange early (e.g. on SIGTERM); the deadline from the config applies anyway. */
  readonly signal?: AbortSignal;
}

const COMMAND_LABEL = /^[a-z][a-z0-9-]{0,31}$/;

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  if (error.name === 'TimeoutError' || error.name === 'AbortError') return 'no answer before the timeout';
  // fetch wraps the socket error (ECONNREFUSED, ENOTFOUND...) in `cause`.
  const code = (error.cause as { code?: unknown } | undefined)?.code ?? (error as { code?: unknown }).code;
  return typeof code === 'string' ? `${code}: ${error.message}` : error.message;
}

/**
 * Pushes one command run's metrics, at the end of every command, success or failure.
 * Never throws: an unreachable, slow or broken Pushgateway gives a `failed` result with a
 * warning, because monitoring trouble must never turn a good backup into a failed one.
 */
export async function pushCommandMetrics(
  config: MetricsConfig,
  outcome: CommandOutcome,
  options: PushOptions = {},
): Promise<MetricsPushResult> {
  const gateway = config.pushgateway;
  if (gateway === undefined) return { status: 'disabled' };
  const fail = (reason: string): MetricsPushResult => {
    const warning = `metrics for "${outcome.command}" were not pushed to the Pushgateway at ${gateway.url} (${reason}); the command's result is unaffected`;
    options.warn?.(warning);
    return { status: 'failed', warning };
  };
  if (!COMMAND_LABEL.test(outcome.command)) return fail(`invalid command label ${JSON.stringify(outcome.command)}`);

  const deadline = AbortSignal.timeout(gateway.timeoutMs);
  const signal = options.signal ? AbortSignal.any([deadline, options.signal]) : deadline;
  const grouping = groupingFor(gateway, outcome.command);
  try {
    const previous = await readCounters(gateway, grouping, signal);
    await pushRegistry(gateway, grouping, buildCommandRegistry(outcome, previous), signal);
    return { status: 'pushed', url: gateway.url, grouping };
  } catch (error) {
    return fail(describe(error));
  }
}
