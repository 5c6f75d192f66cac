import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PmsError, isPmsError } from '../errors/catalogue.js';
import { freePort } from '../postgres/free-port.js';
import { startTool } from '../process/tool-process.js';

/** One sample of the Prometheus text exposition format. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface PushgatewayHarness {
  /** Base URL to use as PUSHGATEWAY_URL. */
  readonly url: string;
  readonly port: number;
  /** Every sample the gateway exposes to Prometheus right now (its own go_* metrics included). */
  samples(): Promise<Sample[]>;
  /** Samples of one metric whose labels include `labels`. */
  find(name: string, labels?: Readonly<Record<string, string>>): Promise<Sample[]>;
  /** Deletes every pushed group, so tests in one file can share a gateway. */
  wipe(): Promise<void>;
  /** Stops the gateway and removes its files; safe to call twice. */
  stop(): Promise<void>;
}

const BINARY = process.env['PUSHGATEWAY_BIN'] ?? 'prometheus-pushgateway';

function parseLabels(body: string): Record<string, string> {
  const labels: Record<string, string> = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const match of body.matchAll(re)) {
    labels[match[1] ?? ''] = (match[2] ?? '').replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
  }
  return labels;
}

/** Parses text exposition format lines (what Prometheus scrapes); comments are skipped. */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    if (!match) throw new Error(`unparseable exposition line: ${line}`);
    const raw = match[3] ?? '';
    const value = raw === '+Inf' ? Number.POSITIVE_INFINITY : raw === '-Inf' ? Number.NEGATIVE_INFINITY : Number(raw);
    samples.push({ name: match[1] ?? '', labels: parseLabels(match[2] ?? ''), value });
  }
  return samples;
}

/**
 * Starts the real Debian `prometheus-pushgateway` on a free 127.0.0.1 port with a persistence
 * file in a temporary directory. The admin API is enabled only so `wipe()` can reset state
 * between tests.
 */
export async function startPushgateway(): Promise<PushgatewayHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'pms-pushgateway-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const tool = startTool(BINARY, [
    `--web.listen-address=127.0.0.1:${port}`,
    `--persistence.file=${join(dir, 'pushgateway.data')}`,
    '--web.enable-admin-api',
    '--log.level=warn',
  ]);
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (tool.child.exitCode === null && tool.child.signalCode === null) {
      const closed = new Promise((resolve) => tool.child.once('close', resolve));
      tool.child.kill('SIGTERM');
      await closed;
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await waitUntilReady(url, tool.done);
  } catch (error) {
    await stop();
    throw error;
  }

  const samples = async (): Promise<Sample[]> => {
    const response = await fetch(`${url}/metrics`);
    if (!response.ok) throw new Error(`pushgateway /metrics answered HTTP ${response.status}`);
    return parseExposition(await response.text());
  };
  return {
    url,
    port,
    samples,
    async find(name, labels = {}) {
      return (await samples()).filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    },
    async wipe() {
      const response = await fetch(`${url}/api/v1/admin/wipe`, { method: 'PUT' });
      if (!response.ok) throw new Error(`pushgateway wipe answered HTTP ${response.status}`);
      // The gateway applies a wipe asynchronously (like DELETE, it only queues it): wait until no
      // pushed group is left, or the next test can read a counter the wipe had not removed yet.
      for (let attempt = 0; (await samples()).some((s) => s.name === 'push_time_seconds'); attempt += 1) {
        if (attempt >= 200) throw new Error('pushgateway still holds pushed groups 10 s after a wipe');
        await sleep(50);
      }
    },
    stop,
  };
}

async function waitUntilReady(url: string, exited: Promise<void>): Promise<void> {
  let early: unknown;
  exited.then(
    () => (early ??= new Error('pushgateway exited during start-up')),
    (error: unknown) => (early ??= error),
  );
  // Start-up is normally well under a second; the bound only turns a hang into an error.
  for (let attempt = 0; attempt < 200; attempt += 1) {
    if (isPmsError(early, 'PMS_ERR_TOOL_MISSING')) {
      throw new PmsError(
        'PMS_ERR_TOOL_MISSING',
        `${BINARY} was not found: apt-get install prometheus-pushgateway, or set PUSHGATEWAY_BIN`,
        { cause: early },
      );
    }
    if (early !== undefined) {
      throw new PmsError(
        'PMS_ERR_TOOL_FAILED',
        `prometheus-pushgateway did not start: ${early instanceof Error ? early.message : String(early)}`,
        { cause: early },
      );
    }
    try {
      const response = await fetch(`${url}/-/ready`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  throw new PmsError('PMS_ERR_TOOL_FAILED', `prometheus-pushgateway did not become ready at ${url}`);
}

/** Scoped helper: the gateway is stopped and its files removed whatever `use` does. */
export async function usingPushgateway<T>(use: (gateway: PushgatewayHarness) => Promise<T>): Promise<T> {
  const gateway = await startPushgateway();
  try {
    return await use(gateway);
  } finally {
    await gateway.stop();
  }
}
