import type { Registry } from 'prom-client';
import { z } from 'zod';
import type { PushgatewayConfig } from '../config/metrics-config.js';
import { type CounterValues, METRIC } from './backup-metrics.js';

export type Grouping = Readonly<Record<string, string>>;

/** The grouping key of one command's group: job is implicit, command and instance are explicit. */
export function groupingFor(config: PushgatewayConfig, command: string): Grouping {
  return { command, instance: config.instance };
}

function authHeaders(config: PushgatewayConfig): Record<string, string> {
  if (config.username === undefined || config.password === undefined) return {};
  const token = Buffer.from(`${config.username}:${config.password.reveal()}`).toString('base64');
  return { Authorization: `Basic ${token}` };
}

// Only the parts we read; the API returns much more (help, time_stamp, push_time_seconds...).
const familySchema = z.object({ metrics: z.array(z.object({ value: z.string() })) });
const apiSchema = z.object({
  status: z.literal('success'),
  data: z.array(z.record(z.string(), z.unknown())),
});

function counterValue(group: Record<string, unknown>, name: string): number {
  const family = familySchema.safeParse(group[name]);
  if (!family.success) return 0;
  const value = Number(family.data.metrics[0]?.value ?? 0);
  return Number.isFinite(value) && value >= 0 ? value : 0;
}

function sameGroup(labels: unknown, job: string, grouping: Grouping): boolean {
  if (labels === null || typeof labels !== 'object') return false;
  const wanted: Record<string, string> = { job, ...grouping };
  const actual = labels as Record<string, unknown>;
  const keys = new Set([...Object.keys(wanted), ...Object.keys(actual)]);
  return [...keys].every((key) => actual[key] === wanted[key]);
}

/**
 * Reads the counters the Pushgateway holds for this group (0 when the group does not exist
 * yet). Throws on any transport or protocol failure: the caller must then not push, because
 * pushing without the previous values would reset the counters.
 */
export async function readCounters(config: PushgatewayConfig, grouping: Grouping, signal: AbortSignal): Promise<CounterValues> {
  const response = await fetch(`${config.url}/api/v1/metrics`, { headers: authHeaders(config), signal });
  if (!response.ok) throw new Error(`GET /api/v1/metrics answered HTTP ${response.status}`);
  const body = apiSchema.safeParse(await response.json());
  if (!body.success) throw new Error('GET /api/v1/metrics returned an unexpected document');
  const group = body.data.data.find((g) => sameGroup(g['labels'], config.jobName, grouping));
  if (group === undefined) return { success: 0, failure: 0 };
  return { success: counterValue(group, METRIC.success), failure: counterValue(group, METRIC.failure) };
}

/**
 * POSTs the registry into the group (the Pushgateway's pushAdd): metric names in the registry
 * replace theirs, every other metric in the group is left alone. That is what lets a failed
 * run leave the last good size and success time in place. Sent with fetch rather than
 * prom-client's Pushgateway class so the one deadline signal covers it and no deprecated
 * url.parse runs on newer Node versions.
 */
export async function pushRegistry(config: PushgatewayConfig, grouping: Grouping, registry: Registry, signal: AbortSignal): Promise<void> {
  // Grouping values are restricted to [A-Za-z0-9_.:-] by config, so no @base64 form is needed.
  const path = [['job', config.jobName], ...Object.entries(grouping)]
    .map(([k, v]) => `/${encodeURIComponent(k ?? '')}/${encodeURIComponent(v ?? '')}`)
    .join('');
  const response = await fetch(`${config.url}/metrics${path}`, {
    method: 'POST',
    headers: { 'Content-Type': registry.contentType, ...authHeaders(config) },
    body: await registry.metrics(),
    signal,
  });
  if (!response.ok) {
    const detail = (await response.text().catch(() => '')).trim().slice(0, 300);
    throw new Error(`push answered HTTP ${response.status}${detail ? `: ${detail}` : ''}`);
  }
}
