import type { Env } from './env-source.js';
import { Problems, deepFreeze, throwIfProblems } from './problems.js';
import type { Secret } from './secret.js';
import { SettingReader } from './setting-reader.js';
import { instanceSchema } from './setting-schemas.js';

/** The Pushgateway job every pms-backup command pushes under; alert rules match on it. */
export const METRICS_JOB_NAME = 'pms-backup';

export interface PushgatewayConfig {
  /** Base URL without credentials, e.g. http://pushgateway.monitoring:9091 (safe to print). */
  readonly url: string;
  readonly jobName: typeof METRICS_JOB_NAME;
  /**
   * Stable grouping label. It must not change between runs (never a pod name): the
   * Pushgateway keeps one group per distinct value forever, and counters are carried
   * forward inside the group.
   */
  readonly instance: string;
  /** Budget for the whole exchange (read counters + push); a slow gateway never holds up a backup. */
  readonly timeoutMs: number;
  readonly username: string | undefined;
  readonly password: Secret | undefined;
}

export interface MetricsConfig {
  /** Undefined when PUSHGATEWAY_URL is not set: metrics are then simply not pushed. */
  readonly pushgateway: PushgatewayConfig | undefined;
}

function parseUrl(raw: string, p: Problems): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    p.add(`PUSHGATEWAY_URL=${JSON.stringify(raw)} is invalid: use an http(s) URL such as http://pushgateway.monitoring:9091`);
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    p.add(`PUSHGATEWAY_URL uses ${url.protocol.replace(/:$/, '')}: use an http(s) URL such as http://pushgateway.monitoring:9091`);
    return undefined;
  }
  if (url.username !== '' || url.password !== '') {
    // Not echoed: the value holds a credential.
    p.add('PUSHGATEWAY_URL contains credentials: remove them and set PUSHGATEWAY_USERNAME and PUSHGATEWAY_PASSWORD_FILE instead');
    return undefined;
  }
  if (url.search !== '' || url.hash !== '') {
    p.add(`PUSHGATEWAY_URL=${JSON.stringify(raw)} is invalid: it must not have a query or fragment`);
    return undefined;
  }
  return url.href.replace(/\/+$/, '');
}

/** The PUSHGATEWAY_* variables; shared so a combined loader can report every problem at once. */
export function parseMetrics(settings: SettingReader, p: Problems): MetricsConfig {
  const raw = settings.get('PUSHGATEWAY_URL');
  const username = settings.get('PUSHGATEWAY_USERNAME');
  const password = settings.get('PUSHGATEWAY_PASSWORD');
  // 5 s by default: long enough for a gateway in another namespace, short enough that a dead
  // one costs a CronJob run almost nothing; at most 60 s so nobody configures a hang by accident.
  const timeoutSeconds = settings.get('PUSHGATEWAY_TIMEOUT_SECONDS');
  // The database name is the natural stable label; it is checked only when metrics are pushed,
  // so an unusual database name cannot stop a backup that pushes nothing.
  const instance = settings.get('PUSHGATEWAY_INSTANCE') ?? settings.get('POSTGRES_DB');
  if ((username === undefined) !== (password === undefined)) {
    p.add('PUSHGATEWAY_USERNAME and PUSHGATEWAY_PASSWORD must be set together (or neither)');
  }
  if (raw === undefined) return { pushgateway: undefined };
  const url = parseUrl(raw, p);
  if (url === undefined) return { pushgateway: undefined };
  if (!instanceSchema.safeParse(instance).success) {
    // Reached when the POSTGRES_DB fallback itself is not a usable label value.
    p.add(`PUSHGATEWAY_INSTANCE is not set and POSTGRES_DB cannot serve as the instance label: set PUSHGATEWAY_INSTANCE`);
  }
  return {
    pushgateway: { url, jobName: METRICS_JOB_NAME, instance, timeoutMs: Math.round(timeoutSeconds * 1000), username, password },
  };
}

/** Parses PUSHGATEWAY_* once (PMS_ERR_CONFIG listing every problem, exit 2) and freezes the result. */
export function loadMetricsConfig(env: Env): MetricsConfig {
  const problems = new Problems();
  const config = parseMetrics(new SettingReader(env, problems), problems);
  throwIfProblems(problems);
  return deepFreeze(config);
}
